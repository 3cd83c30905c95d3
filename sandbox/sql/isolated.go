package sql

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// workerEnv, set in a process's environment, turns any binary that links
// this package into a one-shot sandbox worker (see init below): it reads a
// Spec as JSON on stdin, runs it, writes the outcome as JSON on stdout and
// exits. RunIsolated starts the worker by re-executing its own binary.
const workerEnv = "DSBX_SANDBOX_WORKER"

// workerMode is the value RunIsolated sets; tests change it to exercise the
// watchdog with a worker that hangs or grows.
var workerMode = "run"

func init() {
	if mode := os.Getenv(workerEnv); mode != "" {
		os.Exit(serveWorker(mode, os.Stdin, os.Stdout))
	}
}

// KillGrace is how long past its time limit a worker may take to stop by
// itself (DuckDB checks for interruption only between steps) before it is
// killed.
var KillGrace = 5 * time.Second

// Usage is what the worker process used, as the operating system counted it.
type Usage struct {
	PeakRSS int64         // peak resident memory, bytes
	CPU     time.Duration // user and system CPU time
}

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
func serveWorker(mode string, in io.Reader, out io.Writer) int {
	switch mode {
	case "hang": // tests: a worker that never answers
		select {}
	case "grow": // tests: a worker whose memory grows without bound
		var hold [][]byte
		for {
			b := make([]byte, 64<<20)
			for i := range b {
				b[i] = 1
			}
			hold = append(hold, b)
		}
	}
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
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("sql: find the worker binary: %w", err)
	}
	in, err := json.Marshal(spec)
	if err != nil {
		return nil, fmt.Errorf("sql: encode spec: %w", err)
	}
	cmd := exec.Command(exe)
	cmd.Env = []string{workerEnv + "=" + workerMode}
	cmd.Stdin = bytes.NewReader(in)
	var stdout, stderr capWriter
	stdout.max, stderr.max = 64<<20, 64<<10
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	isolate(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("sql: start worker: %w", err)
	}

	var (
		mu     sync.Mutex
		killed error // why the parent killed the worker
	)
	kill := func(why error) {
		mu.Lock()
		if killed == nil {
			killed = why
			cmd.Process.Kill()
		}
		mu.Unlock()
	}
	done := make(chan struct{})
	go func() {
		deadline := time.NewTimer(spec.Limits.Timeout + KillGrace)
		defer deadline.Stop()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				kill(ctx.Err())
				return
			case <-deadline.C:
				kill(fmt.Errorf("%w: time limit of %s exceeded and the query did not stop within %s; the worker was killed", ErrLimit, spec.Limits.Timeout, KillGrace))
				return
			case <-tick.C:
				if rss := residentBytes(cmd.Process.Pid); rss > limit {
					kill(fmt.Errorf("%w: the worker's resident memory reached %d MiB, over the hard cap of %d MiB for memory_limit %s; the worker was killed", ErrLimit, rss>>20, limit>>20, spec.Limits.Memory))
					return
				}
			}
		}
	}()
	werr := cmd.Wait()
	close(done)
	mu.Lock()
	why := killed
	mu.Unlock()
	if why != nil {
		os.Remove(spec.Out)
		return nil, why
	}
	if werr != nil {
		return nil, fmt.Errorf("sql: worker failed (%v): %s", werr, strings.TrimSpace(stderr.String()))
	}
	var o outcome
	if err := json.Unmarshal(stdout.Bytes(), &o); err != nil || (o.Report == nil && o.Error == nil) {
		return nil, fmt.Errorf("sql: worker gave no outcome (is %s a dsbx binary?): %q", exe, truncate(stdout.String(), 200))
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
	o.Report.Process = usage(cmd.ProcessState)
	return o.Report, nil
}

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

// capWriter keeps at most max bytes.
type capWriter struct {
	bytes.Buffer
	max int
}

func (w *capWriter) Write(p []byte) (int, error) {
	if room := w.max - w.Len(); room > 0 {
		w.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
