package policies

import (
	"context"
	"io/fs"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

func engine(t *testing.T) *Engine {
	t.Helper()
	e, err := Default(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func baseInput() AdmissionInput {
	return AdmissionInput{
		Now:       time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC),
		Principal: Principal{Name: "acme", Roles: []string{"operator"}},
		Dataset: Dataset{Name: "population", Version: "abcdef0123456789", Open: "conditional", Grade: "important", Status: "active", VersionStatus: "active", Fields: []Field{
			{Name: "id_number", Sensitivity: "personal-sensitive", Identifier: "direct"},
			{Name: "name", Sensitivity: "personal", Identifier: "direct"},
			{Name: "district", Sensitivity: "internal", Identifier: "quasi"},
			{Name: "income", Sensitivity: "sensitive", Identifier: "none"},
		}},
		Agreements: []Agreement{agreement7()},
		Job:        Job{Kind: "sql", Purpose: "elderly care planning ", Fields: []string{"district", "income"}},
	}
}

// agreement7 covers district and income raw and id_number hashed, for
// 2026 in China Standard Time.
func agreement7() Agreement {
	return Agreement{ID: 7, Kind: "data-use", Provider: "Hangzhou Civil Affairs",
		Fields:   map[string]string{"district": "raw", "income": "raw", "id_number": "hashed"},
		Purposes: []string{"Elderly care planning"}, Status: "active",
		ValidFrom: "2026-01-01T00:00:00+08:00", ValidUntil: "2027-01-01T00:00:00+08:00"}
}

func codes(d Decision) []string {
	var out []string
	for _, r := range d.Reasons {
		out = append(out, r.Code)
	}
	return out
}

func TestAdmissionAllowsCoveredJob(t *testing.T) {
	e := engine(t)
	d, err := e.Admit(context.Background(), baseInput())
	if err != nil {
		t.Fatal(err)
	}
	if !d.Allow || d.AgreementID != 7 || len(d.Reasons) != 0 {
		t.Fatalf("decision = %+v, want allowed under agreement 7", d)
	}
	if d.Fields["district"] != "raw" || d.Fields["income"] != "raw" || len(d.Fields) != 2 {
		t.Errorf("fields = %v, want exactly the referenced fields, raw", d.Fields)
	}
	if d.Limits.MinCellCount != 10 || d.Limits.MaxRows <= 0 || d.Bundle != e.BundleHash() || !strings.HasPrefix(d.Bundle, "sha256:") {
		t.Errorf("limits/bundle = %+v %s", d.Limits, d.Bundle)
	}
}

func TestAdmissionDenials(t *testing.T) {
	e := engine(t)
	cases := []struct {
		name string
		mod  func(*AdmissionInput)
		code string
		text string
	}{
		{"closed dataset", func(in *AdmissionInput) { in.Dataset.Open = "closed" }, "dataset_closed", "never served"},
		{"field outside agreement", func(in *AdmissionInput) { in.Job.Fields = []string{"district", "name"} }, "field_not_granted", "field name is outside agreement 7"},
		{"personal-sensitive raw", func(in *AdmissionInput) {
			in.Agreements[0].Fields["id_number"] = "raw"
			in.Job.Fields = []string{"id_number"}
		}, "field_personal_sensitive", "never served raw"},
		{"direct identifier in output", func(in *AdmissionInput) {
			in.Job.Fields = []string{"id_number", "district"}
			in.Job.Outputs = []Output{{Name: "who", Fields: []string{"id_number"}}, {Name: "district", Fields: []string{"district"}}}
		}, "direct_identifier_output", "output column who carries id_number"},
		{"core data, latest version", func(in *AdmissionInput) { in.Dataset.Grade = "core" }, "core_data_unpinned", "core data"},
		{"other purpose", func(in *AdmissionInput) { in.Job.Purpose = "marketing" }, "purpose_not_covered", "Elderly care planning"},
		{"no agreement", func(in *AdmissionInput) { in.Agreements = nil }, "no_agreement", "no data use agreement"},
		{"ended", func(in *AdmissionInput) { in.Now = time.Date(2026, 12, 31, 16, 0, 0, 0, time.UTC) }, "agreement_unusable", "agreement 7 ended at 2027-01-01T00:00:00+08:00"},
		{"expired by the sweep", func(in *AdmissionInput) { in.Agreements[0].Status = "expired" }, "agreement_unusable", "agreement 7 ended at 2027-01-01T00:00:00+08:00"},
		{"not yet", func(in *AdmissionInput) { in.Agreements[0].ValidFrom = "2026-12-01T00:00:00+08:00" }, "agreement_unusable", "not in force until 2026-12-01"},
		{"revoked", func(in *AdmissionInput) { in.Agreements[0].Status = "revoked" }, "agreement_unusable", "agreement 7 is revoked"},
		{"suspended", func(in *AdmissionInput) { in.Agreements[0].Status = "suspended" }, "agreement_unusable", "agreement 7 is suspended"},
		{"other version", func(in *AdmissionInput) { in.Agreements[0].Version = "fedcba9876543210" }, "agreement_unusable", "covers version fedcba987654 of population only"},
		{"total quota", func(in *AdmissionInput) {
			in.Agreements[0].Quotas.MaxJobs, in.Agreements[0].Usage.Jobs = 5, 5
		}, "agreement_unusable", "allows 5 jobs in all"},
		{"daily quota", func(in *AdmissionInput) {
			in.Agreements[0].Quotas.JobsPerDay, in.Agreements[0].Usage.JobsToday = 2, 2
		}, "agreement_unusable", "allows 2 jobs a day"},
		{"aggregates only", func(in *AdmissionInput) { in.Agreements[0].Outputs.AggregatesOnly = true }, "aggregates_only", "aggregate outputs only"},
		{"boolean generalised", func(in *AdmissionInput) {
			in.Dataset.Fields = append(in.Dataset.Fields, Field{Name: "disabled", Type: "BOOLEAN", Sensitivity: "sensitive", Identifier: "none"})
			in.Agreements[0].Fields["disabled"] = "generalised"
			in.Job.Fields = []string{"disabled"}
		}, "form_not_applicable", "field disabled of type BOOLEAN cannot be generalised"},
		{"named agreement not held", func(in *AdmissionInput) { in.Job.AgreementID = 8 }, "agreement_not_found", "agreement 8 is not one of acme's"},
		{"admin submits", func(in *AdmissionInput) { in.Principal.Roles = []string{"admin"} }, "not_a_requester", "only operators"},
		{"unknown field", func(in *AdmissionInput) { in.Job.Fields = []string{"shoe_size"} }, "unknown_field", "no field shoe_size"},
		{"suspended dataset", func(in *AdmissionInput) { in.Dataset.Status = "suspended" }, "dataset_suspended", "objection"},
		{"suspended field", func(in *AdmissionInput) { in.Dataset.SuspendedFields = []string{"income"} }, "field_suspended", "field income"},
		{"sealed version", func(in *AdmissionInput) { in.Dataset.VersionStatus = "sealed" }, "version_not_active", "abcdef012345 of population is sealed"},
		{"destroyed version", func(in *AdmissionInput) { in.Dataset.VersionStatus = "destroyed" }, "version_not_active", "is destroyed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := baseInput()
			in.Agreements = []Agreement{agreement7()}
			in.Dataset.Fields = append([]Field(nil), in.Dataset.Fields...)
			tc.mod(&in)
			d, err := e.Admit(context.Background(), in)
			if err != nil {
				t.Fatal(err)
			}
			if d.Allow || len(d.Fields) != 0 {
				t.Fatalf("allowed: %+v", d)
			}
			found := false
			for _, r := range d.Reasons {
				if r.Code == tc.code && strings.Contains(r.Message, tc.text) {
					found = true
				}
			}
			if !found {
				t.Fatalf("reasons %v lack %s mentioning %q: %+v", codes(d), tc.code, tc.text, d.Reasons)
			}
		})
	}
}

func TestAdmissionAtTheEndOfTheTerm(t *testing.T) {
	in := baseInput()
	in.Now = time.Date(2026, 12, 31, 15, 59, 59, 999999999, time.UTC) // 23:59:59.999999999 CST
	d, err := engine(t).Admit(context.Background(), in)
	if err != nil || !d.Allow {
		t.Fatalf("last instant of the term: %+v %v, want allowed", d, err)
	}
	in.Now = in.Now.Add(time.Second)
	if d, err = engine(t).Admit(context.Background(), in); err != nil || d.Allow {
		t.Fatalf("one second after the term: %+v %v, want denied", d, err)
	}
}

func TestAdmissionChoosesAndLimitsByAgreement(t *testing.T) {
	e := engine(t)
	in := baseInput()
	strict := agreement7()
	strict.ID, strict.Outputs.MinCellCount = 9, 25
	revoked := agreement7()
	revoked.ID, revoked.Status = 3, "revoked"
	in.Agreements = []Agreement{revoked, agreement7(), strict}
	in.Job.Aggregate = true
	d, err := e.Admit(context.Background(), in)
	if err != nil || !d.Allow || d.AgreementID != 7 || d.Limits.MinCellCount != 10 {
		t.Fatalf("the oldest usable agreement, 7, with the platform's minimum: %+v %v", d, err)
	}
	in.Job.AgreementID = 9
	if d, err = e.Admit(context.Background(), in); err != nil || !d.Allow || d.AgreementID != 9 || d.Limits.MinCellCount != 25 {
		t.Fatalf("agreement 9 named by the job raises the minimum cell count to 25: %+v %v", d, err)
	}
	in.Job.AgreementID = 3
	if d, err = e.Admit(context.Background(), in); err != nil || d.Allow || codes(d)[0] != "agreement_unusable" {
		t.Fatalf("the named agreement is revoked; no fallback to another: %+v %v", d, err)
	}
}

func TestReleaseParams(t *testing.T) {
	e := engine(t)
	a := agreement7()
	a.Outputs = OutputRules{MinCellCount: 25, RoundBase: 5, TopCode: map[string]float64{"income": 90000}}
	p, err := e.ReleaseParams(context.Background(), ReleaseInput{Agreement: a})
	want := Params{MinCellCount: 25, Dominance: Dominance{P: 10, N: 2, K: 85}, MinDegreesOfFreedom: 10, CheckAttributes: true, Suppress: true, RoundBase: 5,
		TopCode: map[string]float64{"income": 90000}, BottomCode: map[string]float64{}}
	if err != nil || !reflect.DeepEqual(p, want) {
		t.Fatalf("params %+v %v, want %+v", p, err, want)
	}
}

func TestRelease(t *testing.T) {
	e := engine(t)
	ctx := context.Background()
	now := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	live := agreement7()
	d, err := e.Release(ctx, ReleaseInput{Now: now, Agreement: live, Checks: []Check{{Name: "min_cell_count", Verdict: VerdictPass}, {Name: "direct_identifiers", Verdict: VerdictPass}}})
	if err != nil || d.Outcome != OutcomeRelease || d.Bundle != e.BundleHash() {
		t.Fatalf("all checks passed: %+v %v", d, err)
	}
	d, err = e.Release(ctx, ReleaseInput{Now: now, Agreement: live, Checks: []Check{{Name: "min_cell_count", Verdict: VerdictReview, Detail: "3 cells below 10"}, {Name: "direct_identifiers", Verdict: VerdictPass}}})
	if err != nil || d.Outcome != OutcomeReview || len(d.Reasons) != 1 || d.Reasons[0].Message != "3 cells below 10" {
		t.Fatalf("failed check: %+v %v", d, err)
	}
	d, err = e.Release(ctx, ReleaseInput{})
	if err != nil || d.Outcome != OutcomeReview {
		t.Fatalf("no checks at all must hold: %+v %v", d, err)
	}
	passed := []Check{{Name: "min_cell_count", Verdict: VerdictPass}}
	d, err = e.Release(ctx, ReleaseInput{Now: now, Agreement: live, Checks: passed, Dataset: Dataset{Name: "population", Status: "suspended"}})
	if err != nil || d.Outcome != OutcomeReview || len(d.Reasons) != 1 || d.Reasons[0].Code != "dataset_suspended" {
		t.Fatalf("dataset suspended after admission must hold: %+v %v", d, err)
	}
	d, err = e.Release(ctx, ReleaseInput{Now: now, Agreement: live, Checks: passed, Job: Job{Fields: []string{"district", "income"}},
		Dataset: Dataset{Name: "population", Status: "active", SuspendedFields: []string{"income"}}})
	if err != nil || d.Outcome != OutcomeReview || len(d.Reasons) != 1 || d.Reasons[0].Code != "field_suspended" {
		t.Fatalf("used field suspended after admission must hold: %+v %v", d, err)
	}
	d, err = e.Release(ctx, ReleaseInput{Now: now, Agreement: live, Checks: passed, Job: Job{Fields: []string{"district"}},
		Dataset: Dataset{Name: "population", Status: "active", SuspendedFields: []string{"income"}}})
	if err != nil || d.Outcome != OutcomeRelease {
		t.Fatalf("a suspended field the job did not use must not hold it: %+v %v", d, err)
	}
	for _, tc := range []struct {
		name string
		mod  func(*ReleaseInput)
		text string
	}{
		{"revoked", func(in *ReleaseInput) { in.Agreement.Status = "revoked" }, "agreement 7 is revoked"},
		{"suspended", func(in *ReleaseInput) { in.Agreement.Status = "suspended" }, "agreement 7 is suspended"},
		{"ended", func(in *ReleaseInput) { in.Now = time.Date(2026, 12, 31, 16, 0, 1, 0, time.UTC) }, "agreement 7 ended"},
	} {
		in := ReleaseInput{Now: now, Agreement: agreement7(), Checks: passed, Dataset: Dataset{Name: "population", Status: "active"}}
		tc.mod(&in)
		d, err := e.Release(ctx, in)
		if err != nil || d.Outcome != OutcomeReview || len(d.Reasons) != 1 || d.Reasons[0].Code != "agreement_withdrawn" || !strings.Contains(d.Reasons[0].Message, tc.text) {
			t.Errorf("%s agreement must hold the result: %+v %v", tc.name, d, err)
		}
	}
}

func TestLoadRejectsBadBundlesAndHashesContent(t *testing.T) {
	ctx := context.Background()
	if _, err := Load(ctx, fstest.MapFS{}); err == nil || !strings.Contains(err.Error(), "no .rego") {
		t.Errorf("empty bundle: %v", err)
	}
	bad := fstest.MapFS{"x.rego": {Data: []byte("package dsbx.admission\n\ndecision := {")}}
	if _, err := Load(ctx, bad); err == nil || !strings.Contains(err.Error(), "x.rego") {
		t.Errorf("syntax error: %v, want it to name x.rego", err)
	}
	noRelease := fstest.MapFS{"a.rego": {Data: []byte("package dsbx.admission\n\ndecision := {\"allow\": false}\n")}}
	e, err := Load(ctx, noRelease)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Release(ctx, ReleaseInput{}); err == nil || !strings.Contains(err.Error(), "no decision") {
		t.Errorf("bundle without release rules: %v", err)
	}

	changed := fstest.MapFS{}
	names, _ := fs.Glob(bundle, "*.rego")
	for _, name := range names {
		src, _ := bundle.ReadFile(name)
		changed[name] = &fstest.MapFile{Data: src}
	}
	same, err := Load(ctx, changed)
	if err != nil || same.BundleHash() != engine(t).BundleHash() {
		t.Fatalf("same files, different hash: %v", err)
	}
	changed["release.rego"].Data = append(changed["release.rego"].Data, []byte("\n# edited\n")...)
	edited, err := Load(ctx, changed)
	if err != nil || edited.BundleHash() == same.BundleHash() {
		t.Fatalf("an edit did not change the bundle hash: %v", err)
	}
}

// A personal-sensitive field agreed hashed is served hashed: joined and
// counted, never output as such.
func TestAdmissionServesAgreedForm(t *testing.T) {
	in := baseInput()
	in.Job.Fields = []string{"district", "id_number"}
	in.Job.Aggregate = true
	in.Job.Outputs = []Output{{Name: "district", Fields: []string{"district"}}, {Name: "people", Fields: []string{"id_number"}, Aggregated: true}}
	d, err := engine(t).Admit(context.Background(), in)
	if err != nil || !d.Allow || d.Fields["id_number"] != "hashed" || d.Fields["district"] != "raw" || len(d.Fields) != 2 {
		t.Fatalf("count(DISTINCT id_number) by district with id_number hashed: %+v %v", d, err)
	}
}

// An agreement whose fields map is missing grants nothing: the field rules
// must still fire.
func TestAdmissionNilAgreementFieldsGrantNothing(t *testing.T) {
	in := baseInput()
	in.Agreements[0].Fields = nil
	d, err := engine(t).Admit(context.Background(), in)
	if err != nil || d.Allow || codes(d)[0] != "field_not_granted" {
		t.Fatalf("agreement with no fields map: %+v %v", d, err)
	}
}
