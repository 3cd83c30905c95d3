package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/datasandbox/dsbx/sandbox/wasm/wasmtest"
)

// totalsModule is a guest that writes one total per district, without
// reading its input: enough to drive the CLI and the server end to end.
func totalsModule(t *testing.T, dir string, keys []string) string {
	t.Helper()
	totals := make([]int64, len(keys))
	for i := range keys {
		totals[i] = int64(100 * (i + 1))
	}
	stream, err := wasmtest.IPC([]arrow.Field{
		{Name: "district", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "total", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	}, keys, totals)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "totals.wasm")
	mod := wasmtest.Emit(stream, `["district","income"]`, `{"kind":"aggregate","group_by":["district"]}`)
	if err := os.WriteFile(path, mod, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// Wasm jobs through the CLI: checked, run locally over the server's
// synthetic rows, submitted unchanged and released; bad modules refused
// with their reason; a held result when a group is too small.
func TestWasmJobThroughCLI(t *testing.T) {
	e := startServer(t)
	work := t.TempDir()
	csvPath, fieldsPath, counts, _ := register(t, work)
	admin := []string{"--token", e.admin}
	e.must(t, append(admin, "dataset", "import", "people", csvPath, "--spec", fieldsPath, "--progress", "never")...)
	provOut, _, err := e.cli(t, append(admin, "principal", "add", "hz-civil", "--role", "provider", "--org", "Civil Affairs Bureau")...)
	if err != nil {
		t.Fatal(err)
	}
	provider := []string{"--token", strings.TrimSpace(provOut)}
	labOut, _, err := e.cli(t, append(admin, "principal", "add", "lab", "--role", "researcher")...)
	if err != nil {
		t.Fatal(err)
	}
	lab := []string{"--token", strings.TrimSpace(labOut)}
	until := time.Now().UTC().AddDate(1, 0, 0).Format("2006-01-02")
	out := e.must(t, append(lab, "application", "submit", "--dataset", "people:district,income", "--purpose", purpose, "--until", until)...)
	e.must(t, append(provider, "application", "approve", strings.Fields(out)[1])...)

	var common []string
	for _, d := range districts {
		if counts[d] >= 10 {
			common = append(common, d)
		}
	}
	module := totalsModule(t, work, common)
	if out := e.must(t, "wasm", "check", module); !strings.Contains(out, "reads fields: district, income") {
		t.Fatalf("wasm check: %s", out)
	}

	// Sandbox mode: the same host code over the server's synthetic rows.
	_, stderr, err := e.cli(t, append(lab, "run", "--local", "--wasm", module, "--dummy", "people", "--rows", "300")...)
	if err != nil || !strings.Contains(stderr, "rows per group, as the host counted them") {
		t.Fatalf("run --local: %v\n%s", err, stderr)
	}
	e.fails(t, "run without --local", []string{"--local"}, append(lab, "run", "--wasm", module, "--dummy", "people")...)

	out = e.must(t, append(lab, "job", "submit", "--dataset", "people", "--wasm", module, "--purpose", purpose, "--wait")...)
	// The host counts the groups; what the guest's values carry, an output
	// checker looks at.
	if !strings.Contains(out, "HELD") || !strings.Contains(out, "review wasm_values") || !strings.Contains(out, "output aggregate") || !strings.Contains(out, "seed") {
		t.Fatalf("wasm job: %s", out)
	}
	id := strings.TrimSuffix(strings.Fields(out)[1], ":")
	checker := []string{"--token", strings.TrimSpace(e.must(t, append(admin, "principal", "add", "check", "--role", "reviewer")...))}
	e.must(t, append(checker, "review", "guest-log", id)...) // the module writes no log; reading it works
	e.fails(t, "the submitter reading its guest's log", []string{"HTTP 403"}, append(lab, "review", "guest-log", id)...)
	if out := e.must(t, append(checker, "review", "approve", id, "--reason", "totals by district, as declared")...); !strings.Contains(out, "RELEASED") {
		t.Fatalf("approved wasm job: %s", out)
	}
	resCSV := filepath.Join(work, "totals.csv")
	e.must(t, append(lab, "result", "fetch", id, "--out", resCSV)...)
	if res, _ := os.ReadFile(resCSV); !strings.HasPrefix(string(res), "district,total\n"+common[0]+",100\n") {
		t.Fatalf("result: %q", res)
	}

	// Real modules are megabytes (a Go guest with arrow-go is ~13 MB); the
	// submission takes them.
	big, _ := os.ReadFile(module)
	big = append(big, wasmtest.Custom("padding", make([]byte, 3<<20))...)
	bigPath := filepath.Join(work, "big.wasm")
	os.WriteFile(bigPath, big, 0o644)
	if out := e.must(t, append(lab, "job", "submit", "--dataset", "people", "--wasm", bigPath, "--purpose", purpose, "--wait")...); !strings.Contains(out, "HELD") || !strings.Contains(out, "wasm_values") {
		t.Fatalf("a 3 MiB module: %s", out)
	}

	// A group of two people is held, whatever the guest claims about it.
	small := totalsModule(t, t.TempDir(), []string{common[0], rareDistrict})
	out, _, _ = e.cli(t, append(lab, "job", "submit", "--dataset", "people", "--wasm", small, "--purpose", purpose, "--wait")...)
	if !strings.Contains(out, "HELD") {
		t.Fatalf("small group: %s", out)
	}

	bad := filepath.Join(work, "bad.wasm")
	os.WriteFile(bad, []byte("\x00asm\x01\x00\x00\x00\x01\xff"), 0o644)
	e.fails(t, "malformed module", []string{"malformed"}, append(lab, "job", "submit", "--dataset", "people", "--wasm", bad, "--purpose", purpose)...)
	e.fails(t, "sql and wasm", []string{"sql", "wasm"}, append(lab, "job", "submit", "--dataset", "people", "--wasm", module, "--sql", "SELECT 1", "--purpose", purpose)...)
}
