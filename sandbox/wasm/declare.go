package wasm

import (
	"encoding/binary"
	"encoding/json"
)

// DeclareFields returns module with a dsbx.fields custom section naming
// fields appended: how a guest built by a toolchain that cannot emit custom
// sections (Go's, for one) declares what it reads. A module that already
// declares its fields is refused, as are field lists Check would refuse.
func DeclareFields(module []byte, fields []string) ([]byte, error) {
	secs, _, err := scan(module)
	if err != nil {
		return nil, errorf(CodeMalformed, "%v", err)
	}
	if len(secs[FieldsSection]) > 0 {
		have, _ := parseFields(secs)
		return nil, errorf(CodeBadFields, "module already declares its fields %q; declare them once, on the module as built", have)
	}
	payload, err := json.Marshal(fields)
	if err != nil || fields == nil {
		return nil, errorf(CodeBadFields, "fields must be a list of names")
	}
	if _, err := parseFields(map[string][][]byte{FieldsSection: {payload}}); err != nil {
		return nil, err
	}
	return appendSection(module, FieldsSection, payload)
}

// DeclareOutput returns module with a dsbx.output custom section declaring
// out appended. The module must already declare its fields (group_by names
// some of them) and must not declare its output yet.
func DeclareOutput(module []byte, out Output) ([]byte, error) {
	secs, _, err := scan(module)
	if err != nil {
		return nil, errorf(CodeMalformed, "%v", err)
	}
	if len(secs[OutputSection]) > 0 {
		return nil, errorf(CodeBadOutput, "module already declares its output; declare it once")
	}
	fields, err := parseFields(secs)
	if err != nil {
		return nil, err
	}
	if err := out.validate(fields); err != nil {
		return nil, err
	}
	payload, err := json.Marshal(out)
	if err != nil {
		return nil, errorf(CodeBadOutput, "%v", err)
	}
	return appendSection(module, OutputSection, payload)
}

// appendSection returns module with custom section name holding payload
// appended.
func appendSection(module []byte, name string, payload []byte) ([]byte, error) {
	body := binary.AppendUvarint(nil, uint64(len(name)))
	body = append(body, name...)
	body = append(body, payload...)
	out := append([]byte(nil), module...)
	out = append(out, 0) // custom section id
	out = binary.AppendUvarint(out, uint64(len(body)))
	if len(out)+len(body) > MaxModuleSize {
		return nil, errorf(CodeTooLarge, "module with its %s section would be %d bytes, more than %d", name, len(out)+len(body), MaxModuleSize)
	}
	return append(out, body...), nil
}
