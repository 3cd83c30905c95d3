package main

import (
	"strings"
	"testing"
	"time"
)

func TestParseCodes(t *testing.T) {
	got, err := parseCodes("top-code", []string{"income=200000"})
	if err != nil || got["income"] != 200000 {
		t.Fatalf("%v %v", got, err)
	}
	if got, err := parseCodes("top-code", nil); got != nil || err != nil {
		t.Fatalf("no flags: %v %v", got, err)
	}
	if _, err := parseCodes("bottom-code", []string{"income"}); err == nil || !strings.Contains(err.Error(), "--bottom-code") {
		t.Fatalf("bad flag: %v", err)
	}
}

func TestParseBounds(t *testing.T) {
	got, err := parseBounds([]string{"income=0:50000", " age = -1 : 120 "})
	if err != nil || got["income"] != [2]float64{0, 50000} || got["age"] != [2]float64{-1, 120} {
		t.Fatalf("%v %v", got, err)
	}
	for _, bad := range []string{"income", "income=0", "=0:1", "income=a:b"} {
		if _, err := parseBounds([]string{bad}); err == nil || !strings.Contains(err.Error(), "FIELD=LO:HI") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

// Differential privacy through the CLI: the provider grants it, the
// budget is spent job by job and shown, and the job past it is denied.
func TestPrivacyThroughCLI(t *testing.T) {
	e := startServer(t)
	work := t.TempDir()
	csvPath, fieldsPath, _, _ := register(t, work)
	admin := []string{"--token", e.admin}
	e.must(t, append(admin, "dataset", "import", "people", csvPath, "--spec", fieldsPath, "--progress", "never")...)
	provider := []string{"--token", strings.TrimSpace(e.must(t, append(admin, "principal", "add", "hz-civil", "--role", "provider", "--org", "Civil Affairs Bureau")...))}
	lab := []string{"--token", strings.TrimSpace(e.must(t, append(admin, "principal", "add", "lab", "--role", "researcher")...))}
	until := time.Now().UTC().AddDate(1, 0, 0).Format("2006-01-02")
	out := e.must(t, append(lab, "application", "submit", "--dataset", "people:district,income", "--purpose", purpose, "--until", until)...)
	id := strings.Fields(out)[1]
	e.fails(t, "DP terms without a mechanism", []string{"--dp-mechanism"}, append(provider, "application", "approve", id, "--dp-epsilon", "1")...)
	e.fails(t, "a per-job ε above the total", []string{"epsilon_per_job"}, append(provider, "application", "approve", id,
		"--dp-mechanism", "laplace", "--dp-epsilon", "1", "--dp-epsilon-per-job", "2", "--dp-person-key", "id_number")...)
	e.must(t, append(provider, "application", "approve", id, "--dp-mechanism", "laplace", "--dp-epsilon", "1", "--dp-epsilon-per-job", "0.5",
		"--dp-person-key", "id_number", "--dp-bound", "income=0:100000")...)

	q := "SELECT district, count(*) AS n, sum(income) AS total FROM people GROUP BY district"
	for i := 0; i < 2; i++ {
		if out := e.must(t, append(lab, "job", "submit", "--dataset", "people", "--sql", q, "--purpose", purpose, "--wait")...); !strings.Contains(out, "RELEASED") && !strings.Contains(out, "HELD") {
			t.Fatalf("DP job %d: %s", i, out)
		}
	}
	if out := e.must(t, append(lab, "privacy", "budgets")...); !strings.Contains(out, "laplace") || !strings.Contains(out, "lab") || !strings.Contains(out, " 1 ") {
		t.Fatalf("budgets: %s", out)
	}
	for name, c := range map[string]struct{ sql, code string }{
		"the job past the budget": {q, "privacy_budget_exhausted"},
		"a mean under DP":         {"SELECT district, avg(income) AS m FROM people GROUP BY district", "privacy_unsupported"},
	} {
		out, _, err := e.cli(t, append(lab, "job", "submit", "--dataset", "people", "--sql", c.sql, "--purpose", purpose)...)
		if err == nil || !strings.Contains(out, "DENIED") || !strings.Contains(out, c.code) {
			t.Errorf("%s: %v\n%s", name, err, out)
		}
	}
}
