package policies

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/open-policy-agent/opa/v1/rego"
)

// The examples the platform's documentation and reviewers rely on.
var requiredExamples = []string{
	"admission/allowed", "admission/denied-field", "admission/expired", "admission/hashed-identifier",
	"release/pass", "release/hold-small-cells", "release/agreement-revoked",
}

func TestExamplesMatchSchemaAndGoStructs(t *testing.T) {
	ctx := context.Background()
	list, err := readPolicyExamples(examplesFS)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, ex := range list {
		names = append(names, ex.name)
		t.Run(ex.name, func(t *testing.T) {
			if err := ValidateInput(ctx, ex.kind, ex.input); err != nil {
				t.Fatal(err)
			}
			// The example is exactly what Go sends: decoding it into the
			// input struct and marshalling that back loses nothing.
			var in any
			switch ex.kind {
			case inputKindAdmission:
				var a AdmissionInput
				if err := decodeExample(ex.input, &a); err != nil {
					t.Fatal(err)
				}
				in = admissionDefaults(a)
			case inputKindRelease:
				var r ReleaseInput
				if err := decodeExample(ex.input, &r); err != nil {
					t.Fatal(err)
				}
				in = releaseDefaults(r)
			}
			back, err := json.Marshal(in)
			if err != nil {
				t.Fatal(err)
			}
			if !sameJSON(t, back, ex.input) {
				t.Errorf("round trip through the Go struct changed the example:\n%s", back)
			}
			var want struct {
				Description string `json:"description"`
			}
			if err := json.Unmarshal(ex.expect, &want); err != nil || want.Description == "" {
				t.Errorf("expectation lacks a description: %v", err)
			}
		})
	}
	for _, n := range requiredExamples {
		if !slices.Contains(names, n) {
			t.Errorf("example %s is missing (have %v)", n, names)
		}
	}
}

func sameJSON(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatal(err)
	}
	return reflect.DeepEqual(x, y)
}

// populatedAdmission sets every field of an AdmissionInput to a non-zero value.
func populatedAdmission() AdmissionInput {
	a := agreement7()
	a.Version = strings.Repeat("ab", 32)
	a.Outputs = OutputRules{AggregatesOnly: true, MinCellCount: 20, RowLevel: true, RoundBase: 5,
		TopCode: map[string]float64{"income": 200000}, BottomCode: map[string]float64{"income": 0}, Privacy: Privacy{
			Mechanism: "gaussian", Epsilon: 1, Delta: 1e-6, EpsilonPerJob: 0.1, DeltaPerJob: 1e-7, SpentEpsilon: 0.3, SpentDelta: 3e-7, Bounded: []string{"income"},
		}}
	a.Quotas = Quotas{MaxJobs: 100, JobsPerDay: 10}
	a.Usage = Usage{Jobs: 12, JobsToday: 2}
	return AdmissionInput{
		Now:       time.Date(2026, 11, 23, 9, 0, 0, 123456789, time.UTC),
		Principal: Principal{Name: "西湖研究院 lab-3", Roles: []string{"researcher", "operator"}, Organization: "西湖大学"},
		Dataset: Dataset{
			Name: "population", Version: strings.Repeat("ab", 32), Open: "conditional", Grade: "core",
			Status: "active", SuspendedFields: []string{"name"}, VersionStatus: "active",
			Fields: []Field{
				{Name: "id_number", Type: "VARCHAR", Sensitivity: "personal-sensitive", Identifier: "direct"},
				{Name: "income", Type: "DECIMAL(12,2)", Sensitivity: "sensitive", Identifier: "none"},
			},
		},
		Agreements: []Agreement{a},
		Job: Job{
			Kind: "sql", Purpose: "Elderly care planning", CodeHash: strings.Repeat("0f", 32),
			Tables: []string{"population"}, Fields: []string{"id_number", "income"}, Functions: []string{"count", "sum"},
			Aggregate: true, AgreementID: 7,
			Outputs: []Output{{Name: "people", Fields: []string{"id_number"}, Aggregated: true, Aggregates: []string{"count"}, Bare: true}},
		},
	}
}

// populatedRelease sets every field of a ReleaseInput to a non-zero value.
func populatedRelease() ReleaseInput {
	in := populatedAdmission()
	return ReleaseInput{
		Now:       time.Date(2026, 11, 23, 17, 5, 0, 0, time.FixedZone("CST", 8*3600)),
		Job:       in.Job,
		Result:    Result{Rows: 13, Bytes: 2048, SHA256: strings.Repeat("9e", 32), Columns: []string{"district", "people"}},
		Checks:    []Check{{Name: "min_cell_count", Verdict: VerdictPass, Detail: "all 13 cells count at least 10 records"}},
		Dataset:   in.Dataset,
		Agreement: in.Agreements[0],
		Review:    Review{Justification: "the survey needs the small district", Approvals: []string{"check"}},
	}
}

// zeroFields lists the fields of v (recursively) left at their zero value.
func zeroFields(v reflect.Value, at string) []string {
	if v.Type() == reflect.TypeFor[time.Time]() {
		if v.Interface().(time.Time).IsZero() {
			return []string{at}
		}
		return nil
	}
	switch v.Kind() {
	case reflect.Struct:
		var out []string
		for i := range v.NumField() {
			out = append(out, zeroFields(v.Field(i), at+"."+v.Type().Field(i).Name)...)
		}
		return out
	case reflect.Slice:
		if v.Len() == 0 {
			return []string{at}
		}
		var out []string
		for i := range v.Len() {
			out = append(out, zeroFields(v.Index(i), at+"[]")...)
		}
		return out
	case reflect.Map:
		if v.Len() == 0 {
			return []string{at}
		}
		return nil
	default:
		if v.IsZero() {
			return []string{at}
		}
		return nil
	}
}

// A fully populated input built in Go matches the schema, so that a field
// added to the structs shows up here.
func TestFullyPopulatedGoInputsMatchSchema(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		kind string
		doc  any
	}{{inputKindAdmission, populatedAdmission()}, {inputKindRelease, populatedRelease()}} {
		if zero := zeroFields(reflect.ValueOf(tc.doc), tc.kind); len(zero) > 0 {
			t.Errorf("%s: set these fields too: %v", tc.kind, zero)
		}
		raw, err := json.Marshal(tc.doc)
		if err != nil {
			t.Fatal(err)
		}
		if err := ValidateInput(ctx, tc.kind, raw); err != nil {
			t.Errorf("%s: %v\n%s", tc.kind, err, raw)
		}
		if err := ValidateInput(ctx, tc.kind, tc.doc); err != nil {
			t.Errorf("%s as a Go value: %v", tc.kind, err)
		}
	}
}

// The schema's definitions and the Go structs have the same properties,
// all required (Go sends every field), closed, and of matching types.
func TestSchemaDefinitionsMirrorGoStructs(t *testing.T) {
	var root struct {
		Definitions map[string]map[string]any `json:"definitions"`
	}
	if err := json.Unmarshal(inputSchema, &root); err != nil {
		t.Fatal(err)
	}
	defs := root.Definitions
	types := map[reflect.Type]string{
		reflect.TypeFor[AdmissionInput](): "admission",
		reflect.TypeFor[ReleaseInput]():   "release",
		reflect.TypeFor[Principal]():      "principal",
		reflect.TypeFor[Dataset]():        "dataset",
		reflect.TypeFor[Field]():          "field",
		reflect.TypeFor[Agreement]():      "agreement",
		reflect.TypeFor[OutputRules]():    "output_rules",
		reflect.TypeFor[Quotas]():         "quotas",
		reflect.TypeFor[Usage]():          "usage",
		reflect.TypeFor[Job]():            "job",
		reflect.TypeFor[Output]():         "output",
		reflect.TypeFor[Result]():         "result",
		reflect.TypeFor[Check]():          "check",
		reflect.TypeFor[Review]():         "review",
		reflect.TypeFor[Privacy]():        "privacy",
		reflect.TypeFor[time.Time]():      "instant",
	}
	// ref resolves a property schema to its definition's name, following
	// $ref and the first element of allOf.
	ref := func(s map[string]any) string {
		if all, ok := s["allOf"].([]any); ok && len(all) > 0 {
			s, _ = all[0].(map[string]any)
		}
		r, _ := s["$ref"].(string)
		return strings.TrimPrefix(r, "#/definitions/")
	}
	schemaTypes := func(s map[string]any) []string {
		if r := ref(s); r != "" {
			s = defs[r]
		}
		switch x := s["type"].(type) {
		case string:
			return []string{x}
		case []any:
			var out []string
			for _, y := range x {
				out = append(out, y.(string))
			}
			return out
		}
		return nil
	}
	for typ, name := range types {
		if typ.Kind() != reflect.Struct || typ == reflect.TypeFor[time.Time]() {
			continue
		}
		def, ok := defs[name]
		if !ok {
			t.Errorf("no definitions.%s for %s", name, typ)
			continue
		}
		if def["additionalProperties"] != false {
			t.Errorf("definitions.%s: additionalProperties must be false (%s is closed)", name, typ)
		}
		if d, _ := def["description"].(string); d == "" {
			t.Errorf("definitions.%s has no description", name)
		}
		props, _ := def["properties"].(map[string]any)
		var required []string
		for _, r := range def["required"].([]any) {
			required = append(required, r.(string))
		}
		var tags []string
		for i := range typ.NumField() {
			f := typ.Field(i)
			tag, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
			if tag == "-" || tag == "" {
				t.Errorf("%s.%s has no JSON name", typ, f.Name)
				continue
			}
			if !strings.Contains(opts, "omitempty") {
				tags = append(tags, tag)
			}
			p, ok := props[tag].(map[string]any)
			if !ok {
				t.Errorf("definitions.%s lacks property %s (%s.%s)", name, tag, typ, f.Name)
				continue
			}
			if d, _ := p["description"].(string); d == "" {
				t.Errorf("definitions.%s.properties.%s has no description", name, tag)
			}
			got := schemaTypes(p)
			var want string
			switch ft := f.Type; {
			case types[ft] != "":
				if r := ref(p); r != types[ft] {
					t.Errorf("definitions.%s.properties.%s refers to %q, want %q for %s", name, tag, r, types[ft], ft)
				}
				continue
			case ft.Kind() == reflect.String:
				want = "string"
			case ft.Kind() == reflect.Bool:
				want = "boolean"
			case ft.Kind() == reflect.Int || ft.Kind() == reflect.Int64:
				want = "integer"
			case ft.Kind() == reflect.Float64:
				want = "number"
			case ft.Kind() == reflect.Slice:
				want = "array"
				items, _ := p["items"].(map[string]any)
				if et := types[ft.Elem()]; et != "" && ref(items) != et {
					t.Errorf("definitions.%s.properties.%s items refer to %q, want %q", name, tag, ref(items), et)
				}
			case ft.Kind() == reflect.Map:
				want = "object"
			default:
				t.Errorf("%s.%s: no rule for Go type %s", typ, f.Name, ft)
				continue
			}
			if !slices.Contains(got, want) {
				t.Errorf("definitions.%s.properties.%s has type %v, want %s (%s)", name, tag, got, want, f.Type)
			}
		}
		sort.Strings(tags)
		sort.Strings(required)
		if !slices.Equal(tags, required) {
			t.Errorf("definitions.%s requires %v, want %v (every field Go always sends)", name, required, tags)
		}
		var names []string
		for k := range props {
			names = append(names, k)
		}
		sort.Strings(names)
		if !slices.Equal(names, tags) {
			t.Errorf("definitions.%s has properties %v; %s sends %v", name, names, typ, tags)
		}
	}
}

func TestValidateInputRefusesBrokenDocuments(t *testing.T) {
	ctx := context.Background()
	read := func(name string) map[string]any {
		raw, err := examplesFS.ReadFile("examples/" + name + ".input")
		if err != nil {
			t.Fatal(err)
		}
		var doc map[string]any
		if err := json.Unmarshal(raw, &doc); err != nil {
			t.Fatal(err)
		}
		return doc
	}
	obj := func(v any, keys ...any) map[string]any {
		for _, k := range keys {
			switch k := k.(type) {
			case string:
				v = v.(map[string]any)[k]
			case int:
				v = v.([]any)[k]
			}
		}
		return v.(map[string]any)
	}
	for _, tc := range []struct {
		name, kind, example string
		mod                 func(map[string]any)
		path, text          string
	}{
		{"missing principal", inputKindAdmission, "admission/allowed", func(d map[string]any) { delete(d, "principal") }, "principal", "is required"},
		{"missing nested property", inputKindAdmission, "admission/allowed", func(d map[string]any) { delete(obj(d, "agreements", 0, "quotas"), "jobs_per_day") }, "agreements[0].quotas.jobs_per_day", "is required"},
		{"unknown form", inputKindAdmission, "admission/allowed", func(d map[string]any) { obj(d, "agreements", 0, "fields")["id_number"] = "encrypted" }, "agreements[0].fields.id_number", "one of"},
		{"field name not an identifier", inputKindAdmission, "admission/allowed", func(d map[string]any) { obj(d, "agreements", 0, "fields")["Id Number"] = "raw" }, "agreements[0].fields.Id Number", "not a valid name"},
		{"unknown sensitivity", inputKindAdmission, "admission/allowed", func(d map[string]any) { obj(d, "dataset", "fields", 0)["sensitivity"] = "secret" }, "dataset.fields[0].sensitivity", "one of"},
		{"unknown identifier role", inputKindAdmission, "admission/allowed", func(d map[string]any) { obj(d, "dataset", "fields", 1)["identifier"] = "indirect" }, "dataset.fields[1].identifier", "one of"},
		{"extra property", inputKindAdmission, "admission/allowed", func(d map[string]any) { obj(d, "job")["sql"] = "SELECT 1" }, "job.sql", "not allowed"},
		{"extra top-level property", inputKindRelease, "release/pass", func(d map[string]any) { d["principal"] = map[string]any{} }, "principal", "not allowed"},
		{"wrong type", inputKindAdmission, "admission/allowed", func(d map[string]any) { obj(d, "agreements", 0)["id"] = "7" }, "agreements[0].id", "invalid type"},
		{"fractional integer", inputKindAdmission, "admission/allowed", func(d map[string]any) { obj(d, "agreements", 0, "usage")["jobs"] = 1.5 }, "agreements[0].usage.jobs", "invalid type"},
		{"date instead of instant", inputKindAdmission, "admission/allowed", func(d map[string]any) { obj(d, "agreements", 0)["valid_until"] = "2027-01-01" }, "agreements[0].valid_until", "pattern"},
		{"null agreement fields", inputKindAdmission, "admission/allowed", func(d map[string]any) { obj(d, "agreements", 0)["fields"] = nil }, "agreements[0].fields", "invalid type"},
		{"null agreements", inputKindAdmission, "admission/allowed", func(d map[string]any) { d["agreements"] = nil }, "agreements", "invalid type"},
		{"null outputs at admission", inputKindAdmission, "admission/allowed", func(d map[string]any) { obj(d, "job")["outputs"] = nil }, "job.outputs", "invalid type"},
		{"unknown agreement status", inputKindRelease, "release/pass", func(d map[string]any) { obj(d, "agreement")["status"] = "terminated" }, "agreement.status", "one of"},
		{"null checks", inputKindRelease, "release/pass", func(d map[string]any) { d["checks"] = nil }, "checks", "invalid type"},
		{"check without verdict", inputKindRelease, "release/pass", func(d map[string]any) { delete(obj(d, "checks", 0), "verdict") }, "checks[0].verdict", "is required"},
		{"unknown verdict", inputKindRelease, "release/pass", func(d map[string]any) { obj(d, "checks", 0)["verdict"] = "ok" }, "checks[0].verdict", "one of"},
		{"null approvals", inputKindRelease, "release/pass", func(d map[string]any) { obj(d, "review")["approvals"] = nil }, "review.approvals", "invalid type"},
		{"short result hash", inputKindRelease, "release/pass", func(d map[string]any) { obj(d, "result")["sha256"] = "abc" }, "result.sha256", "pattern"},
		{"release input as admission", inputKindAdmission, "release/pass", func(map[string]any) {}, "principal", "is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := read(tc.example)
			tc.mod(doc)
			err := ValidateInput(ctx, tc.kind, doc)
			var ie *InputError
			if !errors.As(err, &ie) {
				t.Fatalf("err = %v, want an *InputError", err)
			}
			if ie.Kind != tc.kind || !strings.Contains(err.Error(), tc.path+": ") {
				t.Errorf("err = %v, want it to name %s", err, tc.path)
			}
			found := false
			for _, p := range ie.Problems {
				if p.Path == tc.path && strings.Contains(p.Message, tc.text) {
					found = true
				}
			}
			if !found {
				t.Errorf("problems %v lack %s: ...%s...", ie.Problems, tc.path, tc.text)
			}
		})
	}
	if err := ValidateInput(ctx, "export", map[string]any{}); err == nil || !strings.Contains(err.Error(), `unknown input kind "export"`) {
		t.Errorf("unknown kind: %v", err)
	}
	if err := ValidateInput(ctx, inputKindRelease, []byte(`{"now": `)); err == nil || !strings.Contains(err.Error(), "not JSON") {
		t.Errorf("truncated JSON: %v", err)
	}
	if err := ValidateInput(ctx, inputKindRelease, []byte(`{} {}`)); err == nil || !strings.Contains(err.Error(), "after the document") {
		t.Errorf("two documents: %v", err)
	}
}

// Go values are checked as Admit and Release send them: the slices they
// normalise may be nil in the struct, never null in the document.
func TestValidateInputAppliesEngineDefaults(t *testing.T) {
	ctx := context.Background()
	in := populatedAdmission()
	in.Agreements, in.Dataset.SuspendedFields, in.Job.Outputs = nil, nil, nil
	if err := ValidateInput(ctx, inputKindAdmission, in); err != nil {
		t.Errorf("AdmissionInput: %v", err)
	}
	if err := ValidateInput(ctx, inputKindAdmission, &in); err != nil {
		t.Errorf("*AdmissionInput: %v", err)
	}
	raw, _ := json.Marshal(in)
	if err := ValidateInput(ctx, inputKindAdmission, json.RawMessage(raw)); err == nil || !strings.Contains(err.Error(), "agreements: invalid type") {
		t.Errorf("the same input marshalled as is sends agreements null: %v", err)
	}
	rel := populatedRelease()
	rel.Checks, rel.Dataset.SuspendedFields, rel.Job.Outputs, rel.Job.AgreementID = nil, nil, nil, 0
	if err := ValidateInput(ctx, inputKindRelease, &rel); err != nil {
		t.Errorf("ReleaseInput as run.go builds it (no outputs, no agreement_id): %v", err)
	}
}

func TestDefaultBundlePassesItsExamples(t *testing.T) {
	if err := engine(t).CheckExamples(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// editedBundle returns the embedded bundle with one rule file edited.
func editedBundle(t *testing.T, file, old, new string) fstest.MapFS {
	t.Helper()
	out := fstest.MapFS{}
	names, err := fs.Glob(bundle, "*.rego")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		src, _ := bundle.ReadFile(n)
		out[n] = &fstest.MapFile{Data: src}
	}
	src := string(out[file].Data)
	if !strings.Contains(src, old) {
		t.Fatalf("%s has no %q to edit", file, old)
	}
	out[file].Data = []byte(strings.Replace(src, old, new, 1))
	return out
}

func TestCheckExamplesRefusesChangedBundle(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name          string
		file, old     string
		new           string
		failing, pass []string
		text          string
	}{
		{
			name: "admission always allows", file: "admission.rego",
			old: "default allow := false", new: "default allow := true",
			failing: []string{"admission/denied-field", "admission/expired", "admission/sealed-version"},
			pass:    []string{"admission/allowed", "admission/hashed-identifier", "release/"},
			text:    "allow = true, want false",
		},
		{
			name: "personal-sensitive raw no longer refused", file: "fields.rego",
			old: `meta[f].sensitivity == "personal-sensitive"` + "\n\tagreement.fields[f] == \"raw\"", new: `meta[f].sensitivity == "never"` + "\n\tagreement.fields[f] == \"raw\"",
			failing: []string{"admission/personal-sensitive-raw"},
			pass:    []string{"admission/allowed", "admission/denied-field", "release/"},
			text:    "codes = [], want [field_personal_sensitive]",
		},
		{
			name: "release ignores checks asking for review", file: "release.rego",
			old: "\tcount(to_review) == 0\n", new: "",
			failing: []string{"release/hold-small-cells"},
			pass:    []string{"release/pass", "release/agreement-revoked", "release/row-level", "admission/"},
			text:    "outcome = release, want review",
		},
		{
			name: "release waives failed checks", file: "release.rego",
			old: `outcome := "reject" if count(failed) > 0`, new: `outcome := "review" if count(failed) > 0`,
			failing: []string{"release/row-level"},
			pass:    []string{"release/pass", "release/hold-small-cells", "admission/"},
			text:    "outcome = review, want reject",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Load may already refuse the bundle on its examples; if it
			// does not, CheckExamples must.
			e, err := Load(ctx, editedBundle(t, tc.file, tc.old, tc.new))
			if err == nil {
				err = e.CheckExamples(ctx)
			}
			if err == nil {
				t.Fatal("the changed bundle passed every example")
			}
			msg := err.Error()
			for _, n := range tc.failing {
				if !strings.Contains(msg, "example "+n+": ") {
					t.Errorf("error does not name %s:\n%s", n, msg)
				}
			}
			for _, line := range strings.Split(msg, "\n") {
				for _, p := range tc.pass {
					if strings.Contains(line, "example "+p) {
						t.Errorf("example %s should still pass: %s", p, line)
					}
				}
			}
			if !strings.Contains(msg, tc.text) {
				t.Errorf("error does not say %q:\n%s", tc.text, msg)
			}
		})
	}
}

func TestCheckExamplesReportsBundleErrors(t *testing.T) {
	ctx := context.Background()
	e, err := Load(ctx, fstest.MapFS{"a.rego": {Data: []byte("package dsbx.admission\n\ndecision := {\"allow\": false, \"reasons\": []}\n")}})
	if err == nil {
		err = e.CheckExamples(ctx)
	}
	if err == nil || !strings.Contains(err.Error(), "example release/pass: policies: release produced no decision") ||
		!strings.Contains(err.Error(), "example admission/allowed: allow = false, want true") {
		t.Errorf("bundle without release rules: %v", err)
	}
}

func TestReadExamplesRequiresPairs(t *testing.T) {
	ok := func() fstest.MapFS {
		return fstest.MapFS{
			"examples/admission/a.input":  {Data: []byte(`{}`)},
			"examples/admission/a.expect": {Data: []byte(`{}`)},
			"examples/release/b.input":    {Data: []byte(`{}`)},
			"examples/release/b.expect":   {Data: []byte(`{}`)},
		}
	}
	list, err := readPolicyExamples(ok())
	if err != nil || len(list) != 2 || list[0].name != "admission/a" || list[1].name != "release/b" {
		t.Fatalf("%v %v", list, err)
	}
	for name, mod := range map[string]func(fstest.MapFS){
		"a.input has no a.expect":     func(m fstest.MapFS) { delete(m, "examples/admission/a.expect") },
		"b.expect has no b.input":     func(m fstest.MapFS) { delete(m, "examples/release/b.input") },
		"notes.txt is not an example": func(m fstest.MapFS) { m["examples/release/notes.txt"] = &fstest.MapFile{} },
		"examples/release": func(m fstest.MapFS) {
			delete(m, "examples/release/b.input")
			delete(m, "examples/release/b.expect")
		},
	} {
		m := ok()
		mod(m)
		if _, err := readPolicyExamples(m); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestCompileSchemaRefusesBrokenSchema(t *testing.T) {
	ctx := context.Background()
	for name, src := range map[string]string{
		"no definitions.release": `{"definitions": {"admission": {}}}`,
		"nonsense":               `{"definitions": {"admission": {"type": "nonsense"}, "release": {}}}`,
	} {
		if _, err := compileSchema(ctx, []byte(src)); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// The schema file on its own (its root is oneOf admission, release) is
// usable by other tools: opa eval with json.match_schema, editors.
func TestSchemaRootAcceptsEitherKind(t *testing.T) {
	ctx := context.Background()
	var schema any
	if err := json.Unmarshal(inputSchema, &schema); err != nil {
		t.Fatal(err)
	}
	pq, err := rego.New(rego.Query("x := json.match_schema(input.doc, input.schema)")).PrepareForEval(ctx)
	if err != nil {
		t.Fatal(err)
	}
	match := func(doc []byte) bool {
		var d any
		if err := json.Unmarshal(doc, &d); err != nil {
			t.Fatal(err)
		}
		rs, err := pq.Eval(ctx, rego.EvalInput(map[string]any{"doc": d, "schema": schema}))
		if err != nil || len(rs) != 1 {
			t.Fatalf("%v %v", rs, err)
		}
		return rs[0].Bindings["x"].([]any)[0].(bool)
	}
	list, err := readPolicyExamples(examplesFS)
	if err != nil {
		t.Fatal(err)
	}
	for _, ex := range list {
		if !match(ex.input) {
			t.Errorf("root schema refuses %s", ex.name)
		}
	}
	if match([]byte(`{"now": "2026-11-23T17:00:00+08:00"}`)) {
		t.Error("root schema accepts a document that is neither kind")
	}
}
