package datasets

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/datasandbox/dsbx/audit"
	"github.com/datasandbox/dsbx/state"
	"github.com/datasandbox/dsbx/state/statetest"
)

// testCatalog is a catalog over a fresh state database and audit log in a
// temporary directory.
type testCatalog struct {
	*Catalog
	log  *audit.Log
	db   *state.DB
	root string // the state directory; snapshots are under root/datasets
}

func newTestCatalog(t *testing.T) *testCatalog {
	t.Helper()
	return openTestCatalog(t, t.TempDir())
}

// openTestCatalog opens (or reopens) the catalog kept in root.
func openTestCatalog(t testing.TB, root string) *testCatalog {
	t.Helper()
	db := statetest.Open(t, root)
	log, err := audit.Open(filepath.Join(root, "audit"), "test.local/audit")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close() })
	return &testCatalog{Catalog: NewCatalog(db, filepath.Join(root, "datasets"), log), log: log, db: db, root: root}
}

// reopen closes the catalog's database and audit log and opens them again,
// as a restarted server would.
func (tc *testCatalog) reopen(t *testing.T) *testCatalog {
	t.Helper()
	tc.close()
	return openTestCatalog(t, tc.root)
}

func (tc *testCatalog) close() {
	tc.log.Close()
	tc.db.Close()
}

// auditKinds returns the kinds of the audit entries from seq from on.
func (tc *testCatalog) auditKinds(t *testing.T, from int64) []string {
	t.Helper()
	var out []string
	for i := from; i < tc.log.Size(); i++ {
		e, err := tc.log.Entry(i)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e.Kind)
	}
	return out
}

// lastAudit returns the newest audit entry.
func (tc *testCatalog) lastAudit(t *testing.T) audit.Entry {
	t.Helper()
	if tc.log.Size() == 0 {
		t.Fatal("the audit log is empty")
	}
	e, err := tc.log.Entry(tc.log.Size() - 1)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// stateOf describes everything a refused operation must leave as it was:
// the catalog's entries and versions, the objections, the audit log's size
// and every file under the snapshot directory. The staging directory must
// be empty or absent.
func (tc *testCatalog) stateOf(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	entries, err := tc.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := tc.Objections(ctx, "", "")
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	err = filepath.WalkDir(tc.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p == tc.dir {
				return nil
			}
			return err
		}
		rel, _ := filepath.Rel(tc.dir, p)
		if d.IsDir() && rel == ".staging" {
			left, err := os.ReadDir(p)
			if err != nil {
				return err
			}
			if len(left) > 0 {
				t.Errorf("staging directory not cleaned up: %v", left)
			}
			return fs.SkipDir
		}
		if !d.IsDir() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			files = append(files, fmt.Sprintf("%s %d %v", rel, info.Size(), info.Mode()))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(map[string]any{"entries": entries, "objections": objs, "audit": tc.log.Size(), "files": files})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// writeTestFile writes content to a file called name in a new temporary
// directory and returns its path.
func writeTestFile(t testing.TB, name string, content []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, content, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// mustCreate creates s or fails the test.
func (tc *testCatalog) mustCreate(t *testing.T, s Spec) Entry {
	t.Helper()
	e, err := tc.Create(context.Background(), "provider", s)
	if err != nil {
		t.Fatalf("Create(%s): %v", s.Name, err)
	}
	return e
}

// mustImport imports the CSV text content as a new version of name.
func (tc *testCatalog) mustImport(t *testing.T, name, content string) Imported {
	t.Helper()
	got, err := tc.Import(context.Background(), "importer", name, Source{}, writeTestFile(t, name+".csv", []byte(content)), nil)
	if err != nil {
		t.Fatalf("Import(%s): %v", name, err)
	}
	return got
}

func wantInputError(t *testing.T, err error, mentions ...string) {
	t.Helper()
	var ie *InputError
	if !errors.As(err, &ie) {
		t.Fatalf("err = %v (%T), want an *InputError", err, err)
	}
	for _, m := range mentions {
		if !strings.Contains(err.Error(), m) {
			t.Errorf("err = %q, want it to mention %q", err, m)
		}
	}
}

// peopleSpec is a conditionally open dataset whose district field comes
// from a Chinese header.
func peopleSpec() Spec {
	return Spec{
		Name: "people", Title: "人口", Description: "常住人口抽样", Agency: "市统计局",
		Grade: GradeImportant, Open: OpenConditional, Share: ShareUnconditional, Frequency: "monthly",
		LegalBasis: "《个人信息保护法》第二十八条", Tags: []string{"人口", "统计"}, Keys: []string{"id_number"},
		Fields: []Field{
			{Name: "id_number", Description: "身份证号", Sensitivity: "personal-sensitive", Identifier: IdentifierDirect},
			{Name: "district", Column: "所属区县", Sensitivity: "internal", Identifier: IdentifierQuasi},
			{Name: "income", Type: "BIGINT", Sensitivity: "sensitive", Identifier: IdentifierNone},
		},
	}
}

const peopleCSV = "id_number,所属区县,income\n330102199001011234,西湖区,52000\n330102198505052345,上城区,61000\n"

func TestCreateStoresEveryAttribute(t *testing.T) {
	ctx := context.Background()
	tc := newTestCatalog(t)
	before := time.Now().UTC().Add(-time.Second)
	created, err := tc.Create(ctx, "provider", peopleSpec())
	if err != nil {
		t.Fatal(err)
	}
	got, err := tc.Get(ctx, "people")
	if err != nil {
		t.Fatal(err)
	}
	for what, e := range map[string]Entry{"Create": created, "Get": got} {
		s := peopleSpec()
		if e.Name != s.Name || e.Title != s.Title || e.Description != s.Description || e.Agency != s.Agency ||
			e.Grade != s.Grade || e.Open != s.Open || e.Share != s.Share || e.Frequency != s.Frequency || e.LegalBasis != s.LegalBasis {
			t.Errorf("%s: attributes = %+v, want those of %+v", what, e, s)
		}
		if !slices.Equal(e.Tags, s.Tags) || !slices.Equal(e.Keys, s.Keys) {
			t.Errorf("%s: tags %v keys %v, want %v %v", what, e.Tags, e.Keys, s.Tags, s.Keys)
		}
		if !slices.Equal(e.Fields, s.Fields) {
			t.Errorf("%s: fields = %+v, want %+v", what, e.Fields, s.Fields)
		}
		if f, _ := e.Field("district"); f.Column != "所属区县" {
			t.Errorf("%s: district column = %q", what, f.Column)
		}
		if e.Status != StatusActive || e.SuspendedFields == nil || len(e.SuspendedFields) != 0 {
			t.Errorf("%s: status %q, suspended %#v; want active and an empty list", what, e.Status, e.SuspendedFields)
		}
		if e.CreatedBy != "provider" || e.CreatedAt.Before(before) || e.CreatedAt.After(time.Now().Add(time.Second)) {
			t.Errorf("%s: created by %q at %v", what, e.CreatedBy, e.CreatedAt)
		}
		if len(e.Versions) != 0 {
			t.Errorf("%s: a new entry has versions %v", what, e.Versions)
		}
	}
	if !got.CreatedAt.Equal(created.CreatedAt) {
		t.Errorf("stored creation time %v, returned %v", got.CreatedAt, created.CreatedAt)
	}
	if tc.log.Size() != 1 {
		t.Fatalf("audit size %d, want 1", tc.log.Size())
	}
	a := tc.lastAudit(t)
	if a.Kind != "dataset.created" || a.Principal != "provider" || a.Subject != "dataset/people" {
		t.Errorf("audit entry %+v", a)
	}
	var logged Entry
	if err := json.Unmarshal(a.Data, &logged); err != nil || logged.LegalBasis != peopleSpec().LegalBasis || len(logged.Fields) != 3 {
		t.Errorf("audit data %s (%v) does not record the entry", a.Data, err)
	}

	// Defaults: share conditional, empty (not null) tags and keys.
	s := Spec{Name: "open_data", Grade: GradeGeneral, Open: OpenUnconditional,
		Fields: []Field{{Name: "a", Sensitivity: "public", Identifier: IdentifierNone}}}
	e, err := tc.Create(ctx, "provider", s)
	if err != nil {
		t.Fatal(err)
	}
	if e, err = tc.Get(ctx, "open_data"); err != nil {
		t.Fatal(err)
	}
	if e.Share != ShareConditional || e.Tags == nil || e.Keys == nil || e.LegalBasis != "" {
		t.Errorf("defaults: share %q tags %#v keys %#v", e.Share, e.Tags, e.Keys)
	}
	list, err := tc.List(ctx)
	if err != nil || len(list) != 2 || list[0].Name != "open_data" || list[1].Name != "people" {
		t.Errorf("List = %v, %v; want open_data, people", list, err)
	}
	if _, err := tc.Get(ctx, "nobody"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(nobody) = %v, want ErrNotFound", err)
	}
}

// Every refused Create says why, and leaves the catalog and the audit log
// as they were.
func TestCreateRefusesBadSpecs(t *testing.T) {
	ctx := context.Background()
	tc := newTestCatalog(t)
	tc.mustCreate(t, peopleSpec())
	mod := func(f func(*Spec)) Spec { s := peopleSpec(); s.Name = "other"; f(&s); return s }
	cases := []struct {
		name string
		spec Spec
		want []string
	}{
		{"duplicate name", peopleSpec(), []string{"people already exists"}},
		{"conditional without legal basis", mod(func(s *Spec) { s.LegalBasis = "" }), []string{"legal_basis", "conditional"}},
		{"closed with a blank legal basis", mod(func(s *Spec) { s.Open = OpenClosed; s.LegalBasis = "  \t" }), []string{"legal_basis", "closed"}},
		{"key naming no field", mod(func(s *Spec) { s.Keys = []string{"id_number", "passport"} }), []string{"keys", "passport"}},
		{"key naming a column header, not a field", mod(func(s *Spec) { s.Keys = []string{"所属区县"} }), []string{"keys"}},
		{"bad field type", mod(func(s *Spec) { s.Fields[2].Type = "MONEY" }), []string{"income", "MONEY"}},
		{"decimal with scale over precision", mod(func(s *Spec) { s.Fields[2].Type = "DECIMAL(4,6)" }), []string{"income", "precision"}},
		{"list type", mod(func(s *Spec) { s.Fields[2].Type = "INTEGER[]" }), []string{"income"}},
		{"bad grade", mod(func(s *Spec) { s.Grade = "secret" }), []string{"grade"}},
		{"bad open", mod(func(s *Spec) { s.Open = "maybe" }), []string{"open attribute"}},
		{"bad share", mod(func(s *Spec) { s.Share = "sometimes" }), []string{"share attribute"}},
		{"bad name", mod(func(s *Spec) { s.Name = "People; DROP" }), []string{"dataset name"}},
		{"no fields", mod(func(s *Spec) { s.Fields = nil; s.Keys = nil }), []string{"fields"}},
		{"bad field name", mod(func(s *Spec) { s.Fields[0].Name = "ID Number" }), []string{"ID Number"}},
		{"field twice", mod(func(s *Spec) { s.Fields[1].Name = "id_number" }), []string{"twice"}},
		{"bad sensitivity", mod(func(s *Spec) { s.Fields[1].Sensitivity = "secretish" }), []string{"district", "sensitivity"}},
		{"missing identifier", mod(func(s *Spec) { s.Fields[1].Identifier = "" }), []string{"district", "identifier"}},
	}
	before := tc.stateOf(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := tc.Create(ctx, "provider", c.spec)
			wantInputError(t, err, c.want...)
			if after := tc.stateOf(t); after != before {
				t.Errorf("a refused Create changed state:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
	if _, err := tc.Get(ctx, "other"); !errors.Is(err, ErrNotFound) {
		t.Errorf("a refused entry was stored: %v", err)
	}
}

func TestParseSpec(t *testing.T) {
	const yml = `name: registers
title: 企业登记
grade: general
open: conditional
legal_basis: 《政府信息公开条例》
update_frequency: daily
tags: [企业, 登记]
keys: [credit_code]
fields:
  - name: credit_code
    column: 统一社会信用代码
    sensitivity: public
    identifier: direct
  - name: capital
    type: decimal(18, 2)
    sensitivity: internal
    identifier: none
`
	s, err := ParseSpec(strings.NewReader(yml))
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "registers" || s.Title != "企业登记" || s.LegalBasis != "《政府信息公开条例》" || s.Frequency != "daily" ||
		!slices.Equal(s.Tags, []string{"企业", "登记"}) || !slices.Equal(s.Keys, []string{"credit_code"}) || len(s.Fields) != 2 ||
		s.Fields[0].Column != "统一社会信用代码" || s.Fields[1].Type != "decimal(18, 2)" {
		t.Fatalf("ParseSpec = %+v", s)
	}
	tc := newTestCatalog(t)
	tc.mustCreate(t, s)
	e, err := tc.Get(context.Background(), "registers")
	if err != nil {
		t.Fatal(err)
	}
	// Types are stored by their canonical names.
	if e.Fields[0].Column != "统一社会信用代码" || e.Share != ShareConditional || e.Fields[1].Type != "DECIMAL(18,2)" {
		t.Errorf("created from YAML: %+v", e)
	}
	if s.Fields[1].Type != "decimal(18, 2)" {
		t.Errorf("Create changed the caller's spec: %+v", s.Fields[1])
	}

	for name, bad := range map[string]string{
		"empty":             "",
		"unknown key":       strings.Replace(yml, "tags:", "labels:", 1),
		"unknown field key": yml + "    colour: red\n",
		"not yaml":          "fields: [",
	} {
		_, err := ParseSpec(strings.NewReader(bad))
		var ie *InputError
		if !errors.As(err, &ie) {
			t.Errorf("%s: ParseSpec = %v, want an *InputError", name, err)
		}
		if name == "unknown key" && !strings.Contains(fmt.Sprint(err), "labels") {
			t.Errorf("unknown key: %v does not name it", err)
		}
	}
}
