package release

import (
	"context"
	stdsql "database/sql"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/duckdb/duckdb-go/v2" // the "duckdb" driver

	"github.com/datasandbox/dsbx/disclosure"
	sqlbox "github.com/datasandbox/dsbx/sandbox/sql"
)

// duck is a scratch in-memory DuckDB.
func duck(t *testing.T) *stdsql.DB {
	t.Helper()
	db, err := stdsql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// result writes the quarantined result every test reads: three groups with
// the column types DuckDB gives counts, sums and means.
func result(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "result.parquet")
	_, err := duck(t).Exec(`COPY (SELECT * FROM (VALUES
		('east', 12::BIGINT, 1200::HUGEINT, 100.5::DOUBLE, 3.25::DECIMAL(10,2), DATE '2026-01-01'),
		('north', 3::BIGINT, 9000::HUGEINT, 3000.0::DOUBLE, 1.10::DECIMAL(10,2), DATE '2026-01-02'),
		('south', 40::BIGINT, NULL::HUGEINT, 20.0::DOUBLE, 7.00::DECIMAL(10,2), NULL)
	) v(district, n, total, mean, rate, day)) TO '` + path + `' (FORMAT parquet)`)
	if err != nil {
		t.Fatal(err)
	}
	return path
}

func limits(t *testing.T) sqlbox.Limits {
	return sqlbox.Limits{Memory: "256MB", Threads: 1, Timeout: 30 * time.Second, MaxRows: 1000, MaxBytes: 1 << 20, TempDir: filepath.Join(t.TempDir(), "tmp")}
}

func TestReadSeesTheValues(t *testing.T) {
	tbl, err := Read(context.Background(), result(t), 100)
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Release()
	if len(tbl.Rows) != 3 || len(tbl.Fields) != 6 {
		t.Fatalf("%d rows, %d columns", len(tbl.Rows), len(tbl.Fields))
	}
	r := tbl.Rows[1]
	if r[0].Text != "north" || r[1].Num != 3 || r[2].Num != 9000 || r[3].Num != 3000 || r[4].Num != 1.1 || r[5].Text == "" {
		t.Fatalf("row 1: %+v", r)
	}
	if !tbl.Rows[2][2].Null || !tbl.Rows[2][5].Null {
		t.Fatalf("nulls: %+v", tbl.Rows[2])
	}
	for i, want := range []bool{false, true, true, true, true, false} {
		if tbl.Numeric(i) != want {
			t.Errorf("column %s numeric %v", tbl.Fields[i].Name, !want)
		}
	}
	if _, err := Read(context.Background(), result(t), 2); err == nil || !strings.Contains(err.Error(), "3 rows") {
		t.Fatalf("more rows than allowed: %v", err)
	}
}

// Changed values are written in their column's type; unchanged columns
// exactly as read.
func TestWriteKeepsTypes(t *testing.T) {
	ctx := context.Background()
	tbl, err := Read(ctx, result(t), 100)
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Release()
	tbl.Rows[1][1] = disclosure.Value{Null: true}  // suppressed count
	tbl.Rows[1][2] = disclosure.Value{Null: true}  // suppressed sum
	tbl.Rows[0][1] = disclosure.Value{Num: 10}     // rounded count
	tbl.Rows[0][2] = disclosure.Value{Num: 1187.6} // noisy sum (DuckDB writes a HUGEINT sum as DOUBLE)
	tbl.Rows[2][4] = disclosure.Value{Num: 6.994}  // into DECIMAL(10,2): 6.99
	tbl.Rows[2][1] = disclosure.Value{Num: 41.4}   // a noisy count into BIGINT: 41
	tbl.Rows[0][3] = disclosure.Value{Num: 99.75}
	out := filepath.Join(t.TempDir(), "released.parquet")
	rep, err := Write(ctx, tbl, out, limits(t))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Rows != 3 || rep.SHA256 == "" {
		t.Fatalf("report %+v", rep)
	}
	var got string
	err = duck(t).QueryRow(`SELECT string_agg(concat_ws('|', district, coalesce(n::VARCHAR, '∅'), coalesce(total::VARCHAR, '∅'), mean, rate, coalesce(day::VARCHAR, '∅')), ';' ORDER BY district)
		FROM read_parquet('` + out + `')`).Scan(&got)
	if err != nil {
		t.Fatal(err)
	}
	want := "east|10|1187.6|99.75|3.25|2026-01-01;north|∅|∅|3000.0|1.10|2026-01-02;south|41|∅|20.0|6.99|∅"
	if got != want {
		t.Fatalf("released\n%s\nwant\n%s", got, want)
	}
	var types string
	if err := duck(t).QueryRow(`SELECT string_agg(column_type, ',') FROM (DESCRIBE SELECT * FROM read_parquet('` + out + `'))`).Scan(&types); err != nil {
		t.Fatal(err)
	}
	if types != "VARCHAR,BIGINT,DOUBLE,DOUBLE,DECIMAL(10,2),DATE" {
		t.Fatalf("released types %s", types)
	}
}

func TestWriteRefusesWhatCannotBeWritten(t *testing.T) {
	ctx := context.Background()
	for name, edit := range map[string]func(*Table){
		"text changed":   func(tb *Table) { tb.Rows[0][0] = disclosure.Value{Text: "west"} },
		"count overflow": func(tb *Table) { tb.Rows[0][1] = disclosure.Value{Num: 1e30} },
		"not finite":     func(tb *Table) { tb.Rows[0][3] = disclosure.Value{Num: math.Inf(1)} },
	} {
		tbl, err := Read(ctx, result(t), 100)
		if err != nil {
			t.Fatal(err)
		}
		edit(tbl)
		out := filepath.Join(t.TempDir(), "released.parquet")
		if _, err := Write(ctx, tbl, out, limits(t)); err == nil {
			t.Errorf("%s: written", name)
		}
		tbl.Release()
	}
}
