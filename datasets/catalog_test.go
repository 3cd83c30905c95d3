package datasets

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/datasandbox/dsbx/audit"
	"github.com/datasandbox/dsbx/state"
)

func newCatalog(t *testing.T) (*Catalog, *audit.Log) {
	t.Helper()
	dir := t.TempDir()
	db, err := state.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	log, err := audit.Open(filepath.Join(dir, "audit"), "test.local/audit")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close() })
	return NewCatalog(db, filepath.Join(dir, "datasets"), log), log
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const peopleCSV = "id_number,district,income\n330102199001011234,西湖区,52000\n330102198505052345,上城区,61000\n"

func peopleSpec() Spec {
	return Spec{
		Name: "people", Grade: GradeImportant, Open: OpenConditional, Source: "people.csv",
		Labels: Labels{Title: "人口", Fields: []Field{
			{Name: "id_number", Sensitivity: "personal-sensitive", Identifier: IdentifierDirect},
			{Name: "district", Sensitivity: "internal", Identifier: IdentifierQuasi},
			{Name: "income", Sensitivity: "sensitive", Identifier: IdentifierNone},
		}},
	}
}

func TestImportCSVCreatesContentAddressedVersion(t *testing.T) {
	ctx := context.Background()
	c, log := newCatalog(t)
	src := writeFile(t, "people.csv", peopleCSV)
	got, err := c.Import(ctx, "admin", peopleSpec(), src)
	if err != nil {
		t.Fatal(err)
	}
	if got.Version.Rows != 2 || len(got.Version.ID) != 64 || got.Existing {
		t.Fatalf("version = %+v", got.Version)
	}
	if f, _ := got.Entry.Field("income"); f.Type != "BIGINT" {
		t.Errorf("income type = %q, want BIGINT from DuckDB's detection", f.Type)
	}
	path := c.SnapshotPath("people", got.Version)
	sum, _, err := hashFile(path)
	if err != nil || sum != got.Version.ID {
		t.Fatalf("snapshot hash %s, version %s, err %v", sum, got.Version.ID, err)
	}
	if st, _ := os.Stat(path); st.Mode().Perm()&0o222 != 0 {
		t.Errorf("snapshot is writable: %v", st.Mode())
	}
	if log.Size() != 1 {
		t.Errorf("audit entries = %d, want 1 import event", log.Size())
	}
	if e, _ := log.Entry(0); e.Kind != "dataset.imported" || e.Principal != "admin" {
		t.Errorf("audit entry = %+v", e)
	}

	again, err := c.Import(ctx, "admin", peopleSpec(), src)
	if err != nil || !again.Existing || again.Version.ID != got.Version.ID {
		t.Fatalf("re-import of the same file: %+v, %v; want the existing version", again, err)
	}
	if log.Size() != 1 {
		t.Errorf("re-import appended to the audit log")
	}

	src2 := writeFile(t, "people.csv", peopleCSV+"330102197003033456,拱墅区,47000\n")
	v2, err := c.Import(ctx, "admin", peopleSpec(), src2)
	if err != nil || v2.Version.ID == got.Version.ID {
		t.Fatalf("second version: %+v %v", v2, err)
	}
	e, v, err := c.Resolve(ctx, "people")
	if err != nil || v.ID != v2.Version.ID || len(e.Versions) != 2 {
		t.Fatalf("Resolve newest = %s (%d versions), %v", v.ID, len(e.Versions), err)
	}
	if _, v, err = c.Resolve(ctx, "people@"+got.Version.ID[:10]); err != nil || v.ID != got.Version.ID {
		t.Fatalf("Resolve pinned = %s, %v", v.ID, err)
	}
	if _, _, err = c.Resolve(ctx, "people@ffffffffff"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown version: %v", err)
	}
	if _, _, err = c.Resolve(ctx, "nobody"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown dataset: %v", err)
	}
}

func TestImportParquet(t *testing.T) {
	ctx := context.Background()
	c, _ := newCatalog(t)
	first, err := c.Import(ctx, "admin", peopleSpec(), writeFile(t, "people.csv", peopleCSV))
	if err != nil {
		t.Fatal(err)
	}
	spec := peopleSpec()
	spec.Name, spec.Source = "people_copy", "people.parquet"
	got, err := c.Import(ctx, "admin", spec, c.SnapshotPath("people", first.Version))
	if err != nil {
		t.Fatal(err)
	}
	if got.Version.Rows != 2 {
		t.Fatalf("rows = %d", got.Version.Rows)
	}
}

// Every bad input is refused with an error naming the problem, and nothing
// already stored changes.
func TestImportRefusesBadInput(t *testing.T) {
	ctx := context.Background()
	c, log := newCatalog(t)
	if _, err := c.Import(ctx, "admin", peopleSpec(), writeFile(t, "people.csv", peopleCSV)); err != nil {
		t.Fatal(err)
	}
	before, _ := c.Get(ctx, "people")

	mod := func(f func(*Spec)) Spec { s := peopleSpec(); f(&s); return s }
	cases := []struct {
		name, csv string
		spec      Spec
		want      string
	}{
		{"ragged row", "id_number,district,income\n1,a,2\n3,b,4,5\n", peopleSpec(), "malformed"},
		{"ragged row past the sniffer's sample", "id_number,district,income\n" + strings.Repeat("1,a,2\n", 30000) + "3,b,4,5\n", peopleSpec(), "malformed"},
		{"unterminated quote", "id_number,district,income\n1,\"a,2\n", peopleSpec(), "malformed"},
		{"header only", "id_number,district,income\n", peopleSpec(), "no data rows"},
		{"empty file", "", peopleSpec(), "people.csv"},
		{"unlabelled column", "id_number,district,income,extra\n1,a,2,3\n", peopleSpec(), "extra"},
		{"label without column", "id_number,district\n1,a\n", peopleSpec(), "income"},
		{"bad grade", peopleCSV, mod(func(s *Spec) { s.Grade = "secret" }), "grade"},
		{"bad open", peopleCSV, mod(func(s *Spec) { s.Open = "maybe" }), "open attribute"},
		{"bad name", peopleCSV, mod(func(s *Spec) { s.Name = "People; DROP" }), "dataset name"},
		{"bad sensitivity", peopleCSV, mod(func(s *Spec) { s.Labels.Fields[1].Sensitivity = "secretish" }), "sensitivity"},
		{"missing identifier", peopleCSV, mod(func(s *Spec) { s.Labels.Fields[1].Identifier = "" }), "identifier"},
		{"bad extension", peopleCSV, mod(func(s *Spec) { s.Source = "people.xlsx" }), ".csv and .parquet"},
		{"attributes changed on the side", peopleCSV, mod(func(s *Spec) { s.Open = OpenClosed }), "catalogued as open=conditional"},
		{"schema change", "id_number,district,salary\n1,a,2\n", mod(func(s *Spec) { s.Labels.Fields[2].Name = "salary" }), "new name"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.Import(ctx, "admin", tc.spec, writeFile(t, "people.csv", tc.csv))
			var ie *InputError
			if !errors.As(err, &ie) {
				t.Fatalf("err = %v, want an InputError", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %q, want it to mention %q", err, tc.want)
			}
		})
	}
	after, _ := c.Get(ctx, "people")
	if len(after.Versions) != len(before.Versions) || log.Size() != 1 {
		t.Fatalf("a refused import changed state: versions %d→%d, audit size %d", len(before.Versions), len(after.Versions), log.Size())
	}
	left, _ := os.ReadDir(filepath.Join(c.dir, ".staging"))
	if len(left) != 0 {
		t.Fatalf("staging files left behind: %v", left)
	}
}

func TestParseLabels(t *testing.T) {
	l, err := ParseLabels(strings.NewReader("title: 人口\nfields:\n  - name: a\n    sensitivity: public\n    identifier: none\n"))
	if err != nil || l.Title != "人口" || len(l.Fields) != 1 {
		t.Fatalf("%+v %v", l, err)
	}
	for _, bad := range []string{"", "fields: [", "fields:\n  - name: a\n    sensitivity: public\n    identifier: none\n    colour: red\n"} {
		if _, err := ParseLabels(strings.NewReader(bad)); err == nil {
			t.Errorf("ParseLabels(%q) accepted", bad)
		}
	}
}

// An ID number ending in the check character X after many numeric ones is
// text, not a malformed file: DuckDB samples the whole file for types.
func TestImportTypesFromWholeFile(t *testing.T) {
	c, _ := newCatalog(t)
	csv := "id_number,district,income\n" + strings.Repeat("330102199001011234,a,2\n", 30000) + "33010219900101123X,b,3\n"
	got, err := c.Import(context.Background(), "admin", peopleSpec(), writeFile(t, "people.csv", csv))
	if err != nil {
		t.Fatal(err)
	}
	if f, _ := got.Entry.Field("id_number"); f.Type != "VARCHAR" || got.Version.Rows != 30001 {
		t.Fatalf("id_number typed %q, %d rows; want VARCHAR, 30001", f.Type, got.Version.Rows)
	}
}
