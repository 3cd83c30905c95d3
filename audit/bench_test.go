package audit

import (
	"context"
	"testing"
)

// benchEvent is the event the append benchmarks write.
var benchEvent = Event{
	Kind:      "job.submitted",
	Principal: "operator/7",
	Subject:   "job/42",
	Data:      map[string]any{"dataset": "population@v3", "purpose": "statistics"},
}

// reportEventsPerSec reports the benchmark's appends per second and per
// fsync pair.
func reportEventsPerSec(b *testing.B, l *Log) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	if n := l.fsyncs.Load(); n > 0 {
		b.ReportMetric(float64(b.N)/float64(n), "events/fsync")
	}
}

// BenchmarkAppend measures one durable (fsynced) append.
func BenchmarkAppend(b *testing.B) {
	l := openLog(b, b.TempDir())
	defer l.Close()
	ctx := context.Background()
	for b.Loop() {
		if _, err := l.Append(ctx, benchEvent); err != nil {
			b.Fatal(err)
		}
	}
	reportEventsPerSec(b, l)
}

// BenchmarkAppendParallel measures durable appends from 16*GOMAXPROCS
// goroutines, which group commit batches.
func BenchmarkAppendParallel(b *testing.B) {
	l := openLog(b, b.TempDir())
	defer l.Close()
	ctx := context.Background()
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := l.Append(ctx, benchEvent); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	reportEventsPerSec(b, l)
}

// BenchmarkVerify measures offline verification of a 1000-entry export.
func BenchmarkVerify(b *testing.B) {
	l := openLog(b, b.TempDir())
	defer l.Close()
	appendN(b, l, 0, 1000)
	records, cp, vkey, _ := exportLog(b, l)
	for b.Loop() {
		if _, err := Verify(records, cp, vkey); err != nil {
			b.Fatal(err)
		}
	}
}
