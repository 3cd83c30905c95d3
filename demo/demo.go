// Package demo is the guided walk-through that `dsbx demo` runs: it starts a
// server in a temporary directory, generates two registers, and takes jobs
// through release, denial and hold, then verifies the audit log.
package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/datasandbox/dsbx/audit"
	"github.com/datasandbox/dsbx/client"
	"github.com/datasandbox/dsbx/datasets"
	"github.com/datasandbox/dsbx/disclosure"
	"github.com/datasandbox/dsbx/jobs"
	"github.com/datasandbox/dsbx/operators"
	"github.com/datasandbox/dsbx/server"
)

// Options configure a demo run.
type Options struct {
	// Keep, if set, is the data directory to use and keep; otherwise a
	// temporary directory is used and removed.
	Keep string
}

// Run performs the walk-through, printing each step to w. It returns an
// error if any step does not end as the platform promises.
func Run(ctx context.Context, w io.Writer, opts Options) error {
	dir := opts.Keep
	if dir == "" {
		tmp, err := os.MkdirTemp("", "dsbx-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	d := &walk{w: w, dir: dir}
	return d.run(ctx)
}

type walk struct {
	w    io.Writer
	dir  string
	step int
}

func (d *walk) say(format string, args ...any) { fmt.Fprintf(d.w, format+"\n", args...) }

func (d *walk) title(s string) {
	d.step++
	d.say("\n[%d] %s", d.step, s)
}

func (d *walk) run(ctx context.Context) error {
	data := filepath.Join(d.dir, "data")
	srv, err := server.Open(ctx, server.Config{Data: data})
	if err != nil {
		return err
	}
	defer srv.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	go srv.Serve(sctx, l)
	base := "http://" + l.Addr().String()
	token, err := os.ReadFile(filepath.Join(data, server.AdminTokenFile))
	if err != nil {
		return err
	}
	admin := client.New(base, strings.TrimSpace(string(token)))

	d.say("DataSandbox demo: one conditionally opened dataset through the whole SQL job lifecycle.")
	d.title("Start the platform")
	d.say("    server %s, data in %s, admin token in %s", base, data, server.AdminTokenFile)

	d.title("The platform admits the data providers and an operator, each with its roles")
	providers := map[string]*client.Client{}
	for _, spec := range []datasets.Spec{populationSpec(), enterpriseSpec()} {
		name := "provider-" + spec.Name
		p, issued, err := admin.AddPrincipal(ctx, operators.NewPrincipal{Name: name, Roles: []string{operators.RoleProvider}, Organization: spec.Agency})
		if err != nil {
			return err
		}
		providers[spec.Name] = client.New(base, issued.Token)
		d.say("    %-22s provider for %s", p.Name, p.Organization)
	}
	op, issued, err := admin.AddPrincipal(ctx, operators.NewPrincipal{Name: "hz-elderly-care-co", Roles: []string{operators.RoleOperator}, Organization: "杭州颐养数据科技有限公司"})
	if err != nil {
		return err
	}
	operator := client.New(base, issued.Token)
	d.say("    %-22s operator (授权运营单位), token %s (stored only as a hash)", op.Name, issued.Credential.ID)

	d.title("Each provider catalogues its own dataset (生成的演示数据)")
	files := filepath.Join(d.dir, "files")
	if err := os.MkdirAll(files, 0o700); err != nil {
		return err
	}
	pop, ent := filepath.Join(files, "population.csv"), filepath.Join(files, "enterprises.csv")
	if err := writePopulation(pop, 6000, 2026); err != nil {
		return err
	}
	if err := writeEnterprises(ent, 800, 2026); err != nil {
		return err
	}
	for _, imp := range []struct {
		spec datasets.Spec
		file string
	}{
		{populationSpec(), pop},
		{enterpriseSpec(), ent},
	} {
		provider := providers[imp.spec.Name]
		if _, err := provider.CreateDataset(ctx, imp.spec); err != nil {
			return fmt.Errorf("create %s: %w", imp.spec.Name, err)
		}
		got, err := provider.ImportVersion(ctx, imp.spec.Name, datasets.Source{}, imp.file, nil)
		if err != nil {
			return fmt.Errorf("import %s: %w", imp.spec.Name, err)
		}
		d.say("    %-12s %s  %d rows, version %s, open=%s grade=%s", got.Entry.Name, got.Entry.Title, got.Version.Rows, got.Version.ID[:12], got.Entry.Open, got.Entry.Grade)
	}

	d.title("The operator applies for authorized operation (授权运营) of population data")
	purpose := "elderly care planning (养老服务规划)"
	until := time.Now().In(operators.Zone).AddDate(2, 0, 0).Format(operators.DateLayout)
	app, err := operator.Apply(ctx, operators.Request{
		Kind: operators.KindAuthorizedOperation, Purpose: purpose,
		Scenario:   "district-level planning of elderly care beds; compliance review passed",
		Datasets:   []operators.DatasetRequest{{Dataset: "population", Fields: []string{"district", "sex", "birth_date", "household_size", "income"}}},
		ValidUntil: until, Outputs: "aggregate statistics per district",
	})
	if err != nil {
		return err
	}
	d.say("    application %d to %s: %s, until %s", app.ID, app.Provider, strings.Join(app.Datasets[0].Fields, ", "), until)
	d.say("    the provider must answer by the end of %s (10 working days)", app.DueAt.In(operators.Zone).Add(-time.Nanosecond).Format(operators.DateLayout))

	d.title("The provider approves it, narrower than asked: no birth dates, one year, aggregates only")
	_, a, err := providers["population"].Approve(ctx, app.ID, operators.Approval{
		Fields:     map[string]map[string]string{"population": {"district": "raw", "sex": "raw", "household_size": "raw", "income": "raw"}},
		ValidUntil: time.Now().In(operators.Zone).AddDate(1, 0, 0).Format(operators.DateLayout),
		Outputs:    operators.OutputRules{AggregatesOnly: true},
		Note:       "birth dates are not needed for district-level planning",
	})
	if err != nil {
		return err
	}
	scope := a.Scope[0]
	d.say("    application %d approved → agreement %d: %s may use %s of %s for %q until %s", app.ID, a.ID, a.Holder, strings.Join(sortedKeys(scope.Fields), ", "), scope.Dataset, purpose, a.Until.In(operators.Zone).Format(operators.DateLayout))
	d.say("    (id_number and name were never asked for: direct identifiers stay with the provider)")

	d.title("An allowed aggregate query: admitted, run in a locked DuckDB, checked, released")
	released, err := d.job(ctx, operator, purpose,
		"SELECT district, count(*) AS residents, round(avg(income)) AS avg_income FROM population GROUP BY district ORDER BY residents DESC")
	if err != nil {
		return err
	}
	if released.State != jobs.StateReleased {
		return fmt.Errorf("job %d ended %s, want released", released.ID, released.State)
	}
	var csv bytes.Buffer
	if err := operator.FetchResult(ctx, released.ID, jobs.FormatCSV, &csv); err != nil {
		return err
	}
	d.say("    released result (dsbx result fetch %d --out result.csv):", released.ID)
	for _, line := range strings.Split(strings.TrimSpace(csv.String()), "\n") {
		d.say("      %s", line)
	}

	d.title("A query touching a field outside the agreement: a dry run explains, then policy denies it")
	nameQuery := "SELECT district, count(*) AS residents FROM population WHERE name LIKE '王%' GROUP BY district"
	ex, err := operator.Explain(ctx, jobs.Request{Dataset: "population", SQL: nameQuery, Purpose: purpose})
	if err != nil {
		return err
	}
	d.say("    dry run (dsbx policy explain), nothing recorded: allow=%v", ex.Decision.Allow)
	for _, r := range ex.Decision.Reasons {
		d.say("      would deny: %s: %s", r.Code, r.Message)
	}
	denied, err := d.job(ctx, operator, purpose, nameQuery)
	if err != nil {
		return err
	}
	if denied.State != jobs.StateDenied {
		return fmt.Errorf("job %d ended %s, want denied", denied.ID, denied.State)
	}

	d.title("A query whose result has small cells: held in quarantine by the output check")
	held, err := d.job(ctx, operator, purpose,
		"SELECT district, sex, household_size, count(*) AS residents FROM population WHERE income > 150000 GROUP BY ALL ORDER BY ALL")
	if err != nil {
		return err
	}
	if held.State != jobs.StateHeld {
		return fmt.Errorf("job %d ended %s, want held", held.ID, held.State)
	}
	err = operator.FetchResult(ctx, held.ID, jobs.FormatCSV, io.Discard)
	if !client.IsStatus(err, 409) {
		return fmt.Errorf("fetching held job %d: %v, want a refusal", held.ID, err)
	}
	d.say("    fetch refused: %v", err)

	d.title("An output checker looks at what would be released, and rejects it")
	_, ci, err := admin.AddPrincipal(ctx, operators.NewPrincipal{Name: "output-checker", Roles: []string{operators.RoleReviewer}, Organization: "杭州市数据资源管理局"})
	if err != nil {
		return err
	}
	checker := client.New(base, ci.Token)
	var candidate bytes.Buffer
	if err := checker.Inspect(ctx, held.ID, jobs.FormatCSV, &candidate); err != nil {
		return err
	}
	lines := strings.Split(strings.TrimSpace(candidate.String()), "\n")
	d.say("    the file job %d would release, suppressed cells blank (dsbx review show %d), first rows:", held.ID, held.ID)
	for _, line := range lines[:min(4, len(lines))] {
		d.say("      %s", line)
	}
	rejected, err := checker.Review(ctx, held.ID, jobs.ReviewRequest{Approve: false, Reason: "too many cells alone in their lines; widen the groups"})
	if err != nil {
		return err
	}
	if rejected.State != jobs.StateRejected {
		return fmt.Errorf("job %d after rejection: %s", held.ID, rejected.State)
	}
	d.say("    job %d → %s: %s", held.ID, strings.ToUpper(rejected.State), rejected.Error)

	d.title("A regulator re-runs the released job from the record (dsbx audit replay)")
	_, ri, err := admin.AddPrincipal(ctx, operators.NewPrincipal{Name: "regulator", Roles: []string{operators.RoleRegulator}, Organization: "浙江省大数据发展管理局"})
	if err != nil {
		return err
	}
	regulator := client.New(base, ri.Token)
	rp, err := regulator.Replay(ctx, released.ID)
	if err != nil {
		return err
	}
	if !rp.ResultMatches || !rp.ReleasedMatches {
		return fmt.Errorf("replay of job %d does not match its record: %+v", released.ID, rp)
	}
	d.say("    job %d replayed: result sha256 %s… matches the record (audit entry %d)", released.ID, rp.ResultSHA256[:16], rp.Seq)
	timeline, err := regulator.AuditEvents(ctx, url.Values{"job": {strconv.FormatInt(released.ID, 10)}})
	if err != nil {
		return err
	}
	var steps []string
	for _, e := range timeline {
		steps = append(steps, e.Kind)
	}
	d.say("    its timeline (dsbx audit log --job %d): %s", released.ID, strings.Join(steps, " → "))

	d.title("The provider revokes the agreement: nothing more runs or leaves under it")
	if _, _, err := providers["population"].ChangeAgreement(ctx, a.ID, "revoke", "the operator's licence was withdrawn"); err != nil {
		return err
	}
	after, err := d.job(ctx, operator, purpose, "SELECT district, count(*) AS residents FROM population GROUP BY district")
	if err != nil {
		return err
	}
	if after.State != jobs.StateDenied {
		return fmt.Errorf("job %d under a revoked agreement ended %s, want denied", after.ID, after.State)
	}
	err = operator.FetchResult(ctx, released.ID, jobs.FormatCSV, io.Discard)
	if !client.IsStatus(err, 409) {
		return fmt.Errorf("fetching job %d after revocation: %v, want a refusal", released.ID, err)
	}
	d.say("    fetching the earlier result now: %v", err)

	d.title("A regulator verifies the audit log (全程记录), offline")
	if err := d.verify(ctx, admin); err != nil {
		return err
	}
	d.say("\nDemo complete: released, denied, held and rejected, replayed by a regulator, every step in a verified audit log.")
	return nil
}

// job submits sql, waits for its final state and prints what happened.
func (d *walk) job(ctx context.Context, c *client.Client, purpose, sql string) (jobs.Job, error) {
	d.say("    SQL: %s", sql)
	j, err := c.Submit(ctx, jobs.Request{Dataset: "population", SQL: sql, Purpose: purpose})
	if err != nil {
		return j, err
	}
	if !jobs.Final(j.State) {
		wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		if j, err = c.Wait(wctx, j.ID); err != nil {
			return j, err
		}
	}
	d.say("    job %d → %s", j.ID, strings.ToUpper(j.State))
	if j.Decision != nil {
		for _, r := range j.Decision.Reasons {
			d.say("      policy: %s: %s", r.Code, r.Message)
		}
	}
	if j.Run != nil {
		d.say("      ran in %d ms in a worker process of its own (CPU %d ms, peak RSS %d MiB): %d rows scanned, %d result rows",
			j.Run.WallMS, j.Run.WorkerCPUMS, j.Run.WorkerPeakRSS>>20, j.Run.RowsScanned, j.Run.Rows)
	}
	for _, ch := range j.Checks {
		if ch.Verdict != disclosure.Pass || ch.Check == "min_cell_count" || ch.Check == "differencing" || ch.Check == "differential_privacy" {
			d.say("      check %s %s: %s", ch.Verdict, ch.Check, ch.Detail)
		}
	}
	if n := len(j.Remedies); n > 0 {
		d.say("      %d values suppressed or rounded before release", n)
	}
	if j.Result != nil && j.Result.ReleaseSeq > 0 {
		d.say("      release recorded in audit entry %d (result sha256 %s…, policy %s…)", j.Result.ReleaseSeq, j.Result.SHA256[:16], j.Release.Bundle[:20])
	}
	if j.Error != "" {
		d.say("      error: %s", j.Error)
	}
	return j, nil
}

// verify exports the log, verifies it, then shows that a one-byte change is
// caught and named.
func (d *walk) verify(ctx context.Context, admin *client.Client) error {
	key, err := admin.AuditKey(ctx)
	if err != nil {
		return err
	}
	checkpoint, err := admin.AuditCheckpoint(ctx)
	if err != nil {
		return err
	}
	cp, err := audit.ParseCheckpoint(checkpoint, key)
	if err != nil {
		return err
	}
	records, err := admin.AuditRecords(ctx, cp.Size)
	if err != nil {
		return err
	}
	out := filepath.Join(d.dir, "audit-export")
	if err := audit.WriteExport(out, records, checkpoint, key); err != nil {
		return err
	}
	records, checkpoint, key, err = audit.ReadExport(out)
	if err != nil {
		return err
	}
	rep, err := audit.Verify(records, checkpoint, key)
	if err != nil {
		return fmt.Errorf("audit log does not verify: %w", err)
	}
	d.say("    exported %d entries; signed checkpoint verified: root %s", rep.Size, rep.Root)
	kinds := map[string]int{}
	for _, r := range records {
		var e audit.Entry
		if err := json.Unmarshal(r, &e); err == nil {
			kinds[e.Kind]++
		}
	}
	d.say("    entries by kind: %v", kinds)

	// Tamper with one entry in a copy: the verifier names it.
	victim := int64(len(records) / 2)
	forged := append([][]byte(nil), records...)
	forged[victim] = bytes.Replace(forged[victim], []byte(`"kind":"`), []byte(`"kind":"x`), 1)
	_, err = audit.Verify(forged, checkpoint, key)
	var te *audit.TamperError
	if !errors.As(err, &te) || te.Seq != victim {
		return fmt.Errorf("tampering with entry %d was not detected: %v", victim, err)
	}
	d.say("    a copy with entry %d altered fails: %v", victim, err)
	return nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
