package wasm

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/datasandbox/dsbx/sandbox/wasm/wasmtest"
)

var guestNames = []string{"echo", "loop", "membomb", "bigout", "panicky", "trapmid", "escape", "random", "env", "hostcalls"}

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// guest returns the named testdata guest, built once per test run for
// GOOS=wasip1 GOARCH=wasm, with a dsbx.fields section declaring fields.
func guest(t *testing.T, name string, fields ...string) []byte {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "dsbx-wasm-guests-")
		if buildErr != nil {
			return
		}
		args := []string{"build", "-o", buildDir + string(os.PathSeparator)}
		for _, g := range guestNames {
			args = append(args, "./testdata/"+g)
		}
		cmd := exec.Command("go", args...)
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "GOFLAGS=")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = errors.New(err.Error() + ": " + string(out))
		}
	})
	if buildErr != nil {
		t.Fatalf("building guests: %v", buildErr)
	}
	b, err := os.ReadFile(filepath.Join(buildDir, name))
	if err != nil {
		t.Fatal(err)
	}
	if fields == nil {
		fields = []string{"value"}
	}
	return withFields(b, fields)
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// uleb encodes v as unsigned LEB128.
func uleb(v uint64) []byte {
	var out []byte
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v != 0 {
			out = append(out, c|0x80)
		} else {
			return append(out, c)
		}
	}
}

func vec(items ...[]byte) []byte {
	out := uleb(uint64(len(items)))
	for _, it := range items {
		out = append(out, it...)
	}
	return out
}

func name(s string) []byte { return append(uleb(uint64(len(s))), s...) }

func section(id byte, body []byte) []byte {
	return append(append([]byte{id}, uleb(uint64(len(body)))...), body...)
}

func customSection(n string, payload []byte) []byte {
	return section(0, append(name(n), payload...))
}

// rawFields appends a dsbx.fields section without any check, as a hostile
// module would.
func rawFields(mod []byte, fields []string) []byte {
	j, _ := json.Marshal(fields)
	return append(append([]byte(nil), mod...), customSection(FieldsSection, j)...)
}

// withFields declares fields on a module as a guest author would.
func withFields(mod []byte, fields []string) []byte {
	out, err := DeclareFields(mod, fields)
	if err != nil {
		panic(err)
	}
	return out
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

var header = []byte("\x00asm\x01\x00\x00\x00")

// evilModule imports env.evil and calls it from _start.
func evilModule() []byte { return importModule("env", "evil") }

// importModule imports mod.fn as () -> () and calls it from _start.
func importModule(mod, fn string) []byte {
	return cat(header,
		section(1, vec([]byte{0x60, 0x00, 0x00})),                      // type 0: () -> ()
		section(2, vec(cat(name(mod), name(fn), []byte{0x00, 0x00}))),  // import func env.evil : type 0
		section(3, vec([]byte{0x00})),                                  // func 1 : type 0
		section(7, vec(cat(name("_start"), []byte{0x00, 0x01}))),       // export _start = func 1
		section(10, vec(cat(uleb(4), []byte{0x00, 0x10, 0x00, 0x0b}))), // body: call 0; end
	)
}

func run(t *testing.T, mod []byte, in io.Reader, lim Limits, seed int64) (*Report, []byte, error) {
	t.Helper()
	var out bytes.Buffer
	rep, err := Run(context.Background(), Spec{Module: mod, Input: in, Output: &out, Limits: lim, Seed: seed})
	return rep, out.Bytes(), err
}

func TestCheckGoGuest(t *testing.T) {
	m, err := Check(context.Background(), guest(t, "echo", "age", "region"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(m.Fields, ",") != "age,region" {
		t.Fatalf("fields = %v", m.Fields)
	}
	var names []string
	for _, im := range m.Imports {
		names = append(names, im.Name)
	}
	t.Logf("Go wasip1 echo imports: %v", names)
}

func TestEchoStreamsLargeInput(t *testing.T) {
	in := make([]byte, 20<<20)
	rand.Read(in)
	rep, out, err := run(t, guest(t, "echo"), bytes.NewReader(in), Limits{MemoryPages: 1024, Timeout: 30 * time.Second, MaxOutput: 32 << 20}, 1)
	if err != nil {
		t.Fatalf("run: %v (log %q)", err, rep.Log)
	}
	if sha256.Sum256(out) != sha256.Sum256(in) || rep.OutputBytes != int64(len(in)) {
		t.Fatalf("output differs: %d bytes vs %d", len(out), len(in))
	}
	t.Logf("20 MiB echo: wall %v, peak %d pages (%d MiB)", rep.Wall, rep.PeakPages, rep.PeakPages/16)
	if rep.PeakPages >= 20<<20/65536 {
		t.Errorf("echo held the whole input in memory: %d pages", rep.PeakPages)
	}
}

func TestInfiniteLoopStoppedByDeadline(t *testing.T) {
	rep, _, err := run(t, guest(t, "loop"), nil, Limits{Timeout: 500 * time.Millisecond}, 1)
	var le *LimitError
	if !errors.As(err, &le) || le.Kind != "time" || !errors.Is(err, ErrLimit) {
		t.Fatalf("err = %v, want time limit", err)
	}
	if rep.Wall > 5*time.Second { // instantiation to stop; compilation excluded
		t.Fatalf("took %v", rep.Wall)
	}
	if rep.Wall < 500*time.Millisecond {
		t.Fatalf("stopped after %v, before the deadline", rep.Wall)
	}
	t.Logf("%v (stopped after %v; compile %v)", err, rep.Wall, rep.Compile)
}

func TestMemoryBombHitsPageLimit(t *testing.T) {
	rep, _, err := run(t, guest(t, "membomb"), nil, Limits{MemoryPages: 512, Timeout: 20 * time.Second}, 1)
	var le *LimitError
	if !errors.As(err, &le) || le.Kind != "memory" {
		t.Fatalf("err = %v, want memory limit; log %q", err, rep.Log)
	}
	if rep.PeakPages > 512 {
		t.Fatalf("peak %d pages above the limit", rep.PeakPages)
	}
	t.Logf("%v; peak %d pages", err, rep.PeakPages)
}

func TestHugeOutputHitsCap(t *testing.T) {
	rep, out, err := run(t, guest(t, "bigout"), nil, Limits{MaxOutput: 1 << 20, Timeout: 20 * time.Second}, 1)
	var le *LimitError
	if !errors.As(err, &le) || le.Kind != "output" {
		t.Fatalf("err = %v, want output limit", err)
	}
	if int64(len(out)) > 1<<20 || rep.OutputBytes > 1<<20 {
		t.Fatalf("wrote %d bytes past a 1 MiB cap", len(out))
	}
	t.Log(err)
}

func TestGuestPanic(t *testing.T) {
	rep, _, err := run(t, guest(t, "panicky"), nil, Limits{}, 1)
	var ge *GuestError
	if !errors.As(err, &ge) || ge.ExitCode == 0 {
		t.Fatalf("err = %v, want guest failure", err)
	}
	if !strings.Contains(rep.Log, "panic: guest says boom") || !strings.Contains(err.Error(), "guest says boom") {
		t.Fatalf("panic message missing: err %v, log %q", err, rep.Log)
	}
	t.Log(err)
}

func TestPanicMidOutput(t *testing.T) {
	rep, out, err := run(t, guest(t, "trapmid"), nil, Limits{}, 1)
	if !errors.Is(err, ErrGuestFailed) {
		t.Fatalf("err = %v, want guest failure (partial output %d bytes)", err, len(out))
	}
	t.Logf("%v; %d partial bytes reported as failure", err, rep.OutputBytes)
}

func TestTrapMidOutput(t *testing.T) {
	mod := wasmtest.Trap([]byte("partial result"), `["x"]`)
	rep, out, err := run(t, mod, nil, Limits{}, 1)
	var ge *GuestError
	if !errors.As(err, &ge) || !strings.Contains(ge.Trap, "unreachable") {
		t.Fatalf("err = %v, want unreachable trap", err)
	}
	if string(out) != "partial result" || rep.OutputBytes != 14 {
		t.Fatalf("out = %q", out) // written, but Run failed: caller discards it
	}
	t.Log(err)
}

func TestCheckRefuses(t *testing.T) {
	echo := guest(t, "echo")
	raw := echo[:len(echo)-len(customSection(FieldsSection, []byte(`["value"]`)))]
	cases := []struct {
		name string
		mod  []byte
		code string
		want string
	}{
		{"evil import", withFields(evilModule(), []string{"x"}), CodeForbiddenImport, `"env"."evil"`},
		{"garbage", []byte("this is not wasm at all"), CodeMalformed, "magic"},
		{"empty", nil, CodeMalformed, ""},
		{"truncated", withFields(evilModule(), []string{"x"})[:20], CodeMalformed, ""},
		{"bad body", cat(header, section(1, vec([]byte{0x60, 0, 0})), section(3, vec([]byte{0})), section(10, vec([]byte{2, 0xff, 0x0b})), customSection(FieldsSection, []byte(`[]`))), CodeMalformed, ""},
		{"no fields", raw, CodeNoFields, FieldsSection},
		{"fields not json", append(append([]byte(nil), raw...), customSection(FieldsSection, []byte(`{"a":1}`))...), CodeBadFields, ""},
		{"fields dup", rawFields(raw, []string{"a", "a"}), CodeBadFields, "twice"},
		{"two sections", rawFields(rawFields(raw, []string{"a"}), []string{"b"}), CodeBadFields, "exactly one"},
		{"no start", withFields(cat(header, section(1, vec([]byte{0x60, 0, 0})), section(3, vec([]byte{0})), section(10, vec([]byte{2, 0x00, 0x0b}))), []string{"x"}), CodeNoStart, "_start"},
		{"sock import", withFields(importModule(WASIModule, "sock_accept"), []string{"x"}), CodeForbiddenImport, "sock_accept"},
		{"too large", make([]byte, MaxModuleSize+1), CodeTooLarge, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Check(context.Background(), c.mod)
			var e *Error
			if !errors.As(err, &e) || e.Code != c.code || !strings.Contains(e.Msg, c.want) {
				t.Fatalf("err = %v, want code %s containing %q", err, c.code, c.want)
			}
			t.Log(err)
			// Run refuses it the same way.
			if _, err := Run(context.Background(), Spec{Module: c.mod, Output: io.Discard}); !errors.As(err, &e) {
				t.Fatalf("Run err = %v", err)
			}
		})
	}
}

func TestNoFilesystemNoNetwork(t *testing.T) {
	rep, out, err := run(t, guest(t, "escape"), nil, Limits{}, 1)
	if err != nil {
		t.Fatalf("run: %v (report %+v)", err, rep)
	}
	s := string(out)
	t.Logf("guest printed:\n%s", s)
	t.Logf("denied calls: %v", rep.Denied)
	for _, want := range []string{"open: ", "readfile: ", "readdir: ", "dial: "} {
		if !strings.Contains(s, want) {
			t.Fatalf("missing %q", want)
		}
	}
	if strings.Contains(s, ": OK") || strings.Contains(s, "root:") {
		t.Fatalf("guest reached the host: %s", s)
	}
}

func TestSeededRandomness(t *testing.T) {
	mod := guest(t, "random")
	get := func(seed int64) string {
		rep, out, err := run(t, mod, nil, Limits{}, seed)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Seed != seed {
			t.Fatalf("report seed %d, want %d", rep.Seed, seed)
		}
		return string(out)
	}
	a1, a2, b := get(42), get(42), get(43)
	if a1 != a2 {
		t.Fatalf("same seed differs: %q vs %q", a1, a2)
	}
	if a1 == b {
		t.Fatalf("different seeds agree: %q", a1)
	}
	rep, _, err := run(t, mod, nil, Limits{}, 0)
	if err != nil || rep.Seed == 0 {
		t.Fatalf("seed 0 should draw a seed: %v %d", err, rep.Seed)
	}
	t.Logf("seed 42: %q; seed 43: %q; drawn seed %d", a1, b, rep.Seed)
}

func TestEmptyEnvironment(t *testing.T) {
	t.Setenv("DSBX_SECRET", "hunter2")
	_, out, err := run(t, guest(t, "env"), nil, Limits{}, 1)
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	t.Logf("guest printed:\n%s", s)
	for _, want := range []string{`args=["guest"]`, "env=[]", "now=2000-01-01T00:00:00Z", "monotonic=true"} {
		if !strings.Contains(s, want) {
			t.Fatalf("missing %q in %q", want, s)
		}
	}
}

func TestLogCapped(t *testing.T) {
	// The escape guest logs nothing; use the panicking guest with a tiny cap.
	rep, _, err := run(t, guest(t, "panicky"), nil, Limits{MaxLog: 10}, 1)
	if err == nil || len(rep.Log) != 10 || rep.LogDropped == 0 {
		t.Fatalf("log %q dropped %d err %v", rep.Log, rep.LogDropped, err)
	}
}

func TestDeclareFields(t *testing.T) {
	echo := guest(t, "echo")
	raw := echo[:len(echo)-len(customSection(FieldsSection, []byte(`["value"]`)))]
	got, err := DeclareFields(raw, []string{"district", "income"})
	if err != nil {
		t.Fatal(err)
	}
	m, err := Check(context.Background(), got)
	if err != nil || strings.Join(m.Fields, ",") != "district,income" {
		t.Fatalf("declared module: %+v %v", m, err)
	}
	for name, c := range map[string]struct {
		mod    []byte
		fields []string
		code   string
	}{
		"already declared": {got, []string{"x"}, CodeBadFields},
		"duplicate":        {raw, []string{"a", "a"}, CodeBadFields},
		"empty name":       {raw, []string{""}, CodeBadFields},
		"nil":              {raw, nil, CodeBadFields},
		"not wasm":         {[]byte("hello"), []string{"a"}, CodeMalformed},
	} {
		_, err := DeclareFields(c.mod, c.fields)
		var e *Error
		if !errors.As(err, &e) || e.Code != c.code {
			t.Errorf("%s: %v, want code %s", name, err, c.code)
		}
	}
}
