package main

import (
	"bytes"
	"context"
	stdsql "database/sql"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/datasandbox/dsbx/audit"
	"github.com/datasandbox/dsbx/server"
	"github.com/datasandbox/dsbx/state/statetest"
	duckdb "github.com/duckdb/duckdb-go/v2"
)

// e2e is one in-process server driven only through the CLI.
type e2e struct {
	base  string // --server value
	admin string // admin token
	ctx   context.Context
}

// startServer opens the real platform in a temp data directory and serves it
// on a random loopback port until the test ends.
func startServer(t *testing.T) *e2e {
	t.Helper()
	return startServerWith(t, server.Config{})
}

// startServerWith is startServer with cfg (its Data is set here).
func startServerWith(t *testing.T, cfg server.Config) *e2e {
	t.Helper()
	data := t.TempDir()
	cfg.Data, cfg.State = data, statetest.URL(t, data)
	srv, err := server.Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		srv.Close()
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(sctx, l) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Error("server did not shut down")
		}
		if err := srv.Close(); err != nil {
			t.Errorf("close server: %v", err)
		}
	})
	tok, err := os.ReadFile(filepath.Join(data, server.AdminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancelCtx := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancelCtx)
	return &e2e{base: "http://" + l.Addr().String(), admin: strings.TrimSpace(string(tok)), ctx: ctx}
}

// cli runs one dsbx command line against the server and returns its stdout,
// stderr and error. --server is added unless args already carry one.
func (e *e2e) cli(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	if !slices.ContainsFunc(args, func(a string) bool { return a == "--server" || strings.HasPrefix(a, "--server=") }) {
		args = append(args, "--server", e.base)
	}
	var out, errOut bytes.Buffer
	root := newRoot()
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&errOut)
	err := root.ExecuteContext(e.ctx)
	return out.String(), errOut.String(), err
}

// dsbx runs one dsbx command line and returns its stdout.
func (e *e2e) dsbx(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, _, err := e.cli(t, args...)
	return out, err
}

// must runs a command that has to succeed.
func (e *e2e) must(t *testing.T, args ...string) string {
	t.Helper()
	out, err := e.dsbx(t, args...)
	if err != nil {
		t.Fatalf("dsbx %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// fails runs a command that has to fail with an error mentioning every one
// of texts, and returns the error.
func (e *e2e) fails(t *testing.T, what string, texts []string, args ...string) error {
	t.Helper()
	out, err := e.dsbx(t, args...)
	if err == nil {
		t.Errorf("%s: dsbx %s succeeded, want an error mentioning %q\n%s", what, strings.Join(args, " "), texts, out)
		return nil
	}
	for _, s := range texts {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("%s: error %q does not mention %q", what, err, s)
		}
	}
	return err
}

func decodeJSON(t *testing.T, what, out string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("%s: --json output is not JSON: %v\n%s", what, err, out)
	}
}

func codeOf(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return -1
}

// Wire shapes, decoded independently of the server's Go types.
type (
	cliField struct {
		Name, Type, Sensitivity, Identifier string
	}
	cliVersion struct {
		ID   string `json:"id"`
		Rows int64  `json:"rows"`
	}
	cliEntry struct {
		Name     string       `json:"name"`
		Title    string       `json:"title"`
		Agency   string       `json:"agency"`
		Open     string       `json:"open"`
		Grade    string       `json:"grade"`
		Share    string       `json:"share"`
		Fields   []cliField   `json:"fields"`
		Versions []cliVersion `json:"versions"`
	}
	cliImported struct {
		Entry    cliEntry   `json:"entry"`
		Version  cliVersion `json:"version"`
		Existing bool       `json:"existing"`
	}
	cliReason struct {
		Code, Message, Field string
	}
	cliCheck struct {
		Check   string `json:"check"`
		Verdict string `json:"verdict"`
	}
	cliJob struct {
		ID       int64  `json:"id"`
		Operator string `json:"operator"`
		Dataset  string `json:"dataset"`
		Version  string `json:"version"`
		SQL      string `json:"sql"`
		Purpose  string `json:"purpose"`
		State    string `json:"state"`
		Decision *struct {
			Allow       bool        `json:"allow"`
			AgreementID int64       `json:"agreement_id"`
			Reasons     []cliReason `json:"reasons"`
		} `json:"decision"`
		Checks []cliCheck `json:"checks"`
		Result *struct {
			SHA256     string   `json:"sha256"`
			Rows       int64    `json:"rows"`
			Columns    []string `json:"columns"`
			ReleaseSeq int64    `json:"release_seq"`
		} `json:"result"`
		Downloads int `json:"downloads"`
	}
)

const (
	rareDistrict = "临安区"
	purpose      = "housing affordability study"
)

var districts = []string{"上城区", "西湖区", "滨江区"}

// register writes people.csv (300 residents over three districts, plus two in
// a rare one) and fields.yaml, and returns the expected count and mean income
// per common district.
func register(t *testing.T, dir string) (csvPath, fieldsPath string, counts map[string]int, means map[string]float64) {
	t.Helper()
	var b strings.Builder
	b.WriteString("id_number,name,district,income\n")
	counts, sums := map[string]int{}, map[string]float64{}
	for i := 0; i < 300; i++ {
		d := districts[i%3]
		income := 3000 + (i*37)%5000
		fmt.Fprintf(&b, "330102199001%06d,居民%03d,%s,%d\n", i, i, d, income)
		counts[d]++
		sums[d] += float64(income)
	}
	fmt.Fprintf(&b, "330185198001010001,稀有甲,%s,91000\n", rareDistrict)
	fmt.Fprintf(&b, "330185198001010002,稀有乙,%s,88000\n", rareDistrict)
	csvPath = filepath.Join(dir, "people.csv")
	if err := os.WriteFile(csvPath, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	means = map[string]float64{}
	for d, s := range sums {
		means[d] = s / float64(counts[d])
	}
	fields := `title: Resident register
legal_basis: personal information, opened under agreement only
description: Residents with their district and declared income
agency: Civil Affairs Bureau
share: conditional
update_frequency: monthly
fields:
  - name: id_number
    sensitivity: personal-sensitive
    identifier: direct
    description: national ID number
  - name: name
    sensitivity: personal
    identifier: direct
  - name: district
    sensitivity: internal
    identifier: quasi
  - name: income
    sensitivity: sensitive
    identifier: none
`
	fieldsPath = filepath.Join(dir, "fields.yaml")
	if err := os.WriteFile(fieldsPath, []byte(fields), 0o600); err != nil {
		t.Fatal(err)
	}
	return csvPath, fieldsPath, counts, means
}

func TestEndToEndThroughCLI(t *testing.T) {
	e := startServer(t)
	work := t.TempDir()
	csvPath, fieldsPath, counts, means := register(t, work)
	admin := []string{"--token", e.admin}

	// 1. The admin imports the register.
	out := e.must(t, append(admin, "dataset", "import", "people", csvPath, "--spec", fieldsPath, "--grade", "important")...)
	if !strings.HasPrefix(out, "imported people@") || !strings.Contains(out, "(302 rows, 4 fields, open=conditional, grade=important)") {
		t.Fatalf("import output: %q", out)
	}
	out = e.must(t, append(admin, "--json", "dataset", "import", "people", csvPath, "--spec", fieldsPath, "--grade", "important")...)
	var again cliImported
	decodeJSON(t, "re-import", out, &again)
	if !again.Existing || again.Version.Rows != 302 || len(again.Version.ID) != 64 {
		t.Fatalf("re-import --json: %+v, want the existing 302-row version", again)
	}
	version := again.Version.ID
	out = e.must(t, append(admin, "dataset", "import", "people", csvPath, "--spec", fieldsPath, "--grade", "important")...)
	if want := "already present: people@" + version[:12]; !strings.HasPrefix(out, want) {
		t.Fatalf("re-import output %q, want it to start with %q", out, want)
	}

	out = e.must(t, append(admin, "--json", "dataset", "list")...)
	var list []cliEntry
	decodeJSON(t, "dataset list", out, &list)
	if len(list) != 1 || list[0].Name != "people" || list[0].Title != "Resident register" || list[0].Grade != "important" || list[0].Open != "conditional" || len(list[0].Fields) != 4 {
		t.Fatalf("dataset list --json: %+v", list)
	}

	out = e.must(t, append(admin, "--json", "dataset", "show", "people")...)
	var entry cliEntry
	decodeJSON(t, "dataset show", out, &entry)
	wantFields := []cliField{
		{Name: "id_number", Sensitivity: "personal-sensitive", Identifier: "direct"},
		{Name: "name", Sensitivity: "personal", Identifier: "direct"},
		{Name: "district", Sensitivity: "internal", Identifier: "quasi"},
		{Name: "income", Sensitivity: "sensitive", Identifier: "none"},
	}
	if len(entry.Fields) != len(wantFields) {
		t.Fatalf("dataset show --json fields: %+v", entry.Fields)
	}
	for i, f := range entry.Fields {
		w := wantFields[i]
		if f.Name != w.Name || f.Sensitivity != w.Sensitivity || f.Identifier != w.Identifier || f.Type == "" {
			t.Errorf("field %d = %+v, want %+v with a type", i, f, w)
		}
	}
	if len(entry.Versions) != 1 || entry.Versions[0].ID != version || entry.Versions[0].Rows != 302 || entry.Agency != "Civil Affairs Bureau" || entry.Share != "conditional" {
		t.Fatalf("dataset show --json: %+v", entry)
	}
	out = e.must(t, append(admin, "dataset", "show", "people")...)
	for _, s := range []string{"people  Resident register", "agency: Civil Affairs Bureau", "id_number", "personal-sensitive", "quasi", "versions:", version + "  302 rows", "people.csv"} {
		if !strings.Contains(out, s) {
			t.Errorf("dataset show does not mention %q:\n%s", s, out)
		}
	}

	// 2. The provider of the register, an operator, its application and the
	// agreement the provider grants on it.
	provOut, provErr, err := e.cli(t, append(admin, "principal", "add", "hz-health", "--role", "provider", "--org", entry.Agency)...)
	if err != nil {
		t.Fatalf("principal add hz-health: %v\n%s", err, provErr)
	}
	provider := []string{"--token", strings.TrimSpace(provOut)}
	if !strings.Contains(provErr, `added provider "hz-health" of Civil Affairs Bureau`) {
		t.Errorf("principal add provider stderr %q", provErr)
	}
	opOut, opErr, err := e.cli(t, append(admin, "principal", "add", "acme", "--role", "operator")...)
	if err != nil {
		t.Fatal(err)
	}
	opToken := strings.TrimSpace(opOut)
	if !strings.HasPrefix(opToken, "dsbx_") || strings.Contains(opToken, "\n") || len(opToken) < 20 {
		t.Fatalf("principal add stdout %q, want just a dsbx_ token", opOut)
	}
	if !strings.Contains(opErr, `added operator "acme"`) {
		t.Errorf("principal add stderr %q", opErr)
	}
	operator := []string{"--token", opToken}
	until := time.Now().UTC().AddDate(1, 0, 0).Format("2006-01-02")
	out = e.must(t, append(operator, "--json", "application", "submit", "--dataset", "people", "--fields", "district, income", "--purpose", purpose, "--until", until)...)
	var app map[string]any
	decodeJSON(t, "application submit", out, &app)
	if app["status"] != "pending" || app["applicant"] != "acme" || app["provider"] != "Civil Affairs Bureau" || app["kind"] != "data-use" {
		t.Fatalf("application submit --json: %v", app)
	}
	appID := strconv.FormatInt(int64(app["id"].(float64)), 10)
	e.fails(t, "the operator approves its own application", []string{"HTTP 403"}, append(operator, "application", "approve", appID)...)
	out = e.must(t, append(provider, "application", "approve", appID)...)
	if !strings.Contains(out, "application "+appID+" approved") || !strings.Contains(out, "acme use people:district,income for \""+purpose+"\"") || !strings.HasSuffix(strings.TrimSpace(out), "until "+until) {
		t.Fatalf("application approve output: %q", out)
	}
	out = e.must(t, append(operator, "--json", "agreement", "list")...)
	var agreements []map[string]any
	decodeJSON(t, "agreement list", out, &agreements)
	wantUntil, _ := time.ParseInLocation("2006-01-02", until, time.FixedZone("CST", 8*3600))
	wantUntil = wantUntil.AddDate(0, 0, 1)
	if len(agreements) != 1 || agreements[0]["holder"] != "acme" || agreements[0]["status"] != "active" || fmt.Sprint(agreements[0]["purposes"]) != "["+purpose+"]" {
		t.Fatalf("operator's agreement list: %v", agreements)
	}
	if got, err := time.Parse(time.RFC3339, fmt.Sprint(agreements[0]["valid_until"])); err != nil || !got.Equal(wantUntil) {
		t.Errorf("agreement valid_until %v, want %s (the end of %s in CST)", agreements[0]["valid_until"], wantUntil.Format(time.RFC3339), until)
	}
	scope, _ := agreements[0]["scope"].([]any)
	if len(scope) != 1 || fmt.Sprint(scope[0]) != "map[dataset:people fields:map[district:raw income:raw]]" {
		t.Errorf("agreement scope %v, want people with district and income raw", agreements[0]["scope"])
	}
	out = e.must(t, append(provider, "agreement", "list")...)
	if !strings.Contains(out, "people:district,income") || !strings.Contains(out, until) || !strings.Contains(out, "acme") {
		t.Errorf("provider's agreement list does not show acme's agreement:\n%s", out)
	}

	// 3. Jobs, as the operator: DSBX_TOKEN for this submission.
	t.Setenv("DSBX_TOKEN", opToken)
	okSQL := fmt.Sprintf("SELECT district, count(*) AS n, avg(income) AS mean_income FROM people WHERE district <> '%s' GROUP BY district ORDER BY district", rareDistrict)
	out, err = e.dsbx(t, "--json", "job", "submit", "--dataset", "people", "--sql", okSQL, "--purpose", purpose, "--wait")
	if err != nil {
		t.Fatalf("aggregate job: %v\n%s", err, out)
	}
	var ok cliJob
	decodeJSON(t, "aggregate job", out, &ok)
	if ok.State != "released" || ok.Operator != "acme" || ok.Version != version || ok.Result == nil || ok.Result.ReleaseSeq == 0 || ok.Result.Rows != 3 || ok.Decision == nil || !ok.Decision.Allow {
		t.Fatalf("aggregate job: %s", out)
	}
	// The environment token is the operator's: it may not import.
	e.fails(t, "import with the operator's DSBX_TOKEN", []string{"HTTP 403", "acme"}, "dataset", "import", "people", csvPath)

	out = e.must(t, "job", "show", strconv.FormatInt(ok.ID, 10))
	for _, s := range []string{fmt.Sprintf("job %d: RELEASED", ok.ID), "purpose  " + purpose, "fields   district, income (aggregate: true)", "pass   min_cell_count", "released sha256"} {
		if !strings.Contains(out, s) {
			t.Errorf("job show does not mention %q:\n%s", s, out)
		}
	}

	resCSV := filepath.Join(work, "x.csv")
	out = e.must(t, append(operator, "result", "fetch", strconv.FormatInt(ok.ID, 10), "--out", resCSV)...)
	if !strings.HasPrefix(out, "wrote "+resCSV+" (csv, ") {
		t.Errorf("result fetch output %q", out)
	}
	f, err := os.Open(resCSV)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(f).ReadAll()
	f.Close()
	if err != nil {
		t.Fatalf("released CSV: %v", err)
	}
	if len(rows) != 4 || strings.Join(rows[0], ",") != "district,n,mean_income" {
		t.Fatalf("released CSV rows: %q", rows)
	}
	wantOrder := slices.Clone(districts)
	sort.Strings(wantOrder)
	for i, r := range rows[1:] {
		if r[0] != wantOrder[i] || r[1] != strconv.Itoa(counts[r[0]]) {
			t.Errorf("CSV row %d = %q, want %s with %d people", i+1, r, wantOrder[i], counts[wantOrder[i]])
		}
		m, err := strconv.ParseFloat(r[2], 64)
		if err != nil || math.Abs(m-means[r[0]]) > 1e-6 {
			t.Errorf("CSV row %d mean income %q, want %v", i+1, r[2], means[r[0]])
		}
		if r[0] == rareDistrict {
			t.Errorf("rare district in the released result")
		}
	}

	resParquet := filepath.Join(work, "x.parquet")
	out = e.must(t, append(operator, "--json", "result", "fetch", strconv.FormatInt(ok.ID, 10), "--out", resParquet)...)
	var fetched map[string]any
	decodeJSON(t, "result fetch", out, &fetched)
	pq, err := os.ReadFile(resParquet)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(pq, []byte("PAR1")) || !bytes.HasSuffix(pq, []byte("PAR1")) {
		t.Errorf("x.parquet does not start and end with PAR1 (%d bytes)", len(pq))
	}
	if fetched["format"] != "parquet" || fetched["bytes"] != float64(len(pq)) || fetched["out"] != resParquet {
		t.Errorf("result fetch --json: %v (file has %d bytes)", fetched, len(pq))
	}
	resArrow := filepath.Join(work, "x.arrow")
	e.must(t, append(operator, "result", "fetch", strconv.FormatInt(ok.ID, 10), "--out", resArrow)...)
	if ar, _ := os.ReadFile(resArrow); !bytes.HasPrefix(ar, []byte{0xff, 0xff, 0xff, 0xff}) {
		t.Errorf("x.arrow is not an Arrow IPC stream: % x", ar[:min(8, len(ar))])
	}

	// A query on name is denied by policy: exit code 3 with the reason.
	out, err = e.dsbx(t, append(operator, "--json", "job", "submit", "--dataset", "people", "--sql", "SELECT name, count(*) AS n FROM people GROUP BY name", "--purpose", purpose, "--wait")...)
	if codeOf(err) != 3 || exitCode(err) != 3 {
		t.Fatalf("job over name: err %v (code %d), want exit code 3\n%s", err, codeOf(err), out)
	}
	var denied map[string]any
	decodeJSON(t, "denied job", out, &denied)
	if denied["state"] != "denied" {
		t.Fatalf("denied job state %v\n%s", denied["state"], out)
	}
	reasons, _ := denied["decision"].(map[string]any)["reasons"].([]any)
	var reasonOK bool
	for _, r := range reasons {
		r := r.(map[string]any)
		if r["code"] == "field_not_granted" && r["field"] == "name" && strings.Contains(r["message"].(string), "field name is outside agreement") {
			reasonOK = true
		}
	}
	if !reasonOK {
		t.Fatalf("denied job reasons %v, want field_not_granted on name", reasons)
	}
	deniedID := int64(denied["id"].(float64))
	if !strings.Contains(err.Error(), fmt.Sprintf("job %d denied", deniedID)) {
		t.Errorf("denied job error %q", err)
	}

	// The highest income by district is one person's income each: held
	// for output checkers.
	heldSQL := "SELECT district, count(*) AS n, max(income) AS top_income FROM people GROUP BY district"
	out, err = e.dsbx(t, append(operator, "job", "submit", "--dataset", "people", "--sql", heldSQL, "--purpose", purpose, "--wait")...)
	if err != nil {
		t.Fatalf("held job: %v\n%s", err, out)
	}
	if !strings.Contains(out, ": HELD\n") || !strings.Contains(out, "review extremes") || !strings.Contains(out, "2 approval(s) required") {
		t.Fatalf("held job output:\n%s", out)
	}
	out = e.must(t, append(operator, "--json", "job", "list")...)
	var jobList []cliJob
	decodeJSON(t, "job list", out, &jobList)
	if len(jobList) != 3 {
		t.Fatalf("job list has %d jobs, want 3:\n%s", len(jobList), out)
	}
	// Newest first: held, denied, released.
	held := jobList[0]
	if held.State != "held" || held.SQL != heldSQL || jobList[1].ID != deniedID || jobList[1].State != "denied" || jobList[2].ID != ok.ID || jobList[2].State != "released" || jobList[2].Downloads != 3 {
		t.Fatalf("job list: %+v", jobList)
	}
	if held.Result == nil || held.Result.ReleaseSeq != 0 || !slices.ContainsFunc(held.Checks, func(c cliCheck) bool { return c.Check == "extremes" && c.Verdict == "review" }) {
		t.Fatalf("held job record: %+v", held)
	}

	heldOut := filepath.Join(work, "held.csv")
	e.fails(t, "fetch of a held result", []string{"held", "HTTP 409"}, append(operator, "result", "fetch", strconv.FormatInt(held.ID, 10), "--out", heldOut)...)
	if _, err := os.Stat(heldOut); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("fetch of a held result left %s: %v", heldOut, err)
	}
	if left, _ := filepath.Glob(filepath.Join(work, ".dsbx-fetch-*")); len(left) != 0 {
		t.Errorf("fetch left temp files: %v", left)
	}

	// Output checking: the operator argues for an exception; important data
	// needs two different reviewers.
	heldID := strconv.FormatInt(held.ID, 10)
	if out := e.must(t, append(operator, "job", "justify", heldID, "district maxima are published in the yearbook")...); !strings.Contains(out, "justification: district maxima") {
		t.Fatalf("justify: %s", out)
	}
	var reviewers [][]string
	for _, name := range []string{"check-a", "check-b"} {
		tok := strings.TrimSpace(e.must(t, append(admin, "principal", "add", name, "--role", "reviewer")...))
		reviewers = append(reviewers, []string{"--token", tok})
	}
	if out := e.must(t, append(reviewers[0], "review", "list")...); !strings.Contains(out, heldID) || !strings.Contains(out, "0 of 2") || !strings.Contains(out, "extremes") {
		t.Fatalf("review list: %s", out)
	}
	e.fails(t, "an operator reviewing", []string{"HTTP 403"}, append(operator, "review", "approve", heldID, "--reason", "mine")...)
	e.fails(t, "an operator inspecting", []string{"HTTP 403"}, append(operator, "review", "show", heldID)...)
	if out := e.must(t, append(reviewers[0], "review", "show", heldID)...); !strings.HasPrefix(out, "district,n,top_income\n") {
		t.Fatalf("review show: %q", out)
	}
	e.fails(t, "an approval without a reason", []string{"reason"}, append(reviewers[0], "review", "approve", heldID)...)
	if out := e.must(t, append(reviewers[0], "review", "approve", heldID, "--reason", "published figures")...); !strings.Contains(out, ": HELD") || !strings.Contains(out, "check-a approved") {
		t.Fatalf("first approval: %s", out)
	}
	e.fails(t, "the same reviewer twice", []string{"HTTP 409", "already reviewed"}, append(reviewers[0], "review", "approve", heldID, "--reason", "again")...)
	if out := e.must(t, append(reviewers[1], "review", "approve", heldID, "--reason", "agree")...); !strings.Contains(out, ": RELEASED") {
		t.Fatalf("second approval: %s", out)
	}
	e.must(t, append(operator, "result", "fetch", heldID, "--out", heldOut)...)

	// A second operator sees none of acme's jobs.
	otherToken := strings.TrimSpace(e.must(t, append(admin, "principal", "add", "globex", "--role", "researcher")...))
	if !strings.HasPrefix(otherToken, "dsbx_") || otherToken == opToken {
		t.Fatalf("second operator token %q", otherToken)
	}
	other := []string{"--token", otherToken}
	e.fails(t, "another operator's job", []string{"not found", "HTTP 404"}, append(other, "job", "show", strconv.FormatInt(ok.ID, 10))...)
	e.fails(t, "another operator's result", []string{"not found", "HTTP 404"}, append(other, "result", "fetch", strconv.FormatInt(ok.ID, 10), "--out", filepath.Join(work, "stolen.csv"))...)
	if out := strings.TrimSpace(e.must(t, append(other, "--json", "job", "list")...)); out != "[]" {
		t.Errorf("second operator's job list: %s", out)
	}

	// 4. Bad input.
	bad := filepath.Join(work, "ragged.csv")
	os.WriteFile(bad, []byte("id_number,name,district,income\n1,a,上城区,100\n2,b,西湖区,200,extra\n3,c,滨江区,300\n"), 0o600)
	e.fails(t, "ragged CSV", []string{"malformed", "HTTP 400"}, append(admin, "dataset", "import", "people", bad, "--spec", fieldsPath, "--grade", "important")...)
	out = e.must(t, append(admin, "--json", "dataset", "show", "people")...)
	entry = cliEntry{}
	decodeJSON(t, "dataset show after bad import", out, &entry)
	if len(entry.Versions) != 1 || entry.Versions[0].ID != version {
		t.Fatalf("after a refused import: versions %+v, want only %s", entry.Versions, version)
	}
	e.fails(t, "DROP TABLE", []string{"HTTP 400"}, append(operator, "job", "submit", "--dataset", "people", "--sql", "DROP TABLE people", "--purpose", purpose)...)
	e.fails(t, "unknown dataset", []string{`"nosuch"`, "HTTP 400", "unknown_dataset"}, append(operator, "job", "submit", "--dataset", "nosuch", "--sql", "SELECT count(*) FROM nosuch", "--purpose", purpose)...)
	e.fails(t, "wrong token", []string{"unknown", "HTTP 401"}, "--token", "dsbx_wrong", "dataset", "list")
	if err := e.fails(t, "wrong token on submit", []string{"unknown"}, "--token", "dsbx_wrong", "job", "submit", "--dataset", "people", "--sql", "SELECT count(*) FROM people", "--purpose", purpose); codeOf(err) != -1 {
		t.Errorf("a refused request exits with code %d, want the generic 1", exitCode(err))
	}
	out = e.must(t, append(operator, "--json", "job", "list")...)
	jobList = nil
	decodeJSON(t, "job list after bad input", out, &jobList)
	if len(jobList) != 3 {
		t.Errorf("refused submissions created jobs: %d jobs", len(jobList))
	}

	// 5. Audit.
	out = e.must(t, append(admin, "audit", "verify")...)
	if !strings.HasPrefix(out, "audit log intact: ") || !strings.Contains(out, "signed by datasandbox.local/audit") {
		t.Fatalf("live audit verify: %q", out)
	}
	out = e.must(t, append(admin, "--json", "audit", "verify")...)
	var live map[string]any
	decodeJSON(t, "audit verify", out, &live)
	size, _ := live["Size"].(float64)
	if size < 20 {
		t.Fatalf("live audit verify --json: %v, want a log of at least 20 entries", live)
	}

	// A regulator saves a checkpoint, and later proves the log only grew.
	saved := filepath.Join(work, "checkpoint.txt")
	e.must(t, append(admin, "audit", "checkpoint", "--out", saved)...)
	e.must(t, append(operator, "job", "submit", "--dataset", "people", "--sql", okSQL, "--purpose", purpose, "--wait")...)
	if out := e.must(t, append(admin, "audit", "verify", "--since", saved)...); !strings.Contains(out, "only grew since the saved checkpoint") {
		t.Fatalf("audit verify --since: %s", out)
	}
	if out := e.must(t, append(admin, "audit", "prove", "3")...); !strings.Contains(out, "entry 3 is in the log of") {
		t.Fatalf("audit prove: %s", out)
	}

	exported := filepath.Join(work, "export")
	out = e.must(t, append(admin, "--json", "audit", "export", "--out", exported)...)
	var exp map[string]any
	decodeJSON(t, "audit export", out, &exp)
	if exp["out"] != exported || exp["entries"].(float64) < size {
		t.Fatalf("audit export --json: %v (live size %v)", exp, size)
	}
	entriesSize := int(exp["entries"].(float64))
	// The Parquet copy is for analysis in DuckDB: one row per entry, the
	// same kinds in the same order.
	var pqRows, releases int
	var firstKind string
	c, err := duckdb.NewConnector("", nil)
	if err != nil {
		t.Fatal(err)
	}
	db := stdsql.OpenDB(c)
	defer db.Close()
	pqPath := filepath.Join(exported, ParquetFile)
	if err := db.QueryRow(`SELECT count(*), count(*) FILTER (WHERE kind = 'result.released'), min_by(kind, seq) FROM read_parquet('`+pqPath+`')`).Scan(&pqRows, &releases, &firstKind); err != nil {
		t.Fatal(err)
	}
	if pqRows != entriesSize || releases == 0 || firstKind != "policy.loaded" && firstKind != "principal.added" {
		t.Fatalf("entries.parquet: %d rows (%d releases, first %q) for %d entries", pqRows, releases, firstKind, entriesSize)
	}
	// A regulator's tools: one job's timeline, and its replay.
	if out := e.must(t, append(admin, "audit", "log", "--job", strconv.FormatInt(ok.ID, 10))...); !strings.Contains(out, "job.submitted") || !strings.Contains(out, "result.downloaded") {
		t.Fatalf("audit log --job: %s", out)
	}
	if out := e.must(t, append(admin, "audit", "replay", strconv.FormatInt(ok.ID, 10))...); !strings.Contains(out, "matches the record") {
		t.Fatalf("audit replay: %s", out)
	}
	// Offline, against the saved checkpoint too.
	if out := e.must(t, "--server", "http://127.0.0.1:1", "audit", "verify", "--log", exported, "--since", saved); !strings.Contains(out, "only grew") {
		t.Fatalf("offline audit verify --since: %s", out)
	}
	// Offline: the server URL is unusable, and not needed.
	out = e.must(t, "--server", "http://127.0.0.1:1", "audit", "verify", "--log", exported)
	if want := fmt.Sprintf("audit log intact: %d entries", entriesSize); !strings.HasPrefix(out, want) {
		t.Fatalf("offline audit verify: %q, want %q", out, want)
	}

	key := strings.TrimSpace(e.must(t, "audit", "key"))
	// NAME+HASH+KEY, where KEY is base64 and may itself hold '+'.
	if parts := strings.SplitN(key, "+", 3); len(parts) != 3 || parts[0] != "datasandbox.local/audit" || len(parts[1]) != 8 || len(parts[2]) < 40 {
		t.Fatalf("audit key: %q", key)
	}
	if shipped, _ := os.ReadFile(filepath.Join(exported, "verifier.key")); strings.TrimSpace(string(shipped)) != key {
		t.Errorf("exported verifier.key %q, audit key %q", shipped, key)
	}
	out = e.must(t, "--server", "http://127.0.0.1:1", "audit", "verify", "--log", exported, "--key", key)
	if !strings.HasPrefix(out, fmt.Sprintf("audit log intact: %d entries", entriesSize)) {
		t.Fatalf("verify with the pinned key: %q", out)
	}
	keyFile := filepath.Join(work, "pinned.key")
	os.WriteFile(keyFile, []byte(key+"\n"), 0o600)
	e.must(t, "audit", "verify", "--log", exported, "--key", keyFile)

	lines := readLines(t, filepath.Join(exported, "entries.jsonl"))
	if len(lines) != entriesSize {
		t.Fatalf("entries.jsonl has %d lines, export said %d", len(lines), entriesSize)
	}
	tamper := func(name string, edit func([]string) []string) string {
		t.Helper()
		dir := filepath.Join(work, name)
		if err := os.CopyFS(dir, os.DirFS(exported)); err != nil {
			t.Fatal(err)
		}
		edited := edit(slices.Clone(lines))
		if err := os.WriteFile(filepath.Join(dir, "entries.jsonl"), []byte(strings.Join(edited, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	expectTampered := func(what, dir string, seq int) {
		t.Helper()
		out, err := e.dsbx(t, "audit", "verify", "--log", dir, "--key", key)
		if codeOf(err) != 2 {
			t.Errorf("%s: verify gave %v (code %d), want exit code 2\n%s", what, err, codeOf(err), out)
			return
		}
		if want := fmt.Sprintf("TAMPERED: first bad entry %d:", seq); !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %q, want it to name %q", what, err, want)
		}
	}

	// (a) One byte inside the data of the held job's submission record: a
	// middle entry, whose seq is the job's ID.
	heldSeq := int(held.ID)
	if heldSeq <= 0 || heldSeq >= len(lines)-1 || seqOf(t, lines[heldSeq]) != heldSeq {
		t.Fatalf("entry %d is not the held job's submission in the middle of %d entries", heldSeq, len(lines))
	}
	altered := tamper("altered", func(ls []string) []string {
		const marker = `"code_sha256":"`
		i := strings.Index(ls[heldSeq], marker)
		if i < 0 || !strings.Contains(ls[heldSeq], `"kind":"job.submitted"`) {
			t.Fatalf("entry %d is not a job submission: %s", heldSeq, ls[heldSeq])
		}
		b := []byte(ls[heldSeq])
		p := i + len(marker)
		if b[p] == '0' {
			b[p] = '1'
		} else {
			b[p] = '0'
		}
		ls[heldSeq] = string(b)
		if !json.Valid(b) {
			t.Fatalf("altered entry is not valid JSON")
		}
		return ls
	})
	expectTampered("one altered byte", altered, heldSeq)
	// Also with the key shipped in the export.
	if _, err := e.dsbx(t, "audit", "verify", "--log", altered); codeOf(err) != 2 || !strings.Contains(err.Error(), fmt.Sprintf("first bad entry %d", heldSeq)) {
		t.Errorf("altered export with its own key: %v", err)
	}

	// (b) A deleted line.
	mid := len(lines) / 2
	removed := tamper("removed", func(ls []string) []string { return slices.Delete(ls, mid, mid+1) })
	expectTampered("deleted line", removed, mid)

	// (c) Two swapped lines.
	swapped := tamper("swapped", func(ls []string) []string {
		ls[mid], ls[mid+1] = ls[mid+1], ls[mid]
		return ls
	})
	expectTampered("swapped lines", swapped, mid)

	// (d) A key from another log, even one with the same origin name.
	otherLog, err := audit.Open(t.TempDir(), "datasandbox.local/audit")
	if err != nil {
		t.Fatal(err)
	}
	otherKey := otherLog.VerifierKey()
	otherLog.Close()
	if otherKey == key {
		t.Fatal("two logs share a verifier key")
	}
	out, err = e.dsbx(t, "audit", "verify", "--log", exported, "--key", otherKey)
	if codeOf(err) != 2 || !strings.Contains(err.Error(), "NOT VERIFIED") || strings.Contains(out, "intact") {
		t.Errorf("verify with another log's key: %v (code %d)\n%s", err, codeOf(err), out)
	}

	// The untouched export still verifies; the live log does too.
	e.must(t, "audit", "verify", "--log", exported, "--key", key)
	if out := e.must(t, append(admin, "audit", "verify")...); !strings.Contains(out, "intact") {
		t.Errorf("live verify at the end: %q", out)
	}
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
}

func seqOf(t *testing.T, line string) int {
	t.Helper()
	var e struct{ Seq int }
	if err := json.Unmarshal([]byte(line), &e); err != nil {
		t.Fatalf("entry %q: %v", line, err)
	}
	return e.Seq
}
