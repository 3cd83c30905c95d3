package audit_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/datasandbox/dsbx/audit"
	"github.com/datasandbox/dsbx/audit/audittest"
)

// BenchmarkVerify1M measures offline verification of 1,000,000 entries,
// built in memory as Append would write them.
func BenchmarkVerify1M(b *testing.B) {
	if testing.Short() {
		b.Skip("builds 1,000,000 records")
	}
	const n = 1_000_000
	start := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	records, root, err := audittest.Records(n, func(i int64) audit.Entry {
		return audit.Entry{
			Time:      start.Add(time.Duration(i) * time.Millisecond),
			Kind:      "job.submitted",
			Principal: "operator/7",
			Subject:   fmt.Sprintf("job/%d", i),
			Data:      json.RawMessage(fmt.Sprintf(`{"dataset":"population@v3","rows":%d}`, i)),
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	cp, vkey, err := audittest.SignCheckpoint(audit.Checkpoint{Origin: "test.local/audit", Size: n, Root: root})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		r, err := audit.Verify(records, cp, vkey)
		if err != nil {
			b.Fatal(err)
		}
		if r.Size != n {
			b.Fatalf("verified %d entries, want %d", r.Size, n)
		}
	}
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/verify")
}
