package alerts

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/datasandbox/dsbx/audit"
	"github.com/datasandbox/dsbx/audit/index"
	"github.com/datasandbox/dsbx/state/statetest"
)

// world is a real log, state database and index, with a clock that moves
// a minute per entry from 10:00 China Standard Time.
type world struct {
	log *audit.Log
	idx *index.Index
	now time.Time
}

func newWorld(t *testing.T) *world {
	t.Helper()
	dir := t.TempDir()
	w := &world{now: time.Date(2026, 11, 23, 2, 0, 0, 0, time.UTC)}
	var err error
	w.log, err = audit.Open(dir+"/audit", "test.local/audit", audit.WithClock(func() time.Time { w.now = w.now.Add(time.Minute); return w.now }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.log.Close() })
	db := statetest.Open(t, dir)
	w.idx = index.New(db, w.log)
	return w
}

func (w *world) add(t *testing.T, kind, principal, subject string, data any) int64 {
	t.Helper()
	e, err := w.log.Append(context.Background(), audit.Event{Kind: kind, Principal: principal, Subject: subject, Data: data})
	if err != nil {
		t.Fatal(err)
	}
	return e.Seq
}

// submit records a job submission by op and returns the job's id.
func (w *world) submit(t *testing.T, op, sql string) int64 {
	return w.add(t, "job.submitted", op, "dataset/people", map[string]any{"dataset": "people", "sql": sql})
}

func rules(t *testing.T, m *Monitor) map[string]int {
	t.Helper()
	raised, err := m.Scan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, e := range raised {
		var a Alert
		if err := json.Unmarshal(e.Data, &a); err != nil || e.Kind != Kind || e.Subject != "principal/"+a.Operator {
			t.Fatalf("alert entry %+v", e)
		}
		out[a.Rule]++
	}
	return out
}

func TestRepeatedDenials(t *testing.T) {
	w := newWorld(t)
	m := New(w.idx, w.log, Rules{})
	for i := 0; i < 4; i++ {
		j := w.submit(t, "acme", "SELECT name FROM people")
		w.add(t, "job.decided", "acme", fmt.Sprintf("job/%d", j), map[string]any{"state": "denied"})
	}
	if got := rules(t, m); len(got) != 0 {
		t.Fatalf("four denials: %v", got)
	}
	j := w.submit(t, "acme", "SELECT id_number FROM people")
	w.add(t, "job.decided", "acme", fmt.Sprintf("job/%d", j), map[string]any{"state": "denied"})
	j = w.submit(t, "acme", "SELECT id_number FROM people")
	w.add(t, "job.decided", "acme", fmt.Sprintf("job/%d", j), map[string]any{"state": "denied"})
	if got := rules(t, m); got["repeated_denials"] != 1 {
		t.Fatalf("six denials within the hour: %v, want one alert (the second is suppressed)", got)
	}
	// Alerts are entries like any other: a regulator finds them by operator.
	es, err := w.idx.Query(context.Background(), index.Filter{Kind: Kind, Operator: "acme"})
	if err != nil || len(es) != 1 {
		t.Fatalf("alerts in the index: %v %v", es, err)
	}
}

func TestProbing(t *testing.T) {
	w := newWorld(t)
	m := New(w.idx, w.log, Rules{ProbesIn: time.Hour}) // the test clock moves a minute per entry
	for i := 0; i < 9; i++ {
		w.submit(t, "acme", fmt.Sprintf("SELECT count(*) FROM people WHERE income > %d AND district = 'east'", 1000+i*10))
	}
	w.submit(t, "acme", "SELECT district, count(*) FROM people GROUP BY district")
	if got := rules(t, m); len(got) != 0 {
		t.Fatalf("nine of one shape: %v", got)
	}
	w.submit(t, "acme", "select  count(*) from people where income > 99999 and district = 'west'")
	if got := rules(t, m); got["probing"] != 1 {
		t.Fatalf("ten of one shape: %v", got)
	}
	if Shape("SELECT a FROM t WHERE x = 'it''s' AND y > 3.5") != "select a from t where x = ? and y > ?" {
		t.Fatalf("shape %q", Shape("SELECT a FROM t WHERE x = 'it''s' AND y > 3.5"))
	}
}

func TestHoldsAndDifferencing(t *testing.T) {
	w := newWorld(t)
	m := New(w.idx, w.log, Rules{})
	j := w.submit(t, "acme", "SELECT count(*) FROM people WHERE income != 2000")
	w.add(t, "job.held", "acme", fmt.Sprintf("job/%d", j), map[string]any{"release": map[string]any{"reasons": []any{map[string]any{"code": "differencing"}}}})
	if got := rules(t, m); got["differencing"] != 1 || got["repeated_holds"] != 0 {
		t.Fatalf("one differencing hold: %v", got)
	}
	for i := 0; i < 2; i++ {
		j := w.submit(t, "acme", "SELECT max(income) FROM people")
		w.add(t, "job.held", "acme", fmt.Sprintf("job/%d", j), map[string]any{"release": map[string]any{"reasons": []any{map[string]any{"code": "extremes"}}}})
	}
	if got := rules(t, m); got["repeated_holds"] != 1 {
		t.Fatalf("three holds in a day: %v", got)
	}
}

func TestOutsideHoursAndResume(t *testing.T) {
	w := newWorld(t)
	hours := [2]int{8, 20}
	m := New(w.idx, w.log, Rules{Hours: &hours})
	w.submit(t, "acme", "SELECT 1") // 10:01 CST
	if got := rules(t, m); len(got) != 0 {
		t.Fatalf("within hours: %v", got)
	}
	w.now = w.now.Add(12 * time.Hour) // 22:02 CST
	w.submit(t, "acme", "SELECT 1")
	if got := rules(t, m); got["outside_hours"] != 1 {
		t.Fatalf("at night: %v", got)
	}
	// A new monitor (a restart) resumes after what the last alert had read.
	if got := rules(t, New(w.idx, w.log, Rules{Hours: &hours})); len(got) != 0 {
		t.Fatalf("after a restart: %v", got)
	}
}
