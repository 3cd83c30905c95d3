package server

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/datasandbox/dsbx/audit"
)

// A regulator follows one job from submission to download, and filters the
// record by operator, dataset and decision.
func TestAuditEvents(t *testing.T) {
	p := start(t)
	ctx := context.Background()
	ok := p.run(t, "SELECT district, count(*) AS n FROM people WHERE district <> '临安区' GROUP BY district")
	if err := p.operator.FetchResult(ctx, ok.ID, "csv", &discard{}); err != nil {
		t.Fatal(err)
	}
	denied := p.run(t, "SELECT district, count(DISTINCT id_number) FROM people GROUP BY district")

	timeline, err := p.admin.AuditEvents(ctx, url.Values{"job": {itoa(ok.ID)}})
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, e := range timeline {
		kinds = append(kinds, e.Kind)
	}
	want := []string{"job.submitted", "job.decided", "job.started", "job.ran", "job.checked", "result.released", "result.downloaded"}
	if !slices.Equal(kinds, want) {
		t.Fatalf("job %d's timeline %v, want %v", ok.ID, kinds, want)
	}
	got, err := p.admin.AuditEvents(ctx, url.Values{"decision": {"denied"}, "dataset": {"people"}, "operator": {"acme"}})
	if err != nil || len(got) != 1 || got[0].Subject != "job/"+itoa(denied.ID) {
		t.Fatalf("denied decisions: %+v %v", got, err)
	}
	// Repeated denials raise an alert, in the log and on its endpoint.
	for i := 0; i < 5; i++ {
		p.run(t, "SELECT district, count(DISTINCT id_number) FROM people GROUP BY district")
	}
	alerts, err := p.admin.AuditAlerts(ctx, url.Values{"operator": {"acme"}})
	if err != nil || len(alerts) != 1 || alerts[0].Kind != "alert.raised" || !strings.Contains(string(alerts[0].Data), "repeated_denials") {
		t.Fatalf("alerts %+v %v", alerts, err)
	}
	// Checkpoints are published (at start, with each sweep, on demand), and
	// each later one is proven to extend the earlier.
	if _, err := p.admin.Replay(ctx, ok.ID); err != nil { // one more entry
		t.Fatal(err)
	}
	if err := p.srv.sweep(ctx); err != nil {
		t.Fatal(err)
	}
	cps, err := p.admin.AuditPublished(ctx)
	key, _ := p.admin.AuditKey(ctx)
	if err != nil || len(cps) < 2 {
		t.Fatalf("published %d checkpoints: %v", len(cps), err)
	}
	first, err1 := audit.ParseCheckpoint(cps[0], key)
	last, err2 := audit.ParseCheckpoint(cps[len(cps)-1], key)
	if err := errors.Join(err1, err2); err != nil || first.Size >= last.Size {
		t.Fatalf("checkpoints %+v %+v %v", first, last, err)
	}
	proof, err := p.operator.AuditConsistency(ctx, first.Size, last.Size)
	if err != nil {
		t.Fatal(err)
	}
	hs, err := proof.Proof()
	if err != nil {
		t.Fatal(err)
	}
	if err := audit.VerifyConsistency(first, last, hs); err != nil {
		t.Fatalf("the server's consistency proof: %v", err)
	}
	for _, bad := range []url.Values{{"decision": {"maybe"}}, {"from": {"yesterday"}}, {"job": {"x"}}, {"limit": {"5000"}}} {
		_, err := p.admin.AuditEvents(ctx, bad)
		expect(t, "filter "+bad.Encode(), err, http.StatusBadRequest, "")
	}
}

type discard struct{}

func (discard) Write(b []byte) (int, error) { return len(b), nil }

// A credential's first use, and its first use after an hour without, is
// recorded as a sign-in; the uses between are not.
func TestSignIns(t *testing.T) {
	p := start(t)
	ctx := context.Background()
	count := func() int {
		es, err := p.admin.AuditEvents(ctx, url.Values{"kind": {"principal.signed_in"}, "operator": {"acme"}})
		if err != nil {
			t.Fatal(err)
		}
		return len(es)
	}
	before := count() // the setup used the operator's token already
	if before != 1 {
		t.Fatalf("%d sign-ins after the setup, want 1", before)
	}
	for i := 0; i < 3; i++ {
		if _, err := p.operator.Jobs(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got := count(); got != before {
		t.Fatalf("%d sign-ins after three more calls within the hour, want %d", got, before)
	}
	p.clock.Add(int64(SessionGap.Seconds()) + 1)
	p.operator.Jobs(ctx)
	if got := count(); got != before+1 {
		t.Fatalf("%d sign-ins after an hour idle, want %d", got, before+1)
	}
}
