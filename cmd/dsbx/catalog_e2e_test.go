package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Sandbox mode end to end: dummy data from the server, the SQL developed
// over it locally with job try, then submitted unchanged; and an objection
// that suspends the dataset and stops the next job.
func TestSandboxModeAndObjectionThroughCLI(t *testing.T) {
	e := startServer(t)
	work := t.TempDir()
	csvPath, fieldsPath, _, _ := register(t, work)
	admin := []string{"--token", e.admin}
	e.must(t, append(admin, "dataset", "import", "people", csvPath, "--spec", fieldsPath, "--grade", "important", "--progress", "never")...)
	provOut, _, err := e.cli(t, append(admin, "principal", "add", "hz-health", "--role", "provider", "--org", "Civil Affairs Bureau")...)
	if err != nil {
		t.Fatal(err)
	}
	provider := []string{"--token", strings.TrimSpace(provOut)}
	opOut, _, err := e.cli(t, append(admin, "principal", "add", "lab", "--role", "researcher")...)
	if err != nil {
		t.Fatal(err)
	}
	lab := []string{"--token", strings.TrimSpace(opOut)}
	until := time.Now().UTC().AddDate(1, 0, 0).Format("2006-01-02")
	out := e.must(t, append(lab, "application", "submit", "--dataset", "people:district,income", "--purpose", purpose, "--until", until)...)
	if !strings.HasPrefix(out, "application ") {
		t.Fatalf("application submit: %q", out)
	}
	e.must(t, append(provider, "application", "approve", strings.Fields(out)[1])...)

	dummy := filepath.Join(work, "people.parquet")
	e.must(t, append(lab, "dataset", "dummy", "people", "--rows", "400", "--out", dummy)...)
	if st, err := os.Stat(dummy); err != nil || st.Size() == 0 {
		t.Fatalf("dummy file: %v", err)
	}
	query := "SELECT district, count(*) AS n, avg(income) AS mean_income FROM people GROUP BY district HAVING count(*) >= 10 ORDER BY district"
	out = e.must(t, "job", "try", "--table", "people="+dummy, "--sql", query)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if lines[0] != "district,n,mean_income" || len(lines) != 4 {
		t.Fatalf("job try over dummy data: %q, want a header and the 3 common districts", out)
	}
	if strings.Contains(out, rareDistrict) {
		t.Fatalf("dummy data carried the rare district %s:\n%s", rareDistrict, out)
	}
	e.fails(t, "job try with a table function", []string{"would refuse", "read_csv"}, "job", "try", "--table", "people="+dummy, "--sql", "SELECT * FROM read_csv('/etc/passwd')")
	out = e.must(t, append(lab, "job", "submit", "--dataset", "people", "--sql", query, "--purpose", purpose, "--wait")...)
	if !strings.Contains(out, "released") {
		t.Fatalf("the same SQL on the real data: %s", out)
	}

	out = e.must(t, append(lab, "objection", "file", "--dataset", "people", "--field", "income", "--reason", "incomes of a small district are identifiable")...)
	id := strings.Fields(out)[1]
	e.fails(t, "researcher decides", []string{"HTTP 403"}, append(lab, "objection", "decide", id, "--uphold", "--reason", "x")...)
	out = e.must(t, append(admin, "objection", "decide", id, "--uphold", "--reason", "confirmed by the bureau")...)
	if !strings.Contains(out, "upheld") || !strings.Contains(out, "suspended: income") {
		t.Fatalf("decide output: %q", out)
	}
	e.fails(t, "job on the suspended field", []string{"denied"}, append(lab, "job", "submit", "--dataset", "people", "--sql", query, "--purpose", purpose, "--wait")...)
	out = e.must(t, append(admin, "objection", "released", id)...)
	if !strings.Contains(out, "lab") {
		t.Fatalf("released results listed for the regulator: %q", out)
	}
	out = e.must(t, append(admin, "dataset", "reinstate", "people", "--field", "income", "--reason", "district merged")...)
	if !strings.Contains(out, "people is active") {
		t.Fatalf("reinstate: %q", out)
	}
}
