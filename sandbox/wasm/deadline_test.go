package wasm

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Under ExitAtDeadline, Run arms the deadline with the job's time limit and
// the time limit's error as the guest starts, and disarms it when the guest
// is done; the module is compiled into a cache of its own. (That the
// process then ends at the deadline is sandbox/wasmjob's to show: its
// workers end themselves.)
func TestExitAtDeadlineArms(t *testing.T) {
	mod := guest(t, "echo")
	defer func() {
		cacheMu.Lock()
		exitMode, cache = nil, nil
		cacheMu.Unlock()
	}()
	var armed time.Duration
	var armedErr error
	disarmed := 0
	ExitAtDeadline(Deadline{
		Arm: func(timeout time.Duration, err error) func() {
			armed, armedErr = timeout, err
			return func() { disarmed++ }
		},
		Stop: func(err error) { t.Errorf("stopped: %v", err) },
	})
	dir := t.TempDir()
	if err := UseCacheDir(dir); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if _, err := Run(context.Background(), Spec{Module: mod, Input: bytes.NewReader([]byte("hello")), Output: &out,
		Limits: Limits{Timeout: 1234 * time.Millisecond}, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	var le *LimitError
	if armed != 1234*time.Millisecond || !errors.As(armedErr, &le) || le.Kind != "time" || disarmed != 1 {
		t.Errorf("armed %v with %v, disarmed %d times; want 1.234s, the time limit's error, once", armed, armedErr, disarmed)
	}
	if out.String() != "hello" {
		t.Errorf("output %q", out.String())
	}
	if entries, _ := os.ReadDir(filepath.Join(dir, "exit-at-deadline")); len(entries) == 0 {
		t.Error("nothing compiled into the exit-at-deadline cache")
	}
}
