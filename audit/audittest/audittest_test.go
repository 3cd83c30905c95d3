package audittest

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/datasandbox/dsbx/audit"
)

// Records produces the bytes Append stores, so benchmarks built on it verify
// realistic logs.
func TestRecordsMatchAppend(t *testing.T) {
	now := time.Date(2025, 3, 1, 8, 0, 0, 0, time.UTC)
	l, err := audit.Open(t.TempDir(), "test.local/audit", audit.WithClock(func() time.Time { now = now.Add(time.Second); return now }))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := 0; i < 37; i++ {
		if _, err := l.Append(context.Background(), audit.Event{Kind: "job.submitted", Principal: "acme", Subject: "dataset/people", Data: map[string]any{"n": i}}); err != nil {
			t.Fatal(err)
		}
	}
	stored, err := l.Records(0, 37)
	if err != nil {
		t.Fatal(err)
	}
	built, root, err := Records(37, func(i int64) audit.Entry {
		e, err := l.Entry(i)
		if err != nil {
			t.Fatal(err)
		}
		e.Seq, e.Prev = 0, ""
		return e
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range stored {
		if !bytes.Equal(built[i], stored[i]) {
			t.Fatalf("record %d:\nbuilt  %s\nstored %s", i, built[i], stored[i])
		}
	}
	cp, vkey, err := SignCheckpoint(audit.Checkpoint{Origin: "test.local/audit", Size: 37, Root: root})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := audit.Verify(built, cp, vkey); err != nil {
		t.Fatal(err)
	}
	lcp, err := l.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	if c, err := audit.ParseCheckpoint(lcp, l.VerifierKey()); err != nil || c.Root != root {
		t.Errorf("log root %x (%v), built root %x", c.Root, err, root)
	}
}
