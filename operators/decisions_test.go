package operators

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"
)

func TestOnlyTheOwningProviderDecides(t *testing.T) {
	e := newEnv(t)
	a := e.apply(t, "acme", peopleRequest())
	// Whoever is not a provider of 市民政局 is told it may not, even one
	// that may not read the application (another provider, another
	// operator, a reviewer).
	for _, who := range []string{"police", "admin", "reg", "acme", "beta", "check"} {
		what := who + " approves"
		err := e.refused(t, what, func() error {
			_, _, err := e.d.Approve(e.ctx, e.p[who], a.ID, Approval{})
			return err
		})
		wantErr[*ForbiddenError](t, what, err, "only its providers answer it")
		what = who + " refuses"
		err = e.refused(t, what, func() error {
			_, err := e.d.Refuse(e.ctx, e.p[who], a.ID, "no")
			return err
		})
		wantErr[*ForbiddenError](t, what, err, "only its providers answer it")
	}
	wantNotFound(t, "unknown application", e.refused(t, "unknown application", func() error {
		_, _, err := e.d.Approve(e.ctx, e.p["civil"], 9999, Approval{})
		return err
	}))
	if got, _ := e.d.Application(e.ctx, e.p["admin"], a.ID); got.Status != ApplicationPending || got.DecidedBy != "" {
		t.Errorf("after refused decisions: %+v", got)
	}

	e.approve(t, "civil", a.ID, Approval{})
	wantErr[*ConflictError](t, "approve twice", e.refused(t, "approve twice", func() error {
		_, _, err := e.d.Approve(e.ctx, e.p["civil"], a.ID, Approval{})
		return err
	}), "already approved")
	wantErr[*ConflictError](t, "refuse after approval", e.refused(t, "refuse after approval", func() error {
		_, err := e.d.Refuse(e.ctx, e.p["civil"], a.ID, "changed my mind")
		return err
	}), "already approved")
	wantErr[*ConflictError](t, "withdraw after approval", e.refused(t, "withdraw after approval", func() error {
		_, err := e.d.Withdraw(e.ctx, e.p["acme"], a.ID)
		return err
	}), "already approved")
}

func TestRefuse(t *testing.T) {
	e := newEnv(t)
	a := e.apply(t, "acme", peopleRequest())
	wantErr[*InputError](t, "refuse without reason", e.refused(t, "refuse without reason", func() error {
		_, err := e.d.Refuse(e.ctx, e.p["civil"], a.ID, "  ")
		return err
	}), "reason")

	e.now = start.Add(2 * time.Hour)
	got, err := e.d.Refuse(e.ctx, e.p["civil"], a.ID, " income is not needed for the stated purpose ")
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != ApplicationRefused || got.Reason != "income is not needed for the stated purpose" || got.DecidedBy != "civil" ||
		got.DecidedAt == nil || !got.DecidedAt.Equal(e.now) || got.AgreementID != 0 {
		t.Errorf("Refuse returned %+v", got)
	}
	stored, _ := e.d.Application(e.ctx, e.p["acme"], a.ID)
	if stored.Status != ApplicationRefused || stored.Reason != got.Reason || stored.DecidedBy != "civil" || stored.DecidedAt == nil || !stored.DecidedAt.Equal(e.now) {
		t.Errorf("stored refusal %+v", stored)
	}
	en := e.last(t)
	wantEntry(t, en, "application.refused", "civil", fmt.Sprintf("application/%d", a.ID))
	if d := data(t, en); d["reason"] != got.Reason || d["status"] != ApplicationRefused || d["application"] != float64(a.ID) || d["agreement"] != nil {
		t.Errorf("application.refused data = %v", d)
	}
	if list, _ := e.d.Agreements(e.ctx, e.p["admin"], AgreementFilter{}); len(list) != 0 {
		t.Errorf("a refusal created agreements: %v", list)
	}
	wantErr[*ConflictError](t, "refuse twice", e.refused(t, "refuse twice", func() error {
		_, err := e.d.Refuse(e.ctx, e.p["civil"], a.ID, "again")
		return err
	}), "already refused")
}

func TestWithdraw(t *testing.T) {
	e := newEnv(t)
	a := e.apply(t, "acme", peopleRequest())
	for _, who := range []string{"civil", "admin", "reg"} {
		wantErr[*ForbiddenError](t, who+" withdraws", e.refused(t, who+" withdraws", func() error {
			_, err := e.d.Withdraw(e.ctx, e.p[who], a.ID)
			return err
		}), "only its applicant")
	}
	for _, who := range []string{"beta", "police"} {
		wantNotFound(t, who+" withdraws", e.refused(t, who+" withdraws", func() error {
			_, err := e.d.Withdraw(e.ctx, e.p[who], a.ID)
			return err
		}))
	}
	got, err := e.d.Withdraw(e.ctx, e.p["acme"], a.ID)
	if err != nil || got.Status != ApplicationWithdrawn || got.DecidedBy != "acme" || got.DecidedAt == nil {
		t.Fatalf("Withdraw: %+v %v", got, err)
	}
	wantEntry(t, e.last(t), "application.withdrawn", "acme", fmt.Sprintf("application/%d", a.ID))
	if stored, _ := e.d.Application(e.ctx, e.p["civil"], a.ID); stored.Status != ApplicationWithdrawn {
		t.Errorf("stored status %s", stored.Status)
	}
	wantErr[*ConflictError](t, "withdraw twice", e.refused(t, "withdraw twice", func() error {
		_, err := e.d.Withdraw(e.ctx, e.p["acme"], a.ID)
		return err
	}), "already withdrawn")
	wantErr[*ConflictError](t, "approve a withdrawn application", e.refused(t, "approve a withdrawn application", func() error {
		_, _, err := e.d.Approve(e.ctx, e.p["civil"], a.ID, Approval{})
		return err
	}), "already withdrawn")
	// A refused application cannot be withdrawn either.
	b := e.apply(t, "acme", peopleRequest())
	if _, err := e.d.Refuse(e.ctx, e.p["civil"], b.ID, "no"); err != nil {
		t.Fatal(err)
	}
	wantErr[*ConflictError](t, "withdraw a refused application", e.refused(t, "withdraw a refused application", func() error {
		_, err := e.d.Withdraw(e.ctx, e.p["acme"], b.ID)
		return err
	}), "already refused")
}

func TestApproveMayNarrowButNotExtend(t *testing.T) {
	e := newEnv(t)
	a := e.apply(t, "acme", peopleRequest()) // people: district, income, birth_year; households: district, size; all of 2027
	for _, tc := range []struct {
		what string
		ap   Approval
		want string
	}{
		{"unknown form", Approval{Fields: map[string]map[string]string{"people": {"district": "blurred"}}}, `form "blurred"`},
		{"field not asked", Approval{Fields: map[string]map[string]string{"people": {"district": FormRaw, "name": FormRaw}}}, "field name of people was not asked"},
		{"field of no dataset", Approval{Fields: map[string]map[string]string{"households": {"plate": FormRaw}}}, "was not asked"},
		{"dataset not asked", Approval{Fields: map[string]map[string]string{"vehicles": {"district": FormRaw}}}, "dataset vehicles was not asked"},
		{"zero fields", Approval{Fields: map[string]map[string]string{"people": {}, "households": {}}}, "grants no field"},
		{"later end", Approval{ValidUntil: "2028-01-01"}, "after the requested end"},
		{"later end by a nanosecond", Approval{ValidUntil: "2028-01-01T00:00:00.000000001+08:00"}, "after the requested end"},
		{"earlier start", Approval{ValidFrom: "2026-12-31"}, "before the requested start"},
		{"empty term", Approval{ValidFrom: "2027-06-01", ValidUntil: "2027-05-31"}, "empty"},
		{"bad end", Approval{ValidUntil: "June"}, "neither a date"},
		{"bad start", Approval{ValidFrom: "June"}, "neither a date"},
		{"negative quota", Approval{Quotas: Quotas{MaxJobs: -1}}, "0 or more"},
		{"negative per day", Approval{Quotas: Quotas{JobsPerDay: -1}}, "0 or more"},
		{"negative cell count", Approval{Outputs: OutputRules{MinCellCount: -5}}, "0 or more"},
	} {
		err := e.refused(t, tc.what, func() error {
			_, _, err := e.d.Approve(e.ctx, e.p["civil"], a.ID, tc.ap)
			return err
		})
		wantErr[*InputError](t, tc.what, err, tc.want)
	}

	e.now = start.Add(3 * time.Hour)
	ap := Approval{
		Fields: map[string]map[string]string{
			"people":     {"district": FormRaw, "income": FormGeneralised},
			"households": {}, // not granted at all
		},
		ValidFrom: "2027-02-01", ValidUntil: "2027-06-30",
		Outputs: OutputRules{AggregatesOnly: true, MinCellCount: 20},
		Quotas:  Quotas{MaxJobs: 100, JobsPerDay: 5},
		Note:    " district statistics only ",
	}
	size := e.log.Size()
	app, ag, err := e.d.Approve(e.ctx, e.p["civil"], a.ID, ap)
	if err != nil {
		t.Fatal(err)
	}
	if e.log.Size() != size+2 {
		t.Fatalf("Approve appended %d entries, want 2 (agreement.granted, application.approved)", e.log.Size()-size)
	}
	granted, approved := e.entry(t, size), e.entry(t, size+1)
	wantEntry(t, granted, "agreement.granted", "civil", "principal/acme")
	wantEntry(t, approved, "application.approved", "civil", fmt.Sprintf("application/%d", a.ID))
	if ag.ID != granted.Seq {
		t.Errorf("agreement ID %d, want the seq %d of agreement.granted", ag.ID, granted.Seq)
	}
	if d := data(t, approved); d["agreement"] != float64(ag.ID) || d["status"] != ApplicationApproved {
		t.Errorf("application.approved data = %v", d)
	}
	var recorded Agreement
	if err := json.Unmarshal(granted.Data, &recorded); err != nil || !reflect.DeepEqual(recorded.Scope, ag.Scope) || !recorded.Until.Equal(ag.Until) {
		t.Errorf("agreement.granted data %s, want the agreement (%v)", granted.Data, err)
	}

	wantScope := []Scope{{Dataset: "people", Fields: map[string]string{"district": FormRaw, "income": FormGeneralised}}}
	want := Agreement{
		ID: granted.Seq, ApplicationID: a.ID, Holder: "acme", Kind: KindDataUse, Provider: civilAffairs,
		Scope: wantScope, Purposes: []string{"elderly care planning"},
		Outputs: OutputRules{AggregatesOnly: true, MinCellCount: 20}, Quotas: Quotas{MaxJobs: 100, JobsPerDay: 5},
		Term: Term{From: cst(2027, 2, 1, 0, 0), Until: cst(2027, 7, 1, 0, 0)},
		// The note is the application's reason and the first change's, not a status reason.
		Status: StatusActive, CreatedAt: e.now.UTC(), CreatedBy: "civil",
		History: []Change{{Status: StatusActive, Reason: fmt.Sprintf("granted on application %d: district statistics only", a.ID), By: "civil", At: e.now.UTC(), AuditSeq: granted.Seq}},
	}
	sameAgreement(t, "Approve returned", ag, want)
	stored, err := e.d.Agreement(e.ctx, ag.ID)
	if err != nil {
		t.Fatal(err)
	}
	sameAgreement(t, "stored", stored, want)

	if app.Status != ApplicationApproved || app.AgreementID != ag.ID || app.DecidedBy != "civil" || app.DecidedAt == nil || !app.DecidedAt.Equal(e.now) || app.Reason != "district statistics only" {
		t.Errorf("approved application %+v", app)
	}
	sa, _ := e.d.Application(e.ctx, e.p["acme"], a.ID)
	if sa.Status != ApplicationApproved || sa.AgreementID != ag.ID || sa.DecidedBy != "civil" || sa.DecidedAt == nil || !sa.DecidedAt.Equal(e.now) {
		t.Errorf("stored application %+v", sa)
	}
	var agreementID int64
	var decidedBy, decidedAt string
	if err := e.d.db.QueryRowContext(e.ctx, `SELECT agreement_id, decided_by, decided_at FROM applications WHERE id = ?`, a.ID).Scan(&agreementID, &decidedBy, &decidedAt); err != nil ||
		agreementID != ag.ID || decidedBy != "civil" || decidedAt == "" {
		t.Errorf("applications row: %d %q %q %v", agreementID, decidedBy, decidedAt, err)
	}
}

func TestApproveDefaults(t *testing.T) {
	e := newEnv(t)
	r := peopleRequest()
	r.ValidFrom = "" // from the approval on
	r.Datasets[0].Version = "3f2b"
	a := e.apply(t, "acme", r)
	e.now = start.Add(24 * time.Hour)
	_, ag := e.approve(t, "civil", a.ID, Approval{
		// households is not named, so none of it is granted: fields say
		// exactly what is granted
		Fields: map[string]map[string]string{"people": {"income": FormMasked, "birth_year": FormHashed}},
	})
	wantScope := []Scope{
		{Dataset: "people", Version: "3f2b7700bb", Fields: map[string]string{"income": FormMasked, "birth_year": FormHashed}},
	}
	if !reflect.DeepEqual(ag.Scope, wantScope) {
		t.Errorf("scope %+v, want %+v", ag.Scope, wantScope)
	}
	if len(ag.History) != 1 || ag.History[0].Reason != fmt.Sprintf("granted on application %d", a.ID) || ag.StatusReason != "" {
		t.Errorf("agreement approved without a note: reason %q, history %+v", ag.StatusReason, ag.History)
	}
	if !ag.From.Equal(e.now) || !ag.Until.Equal(cst(2028, 1, 1, 0, 0)) {
		t.Errorf("term %s, want from the approval to the end of 2027", ag.Term)
	}
	if !reflect.DeepEqual(ag.Outputs, OutputRules{}) || ag.Quotas != (Quotas{}) {
		t.Errorf("outputs %+v quotas %+v, want zero", ag.Outputs, ag.Quotas)
	}

	// No narrowing at all: every field raw.
	b := e.apply(t, "beta", peopleRequest())
	_, ag = e.approve(t, "civil", b.ID, Approval{})
	wantScope = []Scope{
		{Dataset: "people", Fields: map[string]string{"district": FormRaw, "income": FormRaw, "birth_year": FormRaw}},
		{Dataset: "households", Fields: map[string]string{"district": FormRaw, "size": FormRaw}},
	}
	if !reflect.DeepEqual(ag.Scope, wantScope) || !ag.From.Equal(cst(2027, 1, 1, 0, 0)) {
		t.Errorf("unnarrowed agreement %+v", ag)
	}

	// An application whose term has ended by the time it is answered.
	r = peopleRequest()
	r.ValidFrom, r.ValidUntil = "", "2026-12-31"
	c := e.apply(t, "acme", r)
	e.now = cst(2027, 1, 1, 0, 0)
	wantErr[*InputError](t, "approve after the requested term", e.refused(t, "approve after the requested term", func() error {
		_, _, err := e.d.Approve(e.ctx, e.p["civil"], c.ID, Approval{})
		return err
	}), "no longer holds")
}

// sameAgreement compares agreements field by field, times as instants.
func sameAgreement(t *testing.T, what string, got, want Agreement) {
	t.Helper()
	norm := func(a Agreement) string {
		a.From, a.Until, a.CreatedAt = a.From.UTC(), a.Until.UTC(), a.CreatedAt.UTC()
		a.History = slices.Clone(a.History)
		for i := range a.History {
			a.History[i].At = a.History[i].At.UTC()
		}
		b, _ := json.Marshal(a)
		return string(b)
	}
	if g, w := norm(got), norm(want); g != w {
		t.Errorf("%s agreement\n got %s\nwant %s", what, g, w)
	}
}
