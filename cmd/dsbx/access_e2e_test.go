package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/datasandbox/dsbx/server"
)

// Who may do what, through the CLI: principals and roles, tokens with
// expiry, rotation and revocation, applications refused, withdrawn and
// approved, an agreement suspended, resumed and revoked, and applications
// overdue on the server's clock.
func TestAccessE2E(t *testing.T) {
	var skew atomic.Int64 // how far the server's clock is ahead of the real one
	e := startServerWith(t, server.Config{
		Now:          func() time.Time { return time.Now().Add(time.Duration(skew.Load())) },
		ResponseDays: 2,
	})
	work := t.TempDir()
	csvPath, fieldsPath, _, _ := register(t, work)
	admin := []string{"--token", e.admin}
	e.must(t, append(admin, "dataset", "import", "people", csvPath, "--spec", fieldsPath, "--grade", "important", "--progress", "never")...)

	// Principals.
	add := func(args ...string) []string {
		t.Helper()
		out, errOut, err := e.cli(t, append(append([]string{}, admin...), append([]string{"principal", "add"}, args...)...)...)
		if err != nil {
			t.Fatalf("principal add %s: %v\n%s", strings.Join(args, " "), err, errOut)
		}
		tok := strings.TrimSpace(out)
		if !strings.HasPrefix(tok, "dsbx_") {
			t.Fatalf("principal add %s printed %q, want a token", args[0], out)
		}
		return []string{"--token", tok}
	}
	provider := add("hz-health", "--role", "provider", "--org", "Civil Affairs Bureau")
	acme := add("acme", "--role", "operator")
	lab := add("lab", "--role", "researcher")
	e.fails(t, "unknown role", []string{`--role "wizard"`, "researcher"}, append(admin, "principal", "add", "merlin", "--role", "wizard")...)
	e.fails(t, "provider without organization", []string{"organization", "HTTP 422"}, append(admin, "principal", "add", "nobody", "--role", "provider")...)
	e.fails(t, "requester and provider at once", []string{"two principals"}, append(admin, "principal", "add", "both", "--role", "operator,provider", "--org", "Civil Affairs Bureau")...)
	e.fails(t, "duplicate principal", []string{"already exists", "HTTP 409"}, append(admin, "principal", "add", "acme", "--role", "operator")...)
	e.fails(t, "an operator adds a principal", []string{"HTTP 403"}, append(acme, "principal", "add", "mallory", "--role", "admin")...)

	out := e.must(t, append(admin, "principal", "list")...)
	for _, s := range []string{"NAME", "admin", "hz-health", "provider", "Civil Affairs Bureau", "acme", "operator", "lab", "researcher"} {
		if !strings.Contains(out, s) {
			t.Errorf("principal list does not mention %q:\n%s", s, out)
		}
	}
	e.fails(t, "a researcher changes its roles", []string{"HTTP 403"}, append(lab, "principal", "roles", "lab", "--role", "admin")...)
	out = e.must(t, append(admin, "principal", "roles", "lab", "--role", "researcher", "--org", "Zhejiang University")...)
	if !strings.Contains(out, "lab now holds researcher for Zhejiang University") {
		t.Errorf("principal roles: %q", out)
	}
	var labP map[string]any
	decodeJSON(t, "principal show", e.must(t, append(lab, "--json", "principal", "show", "lab")...), &labP)
	if labP["organization"] != "Zhejiang University" || fmt.Sprint(labP["roles"]) != "[researcher]" {
		t.Errorf("principal show lab: %v", labP)
	}
	e.fails(t, "a researcher looks at another principal", []string{"not found", "HTTP 404"}, append(lab, "principal", "show", "acme")...)

	// Tokens: acme issues itself one for 90 days and one for 12 hours.
	out = e.must(t, append(acme, "--json", "token", "issue", "--label", "laptop", "--expires", "90d")...)
	var laptop struct {
		Token      string `json:"token"`
		Credential struct {
			ID        string     `json:"id"`
			Principal string     `json:"principal"`
			Label     string     `json:"label"`
			ExpiresAt *time.Time `json:"expires_at"`
		} `json:"credential"`
	}
	decodeJSON(t, "token issue", out, &laptop)
	if want := time.Now().Add(90 * 24 * time.Hour); laptop.Credential.ExpiresAt == nil || laptop.Credential.ExpiresAt.Sub(want).Abs() > time.Minute {
		t.Fatalf("token issue --expires 90d: expires %v, want about %v", laptop.Credential.ExpiresAt, want)
	}
	if !strings.HasPrefix(laptop.Token, "dsbx_") || laptop.Credential.Principal != "acme" || laptop.Credential.Label != "laptop" || !strings.HasPrefix(laptop.Credential.ID, "tok_") {
		t.Fatalf("token issue --json: %+v", laptop)
	}
	shortOut, shortErr, err := e.cli(t, append(acme, "token", "issue", "--label", "ci", "--expires", "12h")...)
	if err != nil {
		t.Fatalf("token issue --expires 12h: %v", err)
	}
	shortLived := []string{"--token", strings.TrimSpace(shortOut)}
	if !strings.HasPrefix(shortLived[1], "dsbx_") || strings.Contains(shortLived[1], "\n") || !strings.Contains(shortErr, "issued token tok_") || !strings.Contains(shortErr, "for acme") {
		t.Fatalf("token issue: stdout %q, stderr %q", shortOut, shortErr)
	}
	e.must(t, "--token", laptop.Token, "principal", "show", "acme")
	e.must(t, append(shortLived, "principal", "show", "acme")...)
	e.fails(t, "expiry in the past", []string{"expires", "HTTP 422"}, append(acme, "token", "issue", "--expires", "2001-01-01")...)
	e.fails(t, "expiry that is no time", []string{"expires \"soon\"", "HTTP 422"}, append(acme, "token", "issue", "--expires", "soon")...)
	e.fails(t, "an operator issues a token for another", []string{"HTTP 403", "admin"}, append(acme, "token", "issue", "--principal", "lab")...)
	adminIssued := strings.TrimSpace(e.must(t, append(admin, "token", "issue", "--principal", "lab", "--label", "by admin")...))
	if out := e.must(t, "--token", adminIssued, "--json", "principal", "show", "lab"); !strings.Contains(out, `"name": "lab"`) {
		t.Errorf("token the admin issued for lab: %s", out)
	}
	out = e.must(t, append(acme, "token", "list")...)
	for _, s := range []string{"ID", "EXPIRES", laptop.Credential.ID, "laptop", "ci", "initial", "never", "active"} {
		if !strings.Contains(out, s) {
			t.Errorf("token list does not mention %q:\n%s", s, out)
		}
	}
	e.fails(t, "an operator lists another's tokens", []string{"HTTP 404"}, append(acme, "token", "list", "--principal", "lab")...)
	if out := e.must(t, append(admin, "token", "list", "--principal", "acme")...); !strings.Contains(out, laptop.Credential.ID) {
		t.Errorf("the admin's token list of acme:\n%s", out)
	}

	// Rotation: the new token works, the old one is refused as revoked.
	rotOut, rotErr, err := e.cli(t, "--token", laptop.Token, "token", "rotate", laptop.Credential.ID, "--expires", "30d")
	if err != nil {
		t.Fatalf("token rotate: %v", err)
	}
	rotated := strings.TrimSpace(rotOut)
	if !strings.HasPrefix(rotated, "dsbx_") || rotated == laptop.Token || !strings.Contains(rotErr, laptop.Credential.ID+" revoked") {
		t.Fatalf("token rotate: stdout %q, stderr %q", rotOut, rotErr)
	}
	_, err = e.dsbx(t, "--token", laptop.Token, "principal", "show", "acme")
	if err == nil || exitCode(err) == 0 || !strings.Contains(err.Error(), "revoked") || !strings.Contains(err.Error(), "HTTP 401") {
		t.Fatalf("the rotated-out token: %v (exit code %d), want a refusal mentioning revoked", err, exitCode(err))
	}
	e.must(t, "--token", rotated, "principal", "show", "acme")
	e.fails(t, "rotate a revoked token", []string{"already revoked", "HTTP 409"}, append(acme, "token", "rotate", laptop.Credential.ID)...)
	out = e.must(t, append(acme, "token", "list")...)
	if !strings.Contains(out, "revoked ") || !strings.Contains(out, "by acme") {
		t.Errorf("token list after rotation does not show the revoked token:\n%s", out)
	}
	var creds []map[string]any
	decodeJSON(t, "token list", e.must(t, append(acme, "--json", "token", "list")...), &creds)
	rotatedID := ""
	for _, c := range creds {
		if c["label"] == "laptop" && c["revoked_at"] == nil {
			rotatedID, _ = c["id"].(string)
		}
	}
	if rotatedID == "" {
		t.Fatalf("token list has no live laptop token after rotation: %v", creds)
	}
	out = e.must(t, "--token", rotated, "token", "revoke", rotatedID)
	if out != fmt.Sprintf("token %s of acme revoked\n", rotatedID) {
		t.Errorf("token revoke: %q", out)
	}
	e.fails(t, "a revoked token", []string{"revoked", "HTTP 401"}, "--token", rotated, "principal", "show", "acme")

	// Disabling revokes every token; enabling needs a new one.
	out = e.must(t, append(admin, "principal", "disable", "lab", "--reason", "left the institute")...)
	if !strings.Contains(out, "lab disabled (left the institute)") {
		t.Errorf("principal disable: %q", out)
	}
	e.fails(t, "a disabled principal's token", []string{"disabled", "left the institute", "HTTP 401"}, append(lab, "principal", "show", "lab")...)
	if out := e.must(t, append(admin, "principal", "show", "lab")...); !strings.Contains(out, "disabled: left the institute") {
		t.Errorf("principal show of a disabled principal:\n%s", out)
	}
	e.fails(t, "disable without a reason", []string{"--reason is empty"}, append(admin, "principal", "disable", "acme", "--reason", " ")...)
	out = e.must(t, append(admin, "principal", "enable", "lab")...)
	if !strings.Contains(out, "dsbx token issue --principal lab") {
		t.Errorf("principal enable: %q", out)
	}
	e.fails(t, "an enabled principal's old token", []string{"revoked"}, append(lab, "principal", "show", "lab")...)
	lab = []string{"--token", strings.TrimSpace(e.must(t, append(admin, "token", "issue", "--principal", "lab")...))}

	// Applications: bad flags are refused before anything is sent.
	until := time.Now().UTC().AddDate(1, 0, 0).Format("2006-01-02")
	for _, c := range []struct {
		what string
		want []string
		args []string
	}{
		{"--fields first", []string{"comes before any --dataset"}, []string{"--fields", "district", "--dataset", "people", "--purpose", "p", "--until", until}},
		{"dataset without fields", []string{"people has no fields"}, []string{"--dataset", "people", "--purpose", "p", "--until", until}},
		{"no dataset", []string{"no --dataset"}, []string{"--purpose", "p", "--until", until}},
		{"no until", []string{"no --until"}, []string{"--dataset", "people:district", "--purpose", "p"}},
		{"no purpose", []string{"no --purpose"}, []string{"--dataset", "people:district", "--until", until}},
		{"bad kind", []string{`--kind "lease"`}, []string{"--dataset", "people:district", "--purpose", "p", "--until", until, "--kind", "lease"}},
		{"fields twice", []string{"already lists its fields"}, []string{"--dataset", "people:district", "--fields", "income", "--purpose", "p", "--until", until}},
		{"unknown field", []string{`no field "salary"`, "HTTP 422"}, []string{"--dataset", "people:salary", "--purpose", "p", "--until", until}},
		{"until in the past", []string{"in the past", "HTTP 422"}, []string{"--dataset", "people:district", "--purpose", "p", "--until", "2020-01-01"}},
	} {
		e.fails(t, "application submit: "+c.what, c.want, append(append([]string{}, lab...), append([]string{"application", "submit"}, c.args...)...)...)
	}
	e.fails(t, "a provider applies", []string{"HTTP 403"}, append(provider, "application", "submit", "--dataset", "people:district", "--purpose", "p", "--until", until)...)

	// A refusal, with its reasons.
	out = e.must(t, append(lab, "application", "submit", "--dataset", "people", "--fields", "name,income", "--purpose", "mailing list", "--until", until)...)
	if !strings.HasPrefix(out, "application ") || !strings.Contains(out, "submitted to Civil Affairs Bureau: data-use of people:name,income for \"mailing list\"; answer due by ") {
		t.Fatalf("application submit: %q", out)
	}
	refusedID := strings.Fields(out)[1]
	e.fails(t, "refuse without a reason", []string{"--reason is empty"}, append(provider, "application", "refuse", refusedID, "--reason", "")...)
	e.fails(t, "the applicant refuses", []string{"HTTP 403"}, append(lab, "application", "refuse", refusedID, "--reason", "x")...)
	const refusal = "names are not opened for mailing lists"
	out = e.must(t, append(provider, "application", "refuse", refusedID, "--reason", refusal)...)
	if out != fmt.Sprintf("application %s of lab refused: %s\n", refusedID, refusal) {
		t.Errorf("application refuse: %q", out)
	}
	out = e.must(t, append(lab, "application", "show", refusedID)...)
	for _, s := range []string{"application " + refusedID + ": REFUSED", "reason     " + refusal, "decided", "by hz-health", "people (latest version): name, income", "from approval through " + until} {
		if !strings.Contains(out, s) {
			t.Errorf("application show does not mention %q:\n%s", s, out)
		}
	}
	e.fails(t, "refuse twice", []string{"already refused", "HTTP 409"}, append(provider, "application", "refuse", refusedID, "--reason", "again")...)
	e.fails(t, "approve a refused application", []string{"already refused", "HTTP 409"}, append(provider, "application", "approve", refusedID)...)

	// A withdrawal, from a YAML request file.
	reqFile := filepath.Join(work, "request.yaml")
	os.WriteFile(reqFile, []byte("datasets:\n  - dataset: people\n    fields: [district]\npurpose: district sizes\nvalid_until: "+until+"\n"), 0o600)
	out = e.must(t, append(lab, "--json", "application", "submit", "--file", reqFile)...)
	var withdrawn map[string]any
	decodeJSON(t, "application submit --file", out, &withdrawn)
	endOfUntil, _ := time.ParseInLocation("2006-01-02", until, time.FixedZone("CST", 8*3600))
	if got, err := time.Parse(time.RFC3339, fmt.Sprint(withdrawn["valid_until"])); err != nil || !got.Equal(endOfUntil.AddDate(0, 0, 1)) || withdrawn["purpose"] != "district sizes" {
		t.Fatalf("application from %s: %v", reqFile, withdrawn)
	}
	withdrawnID := strconv.FormatInt(int64(withdrawn["id"].(float64)), 10)
	e.fails(t, "another principal withdraws", []string{"HTTP 404"}, append(acme, "application", "withdraw", withdrawnID)...)
	if out := e.must(t, append(lab, "application", "withdraw", withdrawnID)...); out != "application "+withdrawnID+" withdrawn\n" {
		t.Errorf("application withdraw: %q", out)
	}
	badFile := filepath.Join(work, "bad.yaml")
	os.WriteFile(badFile, []byte("purpose: x\nvalid_until: "+until+"\nfieldz: [a]\n"), 0o600)
	e.fails(t, "request file with an unknown key", []string{"fieldz"}, append(lab, "application", "submit", "--file", badFile)...)

	// An approval, narrowed, and the agreement's life.
	out = e.must(t, append(acme, "application", "submit", "--dataset", "people:district,income,name", "--kind", "authorized-operation",
		"--purpose", purpose, "--scenario", "rent burden by district", "--until", until, "--outputs", "district statistics")...)
	approveID := strings.Fields(out)[1]
	e.fails(t, "approve with a bad ID", []string{`application id "x1"`}, append(provider, "application", "approve", "x1")...)
	e.fails(t, "approve in an unknown form", []string{`form "blurred"`, "masked"}, append(provider, "application", "approve", approveID, "--fields", "people:district=blurred")...)
	e.fails(t, "approve without a dataset", []string{"DATASET:field=form"}, append(provider, "application", "approve", approveID, "--fields", "district")...)
	e.fails(t, "approve a field not asked for", []string{"not asked for", "HTTP 422"}, append(provider, "application", "approve", approveID, "--fields", "people:id_number")...)
	e.fails(t, "approve with a negative quota", []string{"--max-jobs -1"}, append(provider, "application", "approve", approveID, "--max-jobs", "-1")...)
	out = e.must(t, append(provider, "--json", "application", "approve", approveID, "--fields", "people:district,income=raw", "--min-cell-count", "20", "--jobs-per-day", "50", "--note", "no names")...)
	var approved struct {
		Application map[string]any `json:"application"`
		Agreement   struct {
			ID       int64    `json:"id"`
			Holder   string   `json:"holder"`
			Kind     string   `json:"kind"`
			Purposes []string `json:"purposes"`
			Scope    []struct {
				Dataset string            `json:"dataset"`
				Fields  map[string]string `json:"fields"`
			} `json:"scope"`
			Outputs struct {
				MinCellCount int64 `json:"min_cell_count"`
			} `json:"outputs"`
			Quotas struct {
				JobsPerDay int64 `json:"jobs_per_day"`
			} `json:"quotas"`
		} `json:"agreement"`
	}
	decodeJSON(t, "application approve", out, &approved)
	ag := approved.Agreement
	if approved.Application["status"] != "approved" || ag.Holder != "acme" || ag.Kind != "authorized-operation" || len(ag.Scope) != 1 ||
		fmt.Sprint(ag.Scope[0].Fields) != "map[district:raw income:raw]" || ag.Outputs.MinCellCount != 20 || ag.Quotas.JobsPerDay != 50 {
		t.Fatalf("application approve --json: %s", out)
	}
	agID := strconv.FormatInt(ag.ID, 10)
	out = e.must(t, append(provider, "agreement", "list", "--holder", "acme")...)
	for _, s := range []string{"ID", "HOLDER", "SCOPE", agID, "acme", "authorized-operation", "Civil Affairs Bureau", "active", until, purpose, "people:district,income"} {
		if !strings.Contains(out, s) {
			t.Errorf("agreement list does not mention %q:\n%s", s, out)
		}
	}
	if out := e.must(t, append(admin, "agreement", "list", "--dataset", "nosuch")...); strings.Contains(out, "acme") {
		t.Errorf("agreement list --dataset nosuch:\n%s", out)
	}
	e.fails(t, "agreement list with a bad status", []string{`--status "gone"`, "revoked"}, append(admin, "agreement", "list", "--status", "gone")...)

	query := "SELECT district, count(*) AS n FROM people GROUP BY district HAVING count(*) >= 20"
	var job cliJob
	decodeJSON(t, "job under the agreement", e.must(t, append(acme, "--json", "job", "submit", "--dataset", "people", "--sql", query, "--purpose", purpose, "--agreement", agID, "--wait")...), &job)
	if job.State != "released" || job.Decision == nil || job.Decision.AgreementID != ag.ID {
		t.Fatalf("job under agreement %s: %+v", agID, job)
	}
	out, err = e.dsbx(t, append(acme, "--json", "job", "submit", "--dataset", "people", "--sql", query, "--purpose", purpose, "--agreement", "999999", "--wait")...)
	if codeOf(err) != 3 || !strings.Contains(out, "agreement_not_found") {
		t.Errorf("job under an unknown agreement: %v\n%s", err, out)
	}

	e.fails(t, "the holder suspends", []string{"HTTP 403"}, append(acme, "agreement", "suspend", agID, "--reason", "x")...)
	e.fails(t, "resume an active agreement", []string{"HTTP 409"}, append(provider, "agreement", "resume", agID, "--reason", "x")...)
	out = e.must(t, append(provider, "agreement", "suspend", agID, "--reason", "audit of the operator")...)
	if !strings.Contains(out, "agreement "+agID+" of acme suspended: audit of the operator") || !strings.Contains(out, "queued jobs") {
		t.Errorf("agreement suspend: %q", out)
	}
	out, err = e.dsbx(t, append(acme, "--json", "job", "submit", "--dataset", "people", "--sql", query, "--purpose", purpose, "--wait")...)
	if codeOf(err) != 3 || !strings.Contains(out, "is suspended") {
		t.Errorf("job under a suspended agreement: %v\n%s", err, out)
	}
	e.must(t, append(provider, "agreement", "resume", agID, "--reason", "audit passed")...)
	e.must(t, append(acme, "job", "submit", "--dataset", "people", "--sql", query, "--purpose", purpose, "--wait")...)

	out = e.must(t, append(admin, "--json", "agreement", "revoke", agID, "--reason", "breach of the output rules")...)
	var revoked struct {
		Agreement struct {
			Status string `json:"status"`
		} `json:"agreement"`
		Stopped []int64 `json:"stopped_jobs"`
	}
	decodeJSON(t, "agreement revoke", out, &revoked)
	if revoked.Agreement.Status != "revoked" || revoked.Stopped == nil {
		t.Errorf("agreement revoke --json: %s", out)
	}
	out, err = e.dsbx(t, append(acme, "--json", "job", "submit", "--dataset", "people", "--sql", query, "--purpose", purpose, "--agreement", agID, "--wait")...)
	if codeOf(err) != 3 {
		t.Fatalf("job under a revoked agreement: %v, want exit code 3\n%s", err, out)
	}
	job = cliJob{}
	decodeJSON(t, "job under a revoked agreement", out, &job)
	if job.State != "denied" || job.Decision == nil || len(job.Decision.Reasons) == 0 || !strings.Contains(fmt.Sprint(job.Decision.Reasons), "revoked") {
		t.Errorf("job under a revoked agreement: %s", out)
	}
	e.fails(t, "resume a revoked agreement", []string{"HTTP 409"}, append(admin, "agreement", "resume", agID, "--reason", "x")...)
	out = e.must(t, append(acme, "agreement", "show", agID)...)
	for _, s := range []string{"agreement " + agID + ": REVOKED: breach of the output rules", "holder       acme", "district (raw), income (raw)", "at least 20 records per cell", "50 jobs a day",
		"history:", "granted on application " + approveID, "suspended", "audit of the operator", "audit passed", "revoked", "admin", "breach of the output rules"} {
		if !strings.Contains(out, s) {
			t.Errorf("agreement show does not mention %q:\n%s", s, out)
		}
	}
	if out := e.must(t, append(acme, "agreement", "list", "--status", "revoked")...); !strings.Contains(out, agID) {
		t.Errorf("agreement list --status revoked:\n%s", out)
	}

	// Overdue: an application nobody answers, once the server's clock has
	// passed its deadline (2 working days).
	out = e.must(t, append(lab, "application", "submit", "--dataset", "people:income", "--purpose", "income brackets", "--until", until)...)
	lateID := strings.Fields(out)[1]
	e.fails(t, "application list with a bad status", []string{`--status "late"`, "pending"}, append(provider, "application", "list", "--status", "late")...)
	out = e.must(t, append(provider, "application", "list", "--status", "pending")...)
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 2 || !strings.Contains(lines[1], "income brackets") || strings.Contains(lines[1], "OVERDUE") {
		t.Errorf("pending applications before the deadline:\n%s", out)
	}
	if out := e.must(t, append(provider, "--json", "application", "list", "--overdue")...); strings.TrimSpace(out) != "[]" {
		t.Errorf("overdue applications before the deadline: %s", out)
	}
	skew.Store(int64(8 * 24 * time.Hour))
	out = e.must(t, append(provider, "application", "list", "--overdue")...)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "ID") || !strings.Contains(lines[0], "OVERDUE") ||
		!strings.HasPrefix(lines[1], lateID+" ") || !strings.Contains(lines[1], "lab") || !strings.Contains(lines[1], "pending") || !strings.Contains(lines[1], "OVERDUE") || !strings.Contains(lines[1], "income brackets") {
		t.Errorf("application list --overdue after the deadline:\n%s", out)
	}
	var late []map[string]any
	decodeJSON(t, "application list --overdue", e.must(t, append(lab, "--json", "application", "list", "--overdue")...), &late)
	if len(late) != 1 || late[0]["overdue"] != true || fmt.Sprint(late[0]["id"]) != lateID {
		t.Errorf("the applicant's overdue list: %v", late)
	}
	if out := e.must(t, append(lab, "application", "show", lateID)...); !strings.Contains(out, "PENDING (OVERDUE)") {
		t.Errorf("application show of an overdue application:\n%s", out)
	}
	// The 12-hour token has expired on the same clock.
	e.fails(t, "an expired token", []string{"expired", "HTTP 401"}, append(shortLived, "principal", "show", "acme")...)
}
