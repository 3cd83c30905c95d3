package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/datasandbox/dsbx/audit"
	"github.com/datasandbox/dsbx/jobs"
	"github.com/datasandbox/dsbx/operators"
)

// Roles of the access table, each held by one principal.
const (
	rAdmin     = "admin"
	rProvider  = "provider"       // speaks for the agency owning people
	rStranger  = "other-provider" // a provider for another agency
	rOperator  = "operator"       // acme: holds the agreement on people
	rResearch  = "researcher"     // no agreement
	rReviewer  = "reviewer"
	rRegulator = "regulator"
	rNode      = "node" // a job node (dsbx worker): only its own routes
)

var tableRoles = []string{rAdmin, rProvider, rStranger, rOperator, rResearch, rReviewer, rRegulator, rNode}

// tokens returns a token for each table role on p.
func (p *platform) tokens(t *testing.T) map[string]string {
	t.Helper()
	ctx := context.Background()
	toks := map[string]string{rAdmin: tokenOf(t, p.admin), rProvider: tokenOf(t, p.provider), rOperator: tokenOf(t, p.operator)}
	for _, np := range []struct {
		role string
		p    operators.NewPrincipal
	}{
		{rStranger, operators.NewPrincipal{Name: "other-bureau", Roles: []string{operators.RoleProvider}, Organization: "Other Bureau"}},
		{rResearch, operators.NewPrincipal{Name: "lab", Roles: []string{operators.RoleResearcher}}},
		{rReviewer, operators.NewPrincipal{Name: "checker", Roles: []string{operators.RoleReviewer}}},
		{rRegulator, operators.NewPrincipal{Name: "auditor", Roles: []string{operators.RoleRegulator}}},
		{rNode, operators.NewPrincipal{Name: "node-1", Roles: []string{operators.RoleNode}}},
	} {
		_, issued, err := p.admin.AddPrincipal(ctx, np.p)
		if err != nil {
			t.Fatal(err)
		}
		toks[np.role] = issued.Token
	}
	return toks
}

// TestRoleByEndpoint calls every route as every role and checks the answer:
// a role outside the route's rule, or without ownership of the thing acted
// on, gets 403 "forbidden" (recorded as access.denied); every other answer
// is the route's own, listed per role. Every change that succeeds is in the
// audit log under the caller's name and token.
func TestRoleByEndpoint(t *testing.T) {
	p := start(t)
	ctx := context.Background()
	toks := p.tokens(t)
	job := p.run(t, "SELECT district, count(*) AS n FROM people WHERE district <> '临安区' GROUP BY district")
	if job.State != jobs.StateReleased {
		t.Fatalf("setup job %s", job.State)
	}
	objection, err := p.operator.Object(ctx, "people", "", "my district is small")
	if err != nil {
		t.Fatal(err)
	}
	agreements, err := p.operator.Agreements(ctx, operators.AgreementFilter{})
	if err != nil || len(agreements) != 1 {
		t.Fatalf("agreements %v %v", agreements, err)
	}
	agreement := agreements[0]
	version := p.version(t)

	const F = http.StatusForbidden
	// all is every role but a job node, which may call only its own routes.
	all := func(status int) map[string]int {
		m := map[string]int{}
		for _, r := range tableRoles {
			m[r] = status
		}
		m[rNode] = F
		return m
	}
	only := func(status int, roles ...string) map[string]int {
		m := all(F)
		for _, r := range roles {
			m[r] = status
		}
		return m
	}
	with := func(m map[string]int, role string, status int) map[string]int {
		m[role] = status
		return m
	}
	cases := []struct {
		method, path string
		body         func(role string) string
		want         map[string]int
	}{
		{"GET", "/v1/whoami", nil, with(all(200), rNode, 200)},
		{"POST", "/v1/nodes/events", func(string) string { return `{"kind":"job.submitted","subject":"job/1"}` }, only(400, rNode)},
		{"GET", "/v1/datasets", nil, all(200)},
		{"GET", "/v1/datasets/people", nil, all(200)},
		{"POST", "/v1/datasets", func(role string) string {
			return fmt.Sprintf(`{"name":"reg_%s","agency":%q,"grade":"general","open":"conditional","legal_basis":"test","fields":[{"name":"a","type":"INTEGER","sensitivity":"public","identifier":"none"}]}`, strings.ReplaceAll(role, "-", "_"), agency)
		}, only(201, rAdmin, rProvider)},
		{"POST", "/v1/datasets/people/versions?source=empty.csv", func(string) string { return "" }, only(400, rAdmin, rProvider)},
		{"POST", "/v1/datasets/people/versions/" + version + "/seal", func(string) string { return `{"reason":""}` }, only(400, rAdmin, rProvider)},
		{"POST", "/v1/datasets/people/versions/" + version + "/destroy", func(string) string { return `{"reason":""}` }, only(400, rAdmin, rProvider)},
		{"POST", "/v1/datasets/people/reinstate", func(string) string { return `{"reason":""}` }, only(400, rAdmin, rProvider)},
		{"GET", "/v1/datasets/people/profile", nil, all(200)},
		{"GET", "/v1/datasets/people/dummy?rows=5", nil, all(200)},

		{"POST", "/v1/objections", func(string) string { return `{"dataset":"people","reason":""}` }, with(all(400), rRegulator, F)},
		{"GET", "/v1/objections", nil, all(200)},
		{"GET", fmt.Sprintf("/v1/objections/%d", objection.ID), nil, with(with(with(with(all(404), rAdmin, 200), rProvider, 200), rOperator, 200), rRegulator, 200)},
		{"POST", fmt.Sprintf("/v1/objections/%d/decision", objection.ID), func(string) string { return `{"uphold":false,"reason":""}` }, only(400, rAdmin, rProvider)},
		{"GET", fmt.Sprintf("/v1/objections/%d/released", objection.ID), nil, only(400, rAdmin, rProvider, rRegulator)},

		{"POST", "/v1/principals", func(string) string { return `{"name":"x","roles":[]}` }, only(422, rAdmin)},
		{"GET", "/v1/principals", nil, only(200, rAdmin, rRegulator)},
		{"GET", "/v1/principals/acme", nil, with(with(with(all(404), rAdmin, 200), rRegulator, 200), rOperator, 200)},
		{"PUT", "/v1/principals/acme/roles", func(string) string { return `{"roles":["operator","admin"]}` }, only(422, rAdmin)},
		{"POST", "/v1/principals/acme/disable", func(string) string { return `{"reason":""}` }, only(422, rAdmin)},
		{"POST", "/v1/principals/acme/enable", nil, only(409, rAdmin)},

		{"GET", "/v1/tokens", nil, all(200)},
		{"GET", "/v1/tokens?principal=acme", nil, with(with(with(all(404), rAdmin, 200), rRegulator, 200), rOperator, 200)},
		{"POST", "/v1/tokens", func(string) string { return `{"expires":"yesterday"}` }, all(422)},
		{"POST", "/v1/tokens", func(string) string { return `{"principal":"lab","expires":"yesterday"}` }, with(with(all(F), rAdmin, 422), rResearch, 422)},
		{"POST", "/v1/tokens/tok_000000000000/revoke", nil, all(404)},
		{"POST", "/v1/tokens/tok_000000000000/rotate", func(string) string { return `{}` }, all(404)},

		{"POST", "/v1/applications", func(string) string { return `{"datasets":[],"purpose":"x","valid_until":"2027-01-01"}` }, only(422, rOperator, rResearch)},
		{"GET", "/v1/applications", nil, all(200)},
		{"GET", fmt.Sprintf("/v1/applications/%d", agreement.ApplicationID), nil, with(with(with(with(all(404), rAdmin, 200), rProvider, 200), rOperator, 200), rRegulator, 200)},
		{"POST", fmt.Sprintf("/v1/applications/%d/approve", agreement.ApplicationID), func(string) string { return `{}` }, only(409, rProvider)},
		{"POST", fmt.Sprintf("/v1/applications/%d/refuse", agreement.ApplicationID), func(string) string { return `{"reason":"no"}` }, only(409, rProvider)},
		{"POST", fmt.Sprintf("/v1/applications/%d/withdraw", agreement.ApplicationID), nil, with(only(409, rOperator), rResearch, 404)},

		{"GET", "/v1/agreements", nil, all(200)},
		{"GET", fmt.Sprintf("/v1/agreements/%d", agreement.ID), nil, with(with(with(with(all(404), rAdmin, 200), rRegulator, 200), rOperator, 200), rProvider, 200)},
		{"POST", fmt.Sprintf("/v1/agreements/%d/suspend", agreement.ID), func(string) string { return `{"reason":""}` }, only(422, rAdmin, rProvider)},
		{"POST", fmt.Sprintf("/v1/agreements/%d/resume", agreement.ID), func(string) string { return `{"reason":""}` }, only(422, rAdmin, rProvider)},
		{"POST", fmt.Sprintf("/v1/agreements/%d/revoke", agreement.ID), func(string) string { return `{"reason":""}` }, only(422, rAdmin, rProvider)},

		{"POST", "/v1/jobs", func(string) string { return `{"dataset":"people","purpose":"x"}` }, only(400, rOperator, rResearch)},
		{"GET", "/v1/jobs", nil, all(200)},
		{"GET", fmt.Sprintf("/v1/jobs/%d", job.ID), nil, with(with(all(200), rResearch, 404), rStranger, 404)},
		{"GET", fmt.Sprintf("/v1/jobs/%d/result", job.ID), nil, with(only(200, rOperator), rResearch, 404)},
		{"POST", fmt.Sprintf("/v1/jobs/%d/justification", job.ID), func(string) string { return `{"justification":"x"}` }, with(only(409, rOperator), rResearch, 404)},
		{"POST", fmt.Sprintf("/v1/jobs/%d/review", job.ID), func(string) string { return `{"approve":true,"reason":"x"}` }, only(409, rReviewer)},
		{"GET", "/v1/reviews", nil, only(200, rReviewer)},
		{"GET", fmt.Sprintf("/v1/jobs/%d/guest-log", job.ID), nil, only(409, rReviewer, rRegulator, rAdmin)},
		{"GET", fmt.Sprintf("/v1/jobs/%d/candidate", job.ID), nil, only(409, rReviewer)},
		{"GET", "/v1/privacy/budgets", nil, all(200)},

		{"GET", "/v1/audit/checkpoint", nil, all(200)},
		{"GET", "/v1/audit/entries", nil, only(200, rAdmin, rRegulator)},
		{"GET", "/v1/audit/events?kind=job.", nil, only(200, rAdmin, rRegulator)},
		{"GET", "/v1/audit/alerts", nil, only(200, rAdmin, rRegulator)},
		{"GET", "/v1/audit/proof/inclusion?seq=0&size=1", nil, only(200, rAdmin, rRegulator)},
		{"GET", "/v1/audit/proof/consistency?old=1&new=2", nil, all(200)},
		{"GET", "/v1/audit/checkpoints", nil, all(200)},
		{"POST", "/v1/audit/checkpoints", nil, only(200, rAdmin, rRegulator)},
		{"POST", fmt.Sprintf("/v1/audit/replay/%d", job.ID), nil, only(200, rAdmin, rRegulator)},
	}
	// Things a role may not see at all (another's objection, application,
	// agreement, job or principal) answer 404, as if they did not exist.
	for _, tc := range cases {
		for _, role := range tableRoles {
			name := fmt.Sprintf("%s %s as %s", tc.method, tc.path, role)
			want, ok := tc.want[role]
			if !ok {
				t.Fatalf("%s: no expectation", name)
			}
			var body io.Reader
			if tc.body != nil {
				body = strings.NewReader(tc.body(role))
			}
			before := p.srv.log.Size()
			status, code := p.call(t, tc.method, tc.path, toks[role], body)
			if status != want {
				t.Errorf("%s: HTTP %d (%s), want %d", name, status, code, want)
				continue
			}
			if status == F && code != "forbidden" && !strings.HasSuffix(tc.path, "/download") {
				t.Errorf("%s: 403 with code %q, want forbidden", name, code)
			}
			var entries []audit.Entry
			for _, e := range p.entriesSince(t, before) {
				if e.Kind != "principal.signed_in" { // a token's first use; TestSignIns covers it
					entries = append(entries, e)
				}
			}
			principal := p.whoami(t, toks[role])
			switch {
			case status == F:
				if len(entries) != 1 || entries[0].Kind != "access.denied" || entries[0].Principal != principal {
					t.Errorf("%s: refused, audit got %v, want one access.denied by %s", name, kinds(entries), principal)
				}
			case status >= 200 && status < 300 && tc.method != http.MethodGet:
				if len(entries) == 0 {
					t.Errorf("%s: a change with no audit entry", name)
				}
				for _, e := range entries {
					if e.Principal != principal || !strings.HasPrefix(e.Credential, "tok_") {
						t.Errorf("%s: entry %s by %q with credential %q, want %s and a token ID", name, e.Kind, e.Principal, e.Credential, principal)
					}
				}
			}
		}
	}
}

// call sends one request and returns the status and error code (if any).
func (p *platform) call(t *testing.T, method, path, token string, body io.Reader) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, p.base+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var e struct {
		Error Error `json:"error"`
	}
	json.Unmarshal(b, &e)
	return resp.StatusCode, e.Error.Code
}

func (p *platform) whoami(t *testing.T, token string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, p.base+"/v1/whoami", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var who operators.Principal
	if err := json.NewDecoder(resp.Body).Decode(&who); err != nil {
		t.Fatal(err)
	}
	return who.Name
}

func (p *platform) entriesSince(t *testing.T, from int64) []audit.Entry {
	t.Helper()
	recs, err := p.srv.log.Records(from, p.srv.log.Size())
	if err != nil {
		t.Fatal(err)
	}
	var out []audit.Entry
	for _, r := range recs {
		var e audit.Entry
		if err := json.Unmarshal(r, &e); err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

func kinds(es []audit.Entry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Kind)
	}
	return out
}

func (p *platform) version(t *testing.T) string {
	t.Helper()
	e, err := p.admin.Dataset(context.Background(), "people")
	if err != nil || len(e.Versions) == 0 {
		t.Fatalf("people: %v", err)
	}
	return e.Versions[0].ID
}
