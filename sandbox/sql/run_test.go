package sql

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// noFileAt fails the test if anything but nothing is at path, or if the
// directory holds leftover temporary files.
func noFileAt(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a file is left at %s (%v)", path, err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	for _, e := range entries {
		t.Errorf("leftover file %s", e.Name())
	}
}

func TestRunAggregate(t *testing.T) {
	snapshot := writeSnapshot(t)
	a, err := Analyze(ctx(t), `SELECT district, count(*) AS n, sum(income) AS total FROM people GROUP BY district ORDER BY district`, testTables)
	if err != nil {
		t.Fatal(err)
	}
	spec := testSpec(t, snapshot, a.CellSQL)
	rep, err := Run(ctx(t), spec)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Rows != 5 {
		t.Errorf("Rows = %d, want 5", rep.Rows)
	}
	if want := []int64{100, 100, 100, 100, 100}; !reflect.DeepEqual(rep.CellCounts, want) {
		t.Errorf("CellCounts = %v, want %v", rep.CellCounts, want)
	}
	var names []string
	for _, c := range rep.Columns {
		names = append(names, c.Name)
	}
	if want := []string{"district", "n", "total"}; !reflect.DeepEqual(names, want) {
		t.Errorf("Columns = %v, want %v", rep.Columns, want)
	}
	for i, o := range a.Outputs {
		if o.Name != names[i] {
			t.Errorf("Output %d named %q by Analyze, %q by DuckDB", i, o.Name, names[i])
		}
	}
	data, err := os.ReadFile(spec.Out)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	if rep.SHA256 != hex.EncodeToString(sum[:]) || rep.Bytes != int64(len(data)) {
		t.Errorf("Report says %d bytes %s; file has %d bytes %x", rep.Bytes, rep.SHA256, len(data), sum)
	}

	// Read the file back with DuckDB.
	db := openPlain(t)
	rows, err := db.Query(`SELECT * FROM read_parquet(` + literal(spec.Out) + `)`)
	if err != nil {
		t.Fatal(err)
	}
	cols, _ := rows.Columns()
	if !reflect.DeepEqual(cols, names) {
		t.Errorf("Parquet columns = %v, want %v", cols, names)
	}
	var got []string
	for rows.Next() {
		var d string
		var n, total int64
		if err := rows.Scan(&d, &n, &total); err != nil {
			t.Fatal(err)
		}
		if n != 100 {
			t.Errorf("%s: n = %d", d, n)
		}
		got = append(got, d)
	}
	rows.Close()
	if want := []string{"district 0", "district 1", "district 2", "district 3", "district 4"}; !reflect.DeepEqual(got, want) {
		t.Errorf("districts = %v, want %v", got, want)
	}
	var total int64
	if err := db.QueryRow(`SELECT sum(income) FROM read_parquet(` + literal(snapshot) + `)`).Scan(&total); err != nil {
		t.Fatal(err)
	}
	var written int64
	if err := db.QueryRow(`SELECT sum(total) FROM read_parquet(` + literal(spec.Out) + `)`).Scan(&written); err != nil {
		t.Fatal(err)
	}
	if total != written {
		t.Errorf("sum of totals %d, want %d", written, total)
	}

	// CellSQL itself, in a plain DuckDB, yields exactly the cell count and
	// three columns per magnitude (here sum(income)) more.
	if _, err := db.Exec(`CREATE TABLE people AS SELECT * FROM read_parquet(` + literal(snapshot) + `)`); err != nil {
		t.Fatal(err)
	}
	cellRows, err := db.Query(a.CellSQL)
	if err != nil {
		t.Fatal(err)
	}
	cellCols, _ := cellRows.Columns()
	cellRows.Close()
	if len(a.Magnitudes) != 1 || len(cellCols) != len(a.Outputs)+1+3*len(a.Magnitudes) || cellCols[len(a.Outputs)] != CellCountColumn {
		t.Errorf("CellSQL columns = %v", cellCols)
	}

	// The same ordered query yields the same bytes.
	again := spec
	again.Out = filepath.Join(t.TempDir(), "again.parquet")
	rep2, err := Run(ctx(t), again)
	if err != nil {
		t.Fatal(err)
	}
	if rep2.SHA256 != rep.SHA256 {
		t.Errorf("second run hash %s, first %s", rep2.SHA256, rep.SHA256)
	}
}

func TestRunPlainQueryTypes(t *testing.T) {
	snapshot := writeSnapshot(t)
	spec := testSpec(t, snapshot, `SELECT id_number, district, income, birth_date FROM people ORDER BY id_number`)
	rep, err := Run(ctx(t), spec)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Rows != 500 || rep.CellCounts != nil {
		t.Errorf("Rows = %d, CellCounts = %v", rep.Rows, rep.CellCounts)
	}
	want := []ResultColumn{{"id_number", "utf8"}, {"district", "utf8"}, {"income", "int64"}, {"birth_date", "date32"}}
	if !reflect.DeepEqual(rep.Columns, want) {
		t.Errorf("Columns = %v, want %v", rep.Columns, want)
	}
	var n int
	var last string
	db := openPlain(t)
	if err := db.QueryRow(`SELECT count(*), max(id_number) FROM read_parquet(`+literal(spec.Out)+`)`).Scan(&n, &last); err != nil {
		t.Fatal(err)
	}
	if n != 500 || last != "ID000499" {
		t.Errorf("read back %d rows, last id %s", n, last)
	}
}

// TestRunHostile runs hostile SQL straight through Run. Each query must fail; where
// the lockdown alone must stop it, it must also fail with the parse check skipped.
func TestRunHostile(t *testing.T) {
	snapshot := writeSnapshot(t)
	leak := filepath.Join(t.TempDir(), "leak.csv")
	cases := []struct {
		query    string
		lockdown string // what the unscreened run's error says; "" if the lockdown alone need not stop it
	}{
		{`SELECT * FROM read_parquet('` + snapshot + `')`, "disabled"},
		{`SELECT name FROM read_parquet('` + snapshot + `')`, "disabled"},
		{`SELECT * FROM read_text('/etc/passwd')`, "disabled"},
		{`SELECT * FROM read_csv('/etc/passwd')`, "disabled"},
		{`SELECT * FROM glob('/etc/*')`, "disabled"},
		{`SET enable_external_access = true`, "locked"},
		{`SET lock_configuration = false`, "locked"},
		{`ATTACH ':memory:' AS x`, ""},
		{`ATTACH '` + leak + `.db' AS y`, "disabled"},
		{`COPY people TO '` + leak + `'`, "disabled"},
		{`COPY (SELECT 1) TO '` + leak + `'`, "disabled"},
		{`INSTALL httpfs`, "disabled"},
		{`LOAD httpfs`, "disabled"},
		{`CALL pragma_version()`, ""},
		{`CREATE TABLE x AS SELECT 1`, ""},
		{`EXPORT DATABASE '` + filepath.Dir(leak) + `'`, "disabled"},
		{`SELECT name FROM people`, `"name" not found`},
		{`SELECT * FROM duckdb_settings()`, ""},
		{`SELECT current_setting('temp_directory')`, ""},
		{`SELECT * FROM pg_settings`, ""},
		{`SELECT sql FROM duckdb_tables()`, ""},
		{`SELECT 1; SELECT 2`, ""},
		{`SELECT * FROM query('SELECT 1')`, ""},
	}
	for _, c := range cases {
		spec := testSpec(t, snapshot, c.query)
		if _, err := Run(ctx(t), spec); err == nil {
			t.Errorf("Run(%q) succeeded", c.query)
		} else if c.query == `SELECT name FROM people` && !strings.Contains(err.Error(), "Binder Error") {
			t.Errorf("Run(%q) = %v, want a binder error", c.query, err)
		}
		noFileAt(t, spec.Out)
		if c.lockdown == "" {
			continue
		}
		spec = testSpec(t, snapshot, c.query)
		_, err := run(ctx(t), spec, false, nil)
		if err == nil || !strings.Contains(err.Error(), c.lockdown) {
			t.Errorf("unscreened %q: err = %v, want it to say %q", c.query, err, c.lockdown)
		}
		noFileAt(t, spec.Out)
	}
	if _, err := os.Lstat(leak); err == nil {
		t.Errorf("a job wrote %s", leak)
	}
}

// TestRunCatalogHidesPaths shows, with the parse check skipped, that the catalog of
// a job's database does not name the snapshot: the data was copied in, not viewed.
func TestRunCatalogHidesPaths(t *testing.T) {
	snapshot := writeSnapshot(t)
	for _, q := range []string{
		`SELECT sql FROM duckdb_tables()`,
		`SELECT coalesce(sql, '') FROM duckdb_views()`,
		`SELECT coalesce(path, '') FROM duckdb_databases()`,
	} {
		spec := testSpec(t, snapshot, q)
		if _, err := run(ctx(t), spec, false, nil); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		data, err := os.ReadFile(spec.Out)
		if err != nil {
			t.Fatal(err)
		}
		db := openPlain(t)
		var all string
		if err := db.QueryRow(`SELECT coalesce(string_agg(COLUMNS(*)::VARCHAR, '|'), '') FROM read_parquet(` + literal(spec.Out) + `)`).Scan(&all); err != nil {
			t.Fatal(err)
		}
		for _, secret := range []string{snapshot, filepath.Dir(snapshot), "people.parquet"} {
			if strings.Contains(all, secret) || strings.Contains(string(data), secret) {
				t.Errorf("%s reveals %s: %q", q, secret, all)
			}
		}
	}
}

func TestRunTimeout(t *testing.T) {
	snapshot := writeSnapshot(t)
	spec := testSpec(t, snapshot, `SELECT count(*) FROM people a, people b, people c, people d WHERE a.income + b.income + c.income + d.income = 7`)
	spec.Limits.Timeout = 300 * time.Millisecond
	start := time.Now()
	_, err := Run(ctx(t), spec)
	elapsed := time.Since(start)
	if !errors.Is(err, ErrLimit) || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "time limit of 300ms exceeded") {
		t.Fatalf("err = %v, want the time limit", err)
	}
	if elapsed > 5*time.Second {
		t.Errorf("interrupted only after %s", elapsed)
	}
	noFileAt(t, spec.Out)
}

func TestRunMaxRows(t *testing.T) {
	snapshot := writeSnapshot(t)
	spec := testSpec(t, snapshot, `SELECT id_number FROM people`)
	spec.Limits.MaxRows = 499
	_, err := Run(ctx(t), spec)
	if !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), "499 rows") {
		t.Fatalf("err = %v, want the row limit", err)
	}
	noFileAt(t, spec.Out)

	spec = testSpec(t, snapshot, `SELECT id_number FROM people`)
	spec.Limits.MaxRows = 500
	if _, err := Run(ctx(t), spec); err != nil {
		t.Fatalf("500 rows under a 500-row cap: %v", err)
	}
}

func TestRunMaxBytes(t *testing.T) {
	snapshot := writeSnapshot(t)
	spec := testSpec(t, snapshot, `SELECT id_number, repeat(district, 100) FROM people`)
	spec.Limits.MaxBytes = 10 << 10
	_, err := Run(ctx(t), spec)
	if !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), "limit of 10240") {
		t.Fatalf("err = %v, want the byte limit", err)
	}
	noFileAt(t, spec.Out)
}

func TestRunValidate(t *testing.T) {
	snapshot := writeSnapshot(t)
	spec := testSpec(t, snapshot, `SELECT 1`)
	spec.Tables[0].Columns[0].Form = "blurred"
	if _, err := Run(ctx(t), spec); err == nil || !strings.Contains(err.Error(), `form "blurred" is not one of`) {
		t.Errorf("unknown form: err = %v", err)
	}
	spec = testSpec(t, snapshot, `SELECT 1`)
	spec.Tables[0].Columns[0].Form, spec.Tables[0].HashKey = FormHashed, []byte("short")
	if _, err := Run(ctx(t), spec); err == nil || !strings.Contains(err.Error(), "hash key has 5 bytes") {
		t.Errorf("hashed column with a short key: err = %v", err)
	}
	spec = testSpec(t, snapshot, `SELECT 1`)
	spec.Limits.Timeout = 0
	if _, err := Run(ctx(t), spec); err == nil {
		t.Error("a zero timeout was accepted")
	}
	spec = testSpec(t, snapshot, `SELECT 1`)
	spec.Limits.TempDir = filepath.Dir(snapshot)
	if _, err := Run(ctx(t), spec); err == nil {
		t.Error("a temp directory holding the snapshot was accepted")
	}
	spec = testSpec(t, snapshot, `SELECT 1`)
	if err := os.MkdirAll(spec.Limits.TempDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(spec.Limits.TempDir, "planted.csv"), []byte("a\n1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Run(ctx(t), spec); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("a temp directory with a planted file: err = %v", err)
	}
	spec = testSpec(t, snapshot, `SELECT 1`)
	if err := os.WriteFile(spec.Out, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Run(ctx(t), spec); err == nil {
		t.Error("an existing output was overwritten")
	}
	if data, _ := os.ReadFile(spec.Out); string(data) != "x" {
		t.Error("the existing output changed")
	}
}

// A job granted no field still counts rows; the placeholder column that
// holds them is neither readable nor visible.
func TestRunWithoutFields(t *testing.T) {
	snapshot := writeSnapshot(t)
	spec := testSpec(t, snapshot, `SELECT count(*) AS n FROM people`)
	spec.Tables[0].Columns = nil
	rep, err := Run(ctx(t), spec)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := openPlain(t).QueryRow(`SELECT n FROM read_parquet(` + literal(spec.Out) + `)`).Scan(&n); err != nil || n != 500 || rep.Rows != 1 {
		t.Fatalf("count over a field-less view = %d (%v), want 500", n, err)
	}
	for _, q := range []string{`SELECT __dsbx_row FROM people`, `SELECT id_number FROM people`} {
		spec := testSpec(t, snapshot, q)
		spec.Tables[0].Columns = nil
		if _, err := Run(ctx(t), spec); err == nil {
			t.Errorf("%s ran over a field-less view", q)
		}
	}
}

func TestRunReportsResources(t *testing.T) {
	snapshot := writeSnapshot(t)
	rep, err := Run(ctx(t), testSpec(t, snapshot, `SELECT district, sum(income) FROM people GROUP BY district`))
	if err != nil {
		t.Fatal(err)
	}
	r := rep.Resources
	if r.RowsScanned != 500 || r.CPU <= 0 || r.Query <= 0 || r.Query > rep.Wall || r.PeakMemory < 0 {
		t.Fatalf("resources %+v (wall %s), want 500 rows scanned and positive times", r, rep.Wall)
	}
}

// TestCellCountSeesFilteredAggregates: an aggregate over fewer rows than
// its group (FILTER, CASE) gives the cell its own, smaller count, so the
// minimum cell count check sees the one person it describes.
func TestCellCountSeesFilteredAggregates(t *testing.T) {
	snapshot := writeSnapshot(t)
	for _, tc := range []struct {
		query string
		want  []int64
	}{
		{`SELECT district, sum(income) AS s FROM people GROUP BY district ORDER BY district`, []int64{100, 100, 100, 100, 100}},
		{`SELECT district, sum(income) FILTER (WHERE id_number = 'ID000007') AS s FROM people GROUP BY district ORDER BY district`, []int64{0, 0, 1, 0, 0}},
		{`SELECT district, sum(CASE WHEN id_number = 'ID000007' THEN income END) AS s FROM people GROUP BY district ORDER BY district`, []int64{0, 0, 1, 0, 0}},
		{`SELECT district, count(*) FILTER (WHERE income > 1800) AS rich, round(avg(income)) AS mean FROM people GROUP BY district ORDER BY district`, nil},
		{`SELECT district, count(*) AS n, sum(income) OVER () AS w FROM people GROUP BY district, income ORDER BY district LIMIT 1`, nil},
	} {
		a, err := Analyze(ctx(t), tc.query, testTables)
		if err != nil {
			t.Fatalf("%s: %v", tc.query, err)
		}
		rep, err := Run(ctx(t), testSpec(t, snapshot, a.CellSQL))
		if err != nil {
			t.Fatalf("%s: %v", tc.query, err)
		}
		if tc.want != nil && !reflect.DeepEqual(rep.CellCounts, tc.want) {
			t.Errorf("%s: cell counts %v, want %v", tc.query, rep.CellCounts, tc.want)
		}
		for _, n := range rep.CellCounts {
			if n > 100 {
				t.Errorf("%s: a cell counts %d, more than its group", tc.query, n)
			}
		}
	}
}
