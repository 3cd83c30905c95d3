package server

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/datasandbox/dsbx/client"
	"github.com/datasandbox/dsbx/datasets"
	"github.com/datasandbox/dsbx/jobs"
	"github.com/datasandbox/dsbx/operators"
	"github.com/datasandbox/dsbx/state/statetest"
)

// platform is a server on a random loopback port with an admin and one
// operator holding an agreement on a small register.
type platform struct {
	srv      *Server
	base     string
	admin    *client.Client
	provider *client.Client // speaks for the agency owning people
	operator *client.Client
	clock    *atomic.Int64 // unix seconds
	data     string
}

const purpose = "housing study"

func start(t *testing.T, configure ...func(*Config)) *platform {
	t.Helper()
	ctx := context.Background()
	p := &platform{clock: &atomic.Int64{}, data: t.TempDir()}
	p.clock.Store(time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC).Unix())
	cfg := Config{Data: p.data, State: statetest.URL(t, p.data), Now: func() time.Time { return time.Unix(p.clock.Load(), 0).UTC() }}
	for _, c := range configure {
		c(&cfg)
	}
	srv, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	p.srv = srv
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	go srv.Serve(sctx, l)
	t.Cleanup(func() { cancel(); srv.Close() })
	p.base = "http://" + l.Addr().String()

	tok, err := os.ReadFile(filepath.Join(p.data, AdminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(filepath.Join(p.data, AdminTokenFile)); st.Mode().Perm() != 0o600 {
		t.Fatalf("admin token mode %v, want 0600", st.Mode().Perm())
	}
	p.admin = client.New(p.base, strings.TrimSpace(string(tok)))

	csv := "id_number,district,income\n"
	for i := 0; i < 60; i++ {
		csv += "3301021990010112" + string(rune('0'+i/10)) + string(rune('0'+i%10)) + "," + []string{"上城区", "西湖区", "滨江区"}[i%3] + ",5000" + string(rune('0'+i%10)) + "\n"
	}
	// One rare district makes a small cell.
	csv += "330102199001019999,临安区,90000\n"
	src := filepath.Join(t.TempDir(), "people.csv")
	os.WriteFile(src, []byte(csv), 0o600)
	if _, err := p.admin.CreateDataset(ctx, peopleSpec()); err != nil {
		t.Fatal(err)
	}
	if _, err := p.admin.ImportVersion(ctx, "people", datasets.Source{}, src, nil); err != nil {
		t.Fatal(err)
	}
	p.provider = p.add(t, "registry", agency, operators.RoleProvider)
	p.operator = p.add(t, "acme", "", operators.RoleOperator)
	p.agree(t, p.operator, operators.Approval{})
	return p
}

// agency owns the people register.
const agency = "Hangzhou Registry Office"

// add creates a principal and returns a client holding its token.
func (p *platform) add(t *testing.T, name, org string, roles ...string) *client.Client {
	t.Helper()
	_, issued, err := p.admin.AddPrincipal(context.Background(), operators.NewPrincipal{Name: name, Roles: roles, Organization: org})
	if err != nil {
		t.Fatal(err)
	}
	return client.New(p.base, issued.Token)
}

// agree has holder apply for district and income of people for purpose
// until 2027-06-30, and the provider approve as ap says.
func (p *platform) agree(t *testing.T, holder *client.Client, ap operators.Approval) operators.Agreement {
	t.Helper()
	ctx := context.Background()
	app, err := holder.Apply(ctx, operators.Request{
		Datasets: []operators.DatasetRequest{{Dataset: "people", Fields: []string{"district", "income"}}},
		Purpose:  purpose, ValidUntil: "2027-06-30",
	})
	if err != nil {
		t.Fatal(err)
	}
	_, a, err := p.provider.Approve(ctx, app.ID, ap)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func peopleSpec() datasets.Spec {
	return datasets.Spec{Name: "people", Agency: agency, Grade: datasets.GradeGeneral, Open: datasets.OpenConditional, LegalBasis: "test register",
		Fields: []datasets.Field{
			{Name: "id_number", Sensitivity: "personal-sensitive", Identifier: datasets.IdentifierDirect},
			{Name: "district", Sensitivity: "internal", Identifier: datasets.IdentifierQuasi},
			{Name: "income", Sensitivity: "sensitive", Identifier: datasets.IdentifierNone},
		}}
}

func (p *platform) run(t *testing.T, sql string) jobs.Job {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	j, err := p.operator.Submit(ctx, jobs.Request{Dataset: "people", SQL: sql, Purpose: purpose})
	if err != nil {
		t.Fatalf("submit %q: %v", sql, err)
	}
	if !jobs.Final(j.State) {
		if j, err = p.operator.Wait(ctx, j.ID); err != nil {
			t.Fatal(err)
		}
	}
	return j
}

// snapshot is what a refused request must not change.
type snapshot struct {
	audit    int64
	jobs     int
	versions int
	agree    int
}

func (p *platform) snapshot(t *testing.T) snapshot {
	t.Helper()
	ctx := context.Background()
	js, _ := p.admin.Jobs(ctx)
	e, _ := p.admin.Dataset(ctx, "people")
	as, _ := p.admin.Agreements(ctx, operators.AgreementFilter{})
	recs, err := p.srv.log.Records(0, p.srv.log.Size())
	if err != nil {
		t.Fatal(err)
	}
	changes := int64(0) // entries other than records of refused access and sign-ins
	for _, r := range recs {
		if !bytes.Contains(r, []byte(`"kind":"access.denied"`)) && !bytes.Contains(r, []byte(`"kind":"principal.signed_in"`)) {
			changes++
		}
	}
	return snapshot{audit: changes, jobs: len(js), versions: len(e.Versions), agree: len(as)}
}

func TestLifecycleReleaseDenyHold(t *testing.T) {
	p := start(t)
	ctx := context.Background()

	ok := p.run(t, "SELECT district, count(*) AS n, avg(income) AS mean_income FROM people WHERE district <> '临安区' GROUP BY district ORDER BY district")
	if ok.State != jobs.StateReleased || ok.Result == nil || ok.Result.ReleaseSeq == 0 {
		t.Fatalf("aggregate job: %s %+v %s", ok.State, ok.Checks, ok.Error)
	}
	var out bytes.Buffer
	if err := p.operator.FetchResult(ctx, ok.ID, "csv", &out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 4 || lines[0] != "district,n,mean_income" || !strings.HasPrefix(lines[1], "上城区,20,") {
		t.Fatalf("released CSV:\n%s", out.String())
	}
	if strings.Contains(out.String(), "__dsbx") {
		t.Fatal("the cell-count column leaked into the released result")
	}
	got, _ := p.operator.Job(ctx, ok.ID)
	if got.Downloads != 1 {
		t.Errorf("downloads = %d after one fetch, want 1", got.Downloads)
	}
	// The admin sees the record but never receives data.
	if err := p.admin.FetchResult(ctx, ok.ID, "csv", &out); !client.IsStatus(err, http.StatusForbidden) {
		t.Errorf("admin fetch: %v, want 403", err)
	}

	denied := p.run(t, "SELECT district, count(DISTINCT id_number) FROM people GROUP BY district")
	if denied.State != jobs.StateDenied || len(denied.Decision.Reasons) == 0 || !strings.Contains(denied.Decision.Reasons[0].Message, "id_number") {
		t.Fatalf("job over an ungranted field: %s %+v", denied.State, denied.Decision)
	}

	held := p.run(t, "SELECT district, max(income) AS top FROM people GROUP BY district")
	if held.State != jobs.StateHeld {
		t.Fatalf("job releasing each district's highest income: %s %+v", held.State, held.Checks)
	}
	err := p.operator.FetchResult(ctx, held.ID, "csv", &out)
	if !client.IsStatus(err, http.StatusConflict) || !strings.Contains(err.Error(), "held") {
		t.Fatalf("fetch of held result: %v, want 409 naming the hold", err)
	}

	rowLevel := p.run(t, "SELECT district, income FROM people")
	if rowLevel.State != jobs.StateRejected {
		t.Fatalf("row-level extract: %s, want rejected", rowLevel.State)
	}
}

// Each bad input gets a clear 4xx naming the problem, and nothing stored
// changes.
func TestBadInputIsRefusedAndChangesNothing(t *testing.T) {
	p := start(t)
	ctx := context.Background()
	before := p.snapshot(t)

	badCSV := filepath.Join(t.TempDir(), "people.csv")
	os.WriteFile(badCSV, []byte("id_number,district,income\n1,a,2\n3,\"b,4\n"), 0o600)
	_, err := p.admin.ImportVersion(ctx, "people", datasets.Source{}, badCSV, nil)
	expect(t, "malformed CSV", err, http.StatusBadRequest, "malformed")
	_, err = p.admin.CreateDataset(ctx, peopleSpec())
	expect(t, "duplicate dataset name", err, http.StatusBadRequest, "already exists")

	_, err = p.operator.Submit(ctx, jobs.Request{Dataset: "nosuch", SQL: "SELECT 1", Purpose: purpose})
	expect(t, "unknown dataset", err, http.StatusBadRequest, `"nosuch"`)

	_, err = p.operator.Submit(ctx, jobs.Request{Dataset: "people", SQL: "SELECT shoe_size FROM people", Purpose: purpose})
	expect(t, "unknown field", err, http.StatusBadRequest, "shoe_size")

	for _, sql := range []string{"DELETE FROM people", "COPY people TO '/tmp/x.csv'", "SELECT 1; SELECT 2", "SELECT * FROM read_csv('/etc/passwd')", "SELEC district FROM people"} {
		_, err = p.operator.Submit(ctx, jobs.Request{Dataset: "people", SQL: sql, Purpose: purpose})
		var ae *client.APIError
		if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest || ae.Message == "" {
			t.Errorf("SQL %q: %v, want 400 with a reason", sql, err)
		}
	}

	_, err = p.operator.Apply(ctx, operators.Request{Datasets: []operators.DatasetRequest{{Dataset: "people", Fields: []string{"salary"}}}, Purpose: "x", ValidUntil: "2027-01-01"})
	expect(t, "application for an unknown field", err, http.StatusUnprocessableEntity, `no field "salary"`)

	_, err = client.New(p.base, "dsbx_wrong").Jobs(ctx)
	expect(t, "wrong token", err, http.StatusUnauthorized, "unknown")
	_, err = client.New(p.base, "").Datasets(ctx)
	expect(t, "no token", err, http.StatusUnauthorized, "no token")
	_, _, err = p.operator.AddPrincipal(ctx, operators.NewPrincipal{Name: "mallory", Roles: []string{operators.RoleAdmin}})
	expect(t, "operator acting as admin", err, http.StatusForbidden, "admin")

	after := p.snapshot(t)
	after.audit -= 6 // the six refused SQL submissions are recorded as attempts
	if after != before {
		t.Fatalf("refused requests changed state: before %+v, after %+v (audit adjusted for refusal records)", before, after)
	}
}

func TestExpiredAgreementDeniesNewJobs(t *testing.T) {
	p := start(t)
	// The agreement covers 2027-06-30 in China Standard Time: one second
	// after its last day is 2027-07-01 00:00:01 +08:00.
	p.clock.Store(time.Date(2027, 7, 1, 0, 0, 1, 0, operators.Zone).Unix())
	j, err := p.operator.Submit(context.Background(), jobs.Request{Dataset: "people", SQL: "SELECT district, count(*) FROM people GROUP BY district", Purpose: purpose})
	if err != nil {
		t.Fatal(err)
	}
	if j.State != jobs.StateDenied || len(j.Decision.Reasons) != 1 || j.Decision.Reasons[0].Code != "agreement_unusable" || !strings.Contains(j.Decision.Reasons[0].Message, "ended at 2027-07-01T00:00:00+08:00") {
		t.Fatalf("job under an expired agreement: %s %+v", j.State, j.Decision)
	}
	// The HTTP status of a denial is 403, with the job as the body.
	req, _ := http.NewRequest(http.MethodPost, p.base+"/v1/jobs", strings.NewReader(`{"dataset":"people","sql":"SELECT count(*) FROM people","purpose":"housing study"}`))
	req.Header.Set("Authorization", "Bearer "+tokenOf(t, p.operator))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("status %d, want 403", resp.StatusCode)
	}
}

func tokenOf(t *testing.T, c *client.Client) string {
	t.Helper()
	v := reflectToken(c)
	if v == "" {
		t.Fatal("no token")
	}
	return v
}

// Invariant 1: no byte leaves quarantine without the release event naming
// the result's hash. Forge the state database and the quarantined file; the
// server must refuse.
func TestReleaseRequiresMatchingAuditEvent(t *testing.T) {
	p := start(t)
	ctx := context.Background()
	held := p.run(t, "SELECT district, max(income) AS top FROM people GROUP BY district")
	if held.State != jobs.StateHeld {
		t.Fatalf("setup: %s", held.State)
	}
	ok := p.run(t, "SELECT count(*) AS n FROM people")
	if ok.State != jobs.StateReleased {
		t.Fatalf("setup: %s %+v %s", ok.State, ok.Checks, ok.Error)
	}

	// Forge: mark the held job released, pointing at the other job's release
	// entry.
	rec := strings.Replace(mustRecord(t, p, held.ID), `"sha256"`, `"release_seq":`+itoa(ok.Result.ReleaseSeq)+`,"sha256"`, 1)
	if _, err := p.srv.db.ExecContext(ctx, `UPDATE jobs SET state = 'released', record = ? WHERE id = ?`, rec, held.ID); err != nil {
		t.Fatal(err)
	}
	err := p.operator.FetchResult(ctx, held.ID, "csv", &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "not the release of this result") {
		t.Fatalf("forged release: %v, want an integrity refusal", err)
	}

	// Swap the bytes of a released result in quarantine.
	path := filepath.Join(p.data, "quarantine", itoa(ok.ID), "result.parquet")
	os.Chmod(path, 0o600)
	data, _ := os.ReadFile(path)
	data[len(data)/2] ^= 0xff
	os.WriteFile(path, data, 0o600)
	err = p.operator.FetchResult(ctx, ok.ID, "csv", &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("altered result file: %v, want an integrity refusal", err)
	}
}

func TestRoutesRequireRoles(t *testing.T) {
	p := start(t)
	ctx := context.Background()
	_, err := p.admin.Submit(ctx, jobs.Request{Dataset: "people", SQL: "SELECT count(*) FROM people", Purpose: purpose})
	expect(t, "admin submits a job", err, http.StatusForbidden, "operators and researchers")
	_, err = p.operator.AuditRecords(ctx, 1)
	expect(t, "operator reads the audit log", err, http.StatusForbidden, "admin")
}

func expect(t *testing.T, what string, err error, status int, text string) {
	t.Helper()
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Status != status || !strings.Contains(ae.Message, text) {
		t.Errorf("%s: %v, want HTTP %d mentioning %q", what, err, status, text)
	}
}
