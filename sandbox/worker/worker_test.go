package worker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"
)

// The worker is this test binary re-executed: TestMain serves kind "test".
func TestMain(m *testing.M) {
	Serve("test", func(mode string, in io.Reader, out io.Writer) int {
		switch mode {
		case "": // echo, or the worker's process ID when asked "pid"
			b, err := io.ReadAll(in)
			if err != nil {
				return 1
			}
			if string(b) == "pid" {
				b = fmt.Append(nil, os.Getpid())
			}
			out.Write(b)
			return 0
		case "fail":
			fmt.Fprintln(os.Stderr, strings.Repeat("noise ", maxStderr))
			fmt.Fprintln(os.Stderr, "the worker broke")
			return 3
		}
		fmt.Fprintf(os.Stderr, "unknown mode %q\n", mode)
		return 2
	})
	os.Exit(m.Run())
}

var quick = Limits{Timeout: time.Second, Grace: 200 * time.Millisecond, MaxRSS: 300 << 20, MaxStdout: 1 << 20}

func TestEcho(t *testing.T) {
	in := []byte(`{"hello": "worker"}`)
	out, use, err := Run(context.Background(), "test", "", in, quick)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, in) {
		t.Errorf("stdout %q, want %q", out, in)
	}
	if use.CPU <= 0 {
		t.Errorf("usage %+v, want CPU time", use)
	}
	if runtime.GOOS == "linux" && use.PeakRSS <= 0 {
		t.Errorf("usage %+v, want a peak RSS", use)
	}
}

func TestStdoutOverCapFails(t *testing.T) {
	lim := quick
	lim.MaxStdout = 10
	_, _, err := Run(context.Background(), "test", "", []byte("more than ten bytes"), lim)
	if err == nil || !strings.Contains(err.Error(), "more than 10 bytes") {
		t.Fatalf("20 bytes of stdout under a cap of 10: %v", err)
	}
}

func TestHungWorkerIsKilled(t *testing.T) {
	t0 := time.Now()
	_, use, err := Run(context.Background(), "test", "hang", nil, quick)
	took := time.Since(t0)
	var k *KilledError
	if !errors.As(err, &k) || k.Reason != "time" || !strings.Contains(err.Error(), "time limit of 1s") {
		t.Fatalf("hung worker: %v", err)
	}
	if took < quick.Timeout+quick.Grace || took > quick.Timeout+quick.Grace+2*time.Second {
		t.Errorf("killed after %s, want just after %s", took, quick.Timeout+quick.Grace)
	}
	if runtime.GOOS == "linux" && use.PeakRSS <= 0 {
		t.Errorf("usage of a killed worker %+v, want a peak RSS", use)
	}
}

func TestGrowingWorkerIsKilled(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the memory watchdog reads /proc")
	}
	lim := quick
	lim.Timeout = 20 * time.Second
	_, use, err := Run(context.Background(), "test", "grow", nil, lim)
	var k *KilledError
	if !errors.As(err, &k) || k.Reason != "memory" || !strings.Contains(err.Error(), "hard cap of 300 MiB") {
		t.Fatalf("growing worker: %v", err)
	}
	if use.PeakRSS <= lim.MaxRSS || use.PeakRSS > lim.MaxRSS+1<<30 {
		t.Errorf("peak RSS %d MiB, want just over the cap of %d MiB", use.PeakRSS>>20, lim.MaxRSS>>20)
	}
}

func TestCancelKillsTheWorker(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	_, _, err := Run(ctx, "test", "hang", nil, quick)
	var k *KilledError
	if !errors.Is(err, context.DeadlineExceeded) || errors.As(err, &k) || time.Since(t0) > quick.Timeout {
		t.Fatalf("cancelled after 200ms: %v after %s", err, time.Since(t0))
	}
}

func TestFailingWorkerReportsStderr(t *testing.T) {
	_, _, err := Run(context.Background(), "test", "fail", nil, quick)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 3 {
		t.Fatalf("failing worker: %v, want exit status 3", err)
	}
	if msg := err.Error(); !strings.HasSuffix(msg, "the worker broke") || len(msg) > maxStderr+200 {
		t.Errorf("error of %d bytes ending %q, want the stderr tail", len(msg), msg[max(len(msg)-50, 0):])
	}
}

func TestTailWriter(t *testing.T) {
	w := &tailWriter{max: 5}
	for _, s := range []string{"ab", "cde", "f", "", "0123456789", "x"} {
		if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	if got := w.String(); got != "6789x" {
		t.Errorf("tail %q, want %q", got, "6789x")
	}
}

// With spares kept, each job is served by a spare started ahead of it, and
// each spare serves one job only: the workers' process IDs all differ.
func TestSpares(t *testing.T) {
	KeepSpares("test", 2)
	defer KeepSpares("test", 0)
	waitSpares(t, "test", 2)
	pids := map[string]bool{}
	for i := range 6 {
		out, _, err := Run(context.Background(), "test", "", []byte("pid"), quick)
		if err != nil {
			t.Fatal(err)
		}
		if pids[string(out)] {
			t.Fatalf("job %d: worker %s served twice", i, out)
		}
		pids[string(out)] = true
		in := []byte(fmt.Sprint("job ", i))
		if out, _, err := Run(context.Background(), "test", "", in, quick); err != nil || !bytes.Equal(out, in) {
			t.Fatalf("echo through a spare: %q, %v", out, err)
		}
	}
	// A spare that died while idle is not handed a job.
	waitSpares(t, "test", 2)
	sparesMu.Lock()
	idle := spares["test"]
	sparesMu.Unlock()
	for range 2 {
		p := <-idle
		p.cmd.Process.Kill()
		for alive(p.cmd.Process.Pid) {
			time.Sleep(5 * time.Millisecond)
		}
		idle <- p
	}
	if out, _, err := Run(context.Background(), "test", "", []byte("after"), quick); err != nil || string(out) != "after" {
		t.Fatalf("with dead spares: %q, %v", out, err)
	}
	// Stopping the spares leaves no idle worker behind.
	waitSpares(t, "test", 1)
	sparesMu.Lock()
	idle = spares["test"]
	sparesMu.Unlock()
	p := <-idle
	idle <- p
	KeepSpares("test", 0)
	if p.cmd.ProcessState == nil || alive(p.cmd.Process.Pid) {
		t.Errorf("an idle spare outlived KeepSpares(0)")
	}
}

// waitSpares waits until at least n spares of kind are ready.
func waitSpares(t *testing.T, kind string, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		sparesMu.Lock()
		ready := len(spares[kind])
		sparesMu.Unlock()
		if ready >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d spares ready after 20s", ready, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A worker's peak memory is its own, not its parent's: the kernel's rusage
// charges a child started by vfork and exec with the parent's peak.
func TestPeakIsTheWorkersOwn(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("peaks are read from /proc")
	}
	big := make([]byte, 400<<20)
	for i := range big {
		big[i] = 1
	}
	_, use, err := Run(context.Background(), "test", "", []byte("small"), quick)
	runtime.KeepAlive(big)
	if err != nil {
		t.Fatal(err)
	}
	if use.PeakRSS <= 0 || use.PeakRSS >= 200<<20 {
		t.Errorf("worker peak %d MiB with a parent of over 400 MiB; want the worker's own few MiB", use.PeakRSS>>20)
	}
}
