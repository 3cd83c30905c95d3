package policies

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fuzzEngine is the built-in bundle, compiled once per process.
var fuzzEngine = sync.OnceValues(func() (*Engine, error) { return Default(context.Background()) })

// rfc3339 is the shape admission.rego's ns() accepts before parsing.
var rfc3339 = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$`)

// instantNS is ns() of admission.rego in Go: the time in nanoseconds, or
// false when the text is not an RFC 3339 time OPA can represent.
func instantNS(s string) (int64, bool) {
	if !rfc3339.MatchString(s) {
		return 0, false
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil || t.Year() < 1678 || t.Year() > 2261 { // UnixNano's range, with a margin
		return 0, false
	}
	return t.UnixNano(), true
}

// admissionFuzzSeeds are the example inputs of examples/admission.
func admissionFuzzSeeds(f *testing.F) [][]byte {
	names, err := fs.Glob(examplesFS, "examples/admission/*.input")
	if err != nil || len(names) == 0 {
		f.Fatalf("no admission examples: %v", err)
	}
	var out [][]byte
	for _, n := range names {
		b, err := fs.ReadFile(examplesFS, path.Clean(n))
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// keep is the override argument of FuzzAdmissionInput that changes
// nothing.
const keep = "-"

// FuzzAdmissionInput decodes arbitrary JSON into an AdmissionInput and runs
// it through the built-in admission policy. Byte mutations of JSON mostly
// break its syntax, so the facts the rules parse are also fuzzed as
// strings that replace those of the decoded input unless they are "-":
// the principal's name, every agreement's valid_from and valid_until, and
// every form every agreement names. The engine must not panic, and an
// allow must be backed by every fact admission.rego promises to check:
// nothing missing or malformed (an unparsable time, an empty principal, a
// form that is not one of the four) may fail open.
func FuzzAdmissionInput(f *testing.F) {
	for _, s := range admissionFuzzSeeds(f) {
		f.Add(s, keep, keep, keep, keep)
	}
	allowed, err := fs.ReadFile(examplesFS, "examples/admission/allowed.input")
	if err != nil {
		f.Fatal(err)
	}
	for _, o := range [][4]string{
		{"", keep, keep, keep},
		{" ", keep, keep, keep},
		{keep, "2026-13-01T00:00:00+08:00", keep, keep},
		{keep, keep, "2027-01-01", keep},
		{keep, keep, "9999-12-31T23:59:59Z", keep},
		{keep, "0001-01-01T00:00:00Z", keep, keep},
		{keep, keep, "2027-01-01T00:00:00.5+08:00", keep},
		{keep, keep, keep, ""},
		{keep, keep, keep, "RAW"},
	} {
		f.Add(allowed, o[0], o[1], o[2], o[3])
	}
	f.Add([]byte(`{}`), keep, keep, keep, keep)
	f.Add([]byte(`null`), keep, keep, keep, keep)
	e, err := fuzzEngine()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte, name, from, until, form string) {
		var in AdmissionInput
		if err := json.Unmarshal(data, &in); err != nil {
			return // not an input Go could build
		}
		if name != keep {
			in.Principal.Name = name
		}
		for i := range in.Agreements {
			a := &in.Agreements[i]
			if from != keep {
				a.ValidFrom = from
			}
			if until != keep {
				a.ValidUntil = until
			}
			if form != keep {
				for f := range a.Fields {
					a.Fields[f] = form
				}
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		d, err := e.Admit(ctx, in)
		if err != nil {
			if ctx.Err() != nil {
				t.Fatalf("Admit did not finish in 20s: %v", err)
			}
			if err.Error() == "" {
				t.Fatal("Admit error without a message")
			}
			return
		}
		if d.Bundle != e.BundleHash() {
			t.Fatalf("decision bundle %q, want %q", d.Bundle, e.BundleHash())
		}
		if !d.Allow {
			if len(d.Reasons) == 0 {
				t.Fatalf("denied without a reason: %+v", d)
			}
			for _, r := range d.Reasons {
				if r.Code == "" || r.Message == "" {
					t.Fatalf("reason without code or message: %+v", r)
				}
			}
			return
		}
		if why := allowUnfounded(in, d); why != "" {
			raw, _ := json.Marshal(admissionDefaults(in))
			t.Fatalf("allowed although %s\ninput: %s\ndecision: %+v", why, raw, d)
		}
	})
}

// allowUnfounded returns why d, an allow, should not have been given for
// in, or "" if every fact the admission rules check backs it.
func allowUnfounded(in AdmissionInput, d Decision) string {
	if len(d.Reasons) != 0 {
		return fmt.Sprintf("it carries reasons %v", d.Reasons)
	}
	now, ok := instantNS(in.Now.Format(time.RFC3339Nano))
	if !ok {
		return "the time of the decision is not an RFC 3339 time OPA can read"
	}
	if strings.TrimSpace(in.Principal.Name) == "" {
		return "the principal has no name"
	}
	if !slices.Contains(in.Principal.Roles, "operator") && !slices.Contains(in.Principal.Roles, "researcher") {
		return fmt.Sprintf("the principal holds roles %v", in.Principal.Roles)
	}
	ds := in.Dataset
	switch {
	case ds.Open == "closed":
		return "the dataset is closed"
	case ds.Status == "suspended":
		return "the dataset is suspended"
	case ds.VersionStatus != "active":
		return fmt.Sprintf("the version is %q", ds.VersionStatus)
	}
	if d.AgreementID == 0 {
		return "no agreement was chosen"
	}
	if in.Job.AgreementID != 0 && d.AgreementID != in.Job.AgreementID {
		return fmt.Sprintf("the job asked for agreement %d and got %d", in.Job.AgreementID, d.AgreementID)
	}
	var usable []Agreement
	for _, a := range in.Agreements {
		if a.ID == d.AgreementID {
			usable = append(usable, a)
		}
	}
	if len(usable) == 0 {
		return fmt.Sprintf("agreement %d is not among the inputs", d.AgreementID)
	}
	// Several agreements may share an id; at least one of them must carry
	// the job on its own.
	var whys []string
	for _, a := range usable {
		why := agreementUnfit(in, a, now)
		if why == "" {
			why = formsUnfounded(in, a, d)
		}
		if why == "" {
			return ""
		}
		whys = append(whys, why)
	}
	return strings.Join(whys, "; ")
}

// agreementUnfit returns why a cannot carry in's job at now, or "".
func agreementUnfit(in AdmissionInput, a Agreement, now int64) string {
	if a.Status != "active" {
		return fmt.Sprintf("agreement %d is %q", a.ID, a.Status)
	}
	from, okFrom := instantNS(a.ValidFrom)
	until, okUntil := instantNS(a.ValidUntil)
	switch {
	case !okFrom || !okUntil:
		return fmt.Sprintf("agreement %d has no valid term (%q to %q)", a.ID, a.ValidFrom, a.ValidUntil)
	case now < from || now >= until:
		return fmt.Sprintf("agreement %d is not in force at %s (%s to %s)", a.ID, in.Now.Format(time.RFC3339Nano), a.ValidFrom, a.ValidUntil)
	}
	purpose := strings.ToLower(strings.TrimSpace(in.Job.Purpose))
	if !slices.ContainsFunc(a.Purposes, func(p string) bool { return strings.ToLower(strings.TrimSpace(p)) == purpose }) {
		return fmt.Sprintf("agreement %d does not cover purpose %q", a.ID, in.Job.Purpose)
	}
	if a.Version != "" && a.Version != in.Dataset.Version {
		return fmt.Sprintf("agreement %d pins version %q, not %q", a.ID, a.Version, in.Dataset.Version)
	}
	if in.Dataset.Grade == "core" && a.Version == "" {
		return fmt.Sprintf("agreement %d does not pin core data", a.ID)
	}
	if a.Quotas.MaxJobs > 0 && a.Usage.Jobs >= a.Quotas.MaxJobs {
		return fmt.Sprintf("agreement %d used up its %d jobs", a.ID, a.Quotas.MaxJobs)
	}
	if a.Quotas.JobsPerDay > 0 && a.Usage.JobsToday >= a.Quotas.JobsPerDay {
		return fmt.Sprintf("agreement %d used up its %d jobs today", a.ID, a.Quotas.JobsPerDay)
	}
	if a.Outputs.AggregatesOnly && !in.Job.Aggregate {
		return fmt.Sprintf("agreement %d allows aggregates only", a.ID)
	}
	return ""
}

// formsUnfounded returns why the forms of d do not follow from agreement a
// and the catalog labels, or "".
func formsUnfounded(in AdmissionInput, a Agreement, d Decision) string {
	meta := map[string]Field{}
	for _, fl := range in.Dataset.Fields {
		meta[fl.Name] = fl
	}
	for _, f := range in.Job.Fields {
		m, known := meta[f]
		switch form := d.Fields[f]; {
		case !known:
			return fmt.Sprintf("field %q is not in the dataset", f)
		case slices.Contains(in.Dataset.SuspendedFields, f):
			return fmt.Sprintf("field %q is suspended", f)
		case form != a.Fields[f]:
			return fmt.Sprintf("field %q is served %q, agreement %d says %q", f, form, a.ID, a.Fields[f])
		case form != "raw" && form != "masked" && form != "hashed" && form != "generalised":
			return fmt.Sprintf("field %q is served in form %q", f, form)
		case m.Sensitivity == "personal-sensitive" && form == "raw":
			return fmt.Sprintf("personal-sensitive field %q is served raw", f)
		}
	}
	for f := range d.Fields {
		if !slices.Contains(in.Job.Fields, f) {
			return fmt.Sprintf("field %q is served but the job does not read it", f)
		}
	}
	for _, o := range in.Job.Outputs {
		if o.Aggregated {
			continue
		}
		for _, f := range o.Fields {
			if meta[f].Identifier == "direct" {
				return fmt.Sprintf("output %q carries the direct identifier %q", o.Name, f)
			}
		}
	}
	return ""
}
