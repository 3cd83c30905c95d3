package policies

import (
	"context"
	"sort"
	"testing"
	"time"
)

// BenchmarkAdmit measures one admission decision with the real bundle on a
// realistic input (four fields, three agreements, two of them unusable),
// reporting p50 and p99 latency next to the mean:
//
//	go test -tags duckdb_arrow -run '^$' -bench Admit ./policies/
func BenchmarkAdmit(b *testing.B) {
	e, err := Default(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	in := baseInput()
	revoked, other := agreement7(), agreement7()
	revoked.ID, revoked.Status = 3, "revoked"
	other.ID, other.Purposes = 5, []string{"traffic planning"}
	in.Agreements = []Agreement{revoked, other, agreement7()}
	in.Job.Aggregate = true
	in.Job.Outputs = []Output{{Name: "district", Fields: []string{"district"}}, {Name: "mean", Fields: []string{"income"}, Aggregated: true}}
	ctx := context.Background()
	if d, err := e.Admit(ctx, in); err != nil || !d.Allow {
		b.Fatalf("benchmark input not admitted: %+v %v", d, err)
	}
	b.ReportAllocs()
	percentiles(b, func() error { _, err := e.Admit(ctx, in); return err })
}

// percentiles runs decide b.N times and reports its p50 and p99 latency.
func percentiles(b *testing.B, decide func() error) {
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if err := decide(); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkRelease is the same for a release decision.
func BenchmarkRelease(b *testing.B) {
	e, err := Default(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	in := ReleaseInput{Now: time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC), Agreement: agreement7(),
		Checks:  []Check{{Name: "min_cell_count", Verdict: VerdictPass}, {Name: "direct_identifiers", Verdict: VerdictPass}},
		Dataset: Dataset{Name: "population", Status: "active"}, Job: Job{Fields: []string{"district", "income"}}}
	ctx := context.Background()
	percentiles(b, func() error { _, err := e.Release(ctx, in); return err })
}
