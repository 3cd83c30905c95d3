package wasmjob

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/datasandbox/dsbx/sandbox/wasm"
	"github.com/datasandbox/dsbx/sandbox/wasm/wasmtest"
	"github.com/datasandbox/dsbx/sandbox/worker"
)

// Check compiles in a worker of its own, answers what wasm.Check would, and
// leaves the compiled code in the cache for the workers that run the module.
func TestCheckCompilesInAWorker(t *testing.T) {
	module := wasmtest.Emit(nil, `["region","income"]`, aggregate)
	cache := filepath.Join(t.TempDir(), "cache")
	m, err := Check(ctx(t), module, cache)
	if err != nil {
		t.Fatal(err)
	}
	want, err := wasm.Check(ctx(t), module)
	if err != nil {
		t.Fatal(err)
	}
	if m.SHA256 != want.SHA256 || m.Size != want.Size || !slices.Equal(m.Fields, want.Fields) ||
		m.Output.Kind != want.Output.Kind || !slices.Equal(m.Imports, want.Imports) {
		t.Fatalf("isolated check %+v, in process %+v", m, want)
	}
	if _, err := os.Stat(compiledMarker(cache, m.SHA256)); err != nil {
		t.Fatalf("no record that the module compiled: %v", err)
	}
	if entries, _ := os.ReadDir(cache); len(entries) < 2 {
		t.Fatalf("the cache holds %d entries, want the compiled code beside the record", len(entries))
	}

	// A refusal keeps its code across the process boundary.
	var we *wasm.Error
	if _, err := Check(ctx(t), []byte("\x00asm\x01\x00\x00\x00\x01"), cache); !errors.As(err, &we) || we.Code != wasm.CodeMalformed {
		t.Fatalf("malformed module: %v", err)
	}
}

// A module that overruns the compiler's limits fails its check, naming them;
// the platform goes on.
func TestCompilerLimits(t *testing.T) {
	defer func(l worker.Limits, m string) { CompileLimits, compileMode = l, m }(CompileLimits, compileMode)
	CompileLimits.MaxRSS, compileMode = 64<<20, "grow" // the worker allocates without end
	var we *wasm.Error
	_, err := Check(ctx(t), wasmtest.Emit(nil, `["region"]`, ""), t.TempDir())
	if !errors.As(err, &we) || !strings.Contains(err.Error(), "compiler limits") {
		t.Fatalf("err %v, want the compiler limits named", err)
	}
}

// A module checked into a cache before is answered from its record there,
// without a compile worker; at most CompileWorkers compile at once.
func TestCheckOnceAndBounded(t *testing.T) {
	module := wasmtest.Emit(nil, `["region"]`, aggregate)
	cache := t.TempDir()
	first, err := Check(ctx(t), module, cache)
	if err != nil {
		t.Fatal(err)
	}
	defer func(l worker.Limits, m string) { CompileLimits, compileMode = l, m }(CompileLimits, compileMode)
	CompileLimits.MaxRSS, compileMode = 64<<20, "grow" // a worker started now would fail the check
	again, err := Check(ctx(t), module, cache)
	if err != nil {
		t.Fatalf("checked before, yet a compile worker ran: %v", err)
	}
	if again.SHA256 != first.SHA256 || !slices.Equal(again.Fields, first.Fields) || !slices.Equal(again.Imports, first.Imports) || again.Output.Kind != first.Output.Kind {
		t.Errorf("record %+v, first check %+v", again, first)
	}
	// Another module, with every compile worker taken: the check waits,
	// and gives up with its context.
	for range CompileWorkers {
		compileSlots <- struct{}{}
	}
	defer func() {
		for range CompileWorkers {
			<-compileSlots
		}
	}()
	c, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := Check(c, wasmtest.Emit(nil, `["income"]`, ""), cache); !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "compile workers") {
		t.Fatalf("with every compile worker busy: %v", err)
	}
}
