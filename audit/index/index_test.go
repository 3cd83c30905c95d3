package index

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/datasandbox/dsbx/audit"
	"github.com/datasandbox/dsbx/state/statetest"
)

var start = time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)

// platform is a real audit log and state database, and a clock that
// advances an hour per entry.
func platform(t *testing.T) (*audit.Log, *Index) {
	t.Helper()
	dir := t.TempDir()
	now := start
	log, err := audit.Open(dir+"/audit", "test.local/audit", audit.WithClock(func() time.Time { now = now.Add(time.Hour); return now }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close() })
	db := statetest.Open(t, dir)
	return log, New(db, log)
}

func add(t *testing.T, log *audit.Log, kind, principal, subject string, data map[string]any) int64 {
	t.Helper()
	e, err := log.Append(context.Background(), audit.Event{Kind: kind, Principal: principal, Subject: subject, Data: data})
	if err != nil {
		t.Fatal(err)
	}
	return e.Seq
}

func seqs(t *testing.T, x *Index, f Filter) []int64 {
	t.Helper()
	es, err := x.Query(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	out := []int64{}
	for _, e := range es {
		out = append(out, e.Seq)
	}
	return out
}

func TestQueries(t *testing.T) {
	log, x := platform(t)
	grant := add(t, log, "agreement.granted", "registry", "principal/acme", map[string]any{"id": 1})
	job := add(t, log, "job.submitted", "acme", "dataset/people", map[string]any{"dataset": "people"})
	decided := add(t, log, "job.decided", "acme", "job/1", map[string]any{"state": "queued"})
	released := add(t, log, "result.released", "acme", "job/1", nil)
	downloaded := add(t, log, "result.downloaded", "acme", "job/1", nil)
	denied := add(t, log, "job.submitted", "beta", "dataset/firms", map[string]any{"dataset": "firms"})
	deniedDecision := add(t, log, "job.decided", "beta", "job/5", map[string]any{"state": "denied"})
	// Reviews are by another principal, but about acme's job.
	if job != 1 || denied != 5 {
		t.Fatalf("setup: job %d, denied %d", job, denied)
	}
	approval := add(t, log, "review.approved", "check", "job/1", nil)
	refusedAccess := add(t, log, "access.denied", "beta", "route/GET /v1/audit/entries", nil)

	for _, tc := range []struct {
		name string
		f    Filter
		want []int64
	}{
		{"everything", Filter{}, []int64{grant, job, decided, released, downloaded, denied, deniedDecision, approval, refusedAccess}},
		{"one job, submission to download", Filter{Job: job}, []int64{job, decided, released, downloaded, approval}},
		{"operator acme", Filter{Operator: "acme"}, []int64{grant, job, decided, released, downloaded, approval}},
		{"dataset firms", Filter{Dataset: "firms"}, []int64{denied, deniedDecision}},
		{"kind", Filter{Kind: "result.released"}, []int64{released}},
		{"kind prefix", Filter{Kind: "result."}, []int64{released, downloaded}},
		{"denied", Filter{Decision: Denied}, []int64{deniedDecision}},
		{"released", Filter{Decision: Released}, []int64{released}},
		{"time range", Filter{From: start.Add(3 * time.Hour), To: start.Add(5 * time.Hour)}, []int64{decided, released}},
		{"one instant", Filter{From: start.Add(3 * time.Hour), To: start.Add(3*time.Hour + time.Nanosecond)}, []int64{decided}},
		{"cursor and limit", Filter{Since: decided + 1, Limit: 2}, []int64{released, downloaded}},
		{"combined", Filter{Operator: "acme", Kind: "job."}, []int64{job, decided}},
		{"nothing", Filter{Dataset: "nosuch"}, []int64{}},
	} {
		if got := seqs(t, x, tc.f); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}

	// Entries appended later are indexed by the next query.
	later := add(t, log, "result.downloaded", "acme", "job/1", nil)
	if got := seqs(t, x, Filter{Job: job, Kind: "result.downloaded"}); !slices.Equal(got, []int64{downloaded, later}) {
		t.Fatalf("after a later download: %v", got)
	}
	// The entries come from the log itself, byte for byte.
	es, _ := x.Query(context.Background(), Filter{Job: job})
	rec, _ := log.Record(es[0].Seq)
	e, _ := log.Entry(es[0].Seq)
	if es[0].Kind != e.Kind || string(es[0].Data) != string(e.Data) || len(rec) == 0 {
		t.Fatalf("query returned %+v, log holds %+v", es[0], e)
	}
}

// The index can be dropped and rebuilt from the log; it never holds more
// than the log.
func TestRebuild(t *testing.T) {
	log, x := platform(t)
	for i := 0; i < 5000; i++ { // more than one catch-up batch
		add(t, log, "job.submitted", "acme", "dataset/people", map[string]any{"dataset": "people"})
	}
	if got := len(seqs(t, x, Filter{Dataset: "people", Limit: MaxLimit})); got != MaxLimit {
		t.Fatalf("%d entries, want the limit %d", got, MaxLimit)
	}
	if _, err := x.db.ExecContext(context.Background(), `DELETE FROM audit_index`); err != nil {
		t.Fatal(err)
	}
	got := seqs(t, x, Filter{Since: 4991})
	if len(got) != 9 || got[0] != 4991 {
		t.Fatalf("after a rebuild: %v", got)
	}
}
