package operators

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/datasandbox/dsbx/audit"
	"github.com/datasandbox/dsbx/state/statetest"
)

// Organizations of the fake catalog.
const (
	civilAffairs = "市民政局" // owns people and households
	police       = "市公安局" // owns vehicles
	justice      = "市司法局" // owns the closed dataset
)

// fakeCatalog serves a fixed set of datasets.
type fakeCatalog map[string]Dataset

func (c fakeCatalog) Dataset(_ context.Context, name string) (Dataset, error) {
	ds, ok := c[name]
	if !ok {
		return Dataset{}, fmt.Errorf("dataset %q: %w", name, ErrNotFound)
	}
	return ds, nil
}

func newCatalog() fakeCatalog {
	return fakeCatalog{
		"people": {Name: "people", Agency: civilAffairs, Open: "conditional",
			Fields:   []string{"id_number", "name", "district", "income", "birth_year"},
			Versions: []string{"3f2a9c01aa", "3f2b7700bb", "9c00de11cc"}},
		"households": {Name: "households", Agency: civilAffairs, Open: "conditional",
			Fields: []string{"household_id", "district", "size"}, Versions: []string{"aa11"}},
		"vehicles": {Name: "vehicles", Agency: police, Open: "conditional",
			Fields: []string{"plate", "district", "year"}, Versions: []string{"bb22"}},
		"prisoners": {Name: "prisoners", Agency: justice, Open: "closed",
			Fields: []string{"id_number", "sentence"}, Versions: []string{"cc33"}},
		"orphan": {Name: "orphan", Agency: "", Open: "conditional",
			Fields: []string{"a", "b"}, Versions: []string{"dd44"}},
	}
}

// env is a directory over a fresh state database and audit log, with a
// clock the test moves and a cast of principals:
//
//	admin  admin                 (bootstrapped)
//	civil  provider, reviewer    市民政局
//	police provider              市公安局
//	acme   operator              杭州数据科技有限公司
//	beta   operator              宁波数据有限公司
//	lab    researcher            浙江大学
//	reg    regulator
//	check  reviewer
type env struct {
	ctx    context.Context
	d      *Directory
	log    *audit.Log
	cat    fakeCatalog
	now    time.Time
	p      map[string]Principal
	tokens map[string]string
}

// start is the default clock: Monday 2026-11-23 10:00 in Zone.
var start = time.Date(2026, 11, 23, 10, 0, 0, 0, Zone)

func newBareEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	ctx := context.Background()
	db := statetest.Open(t, dir)
	log, err := audit.Open(filepath.Join(dir, "audit"), "test.local/audit")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close() })
	e := &env{ctx: ctx, log: log, cat: newCatalog(), now: start, p: map[string]Principal{}, tokens: map[string]string{}}
	e.d = NewDirectory(db, log)
	e.d.SetClock(func() time.Time { return e.now })
	return e
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := newBareEnv(t)
	token, err := e.d.Bootstrap(e.ctx)
	if err != nil || token == "" {
		t.Fatalf("bootstrap: %q %v", token, err)
	}
	e.tokens["admin"] = token
	e.p["admin"] = e.get(t, "admin")
	for _, np := range []NewPrincipal{
		{Name: "civil", Roles: []string{RoleProvider, RoleReviewer}, Organization: civilAffairs},
		{Name: "police", Roles: []string{RoleProvider}, Organization: police},
		{Name: "acme", Roles: []string{RoleOperator}, Organization: "杭州数据科技有限公司"},
		{Name: "beta", Roles: []string{RoleOperator}, Organization: "宁波数据有限公司"},
		{Name: "lab", Roles: []string{RoleResearcher}, Organization: "浙江大学"},
		{Name: "reg", Roles: []string{RoleRegulator}},
		{Name: "check", Roles: []string{RoleReviewer}},
	} {
		p, issued, err := e.d.Add(e.ctx, "admin", np)
		if err != nil {
			t.Fatalf("add %s: %v", np.Name, err)
		}
		e.p[p.Name], e.tokens[p.Name] = p, issued.Token
	}
	return e
}

func (e *env) get(t *testing.T, name string) Principal {
	t.Helper()
	p, err := e.d.Get(e.ctx, name)
	if err != nil {
		t.Fatalf("get %s: %v", name, err)
	}
	return p
}

// snapshot renders every row of the directory's tables and the audit log's
// size, so that a refused call can be shown to have changed nothing.
func (e *env) snapshot(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "audit log size %d\n", e.log.Size())
	for _, table := range []string{"principals", "tokens", "applications", "agreements", "agreement_history"} {
		rows, err := e.d.db.QueryContext(e.ctx, `SELECT * FROM `+table)
		if err != nil {
			t.Fatalf("snapshot %s: %v", table, err)
		}
		cols, _ := rows.Columns()
		var lines []string // sorted: neither database promises an order without ORDER BY
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatalf("snapshot %s: %v", table, err)
			}
			lines = append(lines, fmt.Sprintf("%s %q\n", table, vals))
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("snapshot %s: %v", table, err)
		}
		rows.Close()
		slices.Sort(lines)
		b.WriteString(strings.Join(lines, ""))
	}
	return b.String()
}

// refused runs fn, which must fail without changing the state database or
// the audit log, and returns its error.
func (e *env) refused(t *testing.T, what string, fn func() error) error {
	t.Helper()
	before := e.snapshot(t)
	err := fn()
	if err == nil {
		t.Errorf("%s: accepted, want a refusal", what)
		return nil
	}
	if after := e.snapshot(t); after != before {
		t.Errorf("%s: refused (%v) but changed something:\nbefore:\n%s\nafter:\n%s", what, err, before, after)
	}
	return err
}

// wantErr checks that err is (or wraps) a T whose message contains substr.
func wantErr[T error](t *testing.T, what string, err error, substr string) {
	t.Helper()
	var target T
	if !errors.As(err, &target) {
		t.Errorf("%s: err = %v (%T), want a %T", what, err, err, target)
		return
	}
	if !strings.Contains(err.Error(), substr) {
		t.Errorf("%s: err = %q, want it to mention %q", what, err, substr)
	}
}

// wantNotFound checks that err wraps ErrNotFound.
func wantNotFound(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("%s: err = %v (%T), want ErrNotFound", what, err, err)
	}
}

// entry returns audit entry seq.
func (e *env) entry(t *testing.T, seq int64) audit.Entry {
	t.Helper()
	en, err := e.log.Entry(seq)
	if err != nil {
		t.Fatalf("audit entry %d: %v", seq, err)
	}
	return en
}

// last returns the last audit entry.
func (e *env) last(t *testing.T) audit.Entry {
	t.Helper()
	return e.entry(t, e.log.Size()-1)
}

// entriesSince returns the entries appended from seq on.
func (e *env) entriesSince(t *testing.T, seq int64) []audit.Entry {
	t.Helper()
	var out []audit.Entry
	for i := seq; i < e.log.Size(); i++ {
		out = append(out, e.entry(t, i))
	}
	return out
}

// data decodes an entry's data.
func data(t *testing.T, en audit.Entry) map[string]any {
	t.Helper()
	m := map[string]any{}
	if len(en.Data) > 0 {
		if err := json.Unmarshal(en.Data, &m); err != nil {
			t.Fatalf("entry %d data: %v", en.Seq, err)
		}
	}
	return m
}

// wantEntry checks an audit entry's kind, actor and subject.
func wantEntry(t *testing.T, en audit.Entry, kind, principal, subject string) {
	t.Helper()
	if en.Kind != kind || en.Principal != principal || en.Subject != subject {
		t.Errorf("audit entry %d = {%s by %q on %s}, want {%s by %q on %s}", en.Seq, en.Kind, en.Principal, en.Subject, kind, principal, subject)
	}
}

// peopleRequest asks for data of 市民政局 for 2027.
func peopleRequest() Request {
	return Request{
		Kind: KindDataUse, Purpose: "elderly care planning", Scenario: "district-level service planning",
		Datasets: []DatasetRequest{
			{Dataset: "people", Fields: []string{"district", "income", "birth_year"}},
			{Dataset: "households", Fields: []string{"district", "size"}},
		},
		ValidFrom: "2027-01-01", ValidUntil: "2027-12-31", Outputs: "counts per district",
	}
}

// apply submits r as applicant, failing the test on error.
func (e *env) apply(t *testing.T, applicant string, r Request) Application {
	t.Helper()
	a, err := e.d.Apply(e.ctx, e.p[applicant], r, e.cat)
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	return a
}

// approve approves application id as provider, failing the test on error.
func (e *env) approve(t *testing.T, provider string, id int64, ap Approval) (Application, Agreement) {
	t.Helper()
	app, a, err := e.d.Approve(e.ctx, e.p[provider], id, ap)
	if err != nil {
		t.Fatalf("approve %d: %v", id, err)
	}
	return app, a
}

func cst(y int, m time.Month, d, h, min int) time.Time { return time.Date(y, m, d, h, min, 0, 0, Zone) }
