package operators

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// threeAgreements grants acme people+households (市民政局), acme vehicles
// (市公安局) and beta people, and returns their IDs.
func threeAgreements(t *testing.T, e *env) (acmePeople, acmeVehicles, betaPeople int64) {
	t.Helper()
	_, a := e.approve(t, "civil", e.apply(t, "acme", peopleRequest()).ID, Approval{})
	r := peopleRequest()
	r.Datasets = []DatasetRequest{{Dataset: "vehicles", Fields: []string{"district", "year"}}}
	_, b := e.approve(t, "police", e.apply(t, "acme", r).ID, Approval{})
	r = peopleRequest()
	r.Datasets = r.Datasets[:1]
	_, c := e.approve(t, "civil", e.apply(t, "beta", r).ID, Approval{ValidUntil: "2027-06-30"})
	return a.ID, b.ID, c.ID
}

func ids(list []Agreement) []int64 {
	out := []int64{}
	for _, a := range list {
		out = append(out, a.ID)
	}
	return out
}

func TestStatusAtTheEndOfTheTerm(t *testing.T) {
	until := cst(2027, 7, 1, 0, 0)
	a := Agreement{Term: Term{From: cst(2027, 1, 1, 0, 0), Until: until}, Status: StatusActive}
	for _, tc := range []struct {
		at     time.Time
		status string
		covers bool
	}{
		{until.Add(-time.Nanosecond), StatusActive, true},
		{until, StatusExpired, false},
		{until.AddDate(1, 0, 0), StatusExpired, false},
		{cst(2027, 1, 1, 0, 0), StatusActive, true},
		{cst(2027, 1, 1, 0, 0).Add(-time.Nanosecond), StatusActive, false}, // not yet begun is still active; Covers says no
	} {
		if got := a.StatusAt(tc.at); got != tc.status {
			t.Errorf("StatusAt(%s) = %s, want %s", tc.at, got, tc.status)
		}
		if got := a.Covers(tc.at); got != tc.covers {
			t.Errorf("Covers(%s) = %v, want %v", tc.at, got, tc.covers)
		}
	}
	for _, tc := range []struct{ stored, after string }{
		{StatusSuspended, StatusExpired}, // a suspension ends with the term
		{StatusRevoked, StatusRevoked},
		{StatusExpired, StatusExpired},
	} {
		b := a
		b.Status = tc.stored
		if got := b.StatusAt(until.Add(-time.Hour)); got != tc.stored {
			t.Errorf("stored %s within the term reads %s", tc.stored, got)
		}
		if got := b.StatusAt(until.Add(time.Hour)); got != tc.after {
			t.Errorf("stored %s after the term reads %s, want %s", tc.stored, got, tc.after)
		}
	}

	// Through the directory, with its clock.
	e := newEnv(t)
	_, ag := e.approve(t, "civil", e.apply(t, "acme", peopleRequest()).ID, Approval{ValidUntil: "2027-06-30"})
	if !ag.Until.Equal(until) {
		t.Fatalf("until %s", ag.Until)
	}
	e.now = until.Add(-time.Nanosecond)
	if got, _ := e.d.Agreement(e.ctx, ag.ID); got.Status != StatusActive {
		t.Errorf("one nanosecond before the end: %s", got.Status)
	}
	if list, _ := e.d.Agreements(e.ctx, e.p["acme"], AgreementFilter{Status: StatusActive}); !slices.Equal(ids(list), []int64{ag.ID}) {
		t.Errorf("active agreements before the end: %v", ids(list))
	}
	e.now = until
	if got, _ := e.d.Agreement(e.ctx, ag.ID); got.Status != StatusExpired {
		t.Errorf("at the end: %s", got.Status)
	}
	if list, _ := e.d.Agreements(e.ctx, e.p["acme"], AgreementFilter{Status: StatusActive}); len(list) != 0 {
		t.Errorf("active agreements at the end: %v", ids(list))
	}
	if list, _ := e.d.Agreements(e.ctx, e.p["acme"], AgreementFilter{Status: StatusExpired}); !slices.Equal(ids(list), []int64{ag.ID}) {
		t.Errorf("expired agreements at the end: %v", ids(list))
	}
	if list, _ := e.d.Applicable(e.ctx, "acme", "people"); len(list) != 1 || list[0].Status != StatusExpired {
		t.Errorf("Applicable at the end: %+v", list)
	}
}

func TestApplicable(t *testing.T) {
	e := newEnv(t)
	acmePeople, acmeVehicles, betaPeople := threeAgreements(t, e)
	for _, tc := range []struct {
		holder, dataset string
		want            []int64
	}{
		{"acme", "people", []int64{acmePeople}},
		{"acme", "households", []int64{acmePeople}},
		{"acme", "vehicles", []int64{acmeVehicles}},
		{"acme", "prisoners", []int64{}},
		{"acme", "peop", []int64{}},
		{"beta", "people", []int64{betaPeople}},
		{"beta", "households", []int64{}},
		{"lab", "people", []int64{}},
	} {
		list, err := e.d.Applicable(e.ctx, tc.holder, tc.dataset)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ids(list), tc.want) {
			t.Errorf("Applicable(%s, %s) = %v, want %v", tc.holder, tc.dataset, ids(list), tc.want)
		}
		for _, a := range list {
			if _, ok := a.Covering(tc.dataset); !ok || a.Holder != tc.holder || len(a.History) == 0 {
				t.Errorf("Applicable(%s, %s) returned %+v", tc.holder, tc.dataset, a)
			}
		}
	}
	// Whatever their status: a suspended one is returned, marked suspended.
	if _, err := e.d.SetStatus(e.ctx, e.p["civil"], acmePeople, StatusSuspended, "audit pending"); err != nil {
		t.Fatal(err)
	}
	list, _ := e.d.Applicable(e.ctx, "acme", "people")
	if len(list) != 1 || list[0].Status != StatusSuspended || list[0].StatusReason != "audit pending" {
		t.Errorf("Applicable after suspension: %+v", list)
	}
	a, _ := e.d.Agreement(e.ctx, acmePeople)
	if s, ok := a.Covering("households"); !ok || s.Fields["size"] != FormRaw {
		t.Errorf("Covering(households) = %+v %v", s, ok)
	}
	if _, ok := a.Covering("vehicles"); ok {
		t.Error("covers vehicles")
	}
}

func TestAgreementsFilterAndVisibility(t *testing.T) {
	e := newEnv(t)
	acmePeople, acmeVehicles, betaPeople := threeAgreements(t, e)
	all := []int64{acmePeople, acmeVehicles, betaPeople}
	for _, tc := range []struct {
		who  string
		sees []int64
	}{
		{"acme", []int64{acmePeople, acmeVehicles}},
		{"beta", []int64{betaPeople}},
		{"civil", []int64{acmePeople, betaPeople}},
		{"police", []int64{acmeVehicles}},
		{"admin", all},
		{"reg", all},
		{"lab", []int64{}},
		{"check", []int64{}},
	} {
		list, err := e.d.Agreements(e.ctx, e.p[tc.who], AgreementFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ids(list), tc.sees) {
			t.Errorf("%s lists %v, want %v", tc.who, ids(list), tc.sees)
		}
		for _, id := range all {
			a, err := e.d.Agreement(e.ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if got := a.MayRead(e.p[tc.who]); got != slices.Contains(tc.sees, id) {
				t.Errorf("agreement %d MayRead(%s) = %v", id, tc.who, got)
			}
		}
	}
	if _, err := e.d.SetStatus(e.ctx, e.p["police"], acmeVehicles, StatusSuspended, "check"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		who  string
		f    AgreementFilter
		want []int64
	}{
		{"admin", AgreementFilter{Holder: "acme"}, []int64{acmePeople, acmeVehicles}},
		{"admin", AgreementFilter{Holder: "nobody"}, []int64{}},
		{"admin", AgreementFilter{Dataset: "people"}, []int64{acmePeople, betaPeople}},
		{"admin", AgreementFilter{Dataset: "households"}, []int64{acmePeople}},
		{"admin", AgreementFilter{Status: StatusSuspended}, []int64{acmeVehicles}},
		{"admin", AgreementFilter{Status: StatusActive}, []int64{acmePeople, betaPeople}},
		{"admin", AgreementFilter{Holder: "acme", Dataset: "people", Status: StatusActive}, []int64{acmePeople}},
		{"admin", AgreementFilter{Holder: "acme", Status: StatusRevoked}, []int64{}},
		{"beta", AgreementFilter{Holder: "acme"}, []int64{}},
		{"civil", AgreementFilter{Holder: "acme"}, []int64{acmePeople}},
		{"police", AgreementFilter{Dataset: "people"}, []int64{}},
	} {
		list, err := e.d.Agreements(e.ctx, e.p[tc.who], tc.f)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ids(list), tc.want) {
			t.Errorf("%s lists %+v: %v, want %v", tc.who, tc.f, ids(list), tc.want)
		}
	}
	_, err := e.d.Agreement(e.ctx, 9999)
	wantNotFound(t, "unknown agreement", err)
}

func TestSetStatusTransitions(t *testing.T) {
	e := newEnv(t)
	id, _, _ := threeAgreements(t, e)
	refuse := func(what, who, status, reason string) error {
		t.Helper()
		return e.refused(t, what, func() error {
			_, err := e.d.SetStatus(e.ctx, e.p[who], id, status, reason)
			return err
		})
	}
	wantErr[*InputError](t, "no reason", refuse("no reason", "civil", StatusSuspended, " "), "no reason")
	wantErr[*InputError](t, "unknown status", refuse("unknown status", "civil", "paused", "why not"), `"paused"`)
	wantErr[*InputError](t, "expired is not set by hand", refuse("expired by hand", "civil", StatusExpired, "early end"), `"expired"`)
	wantErr[*ForbiddenError](t, "provider of another organization", refuse("police suspends", "police", StatusSuspended, "mine now"), "only its providers or the admin")
	wantErr[*ForbiddenError](t, "holder", refuse("holder suspends", "acme", StatusSuspended, "pause"), "only its providers or the admin")
	wantErr[*ForbiddenError](t, "regulator", refuse("regulator suspends", "reg", StatusSuspended, "inspection"), "only its providers or the admin")
	wantErr[*ForbiddenError](t, "another operator", refuse("beta suspends", "beta", StatusSuspended, "spite"), "only its providers or the admin")
	wantErr[*ConflictError](t, "active to active", refuse("active to active", "civil", StatusActive, "again"), "cannot become active")
	wantNotFound(t, "unknown agreement", e.refused(t, "unknown agreement", func() error {
		_, err := e.d.SetStatus(e.ctx, e.p["admin"], 9999, StatusSuspended, "x")
		return err
	}))

	steps := []struct {
		who, status, kind string
	}{
		{"civil", StatusSuspended, "agreement.suspended"},
		{"admin", StatusActive, "agreement.resumed"},
		{"civil", StatusSuspended, "agreement.suspended"},
		{"admin", StatusRevoked, "agreement.revoked"},
	}
	for i, s := range steps {
		e.now = start.Add(time.Duration(i+1) * time.Hour)
		reason := fmt.Sprintf("step %d", i)
		size := e.log.Size()
		a, err := e.d.SetStatus(e.ctx, e.p[s.who], id, s.status, " "+reason+" ")
		if err != nil {
			t.Fatalf("%s sets %s: %v", s.who, s.status, err)
		}
		if e.log.Size() != size+1 {
			t.Errorf("%s: %d entries, want 1", s.status, e.log.Size()-size)
		}
		if a.Status != s.status || a.StatusReason != reason || len(a.History) != i+2 {
			t.Errorf("after %s: status %s (%q), history %d", s.status, a.Status, a.StatusReason, len(a.History))
		}
		en := e.last(t)
		wantEntry(t, en, s.kind, s.who, fmt.Sprintf("agreement/%d", id))
		if d := data(t, en); d["to"] != s.status || d["reason"] != reason || d["agreement"] != float64(id) || d["holder"] != "acme" {
			t.Errorf("%s data = %v", s.kind, d)
		}
		if c := a.History[len(a.History)-1]; c.AuditSeq != en.Seq || c.Status != s.status || c.By != s.who || c.Reason != reason || !c.At.Equal(e.now) {
			t.Errorf("last change %+v, want seq %d", c, en.Seq)
		}
		stored, _ := e.d.Agreement(e.ctx, id)
		sameAgreement(t, "stored after "+s.status, stored, a)
	}
	for _, status := range []string{StatusActive, StatusSuspended, StatusRevoked} {
		wantErr[*ConflictError](t, "revoked to "+status, refuse("revoked to "+status, "admin", status, "undo"), "is revoked")
	}

	// Every change in the history points at an audit entry of its kind.
	a, _ := e.d.Agreement(e.ctx, id)
	kinds := []string{"agreement.granted", "agreement.suspended", "agreement.resumed", "agreement.suspended", "agreement.revoked"}
	if len(a.History) != len(kinds) {
		t.Fatalf("history %+v", a.History)
	}
	for i, c := range a.History {
		en := e.entry(t, c.AuditSeq)
		if en.Kind != kinds[i] || en.Principal != c.By {
			t.Errorf("change %d (%s by %s) points at entry %d: %s by %s", i, c.Status, c.By, c.AuditSeq, en.Kind, en.Principal)
		}
		if i > 0 && c.AuditSeq <= a.History[i-1].AuditSeq {
			t.Errorf("history out of order: %+v", a.History)
		}
	}
	if a.History[0].AuditSeq != id {
		t.Errorf("first change seq %d, want the agreement ID %d", a.History[0].AuditSeq, id)
	}

	// An agreement past its term changes no more.
	_, _, other := threeAgreements(t, e) // ends 2027-07-01
	e.now = cst(2027, 7, 1, 0, 0)
	wantErr[*ConflictError](t, "suspend an expired agreement", e.refused(t, "suspend an expired agreement", func() error {
		_, err := e.d.SetStatus(e.ctx, e.p["civil"], other, StatusSuspended, "late")
		return err
	}), "is expired")
}

func TestExpireDue(t *testing.T) {
	e := newEnv(t)
	long, _, short := threeAgreements(t, e) // long ends 2028-01-01, short 2027-07-01 (in Zone)
	// A revoked agreement whose term ends first is not expired.
	r := peopleRequest()
	r.ValidUntil = "2027-03-31"
	_, revoked := e.approve(t, "civil", e.apply(t, "lab", r).ID, Approval{})
	if _, err := e.d.SetStatus(e.ctx, e.p["civil"], revoked.ID, StatusRevoked, "misuse"); err != nil {
		t.Fatal(err)
	}
	vehicles, _ := e.d.Applicable(e.ctx, "acme", "vehicles") // also ends 2028-01-01
	// A suspended agreement expires with its term.
	r = peopleRequest()
	r.ValidUntil = "2027-05-31"
	_, paused := e.approve(t, "civil", e.apply(t, "lab", r).ID, Approval{})
	if _, err := e.d.SetStatus(e.ctx, e.p["civil"], paused.ID, StatusSuspended, "review"); err != nil {
		t.Fatal(err)
	}

	expire := func(at time.Time, want []int64) {
		t.Helper()
		e.now = at
		size := e.log.Size()
		got, err := e.d.ExpireDue(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if gotIDs := ids(got); !slices.Equal(slices.Sorted(slices.Values(gotIDs)), want) {
			t.Errorf("ExpireDue at %s = %v, want %v", at, ids(got), want)
		}
		entries := e.entriesSince(t, size)
		if len(entries) != len(want) {
			t.Fatalf("ExpireDue at %s appended %d entries, want %d", at, len(entries), len(want))
		}
		for i, a := range got {
			en := entries[i]
			wantEntry(t, en, "agreement.expired", "", fmt.Sprintf("agreement/%d", a.ID))
			from := StatusActive
			if a.ID == paused.ID {
				from = StatusSuspended
			}
			if d := data(t, en); d["from"] != from || d["to"] != StatusExpired {
				t.Errorf("agreement.expired data = %v", d)
			}
			c := a.History[len(a.History)-1]
			if a.Status != StatusExpired || c.Status != StatusExpired || c.AuditSeq != en.Seq || c.By != "" {
				t.Errorf("expired agreement %d: status %s, last change %+v", a.ID, a.Status, c)
			}
			var stored string
			if err := e.d.db.QueryRowContext(e.ctx, `SELECT status FROM agreements WHERE id = ?`, a.ID).Scan(&stored); err != nil || stored != StatusExpired {
				t.Errorf("stored status of %d: %q %v", a.ID, stored, err)
			}
		}
	}
	expire(cst(2027, 3, 1, 0, 0), nil)
	expire(cst(2027, 6, 1, 0, 0), []int64{paused.ID})
	expire(cst(2027, 7, 1, 0, 0).Add(-time.Nanosecond), nil)
	expire(cst(2027, 7, 1, 0, 0), []int64{short})
	expire(cst(2027, 7, 1, 0, 0), nil) // only once
	expire(cst(2027, 12, 1, 0, 0), nil)
	expire(cst(2028, 1, 1, 0, 0), []int64{long, vehicles[0].ID}) // IDs in ascending order
	expire(cst(2029, 1, 1, 0, 0), nil)

	if a, _ := e.d.Agreement(e.ctx, revoked.ID); a.Status != StatusRevoked || len(a.History) != 2 {
		t.Errorf("revoked agreement after ExpireDue: %s, %d changes", a.Status, len(a.History))
	}
}
