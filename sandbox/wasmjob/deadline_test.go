package wasmjob

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/datasandbox/dsbx/sandbox/wasm"
)

// buildTestGuest builds sandbox/wasm/testdata/NAME for wasip1 and declares
// fields.
func buildTestGuest(t *testing.T, name string, fields ...string) []byte {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-o", filepath.Join(dir, name+".wasm"), "./sandbox/wasm/testdata/"+name)
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the %s guest: %v\n%s", name, err, out)
	}
	b, err := os.ReadFile(filepath.Join(dir, name+".wasm"))
	if err != nil {
		t.Fatal(err)
	}
	if b, err = wasm.DeclareFields(b, fields); err != nil {
		t.Fatal(err)
	}
	return b
}

// A job's worker runs its guest compiled without deadline checks; an
// endless loop is still stopped at the deadline, by the worker's own
// deadline thread (not the parent's kill, which here would come 30 s
// later), and endless output at the output cap, each with its limit's
// error.
func TestWorkerEndsGuestsAtTheirLimits(t *testing.T) {
	defer func(g time.Duration) { KillGrace = g }(KillGrace)
	KillGrace = 30 * time.Second
	for _, tc := range []struct {
		guest, kind, msg string
		max              time.Duration
	}{
		{"loop", "time", "guest still running after 1s", 10 * time.Second},
		{"bigout", "output", "more than", 25 * time.Second},
	} {
		t.Run(tc.guest, func(t *testing.T) {
			s := spec(t, buildTestGuest(t, tc.guest, "region"), "region")
			s.Limits.Timeout = time.Second
			if tc.guest == "bigout" {
				s.Limits.Timeout = 20 * time.Second
			}
			s.CacheDir = t.TempDir()
			if _, err := Check(ctx(t), s.Module, s.CacheDir); err != nil { // compile first: not the job's time
				t.Fatal(err)
			}
			start := time.Now()
			_, err := RunIsolated(ctx(t), s)
			var le *wasm.LimitError
			if !errors.As(err, &le) || le.Kind != tc.kind || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err %v, want the %s limit's error", err, tc.kind)
			}
			if took := time.Since(start); took > tc.max {
				t.Errorf("stopped after %v", took)
			}
		})
	}
}
