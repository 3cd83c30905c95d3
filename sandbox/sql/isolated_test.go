package sql

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// The worker is this test binary re-executed: init turns it into a worker.

func TestRunIsolatedMatchesRun(t *testing.T) {
	snapshot := writeSnapshot(t)
	query := `SELECT district, count(*) AS n, sum(income) AS total FROM people GROUP BY district ORDER BY district`
	in, err := Run(ctx(t), testSpec(t, snapshot, query))
	if err != nil {
		t.Fatal(err)
	}
	out, err := RunIsolated(ctx(t), testSpec(t, snapshot, query))
	if err != nil {
		t.Fatal(err)
	}
	if out.SHA256 != in.SHA256 || out.Rows != 5 || out.Resources.RowsScanned != 500 {
		t.Fatalf("isolated %+v, in-process %+v", out, in)
	}
	if out.Process.CPU <= 0 || out.Process.PeakRSS <= 0 {
		t.Fatalf("process usage %+v, want CPU time and a peak RSS", out.Process)
	}
}

func TestRunIsolatedCarriesRefusalsAndLimits(t *testing.T) {
	snapshot := writeSnapshot(t)
	_, err := RunIsolated(ctx(t), testSpec(t, snapshot, `SELECT * FROM read_csv('/etc/passwd')`))
	var qe *Error
	if !errors.As(err, &qe) || qe.Code != CodeTableFunction {
		t.Fatalf("file read in the worker: %v, want a table_function refusal", err)
	}
	spec := testSpec(t, snapshot, `SELECT * FROM people`)
	spec.Limits.MaxRows = 10
	if _, err := RunIsolated(ctx(t), spec); !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), "10 rows") {
		t.Fatalf("row cap in the worker: %v", err)
	}
	noFileAt(t, spec.Out)
}

// withWorker runs f with the worker in mode (package worker's "hang" or
// "grow") and a short kill grace.
func withWorker(t *testing.T, mode string, f func()) {
	t.Helper()
	oldMode, oldGrace := workerMode, KillGrace
	workerMode, KillGrace = mode, 300*time.Millisecond
	defer func() { workerMode, KillGrace = oldMode, oldGrace }()
	f()
}

func TestHungWorkerIsKilled(t *testing.T) {
	snapshot := writeSnapshot(t)
	withWorker(t, "hang", func() {
		spec := testSpec(t, snapshot, `SELECT 1`)
		spec.Limits.Timeout = 200 * time.Millisecond
		t0 := time.Now()
		_, err := RunIsolated(ctx(t), spec)
		if !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), "killed") || time.Since(t0) > 5*time.Second {
			t.Fatalf("hung worker: %v after %s", err, time.Since(t0))
		}
		noFileAt(t, spec.Out)
	})
}

func TestGrowingWorkerIsKilled(t *testing.T) {
	snapshot := writeSnapshot(t)
	withWorker(t, "grow", func() {
		spec := testSpec(t, snapshot, `SELECT 1`)
		spec.Limits.Memory = "16MB"
		spec.Limits.Timeout = 30 * time.Second
		_, err := RunIsolated(ctx(t), spec)
		if !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), "resident memory") || !strings.Contains(err.Error(), "memory_limit 16MB") {
			t.Fatalf("growing worker: %v", err)
		}
	})
}

// A real query whose one string DuckDB allocates outside its buffer
// manager: memory_limit does not stop it, the watchdog does.
func TestHugeStringIsStoppedByTheWatchdog(t *testing.T) {
	snapshot := writeSnapshot(t)
	spec := testSpec(t, snapshot, `SELECT length(repeat('x', 1500000000)) AS n`)
	spec.Limits.Memory = "64MB"
	spec.Limits.Timeout = 20 * time.Second
	t0 := time.Now()
	_, err := RunIsolated(ctx(t), spec)
	if !errors.Is(err, ErrLimit) || time.Since(t0) > 15*time.Second {
		t.Fatalf("1.5 GB string under a 64MB limit: %v after %s", err, time.Since(t0))
	}
}

func TestCancelledJobKillsItsWorker(t *testing.T) {
	snapshot := writeSnapshot(t)
	withWorker(t, "hang", func() {
		c, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		_, err := RunIsolated(c, testSpec(t, snapshot, `SELECT 1`))
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("cancelled: %v", err)
		}
	})
}

func TestHardMemory(t *testing.T) {
	for in, want := range map[string]int64{"512MB": 2*512e6 + 512<<20, "1GiB": 2<<30 + 512<<20, " 64 mb ": 2*64e6 + 512<<20} {
		if got, err := HardMemory(in); err != nil || got != want {
			t.Errorf("HardMemory(%q) = %d %v, want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "lots", "-5MB", "12XB"} {
		if _, err := HardMemory(bad); err == nil {
			t.Errorf("HardMemory(%q) accepted", bad)
		}
	}
}
