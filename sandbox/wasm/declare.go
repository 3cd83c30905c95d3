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
	body := binary.AppendUvarint(nil, uint64(len(FieldsSection)))
	body = append(body, FieldsSection...)
	body = append(body, payload...)
	out := append([]byte(nil), module...)
	out = append(out, 0) // custom section id
	out = binary.AppendUvarint(out, uint64(len(body)))
	if len(out)+len(body) > MaxModuleSize {
		return nil, errorf(CodeTooLarge, "module with its fields would be %d bytes, more than %d", len(out)+len(body), MaxModuleSize)
	}
	return append(out, body...), nil
}
