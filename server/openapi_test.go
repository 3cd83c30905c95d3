package server

import (
	"context"
	"io"
	"net/http"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/datasandbox/dsbx/audit"
	"github.com/datasandbox/dsbx/datasets"
	"github.com/datasandbox/dsbx/datasets/synthetic"
	"github.com/datasandbox/dsbx/disclosure"
	"github.com/datasandbox/dsbx/jobs"
	"github.com/datasandbox/dsbx/operators"
	"github.com/datasandbox/dsbx/policies"
	"github.com/datasandbox/dsbx/privacy"
	"github.com/datasandbox/dsbx/sandbox/wasm"
)

// loadOpenAPI parses and validates an OpenAPI document.
func loadOpenAPI(t *testing.T, data []byte) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(data)
	if err != nil {
		t.Fatalf("load the OpenAPI document: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("the OpenAPI document is not valid: %v", err)
	}
	return doc
}

// goRoute is a registered route pattern in OpenAPI terms.
type goRoute struct {
	pattern, method, path string
	params                []string // path parameter names, in order
}

var patternParam = regexp.MustCompile(`\{([A-Za-z_][A-Za-z0-9_]*)(\.\.\.)?\}`)

// parseRoute turns "GET /v1/jobs/{id}" (or {rest...}) into its OpenAPI
// method and path ("/v1/jobs/{id}").
func parseRoute(t *testing.T, pattern string) goRoute {
	t.Helper()
	method, path, ok := strings.Cut(pattern, " ")
	if !ok || method == "" || !strings.HasPrefix(path, "/") {
		t.Fatalf("route %q has no method: every API route names one", pattern)
	}
	path = strings.ReplaceAll(path, "{$}", "")
	r := goRoute{pattern: pattern, method: method}
	r.path = patternParam.ReplaceAllStringFunc(path, func(m string) string {
		name := patternParam.FindStringSubmatch(m)[1]
		r.params = append(r.params, name)
		return "{" + name + "}"
	})
	return r
}

func (r goRoute) key() string { return r.method + " " + r.path }

// documented lists the document's operations by "METHOD /path".
func documented(doc *openapi3.T) map[string]*openapi3.Operation {
	out := map[string]*openapi3.Operation{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			out[strings.ToUpper(method)+" "+path] = op
		}
	}
	return out
}

// xRoles reads an operation's x-roles extension.
func xRoles(t *testing.T, key string, op *openapi3.Operation) []string {
	t.Helper()
	raw, ok := op.Extensions["x-roles"]
	if !ok {
		t.Errorf("%s has no x-roles", key)
		return nil
	}
	list, ok := raw.([]any)
	if !ok || len(list) == 0 {
		t.Errorf("%s: x-roles is %#v, not a list of roles", key, raw)
		return nil
	}
	var out []string
	for _, v := range list {
		s, ok := v.(string)
		if !ok {
			t.Errorf("%s: x-roles holds %#v, not a role name", key, v)
			continue
		}
		out = append(out, s)
	}
	return out
}

func TestOpenAPIServed(t *testing.T) {
	p := start(t)
	resp, err := http.Get(p.base + "/v1/openapi.json") // no token: the description is public
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/openapi.json without a token: %d %s", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	doc := loadOpenAPI(t, body)
	if doc.OpenAPI != "3.0.3" {
		t.Errorf("openapi %q, want 3.0.3", doc.OpenAPI)
	}
	if doc.Info == nil || doc.Info.Title != "DataSandbox API" || doc.Info.Version != "v1" || !strings.Contains(doc.Info.Description, "Authorization: Bearer <token>") {
		t.Errorf("info does not name the API, its version and its authentication: %+v", doc.Info)
	}
	scheme := doc.Components.SecuritySchemes["bearerAuth"]
	if scheme == nil || scheme.Value == nil || scheme.Value.Type != "http" || scheme.Value.Scheme != "bearer" {
		t.Errorf("no http bearer security scheme named bearerAuth")
	}
	if len(doc.Security) != 1 || doc.Security[0]["bearerAuth"] == nil {
		t.Errorf("bearerAuth is not required globally: %v", doc.Security)
	}
}

// TestOpenAPIRoutes checks that the document describes exactly the routes
// the server registers, each completely.
func TestOpenAPIRoutes(t *testing.T) {
	p := start(t)
	doc := loadOpenAPI(t, openAPIDocument)
	ops := documented(doc)

	registered := map[string]goRoute{}
	for _, pattern := range p.srv.Routes() {
		r := parseRoute(t, pattern)
		registered[r.key()] = r
		if ops[r.key()] == nil {
			t.Errorf("route %q is not documented in openapi.json (as %s)", pattern, r.key())
		}
	}
	for key := range ops {
		if _, ok := registered[key]; !ok {
			t.Errorf("openapi.json documents %s, which is not a registered route", key)
		}
	}
	if len(registered) < 60 {
		t.Errorf("only %d routes registered; Routes() lost some", len(registered))
	}

	public := publicRoutes(t)
	ids := map[string]string{}
	for key, r := range registered {
		op := ops[key]
		if op == nil {
			continue
		}
		if op.OperationID == "" {
			t.Errorf("%s has no operationId", key)
		} else if other, dup := ids[op.OperationID]; dup {
			t.Errorf("%s and %s share operationId %s", key, other, op.OperationID)
		} else {
			ids[op.OperationID] = key
		}
		if strings.TrimSpace(op.Summary) == "" {
			t.Errorf("%s has no summary", key)
		}
		if strings.TrimSpace(op.Description) == "" {
			t.Errorf("%s has no description saying who may call it", key)
		}
		xRoles(t, key, op)

		var ok2xx, has4xx bool
		for code, resp := range op.Responses.Map() {
			switch {
			case len(code) == 3 && code[0] == '2':
				ok2xx = true
			case len(code) == 3 && code[0] == '4':
				has4xx = true
				if resp.Value == nil || resp.Value.Content.Get("application/json") == nil {
					t.Errorf("%s: response %s has no JSON body", key, code)
					continue
				}
				if s := resp.Value.Content.Get("application/json").Schema; !refersToError(s) {
					t.Errorf("%s: response %s does not answer the shared Error schema", key, code)
				}
			}
		}
		if !ok2xx {
			t.Errorf("%s documents no 2xx response", key)
		}
		if !public[r.pattern] {
			if !has4xx {
				t.Errorf("%s documents no 4xx response", key)
			}
			if op.Responses.Value("401") == nil {
				t.Errorf("%s takes a token but documents no 401", key)
			}
		}

		declared := map[string]bool{}
		for _, pr := range op.Parameters {
			if pr.Value != nil && pr.Value.In == openapi3.ParameterInPath {
				declared[pr.Value.Name] = true
			}
		}
		if item := doc.Paths.Value(r.path); item != nil {
			for _, pr := range item.Parameters {
				if pr.Value != nil && pr.Value.In == openapi3.ParameterInPath {
					declared[pr.Value.Name] = true
				}
			}
		}
		for _, name := range r.params {
			if !declared[name] {
				t.Errorf("%s does not declare its path parameter %s", key, name)
			}
		}
		if len(declared) != len(r.params) {
			t.Errorf("%s declares path parameters %v; the route has %v", key, keys(declared), r.params)
		}
	}
	t.Logf("%d operations, %d schemas", len(ops), len(doc.Components.Schemas))
}

// refersToError reports whether s is the Error schema, or a oneOf that
// includes it (POST /v1/jobs answers a denied job with 403 too).
func refersToError(s *openapi3.SchemaRef) bool {
	if s == nil {
		return false
	}
	if s.Ref == "#/components/schemas/Error" {
		return true
	}
	if s.Value != nil {
		for _, o := range s.Value.OneOf {
			if o.Ref == "#/components/schemas/Error" {
				return true
			}
		}
	}
	return false
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// routeLine matches a route's registration in routes.go, with the name of
// its access rule when it goes through s.auth.
var routeLine = regexp.MustCompile(`mux\.HandleFunc\("([A-Z]+ [^"]+)",\s*(?:s\.auth\(([A-Za-z_][A-Za-z0-9_]*),)?`)

// routeRules reads routes.go: pattern → the name of its rule, "" for a
// public route.
func routeRules(t *testing.T) map[string]string {
	t.Helper()
	src, err := os.ReadFile("routes.go")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, m := range routeLine.FindAllStringSubmatch(string(src), -1) {
		out[m[1]] = m[2]
	}
	return out
}

func publicRoutes(t *testing.T) map[string]bool {
	out := map[string]bool{}
	for pattern, rule := range routeRules(t) {
		if rule == "" {
			out[pattern] = true
		}
	}
	return out
}

// accessRules are the rules of access.go by the names routes.go uses.
var accessRules = map[string]rule{
	"anyone":               anyone,
	"signedIn":             signedIn,
	"nodes":                nodes,
	"admins":               admins,
	"requesters":           requesters,
	"providers":            providers,
	"stewards":             stewards,
	"overseers":            overseers,
	"reviewers":            reviewers,
	"inspectors":           inspectors,
	"actors":               actors,
	"overseersAndStewards": overseersAndStewards,
}

// ruleRoles is what x-roles must say for r: its roles, or "any".
func ruleRoles(r rule) []string {
	if r.roles == nil {
		return []string{"any"}
	}
	return slices.Clone(r.roles)
}

// TestOpenAPIRoles checks each operation's x-roles and security against
// the access rule its route is registered with.
func TestOpenAPIRoles(t *testing.T) {
	p := start(t)
	doc := loadOpenAPI(t, openAPIDocument)
	ops := documented(doc)
	rules := routeRules(t)
	known := append(slices.Clone(operators.Roles), "any")

	for _, pattern := range p.srv.Routes() {
		r := parseRoute(t, pattern)
		op := ops[r.key()]
		if op == nil {
			continue // TestOpenAPIRoutes names it
		}
		name, ok := rules[pattern]
		if !ok {
			t.Errorf("route %q is registered, but not on a line of routes.go this test can read", pattern)
			continue
		}
		var want []string
		if name == "" {
			want = []string{"any"}
			if op.Security == nil || len(*op.Security) != 0 {
				t.Errorf("%s is public, but its operation does not override security with []", r.key())
			}
		} else {
			rl, ok := accessRules[name]
			if !ok {
				t.Errorf("route %q uses rule %s, which this test does not know; add it to accessRules", pattern, name)
				continue
			}
			want = ruleRoles(rl)
			if op.Security != nil && len(*op.Security) == 0 {
				t.Errorf("%s takes a token (rule %s), but its operation is documented as public", r.key(), name)
			}
		}
		got := xRoles(t, r.key(), op)
		for _, role := range got {
			if !slices.Contains(known, role) {
				t.Errorf("%s: x-roles names %q, which is not a role", r.key(), role)
			}
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s: x-roles %v, but rule %q admits %v", r.key(), got, name, want)
		}
	}
}

// jsonFields lists the JSON names of typ's fields, following embedded
// structs as encoding/json does.
func jsonFields(typ reflect.Type) []string {
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	var out []string
	for i := 0; i < typ.NumField(); i++ {
		f := typ.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if name == "" && f.Anonymous && ft.Kind() == reflect.Struct {
			out = append(out, jsonFields(ft)...)
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// schemaAt finds a schema by component name and a path of property names
// ("[]" steps into an array's items).
func schemaAt(t *testing.T, doc *openapi3.T, path string) *openapi3.Schema {
	t.Helper()
	parts := strings.Split(path, ".")
	ref := doc.Components.Schemas[parts[0]]
	if ref == nil || ref.Value == nil {
		t.Fatalf("components.schemas has no %s", parts[0])
	}
	s := ref.Value
	for _, p := range parts[1:] {
		var next *openapi3.SchemaRef
		if p == "[]" {
			next = s.Items
		} else {
			next = s.Properties[p]
		}
		if next == nil || next.Value == nil {
			t.Fatalf("schema %s has no %s", path, p)
		}
		s = next.Value
	}
	return s
}

// TestOpenAPISchemas checks that the documented schemas have exactly the
// JSON fields of the Go types they describe: a new field without
// documentation fails, and so does a documented field the type lacks.
func TestOpenAPISchemas(t *testing.T) {
	doc := loadOpenAPI(t, openAPIDocument)
	for path, typ := range map[string]reflect.Type{
		"Job":                         reflect.TypeFor[jobs.Job](), // with the embedded jobs.Record
		"Request":                     reflect.TypeFor[jobs.Request](),
		"ReviewRequest":               reflect.TypeFor[jobs.ReviewRequest](),
		"Justification":               reflect.TypeFor[Justification](),
		"NodeEvent":                   reflect.TypeFor[jobs.NodeEvent](),
		"Budget":                      reflect.TypeFor[jobs.Budget](),
		"Spend":                       reflect.TypeFor[privacy.Spend](),
		"Replay":                      reflect.TypeFor[jobs.Replay](),
		"Explanation":                 reflect.TypeFor[jobs.Explanation](),
		"Analysis":                    reflect.TypeFor[jobs.Analysis](),
		"Module":                      reflect.TypeFor[jobs.Module](),
		"Module.output":               reflect.TypeFor[wasm.Output](),
		"JobOutput":                   reflect.TypeFor[jobs.Output](),
		"RunReport":                   reflect.TypeFor[jobs.RunReport](),
		"GuestRun":                    reflect.TypeFor[jobs.GuestRun](),
		"GuestRun.progress":           reflect.TypeFor[wasm.Progress](),
		"Result":                      reflect.TypeFor[jobs.Result](),
		"ReleasedFile":                reflect.TypeFor[jobs.ReleasedFile](),
		"Review":                      reflect.TypeFor[jobs.Review](),
		"ReviewDecision":              reflect.TypeFor[jobs.ReviewDecision](),
		"Finding":                     reflect.TypeFor[disclosure.Finding](),
		"Finding.cells.[]":            reflect.TypeFor[disclosure.CellFinding](),
		"DisclosureChange":            reflect.TypeFor[disclosure.Change](),
		"PolicyDecision":              reflect.TypeFor[policies.Decision](),
		"Reason":                      reflect.TypeFor[policies.Reason](),
		"Limits":                      reflect.TypeFor[policies.Limits](),
		"ReleaseDecision":             reflect.TypeFor[policies.ReleaseDecision](),
		"Bundle":                      reflect.TypeFor[Bundle](),
		"Entry":                       reflect.TypeFor[audit.Entry](),
		"WireProof":                   reflect.TypeFor[audit.WireProof](),
		"DatasetEntry":                reflect.TypeFor[datasets.Entry](),
		"DatasetSpec":                 reflect.TypeFor[datasets.Spec](),
		"Field":                       reflect.TypeFor[datasets.Field](),
		"Version":                     reflect.TypeFor[datasets.Version](),
		"ColumnStats":                 reflect.TypeFor[datasets.ColumnStats](),
		"Quality":                     reflect.TypeFor[datasets.Quality](),
		"Violation":                   reflect.TypeFor[datasets.Violation](),
		"Violation.examples.[]":       reflect.TypeFor[datasets.Example](),
		"Imported":                    reflect.TypeFor[datasets.Imported](),
		"ImportStep":                  reflect.TypeFor[datasets.Step](),
		"Objection":                   reflect.TypeFor[datasets.Objection](),
		"Decision":                    reflect.TypeFor[Decision](),
		"ReinstateBody":               reflect.TypeFor[reasonBody](),
		"Profile":                     reflect.TypeFor[synthetic.Profile](),
		"ProfileColumn":               reflect.TypeFor[synthetic.Column](),
		"ProfileColumn.categories.[]": reflect.TypeFor[synthetic.Category](),
		"ProfileColumn.range":         reflect.TypeFor[synthetic.Range](),
		"ProfileColumn.pattern":       reflect.TypeFor[synthetic.Pattern](),
		"Principal":                   reflect.TypeFor[operators.Principal](),
		"NewPrincipal":                reflect.TypeFor[operators.NewPrincipal](),
		"Credential":                  reflect.TypeFor[operators.Credential](),
		"Issued":                      reflect.TypeFor[operators.Issued](),
		"ApplicationRequest":          reflect.TypeFor[operators.Request](),
		"DatasetRequest":              reflect.TypeFor[operators.DatasetRequest](),
		"Application":                 reflect.TypeFor[operators.Application](), // with the embedded operators.Request
		"Agreement":                   reflect.TypeFor[operators.Agreement](),   // with the embedded operators.Term
		"AgreementChange":             reflect.TypeFor[operators.Change](),
		"Scope":                       reflect.TypeFor[operators.Scope](),
		"OutputRules":                 reflect.TypeFor[operators.OutputRules](),
		"Quotas":                      reflect.TypeFor[operators.Quotas](),
		"Approval":                    reflect.TypeFor[operators.Approval](),
		"PrivacyConfig":               reflect.TypeFor[privacy.Config](),
		"Error.error":                 reflect.TypeFor[Error](),
	} {
		t.Run(path, func(t *testing.T) {
			s := schemaAt(t, doc, path)
			want := jsonFields(typ)
			got := keys(s.Properties)
			for _, f := range want {
				if s.Properties[f] == nil {
					t.Errorf("schema %s lacks property %q of %v", path, f, typ)
				}
			}
			for _, f := range got {
				if !slices.Contains(want, f) {
					t.Errorf("schema %s documents property %q, which %v does not have", path, f, typ)
				}
			}
			for _, f := range s.Required {
				if s.Properties[f] == nil {
					t.Errorf("schema %s requires %q, which it does not document", path, f)
				}
			}
		})
	}
}
