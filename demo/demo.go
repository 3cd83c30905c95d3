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
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/datasandbox/dsbx/audit"
	"github.com/datasandbox/dsbx/client"
	"github.com/datasandbox/dsbx/datasets"
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

	d.title("The data provider registers two catalog entries (生成的演示数据)")
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
		if _, err := admin.CreateDataset(ctx, imp.spec); err != nil {
			return fmt.Errorf("create %s: %w", imp.spec.Name, err)
		}
		got, err := admin.ImportVersion(ctx, imp.spec.Name, datasets.Source{}, imp.file, nil)
		if err != nil {
			return fmt.Errorf("import %s: %w", imp.spec.Name, err)
		}
		d.say("    %-12s %s  %d rows, version %s, open=%s grade=%s", got.Entry.Name, got.Entry.Title, got.Version.Rows, got.Version.ID[:12], got.Entry.Open, got.Entry.Grade)
	}

	d.title("The platform admits an operator and grants it a data use agreement (数据利用协议)")
	op, opToken, err := admin.AddOperator(ctx, "hz-elderly-care-co", operators.KindCompany)
	if err != nil {
		return err
	}
	purpose := "elderly care planning (养老服务规划)"
	until := time.Now().AddDate(1, 0, 0).Format(operators.DateLayout)
	a, err := admin.Grant(ctx, operators.Grant{Operator: op.Name, Dataset: "population", Purpose: purpose, ValidUntil: until,
		Fields: []string{"district", "sex", "birth_date", "household_size", "income"}})
	if err != nil {
		return err
	}
	d.say("    operator %s; agreement %d on population covers %s, until %s", op.Name, a.ID, strings.Join(a.Fields, ", "), a.ValidUntil)
	d.say("    (id_number and name are not covered: direct identifiers stay in the provider's hands)")
	operator := client.New(base, opToken)

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

	d.title("A query touching a field outside the agreement: denied by policy, with the reason")
	denied, err := d.job(ctx, operator, purpose,
		"SELECT district, count(*) AS residents FROM population WHERE name LIKE '王%' GROUP BY district")
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

	d.title("A regulator verifies the audit log (全程记录), offline")
	if err := d.verify(ctx, admin); err != nil {
		return err
	}
	d.say("\nDemo complete: released, denied and held, every step in a verified audit log.")
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
		d.say("      ran in %d ms, %d result rows", j.Run.WallMS, j.Run.Rows)
	}
	for _, ch := range j.Checks {
		mark := "pass"
		if !ch.Passed {
			mark = "FAIL"
		}
		d.say("      check %s %s: %s", mark, ch.Name, ch.Detail)
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
