package audit

import (
	"context"
	"testing"
)

// BenchmarkAppend measures one durable (fsynced) append.
func BenchmarkAppend(b *testing.B) {
	l := openLog(b, b.TempDir())
	defer l.Close()
	ctx := context.Background()
	ev := Event{
		Kind:      "job.submitted",
		Principal: "operator/7",
		Subject:   "job/42",
		Data:      map[string]any{"dataset": "population@v3", "purpose": "statistics"},
	}
	for b.Loop() {
		if _, err := l.Append(ctx, ev); err != nil {
			b.Fatal(err)
		}
	}
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
