package wasmjob

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/datasandbox/dsbx/sandbox/wasm"
	"github.com/datasandbox/dsbx/sandbox/worker"
)

const compileKind = "wasm-check"

// compileMode is the mode Check asks for; tests set worker's "grow".
var compileMode = ""

// CompileLimits bound the worker that validates and compiles a module.
// Compiling is the platform's work, not the guest's, and its memory grows
// with the module's code (a 4 MB Go guest can take 800 MiB), so it runs
// under limits of its own rather than the job's: a module built to blow up
// the compiler fails its check instead of the platform.
var CompileLimits = worker.Limits{Timeout: 2 * time.Minute, Grace: 5 * time.Second, MaxRSS: 3 << 30, MaxStdout: 1 << 20}

// compileRequest is what Check sends its worker.
type compileRequest struct {
	Module   []byte
	CacheDir string
}

// compileOutcome is what the worker answers.
type compileOutcome struct {
	Module *wasm.Module `json:"module,omitempty"`
	Error  *failure     `json:"error,omitempty"`
}

func init() { worker.Serve(compileKind, serveCompile) }

// CompileWorkers is how many compile workers run at once; a check waits
// for a free one. Each may take CompileLimits.MaxRSS.
const CompileWorkers = 2

// compileSlots holds a token per compile worker running.
var compileSlots = make(chan struct{}, CompileWorkers)

// Check validates module as wasm.Check does, in a worker process of its own
// under CompileLimits, and keeps the compiled code in cacheDir for the
// workers that run it. The module's bytes are not kept in the answer. A
// module checked into cacheDir before is not compiled again: its record
// there is the answer.
func Check(ctx context.Context, module []byte, cacheDir string) (*wasm.Module, error) {
	if len(module) > wasm.MaxModuleSize { // refused before it is copied to a worker
		return wasm.Check(ctx, module)
	}
	if m := checkedBefore(module, cacheDir); m != nil {
		return m, nil
	}
	in, err := json.Marshal(compileRequest{Module: module, CacheDir: cacheDir})
	if err != nil {
		return nil, fmt.Errorf("wasm check: encode: %w", err)
	}
	if err := acquireCompiler(ctx); err != nil {
		return nil, err
	}
	defer func() { <-compileSlots }()
	stdout, _, err := worker.Run(ctx, compileKind, compileMode, in, CompileLimits)
	if err != nil {
		var killed *worker.KilledError
		if errors.As(err, &killed) {
			return nil, &wasm.Error{Code: wasm.CodeMalformed, Msg: "compiling the module overran the platform's compiler limits: " + killed.Msg}
		}
		return nil, fmt.Errorf("wasm check: %w", err)
	}
	var o compileOutcome
	if err := json.Unmarshal(stdout, &o); err != nil || (o.Module == nil && o.Error == nil) {
		return nil, fmt.Errorf("wasm check: the worker gave no outcome: %.200q", stdout)
	}
	if o.Error != nil {
		return nil, o.Error.err()
	}
	if cacheDir != "" {
		if rec, err := json.Marshal(o.Module); err == nil && os.MkdirAll(filepath.Join(cacheDir, "checked"), 0o700) == nil {
			os.WriteFile(compiledMarker(cacheDir, o.Module.SHA256), rec, 0o600) // a missing record costs a recompile, nothing more
		}
	}
	return o.Module, nil
}

// acquireCompiler waits for a free compile worker and takes it.
func acquireCompiler(ctx context.Context) error {
	select {
	case compileSlots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wasm check: waiting for one of the %d compile workers: %w", CompileWorkers, ctx.Err())
	}
}

// checkedBefore returns the record of module's check in cacheDir, or nil.
func checkedBefore(module []byte, cacheDir string) *wasm.Module {
	if cacheDir == "" {
		return nil
	}
	sum := sha256.Sum256(module)
	sha := hex.EncodeToString(sum[:])
	b, err := os.ReadFile(compiledMarker(cacheDir, sha))
	if err != nil || len(b) == 0 { // an empty marker is from before records were kept
		return nil
	}
	var m wasm.Module
	if json.Unmarshal(b, &m) != nil || m.SHA256 != sha || m.Size != len(module) {
		return nil
	}
	return &m
}

// compiledMarker names the file that says a module checked and compiled
// into cacheDir.
func compiledMarker(cacheDir, sha string) string {
	return filepath.Join(cacheDir, "checked", sha)
}

func serveCompile(_ string, in io.Reader, out io.Writer) int {
	// Compile as the job workers run: without deadline checks (see
	// serveWorker); no guest runs here.
	wasm.ExitAtDeadline(wasm.Deadline{
		Arm:  func(time.Duration, error) func() { return func() {} },
		Stop: func(error) { os.Exit(1) },
	})
	var req compileRequest
	var o compileOutcome
	dec := json.NewDecoder(io.LimitReader(in, 2*wasm.MaxModuleSize))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		o.Error = &failure{Kind: "failed", Message: "wasm check: worker: read request: " + err.Error()}
	} else {
		if req.CacheDir != "" {
			if err := wasm.UseCacheDir(req.CacheDir); err != nil {
				fmt.Fprintln(os.Stderr, "wasm check: compilation cache:", err) // slower, not wrong
			}
		}
		m, err := wasm.Check(context.Background(), req.Module)
		if err != nil {
			o.Error = toFailure(err)
		}
		o.Module = m
	}
	if err := json.NewEncoder(out).Encode(o); err != nil {
		return 1
	}
	return 0
}
