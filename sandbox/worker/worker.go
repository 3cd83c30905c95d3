// Package worker runs a job in a child process: this binary, re-executed as a
// one-shot worker that reads its input on stdin, writes its result on stdout
// and exits. The parent kills the worker when the job's context ends, when it
// overruns its time limit, or when its resident memory exceeds a hard cap, and
// reports what the worker used; a crash in the worker fails the job, not the
// parent.
//
// A package that runs one kind of job calls Serve from an init func, so that
// any binary linking it can serve as that kind of worker, and Run to start one.
package worker

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"
)

// envVar, set to "kind" or "kind:mode", makes Serve turn the process into a
// worker of that kind.
const envVar = "DSBX_SANDBOX_WORKER"

// maxStderr is how much of a worker's stderr, its last bytes, Run keeps for
// the error it returns when the worker fails.
const maxStderr = 64 << 10

// pollEvery is how often Run reads a worker's resident memory.
const pollEvery = 50 * time.Millisecond

// Serve turns this process into a worker for kind when the environment asks
// for it: if DSBX_SANDBOX_WORKER is "kind" or "kind:mode", it calls
// handle(mode, os.Stdin, os.Stdout) and exits with its status; otherwise it
// returns. Call it from an init func of the package that runs that kind of
// job.
//
// Two modes are served without calling handle, so that tests of every kind
// can exercise Run's limits: "hang" never answers and "grow" allocates memory
// without bound.
func Serve(kind string, handle func(mode string, in io.Reader, out io.Writer) int) {
	k, mode, _ := strings.Cut(os.Getenv(envVar), ":")
	if k == "" || k != kind {
		return
	}
	switch mode {
	case "hang":
		for {
			time.Sleep(time.Hour)
		}
	case "grow":
		var hold [][]byte
		for {
			b := make([]byte, 64<<20)
			for i := range b {
				b[i] = 1
			}
			hold = append(hold, b)
		}
	}
	os.Exit(handle(mode, os.Stdin, os.Stdout))
}

// Limits bound a worker process.
type Limits struct {
	Timeout   time.Duration // how long the worker may run before Grace starts; 0: no limit
	Grace     time.Duration // how long past Timeout the worker may take to stop by itself before it is killed
	MaxRSS    int64         // resident memory, in bytes, above which the worker is killed (Linux only); 0: no limit
	MaxStdout int           // the most stdout, in bytes, Run keeps; a worker that writes more fails; 0: no limit
}

// Usage is what a worker process used, as the operating system counted it.
type Usage struct {
	PeakRSS int64         // peak resident memory, in bytes (Linux only)
	CPU     time.Duration // user and system CPU time
}

// KilledError reports that Run killed a worker for overrunning a limit.
type KilledError struct {
	Reason string // the limit overrun: "time" or "memory"
	Msg    string // what was overrun, naming the limit and the values
}

// Error returns Msg.
func (e *KilledError) Error() string { return e.Msg }

// Run starts this binary as a worker of kind (mode "" being the normal one)
// with an empty environment apart from the worker variable, feeds it input on
// stdin, enforces lim, and returns its stdout and what it used.
//
// The error is a *KilledError when the worker overran lim, wraps ctx.Err()
// when ctx ended first, and holds the tail of the worker's stderr when it
// exited with a non-zero status. Usage is reported whenever the worker ran,
// even if it then failed.
func Run(ctx context.Context, kind, mode string, input []byte, lim Limits) ([]byte, Usage, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, Usage{}, fmt.Errorf("worker: find this binary: %w", err)
	}
	env := envVar + "=" + kind
	if mode != "" {
		env += ":" + mode
	}

	// The worker is killed when runCtx ends; its cause says why.
	runCtx, kill := context.WithCancelCause(ctx)
	defer kill(nil)
	if lim.Timeout > 0 {
		var stop context.CancelFunc
		runCtx, stop = context.WithTimeoutCause(runCtx, lim.Timeout+lim.Grace, &KilledError{
			Reason: "time",
			Msg:    fmt.Sprintf("time limit of %s exceeded and the worker did not stop within %s; it was killed", lim.Timeout, lim.Grace),
		})
		defer stop()
	}

	cmd := exec.CommandContext(runCtx, exe)
	cmd.Env = []string{env}
	cmd.Stdin = bytes.NewReader(input)
	stdout := &capWriter{max: lim.MaxStdout}
	stderr := &tailWriter{max: maxStderr}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	isolate(cmd)
	if err := cmd.Start(); err != nil {
		return nil, Usage{}, fmt.Errorf("worker: start: %w", err)
	}
	if lim.MaxRSS > 0 {
		go watchMemory(runCtx, cmd.Process.Pid, lim.MaxRSS, kill)
	}
	werr := cmd.Wait()
	var use Usage
	if cmd.ProcessState != nil { // nil only if waiting for the worker failed
		use = usage(cmd.ProcessState)
	}

	switch {
	case werr == nil:
	case ctx.Err() != nil:
		return nil, use, fmt.Errorf("worker: stopped: %w", ctx.Err())
	case runCtx.Err() != nil:
		return nil, use, context.Cause(runCtx)
	default:
		return nil, use, fmt.Errorf("worker: failed (%w): %s", werr, strings.TrimSpace(stderr.String()))
	}
	if stdout.over {
		return nil, use, fmt.Errorf("worker: wrote more than %d bytes on stdout", lim.MaxStdout)
	}
	return stdout.buf.Bytes(), use, nil
}

// watchMemory polls the resident memory of process pid until ctx ends, and
// kills the worker through kill once it exceeds limit.
func watchMemory(ctx context.Context, pid int, limit int64, kill context.CancelCauseFunc) {
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if rss := residentBytes(pid); rss > limit {
				kill(&KilledError{
					Reason: "memory",
					Msg:    fmt.Sprintf("the worker's resident memory reached %d MiB, over its hard cap of %d MiB; it was killed", rss>>20, limit>>20),
				})
				return
			}
		}
	}
}

// capWriter keeps the first max bytes written to it (all if max is 0) and
// notes whether more came. It does not embed its buffer, whose ReadFrom would
// let io.Copy bypass the cap.
type capWriter struct {
	buf  bytes.Buffer
	max  int
	over bool
}

func (w *capWriter) Write(p []byte) (int, error) {
	if w.max > 0 && w.buf.Len()+len(p) > w.max {
		w.over = true
		w.buf.Write(p[:w.max-w.buf.Len()])
		return len(p), nil
	}
	return w.buf.Write(p)
}

// tailWriter keeps the last max bytes written to it.
type tailWriter struct {
	buf []byte
	max int
}

func (w *tailWriter) Write(p []byte) (int, error) {
	n := len(p)
	if len(p) > w.max {
		p = p[len(p)-w.max:]
	}
	if drop := len(w.buf) + len(p) - w.max; drop > 0 {
		w.buf = append(w.buf[:0], w.buf[drop:]...)
	}
	w.buf = append(w.buf, p...)
	return n, nil
}

func (w *tailWriter) String() string { return string(w.buf) }
