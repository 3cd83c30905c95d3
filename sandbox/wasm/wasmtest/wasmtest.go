// Package wasmtest builds tiny WebAssembly modules byte by byte for tests:
// guests whose behaviour is exact and that need no toolchain.
package wasmtest

import (
	"bytes"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Emit returns a WASI command that writes payload to stdout with one
// fd_write and returns, reading nothing. fields is the JSON array for its
// dsbx.fields section; output, if not empty, the JSON of its dsbx.output.
func Emit(payload []byte, fields, output string) []byte {
	return module(payload, false, fields, output)
}

// Trap is Emit whose guest then executes unreachable: output cut off by a
// trap.
func Trap(payload []byte, fields string) []byte {
	return module(payload, true, fields, "")
}

func module(payload []byte, trap bool, fields, output string) []byte {
	data := make([]byte, 32, 32+len(payload))
	data[0] = 32 // iovec.buf = 32
	l := uint32(len(payload))
	data[4], data[5], data[6], data[7] = byte(l), byte(l>>8), byte(l>>16), byte(l>>24)
	data = append(data, payload...)
	body := []byte{0x00, // no locals
		0x41, 0x01, // i32.const 1 (stdout)
		0x41, 0x00, // i32.const 0 (iovs)
		0x41, 0x01, // i32.const 1 (iovs_len)
		0x41, 0x10, // i32.const 16 (nwritten)
		0x10, 0x00, // call fd_write
		0x1a, // drop
	}
	if trap {
		body = append(body, 0x00) // unreachable
	}
	body = append(body, 0x0b)
	pages := (uint64(len(data)) + 65535) / 65536
	out := cat([]byte("\x00asm\x01\x00\x00\x00"),
		section(1, vec([]byte{0x60, 4, 0x7f, 0x7f, 0x7f, 0x7f, 1, 0x7f}, []byte{0x60, 0, 0})),
		section(2, vec(cat(name("wasi_snapshot_preview1"), name("fd_write"), []byte{0x00, 0x00}))),
		section(3, vec([]byte{0x01})),
		section(5, vec(cat([]byte{0x00}, uleb(pages)))), // memory: min pages
		section(7, vec(cat(name("_start"), []byte{0x00, 0x01}), cat(name("memory"), []byte{0x02, 0x00}))),
		section(10, vec(cat(uleb(uint64(len(body))), body))),
		section(11, vec(cat([]byte{0x00, 0x41, 0x00, 0x0b}, uleb(uint64(len(data))), data))),
		Custom("dsbx.fields", []byte(fields)),
	)
	if output != "" {
		out = append(out, Custom("dsbx.output", []byte(output))...)
	}
	return out
}

// Custom returns a custom section.
func Custom(n string, payload []byte) []byte { return section(0, cat(name(n), payload)) }

func uleb(v uint64) []byte {
	var out []byte
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v == 0 {
			return append(out, c)
		}
		out = append(out, c|0x80)
	}
}

func vec(items ...[]byte) []byte { return cat(uleb(uint64(len(items))), cat(items...)) }

func name(s string) []byte { return cat(uleb(uint64(len(s))), []byte(s)) }

func section(id byte, body []byte) []byte { return cat([]byte{id}, uleb(uint64(len(body))), body) }

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// Import returns a command whose _start calls mod.fn, an imported () -> ()
// function, declaring fields: a module asking for a host function.
func Import(mod, fn, fields string) []byte {
	return cat([]byte("\x00asm\x01\x00\x00\x00"),
		section(1, vec([]byte{0x60, 0x00, 0x00})),
		section(2, vec(cat(name(mod), name(fn), []byte{0x00, 0x00}))),
		section(3, vec([]byte{0x00})),
		section(7, vec(cat(name("_start"), []byte{0x00, 0x01}))),
		section(10, vec(cat(uleb(4), []byte{0x00, 0x10, 0x00, 0x0b}))),
		Custom("dsbx.fields", []byte(fields)),
	)
}

// IPC encodes one record batch as an Arrow IPC stream, as a guest writes its
// result; each column is a []string (utf8) or []int64 (int64), matching its
// field's type.
func IPC(fields []arrow.Field, cols ...any) ([]byte, error) {
	schema := arrow.NewSchema(fields, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	for i, c := range cols {
		switch v := c.(type) {
		case []string:
			b.Field(i).(*array.StringBuilder).AppendValues(v, nil)
		case []int64:
			b.Field(i).(*array.Int64Builder).AppendValues(v, nil)
		default:
			return nil, fmt.Errorf("column %d: unsupported %T", i, c)
		}
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(schema))
	if err := w.Write(rec); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
