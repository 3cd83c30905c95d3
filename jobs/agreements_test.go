package jobs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/datasandbox/dsbx/disclosure"
	"github.com/datasandbox/dsbx/operators"
)

// setClock moves the directory's and the service's clocks to t.
func (p *platform) setClock(t time.Time) {
	now := func() time.Time { return t }
	p.dir.SetClock(now)
	p.svc.SetClock(now)
}

// acmeAgreement returns acme's agreement from newPlatform.
func (p *platform) acmeAgreement(t *testing.T) operators.Agreement {
	t.Helper()
	list, err := p.dir.Applicable(context.Background(), "acme", "people")
	if err != nil || len(list) != 1 {
		t.Fatalf("acme's agreements: %v %v", list, err)
	}
	return list[0]
}

func reasonCodes(j Job) []string {
	var out []string
	for _, r := range j.Decision.Reasons {
		out = append(out, r.Code+": "+r.Message)
	}
	return out
}

func TestJobOneSecondAfterAgreementEndsIsDenied(t *testing.T) {
	p := newPlatform(t)
	ctx := context.Background()
	acme := p.principal(t, "acme")
	end := p.acmeAgreement(t).Until // 2027-07-01 00:00 CST: the term ran through 2027-06-30
	if want := time.Date(2027, 7, 1, 0, 0, 0, 0, operators.Zone); !end.Equal(want) {
		t.Fatalf("term ends %v, want %v", end, want)
	}

	p.setClock(end.Add(-time.Second))
	if j := p.submit(t, acme, countOnly); j.Agreement == 0 {
		t.Fatalf("job in the last second of the term ran under no agreement: %+v", j)
	}
	p.setClock(end.Add(time.Second))
	j, err := p.svc.Submit(ctx, acme, Request{Dataset: "people", SQL: countOnly, Purpose: testPurpose})
	if err != nil {
		t.Fatal(err)
	}
	if j.State != StateDenied || j.Agreement != 0 || !strings.Contains(strings.Join(reasonCodes(j), "\n"), "agreement_unusable: agreement") ||
		!strings.Contains(j.Decision.Reasons[0].Message, "ended at 2027-07-01T00:00:00+08:00") {
		t.Fatalf("job one second after the term: state %s, reasons %v", j.State, reasonCodes(j))
	}
}

func TestRevokedAgreementStopsQueuedJobsAndWithholdsResults(t *testing.T) {
	p := newPlatform(t)
	ctx := context.Background()
	acme, registry := p.principal(t, "acme"), p.principal(t, "registry")
	a := p.acmeAgreement(t)

	// One result released before the revocation, one job still queued.
	released := p.submit(t, acme, countOnly)
	_, finish := p.runUntilCheck(t)
	if got := finish(); got.State != StateReleased {
		t.Fatalf("first job %s, want released", got.State)
	}
	queued := p.submit(t, acme, byDistrict)

	if _, err := p.dir.SetStatus(ctx, registry, a.ID, operators.StatusRevoked, "the operator breached the security terms"); err != nil {
		t.Fatal(err)
	}
	stopped, err := p.svc.StopUnderAgreement(ctx, "registry", a.ID, "revoked")
	if err != nil || len(stopped) != 1 || stopped[0].ID != queued.ID {
		t.Fatalf("stopped %v %v, want job %d", stopped, err, queued.ID)
	}
	if got, _ := p.svc.Get(ctx, acme, queued.ID); got.State != StateStopped {
		t.Errorf("queued job is %s after revocation, want stopped", got.State)
	}
	var buf bytes.Buffer
	err = p.svc.Deliver(ctx, acme, released.ID, FormatCSV, &buf)
	var we *WithdrawnError
	if !errors.As(err, &we) || !strings.Contains(err.Error(), "was revoked: the operator breached") || buf.Len() != 0 {
		t.Fatalf("delivery after revocation: %v (%d bytes), want withheld", err, buf.Len())
	}
	j, err := p.svc.Submit(ctx, acme, Request{Dataset: "people", SQL: countOnly, Purpose: testPurpose})
	if err != nil || j.State != StateDenied || !strings.Contains(j.Decision.Reasons[0].Message, "is revoked") {
		t.Fatalf("job after revocation: %+v %v", j.Decision, err)
	}
}

func TestSuspensionHoldsRunningResultAndWorkerStopsQueued(t *testing.T) {
	p := newPlatform(t)
	ctx := context.Background()
	acme, registry := p.principal(t, "acme"), p.principal(t, "registry")
	a := p.acmeAgreement(t)

	p.submit(t, acme, countOnly)
	_, finish := p.runUntilCheck(t)
	queued := p.submit(t, acme, byDistrict)
	if _, err := p.dir.SetStatus(ctx, registry, a.ID, operators.StatusSuspended, "compliance review"); err != nil {
		t.Fatal(err)
	}
	if got := finish(); got.State != StateHeld || got.Release == nil || got.Release.Reasons[0].Code != "agreement_withdrawn" {
		t.Fatalf("job running while its agreement was suspended: %s %+v, want held", got.State, got.Release)
	}
	// The worker, not a sweep, finds the queued job's agreement suspended.
	j, ok, err := p.svc.claim(ctx)
	if err != nil || !ok || j.ID != queued.ID {
		t.Fatalf("claim: %v %v %v", j.ID, ok, err)
	}
	if err := p.svc.execute(ctx, j); err != nil {
		t.Fatal(err)
	}
	if got, _ := p.svc.Get(ctx, acme, queued.ID); got.State != StateStopped || !strings.Contains(got.Error, "was suspended: compliance review") {
		t.Fatalf("queued job under a suspended agreement: %s %q", got.State, got.Error)
	}
	// Resumed, the agreement carries jobs again.
	if _, err := p.dir.SetStatus(ctx, registry, a.ID, operators.StatusActive, "review passed"); err != nil {
		t.Fatal(err)
	}
	if j := p.submit(t, acme, countOnly); j.Agreement != a.ID {
		t.Fatalf("job after resumption runs under %d, want %d", j.Agreement, a.ID)
	}
}

func TestQuotasCountAdmittedJobs(t *testing.T) {
	p := newPlatform(t)
	ctx := context.Background()
	beta := p.principal(t, "beta")
	a := p.agree(t, "beta", operators.Approval{Quotas: operators.Quotas{MaxJobs: 3, JobsPerDay: 2}})
	submit := func() Job {
		j, err := p.svc.Submit(ctx, beta, Request{Dataset: "people", SQL: countOnly, Purpose: testPurpose})
		if err != nil {
			t.Fatal(err)
		}
		return j
	}
	// A denied job does not count.
	if j, _ := p.svc.Submit(ctx, beta, Request{Dataset: "people", SQL: "SELECT id_number FROM people", Purpose: testPurpose}); j.State != StateDenied {
		t.Fatalf("job on an ungranted field: %s", j.State)
	}
	for i := 0; i < 2; i++ {
		if j := submit(); j.State != StateQueued || j.Agreement != a.ID {
			t.Fatalf("job %d of the day: %s %v", i+1, j.State, reasonCodes(j))
		}
	}
	if j := submit(); j.State != StateDenied || !strings.Contains(j.Decision.Reasons[0].Message, "allows 2 jobs a day and 2 were admitted today") {
		t.Fatalf("third job of the day: %s %v", j.State, reasonCodes(j))
	}
	// Midnight in China Standard Time is 16:00 UTC.
	p.setClock(time.Date(2026, 11, 23, 16, 0, 0, 0, time.UTC))
	if j := submit(); j.State != StateQueued {
		t.Fatalf("first job of the next day: %s %v", j.State, reasonCodes(j))
	}
	if j := submit(); j.State != StateDenied || !strings.Contains(j.Decision.Reasons[0].Message, "allows 3 jobs in all and 3 were admitted") {
		t.Fatalf("fourth job in all: %s %v", j.State, reasonCodes(j))
	}
}

func TestAgreementOutputRules(t *testing.T) {
	p := newPlatform(t)
	ctx := context.Background()
	beta := p.principal(t, "beta")
	p.agree(t, "beta", operators.Approval{Outputs: operators.OutputRules{AggregatesOnly: true, MinCellCount: 100}})
	j, err := p.svc.Submit(ctx, beta, Request{Dataset: "people", SQL: "SELECT district, income FROM people", Purpose: testPurpose})
	if err != nil || j.State != StateDenied || j.Decision.Reasons[0].Code != "aggregates_only" {
		t.Fatalf("row-level job under an aggregates-only agreement: %+v %v", j.Decision, err)
	}
	// Each district holds about 67 of the 200 people: enough for the
	// platform's minimum of 10, not for this agreement's 100.
	j = p.submit(t, beta, countOnly)
	if j.Decision.Limits.MinCellCount != 100 {
		t.Fatalf("min cell count %d, want the agreement's 100", j.Decision.Limits.MinCellCount)
	}
	_, finish := p.runUntilCheck(t)
	got := finish()
	suppressed := 0
	for _, c := range got.Remedies {
		if c.Action == disclosure.ActionSuppressed {
			suppressed++
		}
	}
	if got.State != StateReleased || suppressed != 3 {
		t.Fatalf("cells of ~67 under a minimum of 100: %s with %d values suppressed, want every count suppressed", got.State, suppressed)
	}
	var out bytes.Buffer
	if err := p.svc.Deliver(ctx, beta, j.ID, FormatCSV, &out); err != nil {
		t.Fatal(err)
	}
	if want := "district,n\neast,\nnorth,\nsouth,\n"; out.String() != want {
		t.Fatalf("released:\n%s\nwant\n%s", out.String(), want)
	}
}

func TestDisabledHolderJobsStop(t *testing.T) {
	p := newPlatform(t)
	ctx := context.Background()
	acme := p.principal(t, "acme")
	j := p.submit(t, acme, countOnly)
	if _, err := p.dir.Disable(ctx, "admin", "acme", "licence withdrawn"); err != nil {
		t.Fatal(err)
	}
	stopped, err := p.svc.StopHolder(ctx, "admin", "acme", "acme was disabled")
	if err != nil || len(stopped) != 1 || stopped[0].ID != j.ID || stopped[0].State != StateStopped {
		t.Fatalf("stopped %+v %v", stopped, err)
	}
}

// TestJobSeesAgreedForms: the forms named in the agreement are what the
// job's SQL sees, and a direct identifier never leaves even hashed.
func TestJobSeesAgreedForms(t *testing.T) {
	p := newPlatform(t)
	ctx := context.Background()
	beta := p.principal(t, "beta")
	app, err := p.dir.Apply(ctx, beta, operators.Request{
		Datasets: []operators.DatasetRequest{{Dataset: "people", Fields: []string{"id_number", "district", "income"}}},
		Purpose:  testPurpose, ValidUntil: "2027-06-30",
	}, catalogView{p.catalog})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.dir.Approve(ctx, p.principal(t, "registry"), app.ID, operators.Approval{Fields: map[string]map[string]string{
		"people": {"id_number": operators.FormHashed, "district": operators.FormRaw, "income": operators.FormGeneralised},
	}}); err != nil {
		t.Fatal(err)
	}
	j := p.submit(t, beta, "SELECT district, count(DISTINCT id_number) AS people, min(income) AS lo, max(income) AS hi FROM people GROUP BY district ORDER BY district")
	if j.Decision.Fields["id_number"] != "hashed" || j.Decision.Fields["income"] != "generalised" {
		t.Fatalf("decided forms %v", j.Decision.Fields)
	}
	_, finish := p.runUntilCheck(t)
	// min and max are one record's value each: an output checker looks.
	if got := finish(); got.State != StateHeld || got.Release.Reasons[0].Code != "extremes" {
		t.Fatalf("job %s: %s %+v", got.State, got.Error, got.Release)
	}
	p.addReviewers(t, "check")
	if got, err := p.svc.Review(ctx, p.principal(t, "check"), j.ID, ReviewRequest{Approve: true, Reason: "bins of 1000 are coarse enough"}); err != nil || got.State != StateReleased {
		t.Fatalf("approved: %s %v", got.State, err)
	}
	var out bytes.Buffer
	if err := p.svc.Deliver(ctx, beta, j.ID, FormatCSV, &out); err != nil {
		t.Fatal(err)
	}
	// 200 people, 67/67/66 per district; incomes 1000..2990 generalise to
	// one significant digit: 1000 and 2000.
	want := "district,people,lo,hi\neast,67,1000,2000\nnorth,67,1000,2000\nsouth,66,1000,2000\n"
	if out.String() != want {
		t.Fatalf("result:\n%s\nwant:\n%s", out.String(), want)
	}

	denied, err := p.svc.Submit(ctx, beta, Request{Dataset: "people", SQL: "SELECT id_number, district FROM people", Purpose: testPurpose})
	if err != nil || denied.State != StateDenied || !strings.Contains(strings.Join(reasonCodes(denied), "\n"), "direct_identifier_output: output column id_number carries id_number") {
		t.Fatalf("hashed identifier as output: %s %v %v", denied.State, reasonCodes(denied), err)
	}
}

// TestRunReportIsAudited: the job's resource report (rows scanned, peak
// memory, CPU and query time) is in its record and in the audit log.
func TestRunReportIsAudited(t *testing.T) {
	p := newPlatform(t)
	acme := p.principal(t, "acme")
	p.start(t)
	j := p.submit(t, acme, countOnly)
	got := p.wait(t, acme, j.ID)
	if got.Run == nil || got.Run.RowsScanned != peopleRows || got.Run.QueryMS < 0 || got.Run.CPUMS < 0 || got.Run.WorkerPeakRSS <= 0 || got.Run.WorkerCPUMS <= 0 {
		t.Fatalf("run report %+v, want %d rows scanned", got.Run, peopleRows)
	}
	for _, e := range p.entries(t) {
		if e.Kind == "job.ran" && e.Subject == j.subject() {
			var d struct {
				Run RunReport `json:"run"`
			}
			if err := json.Unmarshal(e.Data, &d); err != nil || d.Run.RowsScanned != peopleRows {
				t.Fatalf("job.ran data %s: %v", e.Data, err)
			}
			return
		}
	}
	t.Fatal("no job.ran entry")
}

// TestClaimIsFairBetweenOperators: while acme has a job running, beta's
// later job is taken before acme's next one.
func TestClaimIsFairBetweenOperators(t *testing.T) {
	p := newPlatform(t)
	ctx := context.Background()
	p.agree(t, "beta", operators.Approval{})
	acme, beta := p.principal(t, "acme"), p.principal(t, "beta")
	a1 := p.submit(t, acme, countOnly)
	a2 := p.submit(t, acme, byDistrict)
	b1 := p.submit(t, beta, countOnly)
	var order []int64
	for range 3 {
		j, ok, err := p.svc.claim(ctx)
		if err != nil || !ok {
			t.Fatalf("claim: %v %v", ok, err)
		}
		order = append(order, j.ID)
	}
	if want := []int64{a1.ID, b1.ID, a2.ID}; !slices.Equal(order, want) {
		t.Fatalf("claimed %v, want %v (acme, then beta, then acme again)", order, want)
	}
}

// TestAwaitIsALongPoll: Await returns at its deadline while the job waits,
// and as soon as the job is final once it runs.
func TestAwaitIsALongPoll(t *testing.T) {
	p := newPlatform(t)
	ctx := context.Background()
	acme := p.principal(t, "acme")
	j := p.submit(t, acme, countOnly)
	t0 := time.Now()
	got, err := p.svc.Await(ctx, acme, j.ID, 150*time.Millisecond)
	if err != nil || got.State != StateQueued || time.Since(t0) < 150*time.Millisecond {
		t.Fatalf("await on a queued job: %s %v after %s", got.State, err, time.Since(t0))
	}
	p.start(t)
	t0 = time.Now()
	got, err = p.svc.Await(ctx, acme, j.ID, time.Minute)
	if err != nil || !Final(got.State) || time.Since(t0) > 30*time.Second {
		t.Fatalf("await while it runs: %s %v after %s", got.State, err, time.Since(t0))
	}
	if _, err := p.svc.Await(ctx, p.principal(t, "beta"), j.ID, time.Second); !errors.Is(err, ErrNotFound) {
		t.Fatalf("another operator awaiting acme's job: %v", err)
	}
}
