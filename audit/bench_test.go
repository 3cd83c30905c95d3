package audit

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
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

// BenchmarkVerify1M measures offline verification of 1,000,000 entries,
// built in memory as Append would write them.
func BenchmarkVerify1M(b *testing.B) {
	if testing.Short() {
		b.Skip("builds 1,000,000 records")
	}
	const n = 1_000_000
	start := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	records, root, err := buildRecords(n, func(i int64) Entry {
		return Entry{
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
	cp, vkey := signTestCheckpoint(b, Checkpoint{Origin: testOrigin, Size: n, Root: root})
	b.ResetTimer()
	for b.Loop() {
		r, err := Verify(records, cp, vkey)
		if err != nil {
			b.Fatal(err)
		}
		if r.Size != n {
			b.Fatalf("verified %d entries, want %d", r.Size, n)
		}
	}
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/verify")
}

// buildRecords makes n records in memory exactly as Append would store them,
// without touching the disk: entry i is tmpl(i) with seq i and prev the tree
// hash of records [0, i). It also returns the tree hash of all n.
func buildRecords(n int64, tmpl func(i int64) Entry) ([][]byte, tlog.Hash, error) {
	records := make([][]byte, 0, n)
	hashes := make(memHashes, 0, tlog.StoredHashCount(n))
	var root tlog.Hash
	var err error
	for i := range n {
		if root, err = tlog.TreeHash(i, hashes); err != nil {
			return nil, root, err
		}
		e := tmpl(i)
		e.Seq = i
		e.Time = e.Time.UTC().Round(0)
		e.Prev = base64.StdEncoding.EncodeToString(root[:])
		rec, err := json.Marshal(e)
		if err != nil {
			return nil, root, err
		}
		hs, err := tlog.StoredHashes(i, rec, hashes)
		if err != nil {
			return nil, root, err
		}
		hashes = append(hashes, hs...)
		records = append(records, rec)
	}
	root, err = tlog.TreeHash(n, hashes)
	return records, root, err
}

// signTestCheckpoint signs c with a fresh key named c.Origin and returns the
// signed note and the verifier key.
func signTestCheckpoint(tb testing.TB, c Checkpoint) ([]byte, string) {
	tb.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, c.Origin)
	if err != nil {
		tb.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		tb.Fatal(err)
	}
	cp, err := note.Sign(&note.Note{Text: c.String()}, signer)
	if err != nil {
		tb.Fatal(err)
	}
	return cp, vkey
}

// TestBuildRecordsMatchesAppend checks that buildRecords produces the bytes
// Append stores, so that BenchmarkVerify1M verifies realistic records.
func TestBuildRecordsMatchesAppend(t *testing.T) {
	l := openLog(t, t.TempDir())
	defer l.Close()
	appendN(t, l, 0, 37)
	stored, err := l.Records(0, 37)
	if err != nil {
		t.Fatal(err)
	}
	built, root, err := buildRecords(37, func(i int64) Entry {
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
	cp, vkey := signTestCheckpoint(t, Checkpoint{Origin: testOrigin, Size: 37, Root: root})
	mustVerify(t, built, cp, vkey)
	lcp, err := l.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	if c, err := ParseCheckpoint(lcp, l.VerifierKey()); err != nil || c.Root != root {
		t.Errorf("log root %x (%v), built root %x", c.Root, err, root)
	}
}
