package wasm

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/datasandbox/dsbx/sandbox/wasm/wasmtest"
)

// fuzzModules are the seeds of the module fuzz targets: small modules built
// byte by byte (no Go guest is compiled: that takes seconds), valid ones and
// damaged ones.
func fuzzModules() [][]byte {
	emit := wasmtest.Emit([]byte("hello"), `["value"]`, "")
	agg := wasmtest.Emit([]byte("x"), `["region","income"]`, `{"kind":"aggregate","group_by":["region"]}`)
	host := wasmtest.Import(HostModule, "log", `["a"]`)
	minimal := cat(header, // the smallest module Check accepts: () -> () _start, no imports
		section(1, vec([]byte{0x60, 0x00, 0x00})),
		section(3, vec([]byte{0x00})),
		section(7, vec(cat(name("_start"), []byte{0x00, 0x00}))),
		section(10, vec(cat(uleb(2), []byte{0x00, 0x0b}))),
		customSection(FieldsSection, []byte(`["x"]`)),
	)
	seeds := [][]byte{
		emit, agg, host, minimal,
		wasmtest.Trap([]byte("partial"), `["value"]`),
		wasmtest.Import(WASIModule, "fd_write", `["a"]`),
		rawFields(evilModule(), []string{"x"}),                                 // forbidden import
		rawFields(importModule(WASIModule, "sock_accept"), []string{"x"}),      // not on the allow-list
		append(cat(minimal), customSection(FieldsSection, []byte(`["y"]`))...), // two fields sections
		append(cat(minimal), customSection(OutputSection, []byte(`{"kind":"aggregate","group_by":["nope"]}`))...),
		append(cat(minimal), customSection(OutputSection, []byte(`{"kind":"rows","extra":1}`))...),
		cat(header, section(0, []byte{0x7f, 'd'})),                                    // custom section whose name overruns it
		cat(header, section(0, []byte{0xff, 0xff, 0xff, 0xff, 0x7f})),                 // name length overflows
		cat(header, section(2, []byte{0x01, 0x01, 'a', 0x01, 'b', 0x02, 0x00, 0x01})), // imported memory
		[]byte("\x00asm\x02\x00\x00\x00"),
		[]byte("not wasm"),
		nil,
	}
	for _, m := range [][]byte{emit, minimal, host} {
		for _, cut := range []int{8, 9, 10, len(m) / 2, len(m) - 1} {
			seeds = append(seeds, m[:cut])
		}
	}
	flipped := cat(emit)
	flipped[len(flipped)-3] ^= 0x20 // inside the fields JSON
	seeds = append(seeds, flipped)
	return seeds
}

// checkWatchdog is how long one Check may take in FuzzCheck; valid small
// modules take milliseconds.
const checkWatchdog = 15 * time.Second

// FuzzCheck feeds arbitrary bytes to Check. It must not panic, must refuse
// with an *Error carrying a message, and a module it accepts imports only
// functions on the allow-list (by wazero's reading and by scan's), declares
// well-formed fields and a valid output.
func FuzzCheck(f *testing.F) {
	for _, m := range fuzzModules() {
		f.Add(m)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		// A watchdog: the fuzzing engine has no per-input timeout, and a
		// module that keeps Check busy is a denial of service.
		var m *Module
		var err error
		done := make(chan struct{})
		go func() {
			defer close(done)
			m, err = Check(ctx, data)
		}()
		select {
		case <-done:
		case <-time.After(checkWatchdog):
			t.Fatalf("Check still busy after %v on a %d-byte module", checkWatchdog, len(data))
		}
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Code == "" || e.Msg == "" {
				t.Fatalf("Check refused with %v (%T), want an *Error with a code and a message", err, err)
			}
			if m != nil {
				t.Fatal("Check returned a module with its error")
			}
			return
		}
		for _, im := range m.Imports {
			if !allowed(im.Module, im.Name) {
				t.Fatalf("accepted module imports %s.%s, which is not allowed", im.Module, im.Name)
			}
		}
		secs, imps, err := scan(data)
		if err != nil {
			t.Fatalf("accepted module does not scan: %v", err)
		}
		if len(imps) != len(m.Imports) {
			t.Fatalf("scan finds %d imports, wazero %d", len(imps), len(m.Imports))
		}
		for _, im := range imps {
			if im.kind != 0 || !allowed(im.module, im.name) {
				t.Fatalf("accepted module imports %s %q.%q", kindName(im.kind), im.module, im.name)
			}
		}
		if len(secs[FieldsSection]) != 1 {
			t.Fatalf("accepted module without exactly one %s section", FieldsSection)
		}
		for _, fl := range m.Fields {
			if fl == "" || len(fl) > MaxFieldNameBytes {
				t.Fatalf("accepted field name %q", fl)
			}
		}
		if err := m.Output.validate(m.Fields); err != nil {
			t.Fatalf("accepted output %+v: %v", m.Output, err)
		}
		if m.Size != len(data) || len(m.SHA256) != 64 {
			t.Fatalf("module size %d (have %d bytes), sha256 %q", m.Size, len(data), m.SHA256)
		}
	})
}

// FuzzScan fuzzes the structural scanner and the custom-section parsers
// alone, much faster than Check (no compilation): no panic, and what scan
// returns is consistent with the input.
func FuzzScan(f *testing.F) {
	for _, m := range fuzzModules() {
		f.Add(m)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		secs, imps, err := scan(data)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("scan error without a message")
			}
			return
		}
		total := 0
		for n, payloads := range secs {
			for _, p := range payloads {
				total += len(n) + len(p)
			}
		}
		if total > len(data) {
			t.Fatalf("custom sections hold %d bytes of a %d-byte module", total, len(data))
		}
		for _, im := range imps {
			if im.kind > 4 {
				t.Fatalf("import %q.%q of unknown kind %d accepted", im.module, im.name, im.kind)
			}
		}
		fields, ferr := parseFields(secs)
		if ferr != nil {
			var e *Error
			if !errors.As(ferr, &e) || e.Msg == "" {
				t.Fatalf("parseFields: %v (%T)", ferr, ferr)
			}
		} else {
			if len(fields) == 0 && fields == nil {
				t.Fatal("parseFields accepted null")
			}
			seen := map[string]bool{}
			for _, fl := range fields {
				if fl == "" || len(fl) > MaxFieldNameBytes || seen[fl] {
					t.Fatalf("parseFields accepted %q", fields)
				}
				seen[fl] = true
			}
		}
		out, oerr := parseOutput(secs, fields)
		if oerr == nil && out.Kind != OutputRows && out.Kind != OutputAggregate {
			t.Fatalf("parseOutput accepted kind %q", out.Kind)
		}
		if oerr == nil && out.Kind == OutputAggregate {
			for _, g := range out.GroupBy {
				if !slices.Contains(fields, g) {
					t.Fatalf("group_by %q outside fields %q", g, fields)
				}
			}
		}
	})
}

// TestFuzzSeedsAccepted makes sure the fuzz seeds reach past the refusals:
// the valid ones pass Check.
func TestFuzzSeedsAccepted(t *testing.T) {
	seeds := fuzzModules()
	for i := range 4 { // emit, agg, host, minimal
		if _, err := Check(context.Background(), seeds[i]); err != nil {
			t.Errorf("seed %d: %v", i, err)
		}
	}
}
