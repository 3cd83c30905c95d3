package policies

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown/cache"
)

// The policy input contract: input.schema.json documents, as JSON Schema
// (draft-07), the documents the bundle sees as input; examples/ holds
// realistic inputs, each with the decision the bundle must reach on it.
//
//	examples/admission/NAME.input   an admission input (AdmissionInput), JSON
//	examples/admission/NAME.expect  {"allow": bool, "codes": [...], "agreement_id"?: n, "fields"?: {...}}, JSON
//	examples/release/NAME.input     a release input (ReleaseInput), JSON
//	examples/release/NAME.expect    {"outcome": "release"|"review"|"reject", "codes": [...]}, JSON
//
// They are JSON without the .json extension so that `opa test policies/`
// does not load them as data.
var (
	//go:embed input.schema.json
	inputSchema []byte

	//go:embed examples
	examplesFS embed.FS
)

// Input kinds, as ValidateInput and the examples/ directories name them.
const (
	inputKindAdmission = "admission"
	inputKindRelease   = "release"
)

// InputError reports a policy input that does not match input.schema.json.
type InputError struct {
	// Kind is "admission" or "release".
	Kind string
	// Problems are the schema violations, ordered by path.
	Problems []InputProblem
}

// InputProblem is one schema violation.
type InputProblem struct {
	// Path names the offending value: properties separated by dots, array
	// elements by [index], for example "agreements[0].fields.id_number";
	// "" is the document itself.
	Path string
	// Message says what is wrong there.
	Message string
}

func (p InputProblem) String() string {
	if p.Path == "" {
		return "(document): " + p.Message
	}
	return p.Path + ": " + p.Message
}

func (e *InputError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.String()
	}
	return fmt.Sprintf("policies: %s input does not match input.schema.json: %s", e.Kind, strings.Join(parts, "; "))
}

// ValidateInput checks doc against the schema of kind ("admission" or
// "release") in the embedded input.schema.json. doc is raw JSON ([]byte or
// json.RawMessage), an AdmissionInput or ReleaseInput (or a pointer to one),
// checked as Admit or Release would send it, or any other value, checked as
// encoding/json marshals it. A mismatch is an *InputError naming the path of
// every violation.
func ValidateInput(ctx context.Context, kind string, doc any) error {
	v, err := loadSchemaValidator()
	if err != nil {
		return err
	}
	pq, ok := v.queries[kind]
	if !ok {
		return fmt.Errorf("policies: unknown input kind %q; want %s or %s", kind, inputKindAdmission, inputKindRelease)
	}
	value, err := inputDocument(doc)
	if err != nil {
		return fmt.Errorf("policies: %s input: %w", kind, err)
	}
	rs, err := pq.Eval(ctx, rego.EvalInput(value), rego.EvalInterQueryBuiltinValueCache(v.cache))
	if err != nil {
		return fmt.Errorf("policies: validate %s input: %w", kind, err)
	}
	if len(rs) != 1 {
		return fmt.Errorf("policies: validate %s input: json.match_schema gave %d results", kind, len(rs))
	}
	res, ok := rs[0].Bindings["result"].([]any)
	if !ok || len(res) != 2 {
		return fmt.Errorf("policies: validate %s input: unexpected json.match_schema result %v", kind, rs[0].Bindings["result"])
	}
	if valid, _ := res[0].(bool); valid {
		return nil
	}
	details, _ := res[1].([]any)
	return &InputError{Kind: kind, Problems: schemaProblems(details)}
}

// inputDocument turns doc into the generic JSON value the schema sees.
func inputDocument(doc any) (any, error) {
	var raw []byte
	switch d := doc.(type) {
	case []byte:
		raw = d
	case json.RawMessage:
		raw = d
	default:
		switch d := doc.(type) {
		case AdmissionInput:
			doc = admissionDefaults(d)
		case *AdmissionInput:
			if d != nil {
				doc = admissionDefaults(*d)
			}
		case ReleaseInput:
			doc = releaseDefaults(d)
		case *ReleaseInput:
			if d != nil {
				doc = releaseDefaults(*d)
			}
		}
		var err error
		if raw, err = json.Marshal(doc); err != nil {
			return nil, err
		}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var value any
	if err := dec.Decode(&value); err != nil {
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("not JSON: data after the document")
	}
	return value, nil
}

// admissionDefaults fills what Admit sends as [] or {} rather than null: a
// null agreement fields map would keep field rules from firing.
func admissionDefaults(in AdmissionInput) AdmissionInput {
	if in.Agreements == nil {
		in.Agreements = []Agreement{}
	}
	in.Agreements = slices.Clone(in.Agreements)
	for i := range in.Agreements {
		if in.Agreements[i].Fields == nil {
			in.Agreements[i].Fields = map[string]string{}
		}
	}
	if in.Dataset.SuspendedFields == nil {
		in.Dataset.SuspendedFields = []string{}
	}
	if in.Job.Outputs == nil {
		in.Job.Outputs = []Output{}
	}
	return in
}

// releaseDefaults fills what Release sends as [] or {} rather than null.
func releaseDefaults(in ReleaseInput) ReleaseInput {
	if in.Agreement.Fields == nil {
		in.Agreement.Fields = map[string]string{}
	}
	if in.Checks == nil {
		in.Checks = []Check{}
	}
	if in.Dataset.SuspendedFields == nil {
		in.Dataset.SuspendedFields = []string{}
	}
	if in.Review.Approvals == nil {
		in.Review.Approvals = []string{}
	}
	return in
}

// The messages of gojsonschema (inside OPA) that name a property below the
// reported field.
var (
	schemaRequiredRE     = regexp.MustCompile(`^(.+) is required$`)
	schemaAdditionalRE   = regexp.MustCompile(`^Additional property (.+) is not allowed$`)
	schemaPropertyNameRE = regexp.MustCompile(`^Property name of "(.+)" does not match$`)
	schemaRootRE         = regexp.MustCompile(`^\((?i:root)\)(\.|$)`) // gojsonschema writes (root) or (Root)
	schemaIndexRE        = regexp.MustCompile(`^[0-9]+$`)
)

// schemaProblems turns json.match_schema's error objects into InputProblems.
func schemaProblems(details []any) []InputProblem {
	var out, summaries []InputProblem
	for _, d := range details {
		m, _ := d.(map[string]any)
		typ, _ := m["type"].(string)
		field, _ := m["field"].(string)
		desc, _ := m["desc"].(string)
		field = schemaRootRE.ReplaceAllString(field, "")
		msg := desc
		switch {
		case typ == "required" && schemaRequiredRE.MatchString(desc):
			field = joinSchemaPath(field, schemaRequiredRE.FindStringSubmatch(desc)[1])
			msg = "is required"
		case typ == "additional_property_not_allowed" && schemaAdditionalRE.MatchString(desc):
			field = joinSchemaPath(field, schemaAdditionalRE.FindStringSubmatch(desc)[1])
			msg = "is not allowed here (no such property)"
		case typ == "invalid_property_name" && schemaPropertyNameRE.MatchString(desc):
			field = joinSchemaPath(field, schemaPropertyNameRE.FindStringSubmatch(desc)[1])
			msg = "is not a valid name here"
		case field != "" && strings.HasPrefix(desc, field+" "):
			msg = strings.TrimPrefix(desc, field+" ")
		}
		if msg != "" {
			msg = strings.ToLower(msg[:1]) + msg[1:]
		}
		p := InputProblem{Path: schemaPath(field), Message: msg}
		switch typ {
		case "number_all_of", "number_any_of", "number_one_of":
			summaries = append(summaries, p) // the details say more
		default:
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		out = summaries
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return slices.Compact(out)
}

func joinSchemaPath(parent, name string) string {
	if parent == "" {
		return name
	}
	return parent + "." + name
}

// schemaPath writes gojsonschema's "agreements.0.fields" as
// "agreements[0].fields".
func schemaPath(field string) string {
	if field == "" {
		return ""
	}
	var b strings.Builder
	for i, seg := range strings.Split(field, ".") {
		switch {
		case schemaIndexRE.MatchString(seg):
			b.WriteString("[" + seg + "]")
		case i > 0:
			b.WriteString("." + seg)
		default:
			b.WriteString(seg)
		}
	}
	return b.String()
}

// schemaValidator holds one prepared json.match_schema query per input kind, and
// the cache in which OPA keeps the compiled schemas between evaluations.
type schemaValidator struct {
	queries map[string]rego.PreparedEvalQuery
	cache   cache.InterQueryValueCache
}

var loadSchemaValidator = sync.OnceValues(func() (*schemaValidator, error) {
	v, err := compileSchema(context.Background(), inputSchema)
	if err != nil {
		return nil, fmt.Errorf("policies: input.schema.json: %w", err)
	}
	return v, nil
})

// compileSchema prepares, for each kind, json.match_schema(input, S) where
// S is the whole schema with its root pointing at #/definitions/KIND, and
// compiles S once by validating an empty document.
func compileSchema(ctx context.Context, src []byte) (*schemaValidator, error) {
	var root map[string]any
	if err := json.Unmarshal(src, &root); err != nil {
		return nil, err
	}
	defs, _ := root["definitions"].(map[string]any)
	v := &schemaValidator{queries: map[string]rego.PreparedEvalQuery{}, cache: cache.NewInterQueryValueCache(ctx, nil)}
	for _, kind := range []string{inputKindAdmission, inputKindRelease} {
		if _, ok := defs[kind]; !ok {
			return nil, fmt.Errorf("no definitions.%s", kind)
		}
		s := make(map[string]any, len(root))
		for k, x := range root {
			s[k] = x
		}
		delete(s, "oneOf")
		s["$ref"] = "#/definitions/" + kind
		value, err := ast.InterfaceToValue(s)
		if err != nil {
			return nil, err
		}
		body := ast.NewBody(ast.Equality.Expr(ast.VarTerm("result"), ast.JSONMatchSchema.Call(ast.NewTerm(ast.InputRootRef), ast.NewTerm(value))))
		// Strict: a schema gojsonschema cannot compile is an error, not an
		// undefined result.
		pq, err := rego.New(rego.ParsedQuery(body), rego.SetRegoVersion(ast.RegoV1), rego.StrictBuiltinErrors(true)).PrepareForEval(ctx)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", kind, err)
		}
		// The first evaluation compiles the schema (and fails if it is
		// not one) and leaves it in the cache.
		rs, err := pq.Eval(ctx, rego.EvalInput(map[string]any{}), rego.EvalInterQueryBuiltinValueCache(v.cache))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", kind, err)
		}
		if len(rs) != 1 {
			return nil, fmt.Errorf("%s: json.match_schema gave %d results", kind, len(rs))
		}
		v.queries[kind] = pq
	}
	return v, nil
}

// A policyExample is one input of examples/ with the decision it must get.
type policyExample struct {
	name   string // "admission/allowed"
	kind   string
	input  []byte
	expect []byte
}

// admissionExpect is an examples/admission/NAME.expect.
type admissionExpect struct {
	// Description says what the example shows.
	Description string   `json:"description"`
	Allow       *bool    `json:"allow"`
	Codes       []string `json:"codes"`
	// AgreementID and Fields, when given, must equal the decision's.
	AgreementID *int64             `json:"agreement_id"`
	Fields      *map[string]string `json:"fields"`
}

// releaseExpect is an examples/release/NAME.expect.
type releaseExpect struct {
	Description string   `json:"description"`
	Outcome     string   `json:"outcome"`
	Codes       []string `json:"codes"`
}

// readPolicyExamples lists the examples of fsys (laid out as examples/), sorted
// by name.
func readPolicyExamples(fsys fs.FS) ([]policyExample, error) {
	var out []policyExample
	for _, kind := range []string{inputKindAdmission, inputKindRelease} {
		dir := path.Join("examples", kind)
		entries, err := fs.ReadDir(fsys, dir)
		if err != nil {
			return nil, fmt.Errorf("policies: examples: %w", err)
		}
		inputs, expects := map[string]bool{}, map[string]bool{}
		for _, ent := range entries {
			n := ent.Name()
			switch {
			case ent.IsDir() || !strings.HasSuffix(n, ".input") && !strings.HasSuffix(n, ".expect"):
				return nil, fmt.Errorf("policies: examples: %s/%s is not an example; want NAME.input and NAME.expect", dir, n)
			case strings.HasSuffix(n, ".expect"):
				expects[strings.TrimSuffix(n, ".expect")] = true
			default:
				inputs[strings.TrimSuffix(n, ".input")] = true
			}
		}
		for n := range expects {
			if !inputs[n] {
				return nil, fmt.Errorf("policies: examples: %s/%s.expect has no %s.input", dir, n, n)
			}
		}
		for n := range inputs {
			if !expects[n] {
				return nil, fmt.Errorf("policies: examples: %s/%s.input has no %s.expect", dir, n, n)
			}
			ex := policyExample{name: kind + "/" + n, kind: kind}
			if ex.input, err = fs.ReadFile(fsys, path.Join(dir, n+".input")); err != nil {
				return nil, fmt.Errorf("policies: examples: %w", err)
			}
			if ex.expect, err = fs.ReadFile(fsys, path.Join(dir, n+".expect")); err != nil {
				return nil, fmt.Errorf("policies: examples: %w", err)
			}
			out = append(out, ex)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, nil
}

// CheckExamples evaluates every embedded example (policies/examples) with e
// and compares the decision with the example's NAME.expect: allow,
// reason codes (as a multiset) and, where the expectation gives them, the
// agreement and the field forms; for release, the outcome and reason codes.
// Each example must also match input.schema.json. The error names every
// example that failed and what differed; Load uses it to refuse a bundle
// that decides the examples differently.
func (e *Engine) CheckExamples(ctx context.Context) error {
	list, err := readPolicyExamples(examplesFS)
	if err != nil {
		return err
	}
	var errs []error
	for _, ex := range list {
		if err := e.checkExample(ctx, ex); err != nil {
			errs = append(errs, fmt.Errorf("policies: example %s: %w", ex.name, err))
		}
	}
	return errors.Join(errs...)
}

func (e *Engine) checkExample(ctx context.Context, ex policyExample) error {
	if err := ValidateInput(ctx, ex.kind, ex.input); err != nil {
		return err
	}
	switch ex.kind {
	case inputKindAdmission:
		var in AdmissionInput
		var want admissionExpect
		if err := decodeExample(ex.input, &in); err != nil {
			return fmt.Errorf("input: %w", err)
		}
		if err := decodeExample(ex.expect, &want); err != nil {
			return fmt.Errorf("expect: %w", err)
		}
		if want.Allow == nil || want.Codes == nil {
			return errors.New("expect: needs allow and codes")
		}
		d, err := e.Admit(ctx, in)
		if err != nil {
			return err
		}
		var diffs []string
		if d.Allow != *want.Allow {
			diffs = append(diffs, fmt.Sprintf("allow = %t, want %t", d.Allow, *want.Allow))
		}
		if got := decisionCodes(d.Reasons); !sameCodes(got, want.Codes) {
			diffs = append(diffs, fmt.Sprintf("codes = %v, want %v", got, sortedCodes(want.Codes)))
		}
		if want.AgreementID != nil && d.AgreementID != *want.AgreementID {
			diffs = append(diffs, fmt.Sprintf("agreement_id = %d, want %d", d.AgreementID, *want.AgreementID))
		}
		if want.Fields != nil && !(len(d.Fields) == 0 && len(*want.Fields) == 0) && !reflect.DeepEqual(d.Fields, *want.Fields) {
			diffs = append(diffs, fmt.Sprintf("fields = %v, want %v", d.Fields, *want.Fields))
		}
		if len(diffs) > 0 {
			return errors.New(strings.Join(diffs, "; "))
		}
	case inputKindRelease:
		var in ReleaseInput
		var want releaseExpect
		if err := decodeExample(ex.input, &in); err != nil {
			return fmt.Errorf("input: %w", err)
		}
		if err := decodeExample(ex.expect, &want); err != nil {
			return fmt.Errorf("expect: %w", err)
		}
		if (want.Outcome != OutcomeRelease && want.Outcome != OutcomeReview && want.Outcome != OutcomeReject) || want.Codes == nil {
			return fmt.Errorf("expect: needs outcome (%s, %s or %s) and codes", OutcomeRelease, OutcomeReview, OutcomeReject)
		}
		d, err := e.Release(ctx, in)
		if err != nil {
			return err
		}
		var diffs []string
		if d.Outcome != want.Outcome {
			diffs = append(diffs, fmt.Sprintf("outcome = %s, want %s", d.Outcome, want.Outcome))
		}
		if got := decisionCodes(d.Reasons); !sameCodes(got, want.Codes) {
			diffs = append(diffs, fmt.Sprintf("codes = %v, want %v", got, sortedCodes(want.Codes)))
		}
		if len(diffs) > 0 {
			return errors.New(strings.Join(diffs, "; "))
		}
	}
	return nil
}

// decodeExample decodes one JSON document, refusing unknown properties.
func decodeExample(raw []byte, out any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(out); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the document")
	}
	return nil
}

func decisionCodes(rs []Reason) []string {
	out := make([]string, 0, len(rs))
	for _, r := range rs {
		out = append(out, r.Code)
	}
	return sortedCodes(out)
}

func sortedCodes(s []string) []string {
	s = slices.Clone(s)
	if s == nil {
		s = []string{}
	}
	sort.Strings(s)
	return s
}

// sameCodes compares reason codes as multisets.
func sameCodes(got, want []string) bool {
	return slices.Equal(sortedCodes(got), sortedCodes(want))
}
