package sql

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The small job of `make bench`, a filtered group-by over a few hundred
// rows read from a built view as jobs read it. BenchmarkSmallJob runs it in
// this process, BenchmarkSmallJobIsolated in a worker process as jobs do; the
// difference is what a job's own process costs. The isolated one reports the
// worker's CPU time per job beside the wall time, which is what bounds
// throughput when jobs queue.

// smallJobSpec is the small job writing into a directory of its own.
func smallJobSpec(b *testing.B, snapshot, views string) Spec {
	dir := filepath.Join(b.TempDir(), "job")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		b.Fatal(err)
	}
	return Spec{
		Query: `SELECT district, count(*) AS n FROM people WHERE income > 1200 GROUP BY district`,
		Tables: []Table{{Name: "people", Parquet: snapshot, Columns: []Column{
			{"id_number", FormRaw}, {"district", FormRaw}, {"income", FormRaw}, {"birth_date", FormRaw},
		}}},
		Limits: Limits{Memory: "256MB", Threads: 2, Timeout: 10 * time.Second, MaxRows: 100000, MaxBytes: 64 << 20,
			TempDir: filepath.Join(dir, "tmp")},
		Out:   filepath.Join(dir, "result.parquet"),
		Views: views,
	}
}

func BenchmarkSmallJob(b *testing.B) {
	benchSmallJob(b, Run)
}

func BenchmarkSmallJobIsolated(b *testing.B) {
	benchSmallJob(b, RunIsolated)
}

func benchSmallJob(b *testing.B, run func(context.Context, Spec) (*Report, error)) {
	snapshot := writeSnapshot(b)
	views := b.TempDir()
	if _, err := run(context.Background(), smallJobSpec(b, snapshot, views)); err != nil { // builds the view
		b.Fatal(err)
	}
	var cpu time.Duration
	b.ResetTimer()
	for range b.N {
		rep, err := run(context.Background(), smallJobSpec(b, snapshot, views))
		if err != nil {
			b.Fatal(err)
		}
		if rep.View != "reused" {
			b.Fatalf("view %q, want reused", rep.View)
		}
		cpu += rep.Process.CPU
	}
	if cpu > 0 {
		b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "worker-cpu-ms/op")
	}
}
