package wasm

import (
	"errors"
	"fmt"
)

// rawImport is one entry of the import section.
type rawImport struct {
	module, name string
	kind         byte // 0 func, 1 table, 2 memory, 3 global, 4 tag
}

func kindName(k byte) string {
	switch k {
	case 1:
		return "table"
	case 2:
		return "memory"
	case 3:
		return "global"
	case 4:
		return "tag"
	}
	return fmt.Sprintf("kind %d", k)
}

// scan walks the top-level sections of a wasm binary and returns the custom
// sections by name and the import section's entries. It checks structure
// only; full validation is wazero's.
func scan(b []byte) (map[string][][]byte, []rawImport, error) {
	if len(b) < 8 || string(b[:4]) != "\x00asm" {
		return nil, nil, errors.New("not a WebAssembly binary (bad magic)")
	}
	if string(b[4:8]) != "\x01\x00\x00\x00" {
		return nil, nil, errors.New("unsupported WebAssembly binary version")
	}
	secs := map[string][][]byte{}
	var imps []rawImport
	r := &reader{b: b, off: 8}
	for r.off < len(r.b) {
		id, err := r.byte()
		if err != nil {
			return nil, nil, err
		}
		size, err := r.u32()
		if err != nil {
			return nil, nil, fmt.Errorf("section %d: %w", id, err)
		}
		body, err := r.bytes(int(size))
		if err != nil {
			return nil, nil, fmt.Errorf("section %d: %w", id, err)
		}
		switch id {
		case 0:
			sr := &reader{b: body}
			name, err := sr.name()
			if err != nil {
				return nil, nil, fmt.Errorf("custom section name: %w", err)
			}
			secs[name] = append(secs[name], body[sr.off:])
		case 2:
			if imps != nil {
				return nil, nil, errors.New("duplicate import section")
			}
			imps, err = parseImports(body)
			if err != nil {
				return nil, nil, fmt.Errorf("import section: %w", err)
			}
			if imps == nil {
				imps = []rawImport{}
			}
		}
	}
	return secs, imps, nil
}

func parseImports(body []byte) ([]rawImport, error) {
	r := &reader{b: body}
	n, err := r.u32()
	if err != nil {
		return nil, err
	}
	if int(n) > len(body) {
		return nil, errors.New("import count exceeds section size")
	}
	out := make([]rawImport, 0, n)
	for i := uint32(0); i < n; i++ {
		var im rawImport
		if im.module, err = r.name(); err != nil {
			return nil, err
		}
		if im.name, err = r.name(); err != nil {
			return nil, err
		}
		if im.kind, err = r.byte(); err != nil {
			return nil, err
		}
		switch im.kind {
		case 0: // func: type index
			_, err = r.u32()
		case 1: // table: reftype, limits
			if _, err = r.byte(); err == nil {
				err = r.limits()
			}
		case 2: // memory: limits
			err = r.limits()
		case 3: // global: valtype, mutability
			if _, err = r.byte(); err == nil {
				_, err = r.byte()
			}
		case 4: // tag: attribute, type index
			if _, err = r.byte(); err == nil {
				_, err = r.u32()
			}
		default:
			return nil, fmt.Errorf("import %q.%q has unknown kind %d", im.module, im.name, im.kind)
		}
		if err != nil {
			return nil, err
		}
		out = append(out, im)
	}
	if r.off != len(body) {
		return nil, errors.New("trailing bytes")
	}
	return out, nil
}

type reader struct {
	b   []byte
	off int
}

var errEOF = errors.New("unexpected end of module")

func (r *reader) byte() (byte, error) {
	if r.off >= len(r.b) {
		return 0, errEOF
	}
	c := r.b[r.off]
	r.off++
	return c, nil
}

func (r *reader) u32() (uint32, error) {
	var v uint32
	for shift := 0; shift < 35; shift += 7 {
		c, err := r.byte()
		if err != nil {
			return 0, err
		}
		if shift == 28 && c > 0x0f {
			return 0, errors.New("LEB128 overflows u32")
		}
		v |= uint32(c&0x7f) << shift
		if c&0x80 == 0 {
			return v, nil
		}
	}
	return 0, errors.New("LEB128 too long")
}

func (r *reader) u64() error {
	for i := 0; i < 10; i++ {
		c, err := r.byte()
		if err != nil {
			return err
		}
		if c&0x80 == 0 {
			return nil
		}
	}
	return errors.New("LEB128 too long")
}

func (r *reader) bytes(n int) ([]byte, error) {
	if n < 0 || n > len(r.b)-r.off {
		return nil, errEOF
	}
	b := r.b[r.off : r.off+n]
	r.off += n
	return b, nil
}

func (r *reader) name() (string, error) {
	n, err := r.u32()
	if err != nil {
		return "", err
	}
	b, err := r.bytes(int(n))
	return string(b), err
}

func (r *reader) limits() error {
	flag, err := r.byte()
	if err != nil {
		return err
	}
	if err := r.u64(); err != nil { // min (u64 for memory64)
		return err
	}
	if flag&1 != 0 {
		return r.u64() // max
	}
	return nil
}
