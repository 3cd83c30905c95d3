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
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/datasandbox/dsbx/failpoint"
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
	code := handle(mode, os.Stdin, os.Stdout)
	reportPeak()
	os.Exit(code)
}

// peakFD is the descriptor on which a worker reports its peak resident
// memory to Run as it exits. The kernel's rusage cannot tell: a child
// started by vfork and exec is charged the parent's peak up to the exec.
const peakFD = 3

// reportPeak writes this process's peak resident memory, in bytes, to
// peakFD if Run opened it.
func reportPeak() {
	f := os.NewFile(peakFD, "peak")
	if st, err := f.Stat(); err != nil || st.Mode()&os.ModeNamedPipe == 0 {
		return
	}
	fmt.Fprint(f, peakResident())
	f.Close()
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
// with an empty environment apart from the worker variable, or takes a spare
// one (KeepSpares), feeds it input on stdin, enforces lim, and returns its
// stdout and what it used.
//
// The error is a *KilledError when the worker overran lim, wraps ctx.Err()
// when ctx ended first, and holds the tail of the worker's stderr when it
// exited with a non-zero status. Usage is reported whenever the worker ran,
// even if it then failed.
func Run(ctx context.Context, kind, mode string, input []byte, lim Limits) ([]byte, Usage, error) {
	p := takeSpare(kind, mode)
	if p == nil {
		var err error
		if p, err = start(kind, mode); err != nil {
			return nil, Usage{}, err
		}
	}
	p.stdout.setMax(lim.MaxStdout)

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
	stopKill := context.AfterFunc(runCtx, func() { p.cmd.Process.Kill() })
	defer stopKill()
	go func() { // a worker that stops reading fails by its exit, not here
		p.stdin.Write(input)
		p.stdin.Close()
	}()
	failpoint.Hit(failpoint.Query)
	var polled atomic.Int64 // the highest resident memory watchMemory saw
	go watchMemory(runCtx, p.cmd.Process.Pid, lim.MaxRSS, kill, &polled)
	werr := p.cmd.Wait()
	var use Usage
	if p.cmd.ProcessState != nil { // nil only if waiting for the worker failed
		use = usage(p.cmd.ProcessState)
	}
	// The worker's own report of its peak (it is gone when the worker was
	// killed: then the highest sample), not the kernel's, which may be this
	// process's.
	if reported := <-p.peak; reported > 0 {
		use.PeakRSS = reported
	} else if n := polled.Load(); n > 0 {
		use.PeakRSS = n
	}

	switch {
	case werr == nil:
	case ctx.Err() != nil:
		return nil, use, fmt.Errorf("worker: stopped: %w", ctx.Err())
	case runCtx.Err() != nil:
		return nil, use, context.Cause(runCtx)
	default:
		return nil, use, fmt.Errorf("worker: failed (%w): %s", werr, strings.TrimSpace(p.stderr.String()))
	}
	if p.stdout.over {
		return nil, use, fmt.Errorf("worker: wrote more than %d bytes on stdout", lim.MaxStdout)
	}
	return p.stdout.buf.Bytes(), use, nil
}

// proc is a started worker process, waiting for its input on stdin.
type proc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *capWriter
	stderr *tailWriter
	peak   chan int64 // the peak the worker reports as it exits (0 if it did not)
}

// start starts this binary as a worker of kind in mode, with an empty
// environment apart from the worker variable.
func start(kind, mode string) (*proc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("worker: find this binary: %w", err)
	}
	env := envVar + "=" + kind
	if mode != "" {
		env += ":" + mode
	}
	cmd := exec.Command(exe)
	cmd.Env = []string{env}
	p := &proc{cmd: cmd, stdout: &capWriter{}, stderr: &tailWriter{max: maxStderr}, peak: make(chan int64, 1)}
	cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, fmt.Errorf("worker: start: %w", err)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("worker: start: %w", err)
	}
	cmd.ExtraFiles = []*os.File{pw} // peakFD in the worker
	isolate(cmd)
	err = cmd.Start()
	pw.Close()
	if err != nil {
		pr.Close()
		return nil, fmt.Errorf("worker: start: %w", err)
	}
	go func() {
		defer pr.Close()
		b, _ := io.ReadAll(io.LimitReader(pr, 32))
		n, _ := strconv.ParseInt(string(b), 10, 64)
		p.peak <- n
	}()
	return p, nil
}

// stop kills a worker that has not been given its input, and reaps it.
func (p *proc) stop() {
	p.cmd.Process.Kill()
	p.stdin.Close()
	p.cmd.Wait()
}

// Spares: worker processes of a kind started ahead of need (KeepSpares).
var (
	sparesMu sync.Mutex
	spares   = map[string]chan *proc{}
)

// KeepSpares keeps n workers of kind (normal mode) started ahead of need,
// so that a job does not wait for a process to start and initialise: Run
// hands its input to a spare when one is ready, and a new spare is started
// in its place. A spare is a worker like any other and serves one job; an
// idle spare only waits on its stdin, and dies with this process. n = 0
// stops the idle spares and keeps none.
func KeepSpares(kind string, n int) {
	sparesMu.Lock()
	old := spares[kind]
	if n > 0 {
		spares[kind] = make(chan *proc, n)
	} else {
		delete(spares, kind)
	}
	sparesMu.Unlock()
	if old != nil {
		stopIdle(old)
	}
	for range n {
		go refill(kind)
	}
}

// stopIdle stops the spares waiting in idle.
func stopIdle(idle chan *proc) {
	for {
		select {
		case p := <-idle:
			p.stop()
		default:
			return
		}
	}
}

// takeSpare returns a ready spare of kind, starting another in its place,
// or nil when there is none (or mode asks for a special worker).
func takeSpare(kind, mode string) *proc {
	if mode != "" {
		return nil
	}
	sparesMu.Lock()
	idle := spares[kind]
	sparesMu.Unlock()
	if idle == nil {
		return nil
	}
	select {
	case p := <-idle:
		go refill(kind)
		if !alive(p.cmd.Process.Pid) {
			p.stop() // died while idle
			return nil
		}
		return p
	default:
		return nil
	}
}

// refill starts a spare of kind if spares of kind are still kept and there
// is room for one.
func refill(kind string) {
	p, err := start(kind, "")
	if err != nil {
		return
	}
	sparesMu.Lock()
	idle := spares[kind]
	sparesMu.Unlock()
	if idle != nil {
		select {
		case idle <- p:
			return
		default:
		}
	}
	p.stop()
}

// watchMemory polls the resident memory of process pid until ctx ends,
// keeping the highest in peak, and kills the worker through kill once it
// exceeds limit (0: no limit).
func watchMemory(ctx context.Context, pid int, limit int64, kill context.CancelCauseFunc, peak *atomic.Int64) {
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			rss := residentBytes(pid)
			if rss > peak.Load() {
				peak.Store(rss)
			}
			if limit > 0 && rss > limit {
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
	mu   sync.Mutex
	buf  bytes.Buffer
	max  int
	over bool
}

// setMax sets the cap before the worker is given its input.
func (w *capWriter) setMax(max int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.max = max
}

func (w *capWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
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
