package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/datasandbox/dsbx/client"
	"github.com/datasandbox/dsbx/jobs"
)

// Outcomes of a hostile submission over HTTP.
const (
	advRefused = "refused" // HTTP 400 with the analysis code, recorded as job.refused
	advDenied  = "denied"  // HTTP 403, the job stored denied with reasons, recorded as job.decided
	advFailed  = "failed"  // admitted, then the sandbox stopped it: job failed with the error, recorded as job.failed
)

// advBundle writes the built-in policy bundle with a one-second job time
// limit and a smaller memory limit, so bombs end quickly.
func advBundle(t *testing.T) string {
	t.Helper()
	dir := bundleCopy(t)
	edit(t, dir, "admission.rego", `"timeout_seconds": 60`, `"timeout_seconds": 1`)
	edit(t, dir, "admission.rego", `"memory": "512MB"`, `"memory": "256MB"`)
	return dir
}

// TestAdversarialOverHTTP submits hostile SQL as the operator (granted
// district and income of people, never id_number). Each submission is
// refused, denied or fails with a clear reason, is in the audit log, and
// leaves the platform answering and running ordinary jobs.
func TestAdversarialOverHTTP(t *testing.T) {
	p := start(t, func(c *Config) { c.Policies = advBundle(t) })
	ctx := context.Background()
	vault := t.TempDir() // the target of every write; nothing may appear in it
	secret := filepath.Join(vault, "secret.csv")
	if err := os.WriteFile(secret, []byte("DSBXSECRET\n1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e, err := p.admin.Dataset(ctx, "people")
	if err != nil {
		t.Fatal(err)
	}
	snapshot := p.srv.catalog.SnapshotPath("people", e.Versions[0])
	if _, err := os.Stat(snapshot); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	// Values of id_number, which the operator may never see; every one
	// starts so.
	const hiddenID = "33010219900101"
	q := strings.NewReplacer("{vault}", vault, "{secret}", secret, "{snapshot}", snapshot).Replace

	cases := []struct {
		category string
		sql      string
		outcome  string
		says     string // the refusal code, a denial reason's code, or a substring of the failure
	}{
		{"file", `SELECT * FROM read_csv('{secret}')`, advRefused, "table_function"},
		{"file", `SELECT id_number FROM read_parquet('{snapshot}')`, advRefused, "table_function"},
		{"file", `SELECT * FROM glob('/*')`, advRefused, "table_function"},
		{"file", `SELECT content FROM read_text('/etc/passwd')`, advRefused, "table_function"},
		{"file", `SELECT * FROM '{secret}'`, advRefused, "unknown_table"},
		{"file", `SELECT read_blob('{secret}')`, advRefused, "forbidden_function"},
		{"write", `COPY people TO '{vault}/leak.csv'`, advRefused, "not_select"},
		{"write", `COPY (SELECT id_number FROM people) TO '{vault}/leak.parquet' (FORMAT parquet)`, advRefused, "not_select"},
		{"write", `EXPORT DATABASE '{vault}/export'`, advRefused, "not_select"},
		{"attach", `ATTACH '{vault}/x.duckdb' AS x`, advRefused, "not_select"},
		{"extension", `INSTALL httpfs`, advRefused, "not_select"},
		{"extension", `LOAD httpfs`, advRefused, "not_select"},
		{"setting", `SET enable_external_access = true`, advRefused, "not_select"},
		{"setting", `SET GLOBAL lock_configuration = false`, advRefused, "not_select"},
		{"setting", `RESET memory_limit`, advRefused, "not_select"},
		{"pragma", `PRAGMA version`, advRefused, "not_select"},
		{"call", `CALL enable_logging(storage := 'file', storage_path := '{vault}/logs')`, advRefused, "not_select"},
		{"probe", `SELECT getenv('HOME')`, advRefused, "forbidden_function"},
		{"probe", `SELECT current_setting('temp_directory')`, advRefused, "forbidden_function"},
		{"probe", `SELECT * FROM duckdb_settings()`, advRefused, "table_function"},
		{"probe", `SELECT * FROM duckdb_external_file_cache()`, advRefused, "table_function"},
		{"multi", `SELECT count(*) FROM people; SELECT id_number FROM people`, advRefused, "multiple_statements"},
		{"text", "SELECT id\u200bnumber FROM people", advRefused, "unknown_field"},
		{"text", "ＳＥＬＥＣＴ id_number FROM people", advRefused, "parse"},
		{"text", "SELECT ｉｄ_number FROM people", advRefused, "unknown_field"},
		{"text", `SELECT/**/id_number FROM people`, advDenied, "id_number"},
		{"text", "SELECT district -- \n, id_number FROM people", advDenied, "id_number"},
		{"reach", `SELECT id_number AS district FROM people`, advDenied, "id_number"},
		{"reach", `SELECT * FROM people`, advDenied, "id_number"},
		{"reach", `SELECT COLUMNS('i.*') FROM people`, advDenied, "id_number"},
		{"reach", `SELECT to_json(people) FROM people`, advDenied, "id_number"},
		{"reach", `SELECT hash(p) FROM people p`, advDenied, "id_number"},
		{"reach", `SELECT {'x': id_number} FROM people`, advDenied, "id_number"},
		{"reach", `SELECT district, first_value(id_number) OVER (PARTITION BY district) FROM people`, advDenied, "id_number"},
		{"reach", `SELECT district, count(*) FROM people WHERE id_number LIKE '%01' GROUP BY district`, advDenied, "id_number"},
		{"reach", `UNPIVOT people ON id_number, district INTO NAME k VALUE v`, advRefused, "table_function"},
		{"bomb", `SELECT count(*) FROM people a, people b, people c, people d, people e WHERE hash(a.income, b.income, c.income, d.income, e.income) = 7`, advFailed, "time limit of 1s exceeded"},
		{"bomb", `WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) AS n FROM r, people`, advFailed, "time limit of 1s exceeded"},
		{"bomb", `SELECT max(length(repeat(district, 10000000000))) AS m FROM people`, advFailed, "string"},
	}
	if len(cases) < 12 {
		t.Fatalf("only %d cases", len(cases))
	}
	var categories []string
	for _, c := range cases {
		if !slices.Contains(categories, c.category) {
			categories = append(categories, c.category)
		}
	}
	for _, c := range cases {
		sql := q(c.sql)
		seq := p.srv.log.Size()
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		begun := time.Now()
		status, j, apiErr := advSubmit(t, p, sql)
		var err error
		if apiErr != nil {
			err = apiErr
		} else if !jobs.Final(j.State) {
			j, err = p.operator.Wait(sctx, j.ID)
		}
		cancel()
		// The job's limit is 1s: it ends within a few seconds of it.
		if took := time.Since(begun); took > 6*time.Second {
			t.Errorf("%s %q: ended after %s", c.category, c.sql, took.Round(time.Millisecond))
		}
		var ae *client.APIError
		switch c.outcome {
		case advRefused:
			if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest || ae.Code != c.says || ae.Message == "" {
				t.Errorf("%s %q: %v (job %+v), want HTTP 400 %s with a message", c.category, c.sql, err, j.State, c.says)
				continue
			}
			advExpectAudit(t, p, seq, "job.refused", func(data map[string]any) bool { return data["reason"] == c.says })
		case advDenied:
			if status != http.StatusForbidden || err != nil || j.State != jobs.StateDenied || j.Decision == nil || len(j.Decision.Reasons) == 0 {
				t.Errorf("%s %q: HTTP %d %v, state %s, want 403 and a denied job with reasons", c.category, c.sql, status, err, j.State)
				continue
			}
			if !strings.Contains(advReasons(j), c.says) {
				t.Errorf("%s %q: denied for %s, want a reason naming %s", c.category, c.sql, advReasons(j), c.says)
			}
			advExpectAudit(t, p, seq, "job.decided", func(data map[string]any) bool { return data["state"] == jobs.StateDenied })
		case advFailed:
			if status != http.StatusAccepted || err != nil || j.State != jobs.StateFailed || !strings.Contains(j.Error, c.says) {
				t.Errorf("%s %q: HTTP %d %v, state %s, error %q, want 202 and a failed job saying %q", c.category, c.sql, status, err, j.State, j.Error, c.says)
				continue
			}
			if j.Result != nil {
				t.Errorf("%s %q: a failed job has a result %+v", c.category, c.sql, j.Result)
			}
			advExpectAudit(t, p, seq, "job.failed", func(data map[string]any) bool { s, _ := data["error"].(string); return s == j.Error })
		}
		for _, s := range []string{hiddenID, "DSBXSECRET"} {
			if (ae != nil && strings.Contains(ae.Message, s)) || strings.Contains(j.Error, s) {
				t.Errorf("%s %q: the answer reveals %s", c.category, c.sql, s)
			}
		}
	}

	// Nothing was written outside the platform, nor any result kept.
	if entries, _ := os.ReadDir(vault); len(entries) != 1 {
		t.Errorf("the vault holds %d entries, want only the planted file", len(entries))
	}
	all, err := p.admin.Jobs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range all {
		if j.State != jobs.StateDenied && j.State != jobs.StateFailed {
			t.Errorf("job %d %q ended %s", j.ID, j.SQL, j.State)
		}
		if _, err := os.Stat(filepath.Join(p.data, "quarantine", fmt.Sprint(j.ID), "result.parquet")); err == nil {
			t.Errorf("job %d %q left a result in quarantine", j.ID, j.SQL)
		}
	}

	// The platform still answers and runs an ordinary job.
	p.healthy(t, "after the hostile jobs")
	ok := p.run(t, "SELECT district, count(*) AS n, avg(income) AS mean_income FROM people WHERE district <> '临安区' GROUP BY district ORDER BY district")
	if ok.State != jobs.StateReleased {
		t.Fatalf("ordinary job after the hostile ones: %s %s %+v", ok.State, ok.Error, ok.Checks)
	}
	t.Logf("%d hostile submissions in %d categories %v", len(cases), len(categories), categories)
}

// advSubmit posts a job as the operator and returns the status with the job
// or the error answered.
func advSubmit(t *testing.T, p *platform, sql string) (int, jobs.Job, *client.APIError) {
	t.Helper()
	body, err := json.Marshal(jobs.Request{Dataset: "people", SQL: sql, Purpose: purpose})
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, p.base+"/v1/jobs", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tokenOf(t, p.operator))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var answer struct {
		Error *Error `json:"error"`
	}
	if json.Unmarshal(raw, &answer) == nil && answer.Error != nil {
		return resp.StatusCode, jobs.Job{}, &client.APIError{Status: resp.StatusCode, Code: answer.Error.Code, Message: answer.Error.Message}
	}
	var j jobs.Job
	if err := json.Unmarshal(raw, &j); err != nil {
		t.Fatalf("submit %q: HTTP %d %s", sql, resp.StatusCode, raw)
	}
	return resp.StatusCode, j, nil
}

// advExpectAudit checks that the entries appended since seq hold one of kind
// whose data satisfies match.
func advExpectAudit(t *testing.T, p *platform, seq int64, kind string, match func(map[string]any) bool) {
	t.Helper()
	entries := p.entriesSince(t, seq)
	for _, e := range entries {
		if e.Kind != kind {
			continue
		}
		var data map[string]any
		if err := json.Unmarshal(e.Data, &data); err != nil {
			t.Fatal(err)
		}
		if match(data) {
			return
		}
	}
	t.Errorf("no matching %s entry among %v", kind, kinds(entries))
}

func advReasons(j jobs.Job) string {
	var parts []string
	for _, r := range j.Decision.Reasons {
		parts = append(parts, r.Code+": "+r.Message)
	}
	return strings.Join(parts, "; ")
}
