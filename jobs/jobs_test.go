package jobs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/datasandbox/dsbx/audit"
	"github.com/datasandbox/dsbx/datasets"
	"github.com/datasandbox/dsbx/disclosure"
	"github.com/datasandbox/dsbx/operators"
	"github.com/datasandbox/dsbx/policies"
	"github.com/datasandbox/dsbx/state"
	"github.com/datasandbox/dsbx/state/statetest"
)

const testPurpose = "housing study"

// testSecret derives the agreements' keys for hashed fields.
var testSecret = []byte("platform secret for the jobs tests, 32+ bytes")

// testNow is the fixed clock of the directory (agreement terms) and of the
// service (admission): the agreement below is in force at this time.
var testNow = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

var districts = []string{"east", "north", "south"}

// peopleRows is how many rows the generated register has: row i lives in
// districts[i%3] and earns incomeOf(i).
const peopleRows = 200

func incomeOf(i int) int64 { return 1000 + int64(i)*10 }

// platform is the real set of components the server wires together, opened
// on one data directory.
type platform struct {
	data    string
	db      *state.DB
	log     *audit.Log
	catalog *datasets.Catalog
	dir     *operators.Directory
	policy  *policies.Engine
	svc     *Service
	closed  bool
}

// openPlatform opens (creating on first use) the components in data, without
// starting the job workers.
func openPlatform(t *testing.T, data string) *platform {
	t.Helper()
	ctx := context.Background()
	policy, err := policies.Default(ctx)
	if err != nil {
		t.Fatal(err)
	}
	log, err := audit.Open(filepath.Join(data, "audit"), "test.local/audit")
	if err != nil {
		t.Fatal(err)
	}
	db, err := state.Open(ctx, data, statetest.URL(t, data))
	if err != nil {
		log.Close()
		t.Fatal(err)
	}
	p := &platform{data: data, db: db, log: log, policy: policy,
		catalog: datasets.NewCatalog(db, filepath.Join(data, "datasets"), log),
		dir:     operators.NewDirectory(db, log),
	}
	p.svc = New(db, p.quarantine(), testSecret, p.catalog, p.dir, policy, log)
	now := func() time.Time { return testNow }
	p.dir.SetClock(now)
	p.svc.SetClock(now)
	t.Cleanup(p.close)
	return p
}

func (p *platform) quarantine() string { return filepath.Join(p.data, "quarantine") }

// close stops the workers and closes the stores; it may be called again.
func (p *platform) close() {
	if p.closed {
		return
	}
	p.closed = true
	p.svc.Stop()
	p.db.Close()
	p.log.Close()
}

// newPlatform opens a fresh platform holding an admin, the "people" register,
// an operator "acme" with an agreement on district and income, and a second
// operator "beta" with no agreement.
func newPlatform(t *testing.T) *platform {
	t.Helper()
	ctx := context.Background()
	p := openPlatform(t, t.TempDir())
	if _, err := p.dir.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}

	var csv strings.Builder
	csv.WriteString("id_number,district,income\n")
	for i := 0; i < peopleRows; i++ {
		fmt.Fprintf(&csv, "33010219900101%04d,%s,%d\n", i, districts[i%3], incomeOf(i))
	}
	src := filepath.Join(t.TempDir(), "people.csv")
	if err := os.WriteFile(src, []byte(csv.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	spec := datasets.Spec{Name: "people", Agency: testAgency, Grade: datasets.GradeGeneral, Open: datasets.OpenConditional, LegalBasis: "test register",
		Fields: []datasets.Field{
			{Name: "id_number", Sensitivity: "personal-sensitive", Identifier: datasets.IdentifierDirect},
			{Name: "district", Sensitivity: "internal", Identifier: datasets.IdentifierQuasi},
			{Name: "income", Sensitivity: "sensitive", Identifier: datasets.IdentifierNone},
		}}
	if _, err := p.catalog.Create(ctx, "admin", spec); err != nil {
		t.Fatal(err)
	}
	imp, err := p.catalog.Import(ctx, "admin", "people", datasets.Source{Name: "people.csv"}, src, nil)
	if err != nil {
		t.Fatal(err)
	}
	if imp.Version.Rows != peopleRows {
		t.Fatalf("imported %d rows, want %d", imp.Version.Rows, peopleRows)
	}
	if _, _, err := p.dir.Add(ctx, "admin", operators.NewPrincipal{Name: "registry", Roles: []string{operators.RoleProvider}, Organization: testAgency}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"acme", "beta"} {
		if _, _, err := p.dir.Add(ctx, "admin", operators.NewPrincipal{Name: name, Roles: []string{operators.RoleOperator}}); err != nil {
			t.Fatal(err)
		}
	}
	p.agree(t, "acme", operators.Approval{Fields: map[string]map[string]string{"people": {"district": "raw", "income": "raw"}}})
	return p
}

// testAgency owns the people register; its provider is "registry".
const testAgency = "Test Registry Office"

// agree has holder apply for district and income of people for testPurpose
// until 2027-06-30 and the provider approve as ap says; it returns the
// agreement.
func (p *platform) agree(t *testing.T, holder string, ap operators.Approval) operators.Agreement {
	t.Helper()
	ctx := context.Background()
	app, err := p.dir.Apply(ctx, p.principal(t, holder), operators.Request{
		Datasets: []operators.DatasetRequest{{Dataset: "people", Fields: []string{"district", "income"}}},
		Purpose:  testPurpose, ValidUntil: "2027-06-30",
	}, catalogView{p.catalog})
	if err != nil {
		t.Fatal(err)
	}
	_, a, err := p.dir.Approve(ctx, p.principal(t, "registry"), app.ID, ap)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// catalogView shows the catalog to the directory, as the server does.
type catalogView struct{ c *datasets.Catalog }

func (v catalogView) Dataset(ctx context.Context, name string) (operators.Dataset, error) {
	e, err := v.c.Get(ctx, name)
	if err != nil {
		return operators.Dataset{}, err
	}
	return operators.Dataset{Name: e.Name, Agency: e.Agency, Open: e.Open, Fields: e.FieldNames()}, nil
}

func (p *platform) principal(t *testing.T, name string) operators.Principal {
	t.Helper()
	pr, err := p.dir.Get(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return pr
}

func (p *platform) start(t *testing.T) {
	t.Helper()
	if err := p.svc.Start(context.Background(), 2); err != nil {
		t.Fatal(err)
	}
}

func (p *platform) submit(t *testing.T, who operators.Principal, query string) Job {
	t.Helper()
	j, err := p.svc.Submit(context.Background(), who, Request{Dataset: "people", SQL: query, Purpose: testPurpose})
	if err != nil {
		t.Fatalf("submit %q: %v", query, err)
	}
	if j.State != StateQueued {
		t.Fatalf("submit %q: state %s, want queued (decision %+v)", query, j.State, j.Decision)
	}
	return j
}

// wait polls the job every 10 ms until it is final, for at most 30 s.
func (p *platform) wait(t *testing.T, who operators.Principal, id int64) Job {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		j, err := p.svc.Get(context.Background(), who, id)
		if err != nil {
			t.Fatalf("get job %d: %v", id, err)
		}
		if Final(j.State) {
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %d still %s after 30s", id, j.State)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// entries returns every audit entry in order.
func (p *platform) entries(t *testing.T) []audit.Entry {
	t.Helper()
	var out []audit.Entry
	for seq := int64(0); seq < p.log.Size(); seq++ {
		e, err := p.log.Entry(seq)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

// jobEntries returns the entries about job id: its submission (whose seq is
// the job's ID) and every entry with subject job/<id>.
func (p *platform) jobEntries(t *testing.T, id int64) []audit.Entry {
	t.Helper()
	var out []audit.Entry
	for _, e := range p.entries(t) {
		if e.Seq == id || e.Subject == "job/"+strconv.FormatInt(id, 10) {
			out = append(out, e)
		}
	}
	return out
}

func kinds(es []audit.Entry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Kind
	}
	return out
}

func countKind(es []audit.Entry, kind string) int {
	n := 0
	for _, e := range es {
		if e.Kind == kind {
			n++
		}
	}
	return n
}

func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func hashOf(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// expectedCSV computes, from the generator, the CSV of
// SELECT district, count(*) AS n, sum(income) AS total ... ORDER BY district.
func expectedCSV() string {
	var b strings.Builder
	b.WriteString("district,n,total\n")
	for d, name := range districts {
		var n, total int64
		for i := 0; i < peopleRows; i++ {
			if i%3 == d {
				n++
				total += incomeOf(i)
			}
		}
		fmt.Fprintf(&b, "%s,%d,%d\n", name, n, total)
	}
	return b.String()
}

const totalsSQL = "SELECT district, count(*) AS n, sum(income) AS total FROM people GROUP BY district ORDER BY district"

func TestAuditChainOfReleasedJob(t *testing.T) {
	p := newPlatform(t)
	ctx := context.Background()
	acme := p.principal(t, "acme")
	p.start(t)

	submitted := p.submit(t, acme, totalsSQL)
	if submitted.CodeSHA256 != hashOf(totalsSQL) {
		t.Errorf("code_sha256 = %s, want the SHA-256 of the SQL %s", submitted.CodeSHA256, hashOf(totalsSQL))
	}
	j := p.wait(t, acme, submitted.ID)
	if j.State != StateReleased || j.Result == nil || j.Result.ReleaseSeq == 0 {
		t.Fatalf("job ended %s (checks %+v, release %+v, error %q), want released", j.State, j.Checks, j.Release, j.Error)
	}
	if j.Result.Rows != 3 || !slices.Equal(j.Result.Columns, []string{"district", "n", "total"}) {
		t.Errorf("result %d rows, columns %v; want 3 rows of district, n, total", j.Result.Rows, j.Result.Columns)
	}
	if got := fileSHA256(t, filepath.Join(p.quarantine(), strconv.FormatInt(j.ID, 10), "result.parquet")); got != j.Result.SHA256 {
		t.Errorf("quarantined file hash %s, job records %s", got, j.Result.SHA256)
	}

	es := p.jobEntries(t, j.ID)
	want := []string{"job.submitted", "job.decided", "job.started", "job.ran", "job.checked", "result.released"}
	if !slices.Equal(kinds(es), want) {
		t.Fatalf("audit entries of job %d: %v, want %v", j.ID, kinds(es), want)
	}
	for i := 1; i < len(es); i++ {
		if es[i].Seq <= es[i-1].Seq {
			t.Errorf("entry %s (seq %d) is not after %s (seq %d)", es[i].Kind, es[i].Seq, es[i-1].Kind, es[i-1].Seq)
		}
	}
	for _, e := range es {
		if e.Principal != "acme" {
			t.Errorf("%s entry names principal %q, want acme", e.Kind, e.Principal)
		}
	}

	sub := es[0]
	if sub.Seq != j.ID || sub.Subject != "dataset/people" {
		t.Errorf("submission entry seq %d subject %q, want seq %d subject dataset/people", sub.Seq, sub.Subject, j.ID)
	}
	var subData struct {
		Dataset string `json:"dataset"`
		Version string `json:"version"`
		Code    string `json:"code_sha256"`
		SQL     string `json:"sql"`
		Purpose string `json:"purpose"`
	}
	if err := json.Unmarshal(sub.Data, &subData); err != nil {
		t.Fatal(err)
	}
	if subData.Code != j.CodeSHA256 || subData.SQL != totalsSQL || subData.Dataset != "people" ||
		subData.Version != j.Version || subData.Purpose != testPurpose {
		t.Errorf("submission data %+v does not match job %+v", subData, j)
	}

	rel := es[len(es)-1]
	if rel.Seq != j.Result.ReleaseSeq {
		t.Errorf("job's release_seq %d, release entry seq %d", j.Result.ReleaseSeq, rel.Seq)
	}
	var relData struct {
		Job    int64    `json:"job"`
		SHA256 string   `json:"sha256"`
		Rows   int64    `json:"rows"`
		Bundle string   `json:"policy_bundle"`
		Checks []string `json:"checks_passed"`
	}
	if err := json.Unmarshal(rel.Data, &relData); err != nil {
		t.Fatal(err)
	}
	if relData.Job != j.ID || relData.SHA256 != j.Result.SHA256 || relData.Rows != 3 {
		t.Errorf("release data %+v, want job %d sha256 %s rows 3", relData, j.ID, j.Result.SHA256)
	}
	if relData.Bundle == "" || relData.Bundle != p.policy.BundleHash() {
		t.Errorf("release names policy bundle %q, engine's is %q", relData.Bundle, p.policy.BundleHash())
	}
	wantChecks := []string{"attributes", "classification", "degrees_of_freedom", "differencing", "direct_identifiers", "dominance", "extremes",
		"min_cell_count", "rounding", "row_level", "suppression", "top_bottom_coding"}
	if !slices.Equal(relData.Checks, wantChecks) {
		t.Errorf("checks_passed %v, want %v", relData.Checks, wantChecks)
	}
	var jobChecks []string
	for _, c := range j.Checks {
		if c.Verdict != disclosure.Pass {
			t.Errorf("check %s did not pass: %s", c.Check, c.Detail)
		}
		jobChecks = append(jobChecks, c.Check)
	}
	slices.Sort(jobChecks)
	if !slices.Equal(jobChecks, wantChecks) {
		t.Errorf("job's checks %v, want %v", jobChecks, wantChecks)
	}

	var out bytes.Buffer
	if err := p.svc.Deliver(ctx, acme, j.ID, FormatCSV, &out); err != nil {
		t.Fatal(err)
	}
	if out.String() != expectedCSV() {
		t.Errorf("delivered CSV:\n%s\nwant:\n%s", out.String(), expectedCSV())
	}
	after := p.jobEntries(t, j.ID)
	if len(after) != len(es)+1 {
		t.Fatalf("after delivery: %v, want one more entry than %v", kinds(after), kinds(es))
	}
	dl := after[len(after)-1]
	if dl.Kind != "result.downloaded" || dl.Seq <= rel.Seq || dl.Principal != "acme" {
		t.Errorf("delivery entry %s seq %d by %q, want result.downloaded after seq %d by acme", dl.Kind, dl.Seq, dl.Principal, rel.Seq)
	}
	var dlData struct{ SHA256, Format string }
	if err := json.Unmarshal(dl.Data, &dlData); err != nil {
		t.Fatal(err)
	}
	if dlData.SHA256 != j.Result.SHA256 || dlData.Format != FormatCSV {
		t.Errorf("download data %+v, want sha256 %s format csv", dlData, j.Result.SHA256)
	}
	got, err := p.svc.Get(ctx, acme, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Downloads != 1 || got.State != StateReleased {
		t.Errorf("after one delivery: downloads %d state %s, want 1 released", got.Downloads, got.State)
	}

	records, err := p.log.Records(0, p.log.Size())
	if err != nil {
		t.Fatal(err)
	}
	cp, err := p.log.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	rep, err := audit.Verify(records, cp, p.log.VerifierKey())
	if err != nil {
		t.Fatalf("audit log does not verify: %v", err)
	}
	if rep.Size != p.log.Size() || rep.Size <= dl.Seq {
		t.Errorf("verified %d entries, log has %d (last download at %d)", rep.Size, p.log.Size(), dl.Seq)
	}
}

func TestRestartResumesQueuedJob(t *testing.T) {
	p := newPlatform(t)
	ctx := context.Background()
	acme := p.principal(t, "acme")

	// No workers: Submit must not block, and the jobs stay queued.
	queries := []string{totalsSQL, "SELECT district, avg(income) AS mean_income FROM people GROUP BY district"}
	type submitted struct {
		job Job
		err error
	}
	done := make(chan submitted, len(queries))
	go func() {
		for _, q := range queries {
			j, err := p.svc.Submit(ctx, acme, Request{Dataset: "people", SQL: q, Purpose: testPurpose})
			done <- submitted{j, err}
		}
	}()
	var got []Job
	for range queries {
		select {
		case s := <-done:
			if s.err != nil || s.job.State != StateQueued {
				t.Fatalf("submit without workers: %s %v, want queued", s.job.State, s.err)
			}
			got = append(got, s.job)
		case <-time.After(30 * time.Second):
			t.Fatal("Submit blocked without running workers")
		}
	}
	queued, crashed := got[0], got[1]
	time.Sleep(50 * time.Millisecond)
	for _, id := range []int64{queued.ID, crashed.ID} {
		if j, err := p.svc.Get(ctx, acme, id); err != nil || j.State != StateQueued {
			t.Fatalf("job %d without workers: %s %v, want queued", id, j.State, err)
		}
	}

	// Simulate a crash in the middle of running the second job: its row says
	// running and its quarantine directory holds a partial result.
	if _, err := p.db.ExecContext(ctx, `UPDATE jobs SET state = ? WHERE id = ?`, StateRunning, crashed.ID); err != nil {
		t.Fatal(err)
	}
	crashedDir := filepath.Join(p.quarantine(), strconv.FormatInt(crashed.ID, 10))
	if err := os.MkdirAll(filepath.Join(crashedDir, "tmp"), 0o700); err != nil {
		t.Fatal(err)
	}
	stale := []byte("PAR1 partial write, cut off by the crash")
	for _, name := range []string{"result.parquet", "partial.tmp", filepath.Join("tmp", "spill.bin")} {
		if err := os.WriteFile(filepath.Join(crashedDir, name), stale, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	p.close()

	q := openPlatform(t, p.data)
	acme = q.principal(t, "acme")
	for _, c := range []struct {
		id   int64
		want string
	}{{queued.ID, StateQueued}, {crashed.ID, StateRunning}} {
		if j, err := q.svc.Get(ctx, acme, c.id); err != nil || j.State != c.want {
			t.Fatalf("job %d after reopening: %s %v, want %s", c.id, j.State, err, c.want)
		}
	}
	q.start(t)

	for _, id := range []int64{queued.ID, crashed.ID} {
		j := q.wait(t, acme, id)
		if j.State != StateReleased || j.Result == nil || j.Result.ReleaseSeq == 0 {
			t.Fatalf("job %d after restart: %s %q, want released", id, j.State, j.Error)
		}
		path := filepath.Join(q.quarantine(), strconv.FormatInt(id, 10), "result.parquet")
		if got := fileSHA256(t, path); got != j.Result.SHA256 {
			t.Errorf("job %d: file on disk hashes %s, job released %s", id, got, j.Result.SHA256)
		}
		if j.Result.Rows != 3 {
			t.Errorf("job %d: %d rows, want 3", id, j.Result.Rows)
		}
	}
	if _, err := os.Stat(filepath.Join(crashedDir, "partial.tmp")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale partial file survived the re-run: %v", err)
	}
	if got := fileSHA256(t, filepath.Join(crashedDir, "result.parquet")); got == hashOf(string(stale)) {
		t.Error("the stale partial result was kept as the result")
	}

	wantQueued := []string{"job.submitted", "job.decided", "job.started", "job.ran", "job.checked", "result.released"}
	if got := kinds(q.jobEntries(t, queued.ID)); !slices.Equal(got, wantQueued) {
		t.Errorf("queued job's entries %v, want %v", got, wantQueued)
	}
	wantCrashed := []string{"job.submitted", "job.decided", "job.requeued", "job.started", "job.ran", "job.checked", "result.released"}
	if got := kinds(q.jobEntries(t, crashed.ID)); !slices.Equal(got, wantCrashed) {
		t.Errorf("interrupted job's entries %v, want %v", got, wantCrashed)
	}

	// The re-run result is deliverable: the release record matches the file.
	var out bytes.Buffer
	if err := q.svc.Deliver(ctx, acme, crashed.ID, FormatParquet, &out); err != nil {
		t.Fatal(err)
	}
	if h := sha256.Sum256(out.Bytes()); hex.EncodeToString(h[:]) != fileSHA256(t, filepath.Join(crashedDir, "result.parquet")) {
		t.Error("delivered Parquet differs from the released file")
	}
}

func TestFailedJobIsRecorded(t *testing.T) {
	p := newPlatform(t)
	ctx := context.Background()
	acme := p.principal(t, "acme")
	p.start(t)

	// District names are not numbers: DuckDB fails the cast while running.
	query := "SELECT district, sum(CAST(district AS INTEGER)) AS s FROM people GROUP BY district"
	j := p.wait(t, acme, p.submit(t, acme, query).ID)
	if j.State != StateFailed {
		t.Fatalf("job ended %s, want failed", j.State)
	}
	if !strings.Contains(j.Error, "Conversion Error") || !strings.Contains(j.Error, "INT32") {
		t.Errorf("error %q does not name the failed conversion", j.Error)
	}
	if j.Result != nil || j.Run != nil || j.Release != nil || j.Checks != nil {
		t.Errorf("failed job carries a result %+v run %+v release %+v checks %+v", j.Result, j.Run, j.Release, j.Checks)
	}

	es := p.jobEntries(t, j.ID)
	want := []string{"job.submitted", "job.decided", "job.started", "job.failed"}
	if !slices.Equal(kinds(es), want) {
		t.Fatalf("entries %v, want %v", kinds(es), want)
	}
	var failed struct{ Error string }
	if err := json.Unmarshal(es[3].Data, &failed); err != nil {
		t.Fatal(err)
	}
	if failed.Error != j.Error {
		t.Errorf("job.failed entry says %q, job says %q", failed.Error, j.Error)
	}

	jobDir := filepath.Join(p.quarantine(), strconv.FormatInt(j.ID, 10))
	if _, err := os.Stat(filepath.Join(jobDir, "result.parquet")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("failed job left a result file: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(jobDir, "*")); len(left) != 0 {
		t.Errorf("failed job left files in quarantine: %v", left)
	}

	size := p.log.Size()
	var out bytes.Buffer
	err := p.svc.Deliver(ctx, acme, j.ID, FormatCSV, &out)
	var nr *NotReleasedError
	if !errors.As(err, &nr) {
		t.Fatalf("Deliver of a failed job: %v, want *NotReleasedError", err)
	}
	if nr.ID != j.ID || nr.State != StateFailed || nr.Why != j.Error || !strings.Contains(err.Error(), "failed") {
		t.Errorf("NotReleasedError %+v (%v), want job %d failed with its error", nr, err, j.ID)
	}
	if out.Len() != 0 || p.log.Size() != size {
		t.Errorf("refused delivery wrote %d bytes and %d audit entries", out.Len(), p.log.Size()-size)
	}
}

func TestDeliverOnlyToSubmitter(t *testing.T) {
	p := newPlatform(t)
	ctx := context.Background()
	acme, beta := p.principal(t, "acme"), p.principal(t, "beta")
	admin := p.principal(t, "admin")
	if !admin.Has(operators.RoleAdmin) {
		t.Fatalf("admin principal %+v lacks the admin role", admin)
	}
	p.start(t)
	j := p.wait(t, acme, p.submit(t, acme, totalsSQL).ID)
	if j.State != StateReleased {
		t.Fatalf("job ended %s, want released", j.State)
	}
	size := p.log.Size()

	var out bytes.Buffer
	if _, err := p.svc.Get(ctx, beta, j.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("another operator's Get: %v, want ErrNotFound", err)
	}
	if err := p.svc.Deliver(ctx, beta, j.ID, FormatCSV, &out); !errors.Is(err, ErrNotFound) {
		t.Errorf("another operator's Deliver: %v, want ErrNotFound", err)
	}
	if list, err := p.svc.List(ctx, beta); err != nil || len(list) != 0 {
		t.Errorf("another operator's List: %d jobs, %v; want none", len(list), err)
	}

	seen, err := p.svc.Get(ctx, admin, j.ID)
	if err != nil || seen.ID != j.ID || seen.Operator != "acme" || seen.Result.SHA256 != j.Result.SHA256 {
		t.Errorf("admin's Get: %+v %v, want job %d", seen, err, j.ID)
	}
	if list, err := p.svc.List(ctx, admin); err != nil || len(list) != 1 || list[0].ID != j.ID {
		t.Errorf("admin's List: %v %v, want job %d", list, err, j.ID)
	}
	if err := p.svc.Deliver(ctx, admin, j.ID, FormatCSV, &out); !errors.Is(err, ErrNotFound) {
		t.Errorf("admin's Deliver: %v, want ErrNotFound", err)
	}

	err = p.svc.Deliver(ctx, acme, j.ID, "xlsx", &out)
	var ie *InputError
	if !errors.As(err, &ie) || ie.Code != "bad_format" || !strings.Contains(ie.Msg, "xlsx") {
		t.Errorf("unknown format: %v, want *InputError bad_format", err)
	}
	if err := p.svc.Deliver(ctx, acme, j.ID+1000, FormatCSV, &out); !errors.Is(err, ErrNotFound) {
		t.Errorf("Deliver of an unknown job: %v, want ErrNotFound", err)
	}

	if out.Len() != 0 || p.log.Size() != size {
		t.Errorf("refused deliveries wrote %d bytes and %d audit entries", out.Len(), p.log.Size()-size)
	}
	if got, _ := p.svc.Get(ctx, acme, j.ID); got.Downloads != 0 {
		t.Errorf("downloads = %d after only refused deliveries", got.Downloads)
	}

	// The submitter does receive it.
	if err := p.svc.Deliver(ctx, acme, j.ID, FormatCSV, &out); err != nil || out.String() != expectedCSV() {
		t.Errorf("submitter's Deliver: %v\n%s", err, out.String())
	}
}

func TestSubmitRefusals(t *testing.T) {
	p := newPlatform(t)
	ctx := context.Background()
	acme, admin := p.principal(t, "acme"), p.principal(t, "admin")
	good := Request{Dataset: "people", SQL: totalsSQL, Purpose: testPurpose}

	cases := []struct {
		name    string
		mutate  func(*Request)
		code    string
		refused bool // recorded as job.refused
	}{
		{"empty dataset", func(r *Request) { r.Dataset = "  " }, "missing_dataset", false},
		{"empty sql", func(r *Request) { r.SQL = " \n\t" }, "missing_code", false},
		{"empty purpose", func(r *Request) { r.Purpose = "" }, "missing_purpose", false},
		{"unknown dataset", func(r *Request) { r.Dataset = "nosuch" }, "unknown_dataset", false},
		{"not a select", func(r *Request) { r.SQL = "DELETE FROM people" }, "not_select", true},
	}
	for _, c := range cases {
		before := p.entries(t)
		req := good
		c.mutate(&req)
		j, err := p.svc.Submit(ctx, acme, req)
		var ie *InputError
		if !errors.As(err, &ie) || ie.Code != c.code || ie.Msg == "" {
			t.Errorf("%s: %+v %v, want *InputError %s", c.name, j, err, c.code)
			continue
		}
		if j.ID != 0 {
			t.Errorf("%s: returned job %d", c.name, j.ID)
		}
		after := p.entries(t)
		added := after[len(before):]
		if !c.refused {
			if len(added) != 0 {
				t.Errorf("%s: added audit entries %v, want none", c.name, kinds(added))
			}
			continue
		}
		if len(added) != 1 || added[0].Kind != "job.refused" {
			t.Fatalf("%s: added audit entries %v, want exactly one job.refused", c.name, kinds(added))
		}
		var data struct {
			Code   string `json:"code_sha256"`
			SQL    string `json:"sql"`
			Reason string `json:"reason"`
		}
		if err := json.Unmarshal(added[0].Data, &data); err != nil {
			t.Fatal(err)
		}
		if added[0].Principal != "acme" || added[0].Subject != "dataset/people" ||
			data.Reason != c.code || data.SQL != req.SQL || data.Code != hashOf(req.SQL) {
			t.Errorf("%s: refusal entry %+v data %+v", c.name, added[0], data)
		}
	}
	if n := countKind(p.entries(t), "job.refused"); n != 1 {
		t.Errorf("%d job.refused entries in all, want 1", n)
	}
	for _, who := range []operators.Principal{acme, admin} {
		if list, err := p.svc.List(ctx, who); err != nil || len(list) != 0 {
			t.Errorf("List for %s after refusals: %d jobs, %v; want none", who.Name, len(list), err)
		}
	}
	var rows int
	if err := p.db.QueryRowContext(ctx, `SELECT count(*) FROM jobs`).Scan(&rows); err != nil || rows != 0 {
		t.Errorf("jobs table holds %d rows (%v), want 0", rows, err)
	}
}

// Concurrent deliveries of one result are each counted: the count matches
// the result.downloaded entries in the audit log.
func TestConcurrentDeliveriesAreAllCounted(t *testing.T) {
	p := newPlatform(t)
	ctx := context.Background()
	acme := p.principal(t, "acme")
	p.start(t)
	j := p.wait(t, acme, p.submit(t, acme, totalsSQL).ID)
	if j.State != StateReleased {
		t.Fatalf("setup: %s", j.State)
	}
	const n = 8
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() { errs <- p.svc.Deliver(ctx, acme, j.ID, FormatCSV, io.Discard) }()
	}
	for i := 0; i < n; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	got, err := p.svc.Get(ctx, acme, j.ID)
	if err != nil || got.Downloads != n {
		t.Fatalf("downloads = %d (%v), want %d", got.Downloads, err, n)
	}
}
