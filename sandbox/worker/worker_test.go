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
		case "": // echo
			if _, err := io.Copy(out, in); err != nil {
				return 1
			}
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
