package jobs

import (
	"bytes"
	"context"
	"errors"
	"os"
	"slices"
	"testing"

	"github.com/datasandbox/dsbx/disclosure"
	"github.com/datasandbox/dsbx/policies"
)

const (
	byDistrict = "SELECT district, count(*) AS n, avg(income) AS mean_income FROM people GROUP BY district ORDER BY district"
	countOnly  = "SELECT district, count(*) AS n FROM people GROUP BY district ORDER BY district"
)

// uphold files an objection against people (or one field of it) and upholds
// it, as the provider would.
func (p *platform) uphold(t *testing.T, field string) {
	t.Helper()
	ctx := context.Background()
	o, err := p.catalog.Object(ctx, "citizen", "people", field, "my income is identifiable")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.catalog.Decide(ctx, "admin", o.ID, true, "verified"); err != nil {
		t.Fatal(err)
	}
}

// runUntilCheck takes the oldest queued job through claim and run, stopping
// before its output checks: a job whose result sits unreleased in
// quarantine.
func (p *platform) runUntilCheck(t *testing.T) (Job, func() Job) {
	t.Helper()
	ctx := context.Background()
	j, ok, err := p.svc.claim(ctx)
	if err != nil || !ok {
		t.Fatalf("claim: %v %v", ok, err)
	}
	entry, version, err := p.catalog.Resolve(ctx, j.Dataset+"@"+j.Version)
	if err != nil {
		t.Fatal(err)
	}
	report, err := p.svc.run(ctx, &j, entry, version)
	if err != nil {
		t.Fatal(err)
	}
	j.Result = &Result{SHA256: report.SHA256, Rows: report.Rows, Bytes: report.Bytes}
	return j, func() Job {
		if err := p.svc.check(ctx, &j, report); err != nil {
			t.Fatal(err)
		}
		got, err := p.svc.load(ctx, j.ID)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
}

func TestUpheldObjectionHoldsUnreleasedResult(t *testing.T) {
	p := newPlatform(t)
	acme := p.principal(t, "acme")
	p.submit(t, acme, byDistrict)
	_, check := p.runUntilCheck(t)

	p.uphold(t, "") // the whole dataset, while the result is in quarantine
	j := check()
	if j.State != StateHeld || j.Result.ReleaseSeq != 0 {
		t.Fatalf("state %s release %d, want held and never released", j.State, j.Result.ReleaseSeq)
	}
	if j.Release == nil || !slices.ContainsFunc(j.Release.Reasons, func(r policies.Reason) bool { return r.Code == "dataset_suspended" }) {
		t.Fatalf("release decision %+v lacks dataset_suspended", j.Release)
	}
	for _, c := range j.Checks {
		if c.Verdict != disclosure.Pass {
			t.Fatalf("check %s did not pass; the hold must come from the objection alone", c.Check)
		}
	}
	if n := countKind(p.jobEntries(t, j.ID), "result.released"); n != 0 {
		t.Fatalf("%d release entries for a held job", n)
	}
	err := p.svc.Deliver(context.Background(), acme, j.ID, FormatCSV, &bytes.Buffer{})
	var nr *NotReleasedError
	if !errors.As(err, &nr) {
		t.Fatalf("deliver held result: %v, want NotReleasedError", err)
	}
}

func TestSuspendedFieldHoldsOnlyResultsThatUsedIt(t *testing.T) {
	p := newPlatform(t)
	acme := p.principal(t, "acme")
	p.submit(t, acme, byDistrict) // uses income
	_, checkIncome := p.runUntilCheck(t)
	p.submit(t, acme, countOnly) // does not
	_, checkCount := p.runUntilCheck(t)

	p.uphold(t, "income")
	if j := checkIncome(); j.State != StateHeld {
		t.Fatalf("job using the suspended field: %s, want held", j.State)
	}
	if j := checkCount(); j.State != StateReleased {
		t.Fatalf("job not using the suspended field: %s, want released (%+v)", j.State, j.Release)
	}
	// New jobs using the field are denied at admission, others admitted.
	denied, err := p.svc.Submit(context.Background(), acme, Request{Dataset: "people", SQL: byDistrict, Purpose: testPurpose})
	if err != nil || denied.State != StateDenied || !slices.ContainsFunc(denied.Decision.Reasons, func(r policies.Reason) bool { return r.Code == "field_suspended" }) {
		t.Fatalf("new job on suspended field: %v %+v", err, denied.Decision)
	}
	p.submit(t, acme, countOnly)
}

func TestUpheldObjectionStopsQueuedJobsAndWithdrawsReleasedResults(t *testing.T) {
	p := newPlatform(t)
	ctx := context.Background()
	acme := p.principal(t, "acme")

	// One result released before the objection, one job still queued.
	p.submit(t, acme, byDistrict)
	_, check := p.runUntilCheck(t)
	released := check()
	if released.State != StateReleased {
		t.Fatalf("first job %s, want released", released.State)
	}
	if err := p.svc.Deliver(ctx, acme, released.ID, FormatCSV, &bytes.Buffer{}); err != nil {
		t.Fatalf("deliver before the objection: %v", err)
	}
	queued := p.submit(t, acme, countOnly)

	p.uphold(t, "")
	stopped, err := p.svc.StopWithdrawn(ctx, "admin", "people")
	if err != nil {
		t.Fatal(err)
	}
	if len(stopped) != 1 || stopped[0].ID != queued.ID {
		t.Fatalf("stopped %v, want job %d", jobIDsOf(stopped), queued.ID)
	}
	j, _ := p.svc.Get(ctx, acme, queued.ID)
	if j.State != StateStopped || countKind(p.jobEntries(t, queued.ID), "job.stopped") != 1 {
		t.Fatalf("queued job: %s, entries %v", j.State, kinds(p.jobEntries(t, queued.ID)))
	}
	// A worker started now finds nothing to run.
	p.start(t)
	p.svc.wakeWorkers()
	if j, _ := p.svc.Get(ctx, acme, queued.ID); j.State != StateStopped {
		t.Fatalf("stopped job became %s", j.State)
	}

	list, err := p.svc.Released(ctx, "people", "")
	if err != nil || len(list) != 1 || list[0].ID != released.ID || list[0].Downloads != 1 {
		t.Fatalf("released before the objection: %v %v", jobIDsOf(list), err)
	}
	if list, _ := p.svc.Released(ctx, "people", "id_number"); len(list) != 0 {
		t.Fatalf("released results using id_number: %v, want none", jobIDsOf(list))
	}
	err = p.svc.Deliver(ctx, acme, released.ID, FormatCSV, &bytes.Buffer{})
	var w *WithdrawnError
	if !errors.As(err, &w) {
		t.Fatalf("deliver after the objection: %v, want WithdrawnError", err)
	}

	// Reinstated, the dataset serves again and the result may be fetched.
	if _, err := p.catalog.Reinstate(ctx, "admin", "people", "", "remedied"); err != nil {
		t.Fatal(err)
	}
	if err := p.svc.Deliver(ctx, acme, released.ID, FormatCSV, &bytes.Buffer{}); err != nil {
		t.Fatalf("deliver after reinstatement: %v", err)
	}
}

func TestQueuedJobOnSealedVersionIsStoppedByTheWorker(t *testing.T) {
	p := newPlatform(t)
	ctx := context.Background()
	acme := p.principal(t, "acme")
	j := p.submit(t, acme, countOnly)
	if _, err := p.catalog.Seal(ctx, "admin", "people@"+j.Version, "superseded"); err != nil {
		t.Fatal(err)
	}
	p.start(t) // no sweep: the worker itself must refuse to run it
	got := p.wait(t, acme, j.ID)
	if got.State != StateStopped || got.Run != nil {
		t.Fatalf("job on a sealed version: %s run=%v, want stopped without running", got.State, got.Run)
	}
	if _, err := os.Stat(p.svc.resultPath(j.ID)); !os.IsNotExist(err) {
		t.Fatalf("a stopped job left a result: %v", err)
	}
	_, err := p.svc.Submit(ctx, acme, Request{Dataset: "people", SQL: countOnly, Purpose: testPurpose})
	if !errorsIsNotFound(err) {
		t.Fatalf("submit with no active version left: %v, want unknown_dataset", err)
	}
}

func jobIDsOf(list []Job) []int64 {
	var out []int64
	for _, j := range list {
		out = append(out, j.ID)
	}
	return out
}

func errorsIsNotFound(err error) bool {
	var ie *InputError
	return errors.As(err, &ie) && ie.Code == "unknown_dataset"
}
