package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/datasandbox/dsbx/jobs"
	"github.com/datasandbox/dsbx/policies"
)

// bundleCopy writes the built-in rule files into a new directory.
func bundleCopy(t *testing.T) string {
	t.Helper()
	e, err := policies.Default(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, src := range e.Files() {
		if err := os.WriteFile(filepath.Join(dir, name), src, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func edit(t *testing.T, dir, name, old, new string) {
	t.Helper()
	path := filepath.Join(dir, name)
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(src), old) {
		t.Fatalf("%s has no %q", name, old)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(string(src), old, new, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestPolicyReload: a bundle that does not compile, or that breaks the
// bundled examples, is refused with the reason and the old one stays; a good
// one takes over, and decisions made under the old one stay explainable.
func TestPolicyReload(t *testing.T) {
	dir := bundleCopy(t)
	p := start(t, func(c *Config) { c.Policies = dir })
	ctx := context.Background()
	first, err := p.admin.Policy(ctx, "")
	if err != nil || !first.InForce || !strings.Contains(first.Files["admission.rego"], "package dsbx.admission") {
		t.Fatalf("bundle in force: %+v %v", first.Hash, err)
	}
	before := p.run(t, "SELECT district, count(*) AS n FROM people WHERE district <> '临安区' GROUP BY district")
	if before.Decision.Bundle != first.Hash {
		t.Fatalf("decision bundle %s, want %s", before.Decision.Bundle, first.Hash)
	}

	// Does not compile.
	os.WriteFile(filepath.Join(dir, "broken.rego"), []byte("package dsbx.extra\n\nx := {"), 0o644)
	_, err = p.admin.ReloadPolicy(ctx)
	expect(t, "bundle that does not compile", err, http.StatusUnprocessableEntity, "broken.rego")
	expect(t, "bundle that does not compile", err, http.StatusUnprocessableEntity, "policies in force are unchanged")
	os.Remove(filepath.Join(dir, "broken.rego"))

	// Compiles, but admits everything: the examples catch it.
	edit(t, dir, "admission.rego", "allow if {\n\tcount(deny) == 0", "allow if {\n\ttrue")
	_, err = p.admin.ReloadPolicy(ctx)
	expect(t, "bundle that admits everything", err, http.StatusUnprocessableEntity, "example")
	if now, _ := p.admin.Policy(ctx, ""); now.Hash != first.Hash {
		t.Fatalf("a refused bundle took over: %s", now.Hash)
	}
	edit(t, dir, "admission.rego", "allow if {\n\ttrue", "allow if {\n\tcount(deny) == 0")

	// A stricter platform minimum: accepted, in force for the next job.
	edit(t, dir, "admission.rego", "platform_min_cell_count := 10", "platform_min_cell_count := 12")
	hash, err := p.admin.ReloadPolicy(ctx)
	if err != nil || hash == first.Hash {
		t.Fatalf("reload: %s %v", hash, err)
	}
	after := p.run(t, "SELECT district, count(*) AS n FROM people WHERE district <> '临安区' GROUP BY district")
	if after.Decision.Bundle != hash || after.Decision.Limits.MinCellCount != 12 {
		t.Fatalf("job after reload: bundle %s, min cell %d", after.Decision.Bundle, after.Decision.Limits.MinCellCount)
	}
	// The first job's decision is explained by the bundle it names.
	old, err := p.operator.Policy(ctx, before.Decision.Bundle)
	if err != nil || old.InForce || !strings.Contains(old.Files["admission.rego"], "platform_min_cell_count := 10") {
		t.Fatalf("old bundle: in force %v, %v", old.InForce, err)
	}
	_, err = p.operator.Policy(ctx, "sha256:"+strings.Repeat("0", 64))
	expect(t, "unknown bundle", err, http.StatusNotFound, "was ever in force here")
	_, err = p.operator.ReloadPolicy(ctx)
	expect(t, "operator reloading", err, http.StatusForbidden, "admin")

	kinds := map[string]int{}
	for _, e := range p.entriesSince(t, 0) {
		kinds[e.Kind]++
	}
	if kinds["policy.loaded"] != 2 || kinds["policy.refused"] != 2 {
		t.Fatalf("policy events %v, want 2 loaded (start, reload) and 2 refused", kinds)
	}
	// Kept bundles are read-only copies.
	filepath.WalkDir(filepath.Join(p.data, BundlesDir), func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if st, _ := os.Stat(path); st.Mode().Perm()&0o222 != 0 {
				t.Errorf("%s is writable", path)
			}
		}
		return nil
	})
}

func TestReloadWithBuiltInBundle(t *testing.T) {
	p := start(t)
	_, err := p.admin.ReloadPolicy(context.Background())
	expect(t, "reload without --policies", err, http.StatusUnprocessableEntity, "built-in bundle")
}

// TestExplainIsADryRun: the operator learns why a job would be denied,
// field by field, and nothing is recorded.
func TestExplainIsADryRun(t *testing.T) {
	p := start(t)
	ctx := context.Background()
	size := p.srv.log.Size()
	ex, err := p.operator.Explain(ctx, jobs.Request{Dataset: "people", SQL: "SELECT district, id_number FROM people", Purpose: purpose})
	if err != nil {
		t.Fatal(err)
	}
	if ex.Decision.Allow || !strings.Contains(reasonsOf(jobs.Job{Record: jobs.Record{Decision: &ex.Decision}}), "field_not_granted: field id_number") ||
		ex.Input.Principal.Name != "acme" || len(ex.Input.Agreements) != 1 || ex.Analysis == nil {
		t.Fatalf("explanation: %+v", ex)
	}
	ok, err := p.operator.Explain(ctx, jobs.Request{Dataset: "people", SQL: "SELECT district, count(*) FROM people GROUP BY district", Purpose: purpose})
	if err != nil || !ok.Decision.Allow || ok.Decision.Fields["district"] != "raw" {
		t.Fatalf("allowed explanation: %+v %v", ok.Decision, err)
	}
	_, err = p.operator.Explain(ctx, jobs.Request{Dataset: "people", SQL: "DELETE FROM people", Purpose: purpose})
	expect(t, "explaining bad SQL", err, http.StatusBadRequest, "")
	if p.srv.log.Size() != size {
		t.Fatalf("explain appended %d audit entries", p.srv.log.Size()-size)
	}
	if list, _ := p.operator.Jobs(ctx); len(list) != 0 {
		t.Fatalf("explain created jobs: %v", list)
	}
}

func TestJobLongPollRefusesABadWait(t *testing.T) {
	p := start(t)
	j := p.run(t, "SELECT district, count(*) AS n FROM people WHERE district <> '临安区' GROUP BY district")
	status, code := p.call(t, http.MethodGet, fmt.Sprintf("/v1/jobs/%d?wait=forever", j.ID), tokenOf(t, p.operator), nil)
	if status != http.StatusBadRequest || code != "bad_request" {
		t.Fatalf("wait=forever: %d %s", status, code)
	}
	if status, _ := p.call(t, http.MethodGet, fmt.Sprintf("/v1/jobs/%d?wait=5s", j.ID), tokenOf(t, p.operator), nil); status != http.StatusOK {
		t.Fatalf("wait on a final job: %d", status)
	}
}

// TestNodesFollowTheServersPolicy: a job node decides with the bundle the
// server has in force, from the server's kept copy, and follows a reload
// with its next decision; a kept copy that was altered is refused.
func TestNodesFollowTheServersPolicy(t *testing.T) {
	dir := bundleCopy(t)
	p := start(t, func(c *Config) { c.Policies = dir })
	ctx := context.Background()
	node, err := followPolicy(ctx, p.srv.db, p.data)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := node.Engine().BundleHash(), p.srv.policy.Engine().BundleHash(); got != want {
		t.Fatalf("node follows %s, the server has %s", got, want)
	}
	edit(t, dir, "admission.rego", "platform_min_cell_count := 10", "platform_min_cell_count := 12")
	hash, err := p.admin.ReloadPolicy(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := node.follow(ctx); err != nil { // as before each decision
		t.Fatal(err)
	}
	if got := node.Engine().BundleHash(); got != hash {
		t.Fatalf("after the server's reload the node decides with %s, want %s", got, hash)
	}

	// Someone alters the kept copy and has the server "reload" it: the node
	// refuses files that do not hash as recorded.
	kept := filepath.Join(p.data, BundlesDir, strings.TrimPrefix(first(t, p, ctx), "sha256:"))
	if _, err := p.srv.db.ExecContext(ctx, `UPDATE settings SET value = ? WHERE name = ?`, "sha256:"+filepath.Base(kept), policyBundleSetting); err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Join(kept, "admission.rego"), 0o644)
	if err := os.WriteFile(filepath.Join(kept, "admission.rego"), []byte("package dsbx.admission\n\nimport rego.v1\n\ndecision := {\"allow\": true}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := node.follow(ctx); err == nil || !strings.Contains(err.Error(), "altered") {
		t.Fatalf("an altered bundle: %v", err)
	}
}

// first returns the hash of the bundle the server started with.
func first(t *testing.T, p *platform, ctx context.Context) string {
	t.Helper()
	for _, e := range p.entriesSince(t, 0) {
		if e.Kind == "policy.loaded" {
			var d struct{ Bundle string }
			if err := json.Unmarshal(e.Data, &d); err != nil {
				t.Fatal(err)
			}
			return d.Bundle
		}
	}
	t.Fatal("no policy.loaded entry")
	return ""
}
