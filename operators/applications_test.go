package operators

import (
	"slices"
	"testing"
	"time"
)

func TestApplyRecordsTheApplication(t *testing.T) {
	e := newEnv(t)
	r := peopleRequest()
	r.Datasets[0].Dataset = " people "
	r.Datasets[0].Version = "3f2a"
	r.Datasets[0].Fields = []string{" district", "income "}
	r.Purpose = "  elderly care planning "
	size := e.log.Size()
	a, err := e.d.Apply(e.ctx, e.p["acme"], r, e.cat)
	if err != nil {
		t.Fatal(err)
	}
	if e.log.Size() != size+1 {
		t.Fatalf("Apply appended %d entries, want 1", e.log.Size()-size)
	}
	en := e.last(t)
	if a.ID != en.Seq {
		t.Errorf("application ID %d, want the seq %d of its audit entry", a.ID, en.Seq)
	}
	wantEntry(t, en, "application.submitted", "acme", "provider/"+civilAffairs)
	if a.Applicant != "acme" || a.Provider != civilAffairs || a.Status != ApplicationPending || a.Kind != KindDataUse ||
		a.Purpose != "elderly care planning" || !a.SubmittedAt.Equal(start) || a.Overdue || a.DecidedAt != nil || a.AgreementID != 0 {
		t.Errorf("Apply returned %+v", a)
	}
	ds := a.Datasets[0]
	if ds.Dataset != "people" || ds.Version != "3f2a9c01aa" || !slices.Equal(ds.Fields, []string{"district", "income"}) {
		t.Errorf("normalised dataset request %+v", ds)
	}
	if a.Datasets[1].Version != "" {
		t.Errorf("no version asked, got %q; want \"\" (the latest)", a.Datasets[1].Version)
	}
	if a.ValidFrom != "2027-01-01T00:00:00+08:00" || a.ValidUntil != "2028-01-01T00:00:00+08:00" {
		t.Errorf("normalised term %s to %s", a.ValidFrom, a.ValidUntil)
	}
	if c := r.Datasets[0]; c.Dataset != " people " || c.Version != "3f2a" || !slices.Equal(c.Fields, []string{" district", "income "}) {
		t.Errorf("Apply changed the caller's request: %+v", c)
	}
	got, err := e.d.Application(e.ctx, e.p["acme"], a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != a.ID || got.Status != ApplicationPending || !got.DueAt.Equal(a.DueAt) || !got.SubmittedAt.Equal(a.SubmittedAt) ||
		got.Datasets[0].Version != "3f2a9c01aa" || got.Scenario != r.Scenario || got.Outputs != r.Outputs || got.ValidUntil != a.ValidUntil {
		t.Errorf("stored application %+v, want %+v", got, a)
	}
	// A researcher applies for data use; an empty kind means data use.
	r = peopleRequest()
	r.Kind = ""
	if b := e.apply(t, "lab", r); b.Kind != KindDataUse || b.Applicant != "lab" {
		t.Errorf("researcher's application %+v", b)
	}
}

func TestApplyRefusesBadRequests(t *testing.T) {
	e := newEnv(t)
	for _, who := range []string{"admin", "civil", "reg", "check"} {
		err := e.refused(t, who+" applies", func() error {
			_, err := e.d.Apply(e.ctx, e.p[who], peopleRequest(), e.cat)
			return err
		})
		wantErr[*ForbiddenError](t, who+" applies", err, "only operators and researchers")
	}
	for _, tc := range []struct {
		what      string
		applicant string
		mod       func(*Request)
		want      string
	}{
		{"researcher asks for authorized operation", "lab", func(r *Request) { r.Kind = KindAuthorizedOperation }, "licensed operators"},
		{"unknown kind", "acme", func(r *Request) { r.Kind = "resale" }, `"resale"`},
		{"no purpose", "acme", func(r *Request) { r.Purpose = " " }, "purpose"},
		{"no datasets", "acme", func(r *Request) { r.Datasets = nil }, "no datasets"},
		{"closed dataset", "acme", func(r *Request) { r.Datasets = []DatasetRequest{{Dataset: "prisoners", Fields: []string{"sentence"}}} }, "closed"},
		{"two agencies", "acme", func(r *Request) {
			r.Datasets = append(r.Datasets, DatasetRequest{Dataset: "vehicles", Fields: []string{"district"}})
		}, "apply separately"},
		{"dataset without agency", "acme", func(r *Request) { r.Datasets = []DatasetRequest{{Dataset: "orphan", Fields: []string{"a"}}} }, "names no agency"},
		{"unknown field", "acme", func(r *Request) { r.Datasets[0].Fields = []string{"district", "salary"} }, `no field "salary"`},
		{"repeated field", "acme", func(r *Request) { r.Datasets[0].Fields = []string{"district", " district"} }, "named twice"},
		{"no fields", "acme", func(r *Request) { r.Datasets[1].Fields = nil }, "no fields"},
		{"repeated dataset", "acme", func(r *Request) { r.Datasets[1] = DatasetRequest{Dataset: "people", Fields: []string{"name"}} }, "named twice"},
		{"unknown version", "acme", func(r *Request) { r.Datasets[0].Version = "77" }, "no version 77"},
		{"ambiguous version", "acme", func(r *Request) { r.Datasets[0].Version = "3f2" }, "ambiguous"},
		{"no valid_until", "acme", func(r *Request) { r.ValidUntil = "" }, "no valid_until"},
		{"valid_until in the past", "acme", func(r *Request) { r.ValidFrom, r.ValidUntil = "", "2026-11-22" }, "in the past"},
		{"valid_until before valid_from", "acme", func(r *Request) { r.ValidFrom, r.ValidUntil = "2027-06-01", "2027-05-31" }, "not after valid_from"},
		{"valid_until not a date", "acme", func(r *Request) { r.ValidUntil = "next year" }, "neither a date"},
		{"valid_from not a date", "acme", func(r *Request) { r.ValidFrom = "soon" }, "neither a date"},
		{"authorized operation over 3 years", "acme", func(r *Request) {
			r.Kind, r.ValidFrom, r.ValidUntil = KindAuthorizedOperation, "2027-01-01", "2030-01-01"
		}, "longer than 3 years"},
	} {
		r := peopleRequest()
		tc.mod(&r)
		err := e.refused(t, tc.what, func() error {
			_, err := e.d.Apply(e.ctx, e.p[tc.applicant], r, e.cat)
			return err
		})
		wantErr[*InputError](t, tc.what, err, tc.want)
	}
	r := peopleRequest()
	r.Datasets[1].Dataset = "nosuch"
	wantNotFound(t, "unknown dataset", e.refused(t, "unknown dataset", func() error {
		_, err := e.d.Apply(e.ctx, e.p["acme"], r, e.cat)
		return err
	}))
	if list, err := e.d.Applications(e.ctx, e.p["admin"], ApplicationFilter{}); err != nil || len(list) != 0 {
		t.Errorf("applications after refusals: %v %v", list, err)
	}
}

func TestAuthorizedOperationTermIsAtMostThreeYears(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		from, until string
		ok          bool
	}{
		{"2027-01-01", "2029-12-31", true},                               // exactly three years
		{"2027-01-01", "2030-01-01", false},                              // a day more
		{"2027-01-01T00:00:00+08:00", "2030-01-01T00:00:00+08:00", true}, // exactly, as instants
		{"2027-01-01T00:00:00+08:00", "2030-01-01T00:00:00.000000001+08:00", false},
		// 2028-03-01 00:00 in Zone is 2028-02-29 16:00 UTC: three years on
		// is 2031-03-01 00:00 in Zone, not 2031-03-02 00:00 (2031-03-01 16:00 UTC).
		{"2028-03-01", "2031-02-28", true},
		{"2028-03-01", "2031-03-01", false},
		{"2026-12-31T16:00:00Z", "2029-12-31", true}, // a start in UTC, measured in Zone
		{"", "2029-11-22", true},                     // from now (10:00 on 2026-11-23): ends 2029-11-23 00:00
		{"", "2029-11-23", false},                    // ends 2029-11-24 00:00, after 2029-11-23 10:00
	} {
		r := peopleRequest()
		r.Kind, r.ValidFrom, r.ValidUntil = KindAuthorizedOperation, tc.from, tc.until
		a, err := e.d.Apply(e.ctx, e.p["acme"], r, e.cat)
		if tc.ok && err != nil {
			t.Errorf("%s to %s: %v, want accepted", tc.from, tc.until, err)
		}
		if !tc.ok {
			wantErr[*InputError](t, tc.from+" to "+tc.until, err, "longer than 3 years")
		}
		if err == nil && a.Kind != KindAuthorizedOperation {
			t.Errorf("kind %q", a.Kind)
		}
	}
	// Data use has no such limit.
	r := peopleRequest()
	r.ValidUntil = "2035-12-31"
	e.apply(t, "acme", r)
}

func TestDueDateIsTheEndOfTheTenthWorkingDay(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		what      string
		submitted time.Time
		days      int
		due       time.Time
	}{
		// Friday: Mon 23 … Fri 27, Mon 30 … Fri 4 December.
		{"Friday morning", cst(2026, 11, 20, 10, 0), 10, cst(2026, 12, 5, 0, 0)},
		// 01:00 on Friday in Zone is still Thursday in UTC; the day counts in Zone.
		{"Friday 01:00", cst(2026, 11, 20, 1, 0), 10, cst(2026, 12, 5, 0, 0)},
		{"Thursday 23:59", cst(2026, 11, 19, 23, 59), 10, cst(2026, 12, 4, 0, 0)},
		{"Saturday", cst(2026, 11, 21, 15, 0), 10, cst(2026, 12, 5, 0, 0)},
		{"Sunday", cst(2026, 11, 22, 15, 0), 10, cst(2026, 12, 5, 0, 0)},
		{"Monday", cst(2026, 11, 23, 9, 0), 10, cst(2026, 12, 8, 0, 0)},
		{"Friday, 3 days", cst(2026, 11, 20, 10, 0), 3, cst(2026, 11, 26, 0, 0)},
		{"Friday, 1 day", cst(2026, 11, 20, 10, 0), 1, cst(2026, 11, 24, 0, 0)},
	} {
		e.now = tc.submitted
		e.d.SetResponseDays(tc.days)
		a := e.apply(t, "acme", peopleRequest())
		if !a.DueAt.Equal(tc.due) {
			t.Errorf("%s (%s), %d days: due %s, want %s", tc.what, tc.submitted, tc.days, a.DueAt.In(Zone), tc.due)
		}
		got, err := e.d.Application(e.ctx, e.p["acme"], a.ID)
		if err != nil || !got.DueAt.Equal(tc.due) {
			t.Errorf("%s: stored due %v %v", tc.what, got.DueAt, err)
		}
		if d := data(t, e.entry(t, a.ID)); d["due_at"] == nil {
			t.Errorf("%s: application.submitted has no due_at: %v", tc.what, d)
		}
	}
	// The default is ResponseDays.
	e2 := newEnv(t)
	e2.now = cst(2026, 11, 20, 10, 0)
	if a := e2.apply(t, "acme", peopleRequest()); !a.DueAt.Equal(cst(2026, 12, 5, 0, 0)) || ResponseDays != 10 {
		t.Errorf("default due %s", a.DueAt.In(Zone))
	}
}

func TestOverdue(t *testing.T) {
	e := newEnv(t)
	e.now = cst(2026, 11, 20, 10, 0)
	late := e.apply(t, "acme", peopleRequest())
	answered := e.apply(t, "beta", peopleRequest())
	due := cst(2026, 12, 5, 0, 0)
	if !late.DueAt.Equal(due) {
		t.Fatalf("due %s", late.DueAt)
	}
	if _, err := e.d.Refuse(e.ctx, e.p["civil"], answered.ID, "not needed"); err != nil {
		t.Fatal(err)
	}
	if d := data(t, e.last(t)); d["late"] != false {
		t.Errorf("refusal in time recorded late = %v", d["late"])
	}
	overdue := func() []int64 {
		t.Helper()
		list, err := e.d.Applications(e.ctx, e.p["admin"], ApplicationFilter{Overdue: true})
		if err != nil {
			t.Fatal(err)
		}
		var ids []int64
		for _, a := range list {
			if !a.Overdue {
				t.Errorf("listed as overdue but Overdue is false: %+v", a)
			}
			ids = append(ids, a.ID)
		}
		return ids
	}

	e.now = due.Add(-time.Nanosecond)
	if a, _ := e.d.Application(e.ctx, e.p["acme"], late.ID); a.Overdue {
		t.Error("overdue one nanosecond before the deadline")
	}
	if ids := overdue(); len(ids) != 0 {
		t.Errorf("overdue before the deadline: %v", ids)
	}
	e.now = due
	if a, _ := e.d.Application(e.ctx, e.p["acme"], late.ID); !a.Overdue {
		t.Error("not overdue at the deadline")
	}
	if ids := overdue(); !slices.Equal(ids, []int64{late.ID}) {
		t.Errorf("overdue at the deadline: %v, want [%d] (the refused one is not)", ids, late.ID)
	}
	if list, _ := e.d.Applications(e.ctx, e.p["admin"], ApplicationFilter{Status: ApplicationPending, Overdue: true}); len(list) != 1 {
		t.Errorf("pending and overdue: %d", len(list))
	}
	if list, _ := e.d.Applications(e.ctx, e.p["admin"], ApplicationFilter{Status: ApplicationRefused, Overdue: true}); len(list) != 0 {
		t.Errorf("refused and overdue: %d", len(list))
	}
	// The provider sees it too; a late answer is recorded as late and
	// the application stops being overdue.
	if list, _ := e.d.Applications(e.ctx, e.p["civil"], ApplicationFilter{Overdue: true}); len(list) != 1 {
		t.Errorf("provider's overdue list: %d", len(list))
	}
	a, err := e.d.Refuse(e.ctx, e.p["civil"], late.ID, "too late anyway")
	if err != nil || a.Overdue {
		t.Fatalf("late refusal: %+v %v", a, err)
	}
	if d := data(t, e.last(t)); d["late"] != true {
		t.Errorf("late refusal recorded late = %v", d["late"])
	}
	if ids := overdue(); len(ids) != 0 {
		t.Errorf("overdue after the answer: %v", ids)
	}
}

func TestApplicationVisibility(t *testing.T) {
	e := newEnv(t)
	a := e.apply(t, "acme", peopleRequest())
	b := e.apply(t, "lab", peopleRequest())
	r := peopleRequest()
	r.Datasets = []DatasetRequest{{Dataset: "vehicles", Fields: []string{"district"}}}
	c := e.apply(t, "beta", r)
	for _, tc := range []struct {
		who  string
		sees []int64
	}{
		{"acme", []int64{a.ID}},
		{"lab", []int64{b.ID}},
		{"beta", []int64{c.ID}},
		{"civil", []int64{a.ID, b.ID}},
		{"police", []int64{c.ID}},
		{"admin", []int64{a.ID, b.ID, c.ID}},
		{"reg", []int64{a.ID, b.ID, c.ID}},
		{"check", nil},
	} {
		list, err := e.d.Applications(e.ctx, e.p[tc.who], ApplicationFilter{})
		if err != nil {
			t.Fatal(err)
		}
		var ids []int64
		for _, x := range list {
			ids = append(ids, x.ID)
		}
		if !slices.Equal(ids, tc.sees) {
			t.Errorf("%s lists %v, want %v", tc.who, ids, tc.sees)
		}
		for _, id := range []int64{a.ID, b.ID, c.ID} {
			got, err := e.d.Application(e.ctx, e.p[tc.who], id)
			if slices.Contains(tc.sees, id) {
				if err != nil || got.ID != id {
					t.Errorf("%s reads application %d: %v", tc.who, id, err)
				}
			} else {
				wantNotFound(t, tc.who+" reads another's application", err)
				if got.ID != 0 || got.Applicant != "" || len(got.Datasets) != 0 {
					t.Errorf("%s was refused application %d but handed %+v", tc.who, id, got)
				}
			}
		}
	}
	_, err := e.d.Application(e.ctx, e.p["admin"], 9999)
	wantNotFound(t, "unknown application", err)
	if list, _ := e.d.Applications(e.ctx, e.p["admin"], ApplicationFilter{Status: ApplicationApproved}); len(list) != 0 {
		t.Errorf("approved applications: %d, want 0", len(list))
	}
}
