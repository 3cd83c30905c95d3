package policies

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/tester"
)

// regoOnly keeps OPA's loader to policy files: the rules read nothing but
// input, and the JSON kept beside them (the input schema, examples) is not
// OPA data. It is the CLI's `--ignore '*.json'`.
func regoOnly(_ string, info fs.FileInfo, _ int) bool {
	return !info.IsDir() && !strings.HasSuffix(info.Name(), ".rego")
}

// TestRegoUnitTests runs the Rego unit tests (*_test.rego, test_* rules)
// together with the rules, as `opa test --ignore '*.json' policies/` does:
// the .rego files of this directory loaded by OPA's test loader (Rego v1)
// and run by OPA's test runner. Every failed or errored Rego test is reported
// by name; the test also fails when no Rego test ran or a rule package has
// none.
func TestRegoUnitTests(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	modules, store, err := tester.LoadWithRegoVersion([]string{"."}, regoOnly, ast.RegoV1)
	if err != nil {
		t.Fatalf("load the policies directory as `opa test` does: %v", err)
	}
	rulePackages := map[string]string{} // package → rule file
	for name, m := range modules {
		if !strings.HasSuffix(name, "_test.rego") {
			rulePackages[m.Package.Path.String()] = filepath.Base(name)
		}
	}
	if len(rulePackages) == 0 {
		t.Fatal("no rule files (*.rego) in the policies directory")
	}

	txn := storage.NewTransactionOrDie(ctx, store)
	defer store.Abort(ctx, txn)
	ch, err := tester.NewRunner().
		SetDefaultRegoVersion(ast.RegoV1).
		SetStore(store).
		SetModules(modules).
		EnableTracing(false).
		RaiseBuiltinErrors(true).
		SetTimeout(time.Minute).
		RunTests(ctx, txn)
	if err != nil {
		t.Fatalf("compile rules and tests: %v", err)
	}

	var failures []string
	perPackage := map[string]int{}
	total := 0
	for r := range ch {
		total++
		perPackage[r.Package]++
		where := ""
		if r.Location != nil {
			where = fmt.Sprintf(" (%s:%d)", filepath.Base(r.Location.File), r.Location.Row)
		}
		switch {
		case r.Skip:
			t.Logf("SKIPPED %s.%s%s", r.Package, r.Name, where)
		case r.Error != nil:
			failures = append(failures, fmt.Sprintf("ERROR %s.%s%s: %v", r.Package, r.Name, where, r.Error))
		case r.Fail:
			failures = append(failures, fmt.Sprintf("FAIL  %s.%s%s", r.Package, r.Name, where))
		}
	}
	sort.Strings(failures)
	for _, f := range failures {
		t.Error(f)
	}
	if len(failures) > 0 {
		t.Errorf("%d of %d Rego tests did not pass", len(failures), total)
	}
	if total == 0 {
		t.Fatal("no Rego test ran: expected test_* rules in *_test.rego files")
	}

	var pkgs []string
	for pkg := range rulePackages {
		pkgs = append(pkgs, pkg)
	}
	sort.Strings(pkgs)
	for _, pkg := range pkgs {
		n := perPackage[pkg] + perPackage[pkg+"_test"]
		if n == 0 {
			t.Errorf("rule package %s (%s) has no Rego tests: add test_* rules to a *_test.rego file in package %s_test", pkg, rulePackages[pkg], strings.TrimPrefix(pkg, "data."))
		}
		t.Logf("%s: %d Rego tests", pkg, n)
	}
}

// codeRE matches the code of a deny or withdrawn reason in a rule file.
var codeRE = regexp.MustCompile(`"code"\s*:\s*"([A-Za-z0-9_]+)"`)

// TestRegoCodesAreTested fails when a reason code appearing in a rule file is
// not mentioned in the tests of the same package: a new rule needs a test.
func TestRegoCodesAreTested(t *testing.T) {
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	codes := map[string]map[string]bool{} // rule package → codes
	tests := map[string]string{}          // test package → sources
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".rego") {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		m, err := ast.ParseModuleWithOpts(name, string(src), ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			t.Fatalf("parse %s: %v", name, err)
		}
		pkg := m.Package.Path.String()
		if strings.HasSuffix(name, "_test.rego") {
			tests[pkg] += string(src)
			continue
		}
		if codes[pkg] == nil {
			codes[pkg] = map[string]bool{}
		}
		for _, c := range codeRE.FindAllStringSubmatch(string(src), -1) {
			codes[pkg][c[1]] = true
		}
	}
	n := 0
	for pkg, cs := range codes {
		for c := range cs {
			n++
			if !strings.Contains(tests[pkg+"_test"], `"`+c+`"`) && !strings.Contains(tests[pkg], `"`+c+`"`) {
				t.Errorf("reason code %q of %s is not mentioned in any *_test.rego of package %s_test: add a test that fires it and one that does not", c, pkg, strings.TrimPrefix(pkg, "data."))
			}
		}
	}
	if n == 0 {
		t.Fatal(`no "code": "..." found in the rule files; has the reason shape changed?`)
	}
}
