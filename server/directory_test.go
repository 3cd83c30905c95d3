package server

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/datasandbox/dsbx/client"
	"github.com/datasandbox/dsbx/jobs"
	"github.com/datasandbox/dsbx/operators"
)

// TestApplicationToRevocation walks the whole path over HTTP: a researcher
// applies, the provider narrows and approves, jobs run under the agreement,
// the provider revokes it, and nothing more runs or leaves.
func TestApplicationToRevocation(t *testing.T) {
	p := start(t)
	ctx := context.Background()
	lab := p.add(t, "lab", "Zhejiang University", operators.RoleResearcher)

	app, err := lab.Apply(ctx, operators.Request{
		Datasets: []operators.DatasetRequest{{Dataset: "people", Fields: []string{"district", "income", "id_number"}}},
		Purpose:  "income inequality study", Scenario: "peer-reviewed research, ethics approval 2026-114",
		ValidUntil: "2027-11-22", Outputs: "district-level income statistics",
	})
	if err != nil {
		t.Fatal(err)
	}
	// Submitted Monday 2026-11-23 18:00 CST: ten working days later is Monday 2026-12-07, due by its end.
	if want := time.Date(2026, 12, 8, 0, 0, 0, 0, operators.Zone); app.Status != operators.ApplicationPending || !app.DueAt.Equal(want) || app.Provider != agency {
		t.Fatalf("application: %+v, want pending for %s due %v", app, agency, want)
	}
	if pending, err := p.provider.Applications(ctx, operators.ApplicationPending, false); err != nil || len(pending) != 1 || pending[0].ID != app.ID {
		t.Fatalf("provider's pending list: %v %v", pending, err)
	}

	// The provider narrows: no id_number, a shorter term, stricter outputs.
	_, a, err := p.provider.Approve(ctx, app.ID, operators.Approval{
		Fields:     map[string]map[string]string{"people": {"district": "raw", "income": "raw"}},
		ValidUntil: "2027-05-31", Outputs: operators.OutputRules{AggregatesOnly: true, MinCellCount: 15},
		Quotas: operators.Quotas{JobsPerDay: 20}, Note: "identifiers are not needed for the stated purpose",
	})
	if err != nil {
		t.Fatal(err)
	}
	if a.Holder != "lab" || a.Kind != operators.KindDataUse || len(a.Scope) != 1 || len(a.Scope[0].Fields) != 2 ||
		!a.Until.Equal(time.Date(2027, 6, 1, 0, 0, 0, 0, operators.Zone)) || a.Status != operators.StatusActive {
		t.Fatalf("agreement: %+v", a)
	}
	got, err := lab.Application(ctx, app.ID)
	if err != nil || got.Status != operators.ApplicationApproved || got.AgreementID != a.ID || got.DecidedBy != "registry" {
		t.Fatalf("answered application: %+v %v", got, err)
	}

	run := func(sql string) jobs.Job {
		j, err := lab.Submit(ctx, jobs.Request{Dataset: "people", SQL: sql, Purpose: "Income inequality study"})
		if err != nil {
			t.Fatal(err)
		}
		if !jobs.Final(j.State) {
			if j, err = lab.Wait(ctx, j.ID); err != nil {
				t.Fatal(err)
			}
		}
		return j
	}
	if j := run("SELECT district, count(*) AS n, avg(income) AS mean FROM people WHERE district <> '临安区' GROUP BY district"); j.State != jobs.StateReleased || j.Agreement != a.ID || j.Decision.Limits.MinCellCount != 15 {
		t.Fatalf("job under the agreement: %s %+v", j.State, j.Decision)
	}
	if j := run("SELECT district, count(DISTINCT id_number) AS n FROM people GROUP BY district"); j.State != jobs.StateDenied ||
		!strings.Contains(reasonsOf(j), "field_not_granted: field id_number is outside agreement") {
		t.Fatalf("job on the field the provider struck out: %s %s", j.State, reasonsOf(j))
	}

	// Revoked, the agreement carries nothing more.
	revoked, stopped, err := p.provider.ChangeAgreement(ctx, a.ID, "revoke", "the study ended early")
	if err != nil || revoked.Status != operators.StatusRevoked || len(stopped) != 0 || len(revoked.History) != 2 {
		t.Fatalf("revoke: %+v %v %v", revoked, stopped, err)
	}
	if j := run("SELECT district, count(*) AS n FROM people GROUP BY district"); j.State != jobs.StateDenied || !strings.Contains(j.Decision.Reasons[0].Message, "is revoked") {
		t.Fatalf("job after revocation: %s %+v", j.State, j.Decision.Reasons)
	}
	list, _ := lab.Jobs(ctx)
	err = lab.FetchResult(ctx, list[len(list)-1].ID, "csv", &bytes.Buffer{})
	expect(t, "result released before the revocation", err, http.StatusConflict, "was revoked: the study ended early")
	_, _, err = p.provider.ChangeAgreement(ctx, a.ID, "resume", "changed our mind")
	expect(t, "resume a revoked agreement", err, http.StatusConflict, "revoked and cannot become active")
}

// TestDirectoryBadInput sends each refused request and checks that it
// changed nothing.
func TestDirectoryBadInput(t *testing.T) {
	p := start(t)
	ctx := context.Background()
	before := p.snapshot(t)
	pendingBefore, _ := p.admin.Applications(ctx, "", false)

	req := func(mod func(*operators.Request)) operators.Request {
		r := operators.Request{Kind: operators.KindAuthorizedOperation,
			Datasets: []operators.DatasetRequest{{Dataset: "people", Fields: []string{"district"}}},
			Purpose:  "elderly care", ValidUntil: "2029-11-22"}
		mod(&r)
		return r
	}
	_, err := p.operator.Apply(ctx, req(func(r *operators.Request) { r.ValidUntil = "2029-11-23" }))
	expect(t, "authorized operation beyond 3 years", err, http.StatusUnprocessableEntity, "longer than 3 years")
	_, err = p.operator.Apply(ctx, req(func(r *operators.Request) { r.Datasets[0].Fields = []string{"district", "salary"} }))
	expect(t, "field not in the dataset", err, http.StatusUnprocessableEntity, `no field "salary"`)
	_, err = p.operator.Apply(ctx, req(func(r *operators.Request) { r.Datasets[0].Dataset = "cars" }))
	expect(t, "unknown dataset", err, http.StatusUnprocessableEntity, `"cars" does not exist`)
	_, err = p.operator.Apply(ctx, req(func(r *operators.Request) { r.ValidUntil = "" }))
	expect(t, "no end", err, http.StatusUnprocessableEntity, "every agreement ends")
	_, err = p.provider.Apply(ctx, req(func(*operators.Request) {}))
	expect(t, "provider applying", err, http.StatusForbidden, "operators and researchers")

	// Another provider may not answer for this agency's data.
	lab := p.add(t, "lab", "", operators.RoleResearcher)
	other := p.add(t, "other-bureau", "Other Bureau", operators.RoleProvider)
	app, err := lab.Apply(ctx, operators.Request{Datasets: []operators.DatasetRequest{{Dataset: "people", Fields: []string{"income"}}}, Purpose: "x", ValidUntil: "2027-01-31"})
	if err != nil {
		t.Fatal(err)
	}
	mid := p.snapshot(t)
	_, _, err = other.Approve(ctx, app.ID, operators.Approval{})
	expect(t, "provider approving another provider's dataset", err, http.StatusForbidden, "only its providers answer it")
	_, _, err = p.provider.Approve(ctx, app.ID, operators.Approval{ValidUntil: "2027-12-31"})
	expect(t, "approval extending the term", err, http.StatusUnprocessableEntity, "not extend it")
	_, _, err = p.provider.Approve(ctx, app.ID, operators.Approval{Fields: map[string]map[string]string{"people": {"district": "raw"}}})
	expect(t, "approval of a field not asked", err, http.StatusUnprocessableEntity, "was not asked for")
	_, _, err = p.provider.Approve(ctx, app.ID, operators.Approval{Fields: map[string]map[string]string{"people": {"income": "blurred"}}})
	expect(t, "unknown form", err, http.StatusUnprocessableEntity, `form "blurred"`)
	_, err = p.provider.Refuse(ctx, app.ID, " ")
	expect(t, "refusal without reason", err, http.StatusUnprocessableEntity, "states its reasons")
	_, err = p.operator.Withdraw(ctx, app.ID)
	expect(t, "withdrawing another's application", err, http.StatusNotFound, "not found")
	if after := p.snapshot(t); after != mid {
		t.Fatalf("refused decisions changed state: %+v → %+v", mid, after)
	}
	if a, err := lab.Application(ctx, app.ID); err != nil || a.Status != operators.ApplicationPending {
		t.Fatalf("application after refused decisions: %+v %v", a, err)
	}
	if _, err := p.provider.Refuse(ctx, app.ID, "income alone answers no stated question"); err != nil {
		t.Fatal(err)
	}
	_, _, err = p.provider.Approve(ctx, app.ID, operators.Approval{})
	expect(t, "approving a refused application", err, http.StatusConflict, "already refused")

	// Principals outside their role.
	_, err = p.operator.SetRoles(ctx, "acme", []string{operators.RoleAdmin}, "")
	expect(t, "operator making itself admin", err, http.StatusForbidden, "it is for the admin")
	_, _, err = p.operator.ChangeAgreement(ctx, 1, "revoke", "x")
	expect(t, "operator revoking", err, http.StatusForbidden, "it is for the admin and the dataset's providers")
	_, _, err = p.admin.AddPrincipal(ctx, operators.NewPrincipal{Name: "both", Roles: []string{operators.RoleOperator, operators.RoleReviewer}})
	expect(t, "operator who reviews its own outputs", err, http.StatusUnprocessableEntity, "use two principals")
	_, _, err = p.admin.AddPrincipal(ctx, operators.NewPrincipal{Name: "acme", Roles: []string{operators.RoleOperator}})
	expect(t, "duplicate principal", err, http.StatusConflict, "already exists")

	if after := p.snapshot(t); after.jobs != before.jobs || after.agree != before.agree {
		t.Fatalf("refused requests changed jobs or agreements: %+v → %+v", before, after)
	}
	if list, _ := p.admin.Applications(ctx, "", false); len(list) != len(pendingBefore)+1 {
		t.Fatalf("applications: %d, want %d", len(list), len(pendingBefore)+1)
	}
}

func TestTokensRotateRevokeExpire(t *testing.T) {
	p := start(t)
	ctx := context.Background()
	creds, err := p.operator.Tokens(ctx, "")
	if err != nil || len(creds) != 1 {
		t.Fatalf("acme's tokens: %v %v", creds, err)
	}
	rotated, err := p.operator.RotateToken(ctx, creds[0].ID, "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.operator.Jobs(ctx)
	expect(t, "rotated-out token", err, http.StatusUnauthorized, "was revoked")
	fresh := client.New(p.base, rotated.Token)
	if _, err := fresh.Jobs(ctx); err != nil {
		t.Fatalf("new token: %v", err)
	}

	short, err := fresh.IssueToken(ctx, "", "ci", "1h")
	if err != nil || short.Credential.ExpiresAt == nil {
		t.Fatalf("issue: %+v %v", short, err)
	}
	ci := client.New(p.base, short.Token)
	if _, err := ci.Jobs(ctx); err != nil {
		t.Fatalf("token before expiry: %v", err)
	}
	p.clock.Add(3600)
	_, err = ci.Jobs(ctx)
	expect(t, "expired token", err, http.StatusUnauthorized, "expired at")

	// The admin revokes a token it does not hold; the holder is refused at once.
	if _, err := p.admin.RevokeToken(ctx, rotated.Credential.ID); err != nil {
		t.Fatal(err)
	}
	_, err = fresh.Jobs(ctx)
	expect(t, "revoked token", err, http.StatusUnauthorized, "was revoked")
	// The refused attempt is in the log, naming the token.
	last := p.entriesSince(t, p.srv.log.Size()-1)[0]
	if last.Kind != "access.denied" || last.Principal != "acme" || last.Credential != rotated.Credential.ID {
		t.Fatalf("last entry %+v, want access.denied by acme with %s", last, rotated.Credential.ID)
	}
}

func TestDisabledPrincipalIsLockedOut(t *testing.T) {
	p := start(t)
	ctx := context.Background()
	_, stopped, err := p.admin.DisablePrincipal(ctx, "acme", "licence withdrawn by the data bureau")
	if err != nil || len(stopped) != 0 {
		t.Fatalf("disable: %v %v", stopped, err)
	}
	_, err = p.operator.Jobs(ctx)
	expect(t, "disabled principal", err, http.StatusUnauthorized, "disabled: licence withdrawn")
	_, _, err = p.admin.DisablePrincipal(ctx, "admin", "x")
	expect(t, "admin disabling itself", err, http.StatusUnprocessableEntity, "yourself")
}

// TestOverdueApplications moves the clock past a deadline.
func TestOverdueApplications(t *testing.T) {
	p := start(t)
	ctx := context.Background()
	app, err := p.operator.Apply(ctx, operators.Request{Datasets: []operators.DatasetRequest{{Dataset: "people", Fields: []string{"income"}}}, Purpose: "pension planning", ValidUntil: "2027-06-30"})
	if err != nil {
		t.Fatal(err)
	}
	if late, _ := p.provider.Applications(ctx, "", true); len(late) != 0 {
		t.Fatalf("overdue before the deadline: %v", late)
	}
	p.clock.Store(app.DueAt.Unix())
	late, err := p.provider.Applications(ctx, "", true)
	if err != nil || len(late) != 1 || late[0].ID != app.ID || !late[0].Overdue {
		t.Fatalf("overdue at the deadline: %+v %v", late, err)
	}
	_, a, err := p.provider.Approve(ctx, app.ID, operators.Approval{})
	if err != nil || a.ID == 0 {
		t.Fatalf("late approval: %v", err)
	}
	if late, _ := p.provider.Applications(ctx, "", true); len(late) != 0 {
		t.Fatalf("an answered application is not overdue: %v", late)
	}
}

// TestSweepExpiresAgreementsAndStopsTheirJobs: at the end of the term the
// sweep records the expiry once and stops queued jobs.
func TestSweepExpiresAgreementsAndStopsTheirJobs(t *testing.T) {
	p := start(t)
	ctx := context.Background()
	as, _ := p.operator.Agreements(ctx, operators.AgreementFilter{})
	a := as[0]
	p.srv.jobs.Stop() // keep the next job queued
	j, err := p.operator.Submit(ctx, jobs.Request{Dataset: "people", SQL: "SELECT district, count(*) AS n FROM people GROUP BY district", Purpose: purpose})
	if err != nil || j.State != jobs.StateQueued {
		t.Fatalf("submit: %+v %v", j, err)
	}
	p.clock.Store(a.Until.Unix())
	if err := p.srv.sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.srv.sweep(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := p.admin.Agreement(ctx, a.ID)
	if err != nil || got.Status != operators.StatusExpired || len(got.History) != 2 || got.History[1].By != "" {
		t.Fatalf("after the sweep: %+v %v", got, err)
	}
	if j, _ = p.operator.Job(ctx, j.ID); j.State != jobs.StateStopped || !strings.Contains(j.Error, "the term ended") {
		t.Fatalf("queued job after expiry: %s %q", j.State, j.Error)
	}
	expired := 0
	for _, e := range p.entriesSince(t, 0) {
		if e.Kind == "agreement.expired" {
			expired++
		}
	}
	if expired != 1 {
		t.Fatalf("%d agreement.expired entries, want 1", expired)
	}
}

func reasonsOf(j jobs.Job) string {
	var b strings.Builder
	for _, r := range j.Decision.Reasons {
		b.WriteString(r.Code + ": " + r.Message + "\n")
	}
	return b.String()
}
