package sql

import (
	"bytes"
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A job over a built view gives the same result as over a copy, byte for
// byte, including row ids (populations are computed from them); the view is
// built once and reused by the next job with the same tables.
func TestViewIsTheCopy(t *testing.T) {
	snapshot := writeSnapshot(t)
	views := t.TempDir()
	const q = `SELECT district, count(*) AS n, sum(income) AS s, min(rowid) AS lo, max(rowid) AS hi, list(rowid ORDER BY rowid)[3] AS third FROM people GROUP BY district ORDER BY district`
	copied := testSpec(t, snapshot, q)
	want, err := run(ctx(t), copied, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want.View != "copied" {
		t.Errorf("without a view directory: View = %q, want copied", want.View)
	}
	wantBytes := mustRead(t, copied.Out)
	for i, how := range []string{"built", "reused"} {
		spec := testSpec(t, snapshot, q)
		spec.Views = views
		got, err := run(ctx(t), spec, false, nil)
		if err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
		if got.View != how {
			t.Errorf("run %d: View = %q, want %q", i, got.View, how)
		}
		if got.SHA256 != want.SHA256 || !bytes.Equal(mustRead(t, spec.Out), wantBytes) {
			t.Errorf("run %d (%s): result differs from the copied one", i, how)
		}
	}
	if files := viewFiles(t, views); len(files) != 1 {
		t.Errorf("view directory holds %v, want one view", files)
	}
}

// Another form, key or column set is another view: a view never serves a
// job whose tables differ.
func TestViewKeyedByTables(t *testing.T) {
	snapshot := writeSnapshot(t)
	views := t.TempDir()
	const q = `SELECT min(district) AS d FROM people`
	base := func() Spec {
		s := testSpec(t, snapshot, q)
		s.Views = views
		s.Tables[0].HashKey = bytes.Repeat([]byte{1}, MinHashKey)
		return s
	}
	variants := []func(*Spec){
		func(*Spec) {},
		func(s *Spec) { s.Tables[0].Columns[1].Form = FormMasked },
		func(s *Spec) { s.Tables[0].Columns[1].Form = FormHashed },
		func(s *Spec) {
			s.Tables[0].Columns[1].Form = FormHashed
			s.Tables[0].HashKey = bytes.Repeat([]byte{2}, MinHashKey)
		},
		func(s *Spec) { s.Tables[0].Columns = s.Tables[0].Columns[1:2] },
	}
	seen := map[string]string{}
	for i, change := range variants {
		spec := base()
		change(&spec)
		rep, err := run(ctx(t), spec, false, nil)
		if err != nil {
			t.Fatalf("variant %d: %v", i, err)
		}
		if rep.View != "built" {
			t.Errorf("variant %d: View = %q, want a view of its own built", i, rep.View)
		}
		var d string
		if err := openPlain(t).QueryRow(`SELECT d FROM read_parquet(` + literal(spec.Out) + `)`).Scan(&d); err != nil {
			t.Fatal(err)
		}
		seen[d] = seen[d] + "," + string(rune('0'+i))
	}
	if len(viewFiles(t, views)) != len(variants) {
		t.Errorf("%d views for %d different tables", len(viewFiles(t, views)), len(variants))
	}
	// raw, masked, hashed under two keys: four different smallest districts
	// (the column-subset variant is raw too).
	if len(seen) != 4 {
		t.Errorf("smallest district per variant: %v, want raw, masked and two hashes apart", seen)
	}
}

// The view directory keeps at most MaxViews views, dropping the least
// recently used, and clears temporary files of builds that died.
func TestViewsPruned(t *testing.T) {
	snapshot := writeSnapshot(t)
	views := t.TempDir()
	dead := filepath.Join(views, "x.duckdb.tmp-dead")
	if err := os.WriteFile(dead, []byte("half a build"), 0o600); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-2 * time.Hour)
	os.Chtimes(dead, old, old)
	var first string
	for i := range MaxViews + 3 {
		spec := testSpec(t, snapshot, `SELECT count(*) AS n FROM people`)
		spec.Views = views
		spec.Tables[0].HashKey = bytes.Repeat([]byte{byte(i + 1)}, MinHashKey) // another key: another view
		if _, err := run(ctx(t), spec, false, nil); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = viewFiles(t, views)[0]
		} else { // the first view stays the most recently used: it must survive

			now := time.Now().Add(time.Duration(i) * time.Second)
			os.Chtimes(filepath.Join(views, first), now, now)
		}
	}
	files := viewFiles(t, views)
	if len(files) != MaxViews {
		t.Errorf("%d views kept, want %d", len(files), MaxViews)
	}
	found := false
	for _, f := range files {
		found = found || f == first
	}
	if !found {
		t.Errorf("the most recently used view %s was pruned", first)
	}
	if _, err := os.Stat(dead); !os.IsNotExist(err) {
		t.Errorf("a dead build's temporary file survived: %v", err)
	}
}

// A view directory inside the job's temp directory (which the job's SQL
// may write), or holding it, is refused before anything runs.
func TestViewDirectoryApartFromTemp(t *testing.T) {
	snapshot := writeSnapshot(t)
	for _, inside := range []bool{true, false} {
		spec := testSpec(t, snapshot, `SELECT count(*) FROM people`)
		if inside {
			spec.Views = filepath.Join(spec.Limits.TempDir, "views")
		} else {
			spec.Views = filepath.Dir(spec.Limits.TempDir)
		}
		if _, err := run(ctx(t), spec, false, nil); err == nil || !strings.Contains(err.Error(), "view directory") {
			t.Errorf("views %s: err = %v, want a refusal naming the view directory", spec.Views, err)
		}
	}
}

// Every hostile query of the adversarial suite, run with the screen off over
// a built view, is contained as over a copy, and none changes the view:
// its bytes are the same after all of them, and the view directory holds
// nothing else.
func TestAdversarialLockdownAloneOverAView(t *testing.T) {
	v := advPlantVault(t)
	views := t.TempDir()
	warm := testSpec(t, v.snapshot, `SELECT count(*) FROM people`)
	warm.Views = views
	if _, err := run(ctx(t), warm, false, nil); err != nil {
		t.Fatal(err)
	}
	files := viewFiles(t, views)
	if len(files) != 1 {
		t.Fatalf("view directory holds %v", files)
	}
	view := filepath.Join(views, files[0])
	before := sha256.Sum256(mustRead(t, view))
	cases := append([]advCase{}, advCases...)
	for _, q := range []string{
		`INSERT INTO people SELECT * FROM people`,
		`UPDATE people SET income = 0`,
		`DELETE FROM people`,
		`CREATE TABLE people2 AS SELECT * FROM people`,
		`DROP TABLE people`,
		`ALTER TABLE people ADD COLUMN x INTEGER`,
		`CHECKPOINT`,
		`COPY people TO '{view}'`,
		`COPY people TO '{view}' (FORMAT csv, USE_TMP_FILE false)`,
		`COPY (SELECT 'g' AS g) TO '{view}.wal' (FORMAT csv)`,
		`COPY (SELECT 'g' AS g) TO '{out}.view.duckdb' (FORMAT csv, USE_TMP_FILE false)`,
		`COPY (SELECT 'g' AS g) TO '{out}.view.duckdb.wal' (FORMAT csv)`,
		`ATTACH '{view}' AS w`,
		`ATTACH '{view}' AS w (READ_WRITE)`,
		`SELECT * FROM read_parquet('{snapshot}')`,
		`SELECT count(*) FROM '{view}'`,
	} {
		cases = append(cases, advCase{category: "view", query: strings.ReplaceAll(q, "{view}", view), lock: advMayRun})
	}
	for _, c := range cases {
		// advRunUnscreened fails the test on a leak, a file left or a hang;
		// over a view, any error is containment. (The cases' own checks
		// expect no allowed paths: over a view, DuckDB allows the job's copy,
		// checked below.)
		advRunUnscreened(t, v, c, views)
	}
	// The only files DuckDB lets the job touch are its own copy of the view
	// and that copy's WAL.
	spec := testSpec(t, v.snapshot, `SELECT unnest(string_split(trim(value, '[]'), ', ')) AS p FROM duckdb_settings() WHERE name = 'allowed_paths'`)
	spec.Views = views
	if _, err := run(ctx(t), spec, false, nil); err != nil {
		t.Fatal(err)
	}
	rows, err := openPlain(t).Query(`SELECT p FROM read_parquet(` + literal(spec.Out) + `)`)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for ; rows.Next(); n++ {
		var p string
		rows.Scan(&p)
		if !strings.HasPrefix(p, privateView(spec.Out)) {
			t.Errorf("the job may touch %s, not its own copy of the view", p)
		}
	}
	rows.Close()
	if n == 0 {
		t.Error("allowed_paths read back empty: the probe is broken (DuckDB allows the file of the database it opened)")
	}
	if after := sha256.Sum256(mustRead(t, view)); after != before {
		t.Error("a hostile query changed the built view")
	}
	if got := viewFiles(t, views); len(got) != 1 || got[0] != files[0] {
		t.Errorf("the view directory now holds %v, want only %s", got, files[0])
	}
	if entries, _ := os.ReadDir(views); len(entries) != 1 {
		t.Errorf("the view directory holds %d entries (a WAL or temp file?), want 1", len(entries))
	}
}

func viewFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".duckdb") {
			names = append(names, e.Name())
		}
	}
	return names
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
