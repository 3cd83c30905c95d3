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
	"time"

	sqlbox "github.com/datasandbox/dsbx/sandbox/sql"
	"github.com/datasandbox/dsbx/sandbox/wasm"
	"github.com/datasandbox/dsbx/sandbox/worker"
)

const workerKind = "wasm"

// workerMode is the mode RunIsolated asks for; tests set "hang" or "grow".
var workerMode = ""

func init() { worker.Serve(workerKind, serveWorker) }

// KillGrace is how long past its time limit a worker may take to stop by
// itself (the host's own steps included) before it is killed.
var KillGrace = 10 * time.Second

// outcome is what a worker writes on stdout: the report, and the failure if
// the job failed, typed so the parent can rebuild the error.
type outcome struct {
	Report *Report  `json:"report,omitempty"`
	Error  *failure `json:"error,omitempty"`
}

type failure struct {
	Kind     string `json:"kind"` // "module", "limit", "guest", "output", "failed"
	Code     string `json:"code,omitempty"`
	Message  string `json:"message"`
	Limit    int64  `json:"limit,omitempty"`
	ExitCode uint32 `json:"exit_code,omitempty"`
	Trap     string `json:"trap,omitempty"`
	LogTail  string `json:"log_tail,omitempty"`
}

func serveWorker(_ string, in io.Reader, out io.Writer) int {
	// The guest runs without deadline checks in its compiled code: at the
	// deadline a thread outside the Go runtime answers the time limit and
	// ends this process, wherever the guest is (deadline.go); at the output
	// cap, the guest's own goroutine does. One outcome is written,
	// whichever comes first.
	answer := func(o outcome) {
		if !claimAnswer() {
			select {} // the deadline thread answers and ends the process
		}
		json.NewEncoder(out).Encode(o)
	}
	wasm.ExitAtDeadline(wasm.Deadline{
		Arm: func(timeout time.Duration, err error) func() {
			b, _ := json.Marshal(outcome{Error: toFailure(err)})
			disarm, aerr := armDeadline(int(os.Stdout.Fd()), timeout, append(b, '\n'))
			if aerr != nil {
				fmt.Fprintln(os.Stderr, aerr) // the parent's kill still bounds the job
				return func() {}
			}
			return disarm
		},
		Stop: func(err error) {
			answer(outcome{Error: toFailure(err)})
			os.Exit(0)
		},
	})
	var spec Spec
	var o outcome
	dec := json.NewDecoder(io.LimitReader(in, 2*wasm.MaxModuleSize))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&spec); err != nil {
		o.Error = &failure{Kind: "failed", Message: "wasm job: worker: read spec: " + err.Error()}
	} else {
		if spec.CacheDir != "" {
			if err := wasm.UseCacheDir(spec.CacheDir); err != nil {
				fmt.Fprintln(os.Stderr, "wasm job: compilation cache:", err) // slower, not wrong
			}
		}
		rep, err := Run(context.Background(), spec)
		o.Report = rep
		if err != nil {
			o.Error = toFailure(err)
		}
	}
	answer(o)
	return 0
}

func toFailure(err error) *failure {
	var (
		me *wasm.Error
		le *wasm.LimitError
		ge *wasm.GuestError
		oe *OutputError
	)
	switch {
	case errors.As(err, &me):
		return &failure{Kind: "module", Code: me.Code, Message: me.Msg}
	case errors.As(err, &le):
		return &failure{Kind: "limit", Code: le.Kind, Message: le.Msg, Limit: le.Limit}
	case errors.As(err, &ge):
		return &failure{Kind: "guest", Message: ge.Error(), ExitCode: ge.ExitCode, Trap: ge.Trap, LogTail: ge.LogTail}
	case errors.As(err, &oe):
		return &failure{Kind: "output", Code: oe.Code, Message: oe.Msg}
	case errors.Is(err, sqlbox.ErrLimit):
		return &failure{Kind: "limit", Code: "result", Message: err.Error()}
	}
	return &failure{Kind: "failed", Message: err.Error()}
}

func (f *failure) err() error {
	switch f.Kind {
	case "module":
		return &wasm.Error{Code: f.Code, Msg: f.Message}
	case "limit":
		return &wasm.LimitError{Kind: f.Code, Limit: f.Limit, Msg: f.Message}
	case "guest":
		return &wasm.GuestError{ExitCode: f.ExitCode, Trap: f.Trap, LogTail: f.LogTail}
	case "output":
		return &OutputError{Code: f.Code, Msg: f.Message}
	}
	return errors.New(f.Message)
}

// RunIsolated runs spec as Run does, in a worker process of its own (see
// package worker), so a crash, a hang inside a host call or runaway memory
// fails the job, not the platform. The worker is killed at the time limit
// plus KillGrace, or when its resident memory passes the guest's memory plus
// sqlbox.HardMemory of the host's. Report.Process holds what it used.
//
// The module is compiled first, by Check under CompileLimits, unless
// spec.CacheDir already holds it: compiling is not charged to the job's
// memory. Without a CacheDir, a temporary one is used for this run.
func RunIsolated(ctx context.Context, spec Spec) (*Report, error) {
	if err := spec.validate(); err != nil {
		return nil, err
	}
	if spec.CacheDir == "" {
		dir, err := os.MkdirTemp("", "dsbx-wasm-cache-")
		if err != nil {
			return nil, fmt.Errorf("wasm job: compilation cache: %w", err)
		}
		defer os.RemoveAll(dir)
		spec.CacheDir = dir
	}
	sum := sha256.Sum256(spec.Module)
	if _, err := os.Stat(compiledMarker(spec.CacheDir, hex.EncodeToString(sum[:]))); err != nil {
		if _, err := Check(ctx, spec.Module, spec.CacheDir); err != nil {
			return nil, err
		}
	}
	pages := spec.Limits.MemoryPages
	if pages == 0 {
		pages = wasm.DefaultMemoryPages
	}
	host, err := sqlbox.HardMemory(spec.Limits.Memory)
	if err != nil {
		return nil, err
	}
	in, err := json.Marshal(spec)
	if err != nil {
		return nil, fmt.Errorf("wasm job: encode spec: %w", err)
	}
	lim := worker.Limits{
		Timeout: spec.Limits.Timeout, Grace: KillGrace,
		MaxRSS:    int64(pages)*65536 + host,
		MaxStdout: 16 << 20,
	}
	stdout, use, err := worker.Run(ctx, workerKind, workerMode, in, lim)
	if err != nil {
		os.Remove(spec.Out) // the worker may have died after publishing it
		var killed *worker.KilledError
		if errors.As(err, &killed) {
			return nil, &wasm.LimitError{Kind: killed.Reason, Msg: killed.Msg}
		}
		return nil, fmt.Errorf("wasm job: %w", err)
	}
	var o outcome
	if err := json.Unmarshal(stdout, &o); err != nil || (o.Report == nil && o.Error == nil) {
		return nil, fmt.Errorf("wasm job: the worker gave no outcome: %.200q", stdout)
	}
	if o.Report != nil {
		o.Report.Process = use
	}
	if o.Error != nil {
		return o.Report, o.Error.err()
	}
	return o.Report, nil
}
