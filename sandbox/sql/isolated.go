package sql

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/datasandbox/dsbx/sandbox/worker"
)

// workerKind names sql's workers: any binary that links this package serves
// as one (see init below), reading a Spec as JSON on stdin, running it and
// writing the outcome as JSON on stdout. RunIsolated starts one.
const workerKind = "sql"

// workerMode is the mode RunIsolated asks for; tests set worker's "hang" or
// "grow" to exercise the watchdog.
var workerMode string

func init() { worker.Serve(workerKind, serveWorker) }

// KillGrace is how long past its time limit a worker may take to stop by
// itself (DuckDB checks for interruption only between steps) before it is
// killed.
var KillGrace = 5 * time.Second

// Usage is what the worker process used, as the operating system counted it.
type Usage = worker.Usage

// outcome is what a worker writes on stdout.
type outcome struct {
	Report *Report       `json:"report,omitempty"`
	Error  *workerFailed `json:"error,omitempty"`
}

type workerFailed struct {
	Kind    string `json:"kind"` // "refused" (an *Error), "limit" (ErrLimit) or "failed"
	Code    string `json:"code,omitempty"`
	Message string `json:"message"`
}

// workerError is a failure reported by a worker; it matches ErrLimit when
// the worker ran out of a limit.
type workerError struct {
	msg   string
	limit bool
}

func (e *workerError) Error() string        { return e.msg }
func (e *workerError) Is(target error) bool { return e.limit && target == ErrLimit }

// serveWorker is the worker's whole life; it returns the exit status.
func serveWorker(_ string, in io.Reader, out io.Writer) int {
	var spec Spec
	dec := json.NewDecoder(io.LimitReader(in, 16<<20))
	dec.DisallowUnknownFields()
	var o outcome
	if err := dec.Decode(&spec); err != nil {
		o.Error = &workerFailed{Kind: "failed", Message: "sql: worker: read spec: " + err.Error()}
	} else if rep, err := Run(context.Background(), spec); err != nil {
		var qe *Error
		switch {
		case errors.As(err, &qe):
			o.Error = &workerFailed{Kind: "refused", Code: qe.Code, Message: qe.Message}
		case errors.Is(err, ErrLimit):
			o.Error = &workerFailed{Kind: "limit", Message: err.Error()}
		default:
			o.Error = &workerFailed{Kind: "failed", Message: err.Error()}
		}
	} else {
		o.Report = rep
	}
	if err := json.NewEncoder(out).Encode(o); err != nil {
		return 1
	}
	return 0
}

// RunIsolated runs spec as Run does, in a child process: this binary,
// re-executed as a sandbox worker with an empty environment. The parent
// holds no DuckDB state for the job, so a crash in DuckDB fails the job, not
// the platform. The child is killed when ctx ends, when it overruns its time
// limit by KillGrace, or when its resident memory exceeds HardMemory of its
// memory limit (DuckDB's memory_limit bounds its buffers, not every
// allocation). Report.Process holds what the child used.
func RunIsolated(ctx context.Context, spec Spec) (*Report, error) {
	if err := spec.validate(); err != nil {
		return nil, err
	}
	limit, err := HardMemory(spec.Limits.Memory)
	if err != nil {
		return nil, err
	}
	in, err := json.Marshal(spec)
	if err != nil {
		return nil, fmt.Errorf("sql: encode spec: %w", err)
	}
	lim := worker.Limits{Timeout: spec.Limits.Timeout, Grace: KillGrace, MaxRSS: limit, MaxStdout: 64 << 20}
	stdout, use, err := worker.Run(ctx, workerKind, workerMode, in, lim)
	if err != nil {
		// The worker may have died after publishing the result, or while
		// writing it, or with its copy of a view open.
		os.Remove(spec.Out)
		removeTemporaryResults(spec.Out)
		removePrivateView(privateView(spec.Out))
		var killed *worker.KilledError
		if !errors.As(err, &killed) {
			return nil, fmt.Errorf("sql: %w", err)
		}
		if killed.Reason == "memory" {
			return nil, fmt.Errorf("%w: %w (the cap for memory_limit %s)", ErrLimit, err, spec.Limits.Memory)
		}
		return nil, fmt.Errorf("%w: %w", ErrLimit, err)
	}
	var o outcome
	if err := json.Unmarshal(stdout, &o); err != nil || (o.Report == nil && o.Error == nil) {
		return nil, fmt.Errorf("sql: the worker gave no outcome (does this binary link sandbox/sql?): %q", truncate(string(stdout), 200))
	}
	if e := o.Error; e != nil {
		switch e.Kind {
		case "refused":
			return nil, &Error{Code: e.Code, Message: e.Message}
		case "limit":
			return nil, &workerError{msg: e.Message, limit: true}
		}
		return nil, &workerError{msg: e.Message}
	}
	o.Report.Process = use
	return o.Report, nil
}

// KeepSpareWorkers keeps n worker processes started ahead of need, so a
// job run by RunIsolated does not wait for one to start (see
// worker.KeepSpares); 0 keeps none.
func KeepSpareWorkers(n int) { worker.KeepSpares(workerKind, n) }

// HardMemory is the resident memory a worker with DuckDB memory_limit
// memory may reach before it is killed: twice the limit plus 512 MiB for the
// Go runtime, DuckDB's own structures and the result writer.
func HardMemory(memory string) (int64, error) {
	n, err := parseSize(memory)
	if err != nil {
		return 0, err
	}
	return 2*n + 512<<20, nil
}

// MemoryBytes is the number of bytes a DuckDB size such as 512MB, 1GB or
// 2GiB names.
func MemoryBytes(memory string) (int64, error) { return parseSize(memory) }

// parseSize reads a DuckDB size such as 512MB, 1GB or 2GiB.
func parseSize(s string) (int64, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	units := []struct {
		suffix string
		mult   int64
	}{{"TIB", 1 << 40}, {"GIB", 1 << 30}, {"MIB", 1 << 20}, {"KIB", 1 << 10}, {"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"B", 1}}
	for _, u := range units {
		if num, ok := strings.CutSuffix(t, u.suffix); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
			if err != nil || f <= 0 {
				break
			}
			return int64(f * float64(u.mult)), nil
		}
	}
	return 0, fmt.Errorf("sql: memory limit %q is not a size like 512MB or 2GiB", s)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
