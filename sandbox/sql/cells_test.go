package sql

import (
	"encoding/json"
	"math"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// cellRows are the rows of the cell statistics snapshot, in snapshot
// order: row number i is cellRows[i]. north has incomes 100, 50, 10, 5, 1,
// 1, 1 and one null; south has -200, 20, 3.
var cellRows = []struct {
	region string
	income *int64
	age    int64
}{
	{"north", num(100), 40},  // 0
	{"south", num(-200), 50}, // 1
	{"north", num(50), 20},   // 2
	{"north", num(10), 35},   // 3
	{"south", num(20), 25},   // 4
	{"north", num(5), 60},    // 5
	{"north", num(1), 31},    // 6
	{"south", num(3), 45},    // 7
	{"north", num(1), 10},    // 8
	{"north", num(1), 33},    // 9
	{"north", nil, 70},       // 10
}

func num(n int64) *int64 { return &n }

// cellTables is what Analyze is told the cell statistics jobs may name.
var cellTables = map[string][]string{
	"people": {"region", "income", "age", "born"},
	"firms":  {"region", "employees"},
}

// writeCellSnapshot writes cellRows to a Parquet file and returns its path.
func writeCellSnapshot(t *testing.T) string {
	t.Helper()
	var values []string
	for i, r := range cellRows {
		income := "NULL"
		if r.income != nil {
			income = itoa(*r.income)
		}
		values = append(values, "("+itoa(int64(i))+", "+literal(r.region)+", CAST("+income+" AS INTEGER), "+itoa(r.age)+")")
	}
	path := filepath.Join(t.TempDir(), "cells.parquet")
	_, err := openPlain(t).Exec(`COPY (
		SELECT region, income, CAST(age AS INTEGER) AS age, DATE '2000-01-01' + CAST(i AS INTEGER) AS born
		FROM (VALUES ` + strings.Join(values, ", ") + `) v(i, region, income, age) ORDER BY i
	) TO ` + literal(path) + ` (FORMAT parquet)`)
	if err != nil {
		t.Fatal(err)
	}
	return path
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

// cellSpec is a job over the cell snapshot that sees every column.
func cellSpec(t *testing.T, snapshot, query string) Spec {
	t.Helper()
	return Spec{
		Query: query,
		Tables: []Table{{Name: "people", Parquet: snapshot, Columns: []Column{
			{"region", FormRaw}, {"income", FormRaw}, {"age", FormRaw}, {"born", FormRaw},
		}}},
		Limits: Limits{
			Memory: "256MB", Threads: 2, Timeout: 10 * time.Second,
			MaxRows: 1000, MaxBytes: 16 << 20, TempDir: filepath.Join(t.TempDir(), "tmp"),
		},
		Out: filepath.Join(t.TempDir(), "result.parquet"),
	}
}

// runCells analyses query, runs its MembersSQL if it has one (else its
// CellSQL) and checks the written file holds none of the sandbox's columns.
func runCells(t *testing.T, snapshot, query string) (*Analysis, *Report) {
	t.Helper()
	a, err := Analyze(ctx(t), query, cellTables)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	if a.CellSQL == "" {
		t.Fatalf("%s: no CellSQL", query)
	}
	run := a.CellSQL
	if a.MembersSQL != "" {
		run = a.MembersSQL
	}
	spec := cellSpec(t, snapshot, run)
	rep, err := Run(ctx(t), spec)
	if err != nil {
		t.Fatalf("%s: %v", run, err)
	}
	noReservedColumns(t, spec.Out, len(a.Outputs))
	for _, c := range rep.Columns {
		if strings.HasPrefix(strings.ToLower(c.Name), reservedPrefix) {
			t.Errorf("Report.Columns holds %s", c.Name)
		}
	}
	if len(rep.Cells) != len(rep.CellCounts) {
		t.Fatalf("%d Cells for %d cell counts", len(rep.Cells), len(rep.CellCounts))
	}
	for i, c := range rep.Cells {
		if c.Count != rep.CellCounts[i] {
			t.Errorf("Cells[%d].Count = %d, CellCounts[%d] = %d", i, c.Count, i, rep.CellCounts[i])
		}
		if len(c.Magnitudes) != len(a.Magnitudes) {
			t.Errorf("Cells[%d] has %d magnitudes, the analysis %d", i, len(c.Magnitudes), len(a.Magnitudes))
		}
	}
	return a, rep
}

// noReservedColumns fails the test if the Parquet file at path holds a
// __dsbx column or other than want columns.
func noReservedColumns(t *testing.T, path string, want int) {
	t.Helper()
	rows, err := openPlain(t).Query(`SELECT name FROM parquet_schema(` + literal(path) + `) WHERE num_children IS NULL OR name <> 'duckdb_schema'`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		n++
		if strings.HasPrefix(strings.ToLower(name), reservedPrefix) {
			t.Errorf("the written file holds the column %s", name)
		}
	}
	if n != want {
		t.Errorf("the written file has %d columns, want %d", n, want)
	}
}

func mag(total float64, n int64, top ...float64) MagnitudeStats {
	if top == nil {
		top = []float64{}
	}
	return MagnitudeStats{Total: total, Top: top, N: n}
}

func TestCellsMagnitudeStats(t *testing.T) {
	snapshot := writeCellSnapshot(t)
	a, rep := runCells(t, snapshot, `SELECT region, sum(income) AS total FROM people GROUP BY region ORDER BY region`)
	if want := []Magnitude{{Output: 1, Function: "sum", Column: "__dsbx_m0"}}; !reflect.DeepEqual(a.Magnitudes, want) {
		t.Fatalf("Magnitudes = %+v, want %+v", a.Magnitudes, want)
	}
	if want := []int64{7, 3}; !reflect.DeepEqual(rep.CellCounts, want) {
		t.Errorf("CellCounts = %v, want %v", rep.CellCounts, want)
	}
	want := [][]MagnitudeStats{
		{mag(168, 7, 100, 50, 10, 5, 1)}, // north
		{mag(223, 3, 200, 20, 3)},        // south: -200 counts as 200
	}
	for i, c := range rep.Cells {
		if !reflect.DeepEqual(c.Magnitudes, want[i]) {
			t.Errorf("cell %d: %+v, want %+v", i, c.Magnitudes, want[i])
		}
	}
}

func TestCellsMagnitudeFilterAndDistinct(t *testing.T) {
	snapshot := writeCellSnapshot(t)
	for _, tc := range []struct {
		query string
		want  [][]MagnitudeStats
	}{
		{`SELECT region, sum(income) FILTER (WHERE age > 30) AS s FROM people GROUP BY region ORDER BY region`,
			[][]MagnitudeStats{{mag(117, 5, 100, 10, 5, 1, 1)}, {mag(203, 2, 200, 3)}}},
		// DISTINCT carries over: the statistics describe the values summed.
		{`SELECT region, sum(DISTINCT income) AS s FROM people GROUP BY region ORDER BY region`,
			[][]MagnitudeStats{{mag(166, 5, 100, 50, 10, 5, 1)}, {mag(223, 3, 200, 20, 3)}}},
		// x.sum() is sum(x).
		{`SELECT region, income.sum() AS s FROM people GROUP BY region ORDER BY region`,
			[][]MagnitudeStats{{mag(168, 7, 100, 50, 10, 5, 1)}, {mag(223, 3, 200, 20, 3)}}},
		// A group no row passes the filter: zero and empty.
		{`SELECT region, avg(income) FILTER (WHERE age > 65) AS s FROM people GROUP BY region ORDER BY region`,
			[][]MagnitudeStats{{mag(0, 0)}, {mag(0, 0)}}},
		// The mean of a date does not convert to DOUBLE: it counts, and contributes nothing else.
		{`SELECT region, avg(born) AS s FROM people GROUP BY region ORDER BY region`,
			[][]MagnitudeStats{{mag(0, 8)}, {mag(0, 3)}}},
	} {
		a, rep := runCells(t, snapshot, tc.query)
		if len(a.Magnitudes) != 1 || a.Magnitudes[0].Output != 1 {
			t.Errorf("%s: Magnitudes = %+v", tc.query, a.Magnitudes)
		}
		for i, c := range rep.Cells {
			if !reflect.DeepEqual(c.Magnitudes, tc.want[i]) {
				t.Errorf("%s: cell %d: %+v, want %+v", tc.query, i, c.Magnitudes, tc.want[i])
			}
		}
	}
}

func TestCellsTwoMagnitudesInOneOutput(t *testing.T) {
	snapshot := writeCellSnapshot(t)
	a, rep := runCells(t, snapshot, `SELECT region, count(*) AS n, sum(income) / avg(age) AS r FROM people GROUP BY region ORDER BY region`)
	want := []Magnitude{{Output: 2, Function: "sum", Column: "__dsbx_m0"}, {Output: 2, Function: "avg", Column: "__dsbx_m1"}}
	if !reflect.DeepEqual(a.Magnitudes, want) {
		t.Fatalf("Magnitudes = %+v, want %+v", a.Magnitudes, want)
	}
	cells := [][]MagnitudeStats{
		{mag(168, 7, 100, 50, 10, 5, 1), mag(299, 8, 70, 60, 40, 35, 33)},
		{mag(223, 3, 200, 20, 3), mag(120, 3, 50, 45, 25)},
	}
	for i, c := range rep.Cells {
		if !reflect.DeepEqual(c.Magnitudes, cells[i]) {
			t.Errorf("cell %d: %+v, want %+v", i, c.Magnitudes, cells[i])
		}
		if c.Members == nil {
			t.Errorf("cell %d: no members from MembersSQL", i)
		}
	}
	// Windows and subqueries hold no magnitude of the cell; a count is none.
	a, err := Analyze(ctx(t), `SELECT region, count(*) AS n, max(income) AS m, sum(count(*)) OVER () AS w, (SELECT sum(employees) FROM firms) AS f FROM people GROUP BY region`, cellTables)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Magnitudes) != 0 || strings.Contains(a.CellSQL, "__dsbx_m") {
		t.Errorf("Magnitudes = %+v, CellSQL %s", a.Magnitudes, a.CellSQL)
	}
}

func TestOutputAggregates(t *testing.T) {
	a, err := Analyze(ctx(t), `SELECT region, count(*), max(income), stddev(income), sum(income) FILTER (WHERE age > 1) + avg(age) + count(age),
		sum(income) OVER (), (SELECT min(employees) FROM firms) FROM people GROUP BY region, income`, cellTables)
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{{}, {"count_star"}, {"max"}, {"stddev"}, {"avg", "count", "sum"}, {}, {}}
	if len(a.Outputs) != len(want) {
		t.Fatalf("%d outputs, want %d", len(a.Outputs), len(want))
	}
	for i, o := range a.Outputs {
		if !reflect.DeepEqual(o.Aggregates, want[i]) {
			t.Errorf("output %d (%s): Aggregates = %#v, want %#v", i, o.Name, o.Aggregates, want[i])
		}
	}
	// A set operation: the first branch's.
	a, err = Analyze(ctx(t), `SELECT sum(income) FROM people UNION ALL SELECT max(employees) FROM firms`, cellTables)
	if err != nil {
		t.Fatal(err)
	}
	if got := a.Outputs[0].Aggregates; !reflect.DeepEqual(got, []string{"sum"}) {
		t.Errorf("set operation: Aggregates = %v, want [sum]", got)
	}
}

func TestMembersSQLOnlyOverOneTable(t *testing.T) {
	for _, tc := range []struct {
		query   string
		members bool
	}{
		{`SELECT region, count(*) FROM people p WHERE income > 1 GROUP BY region`, true},
		{`SELECT region, count(*) FROM people GROUP BY region`, true},
		{`SELECT count(*) FROM people`, true},
		{`SELECT region, count(*) FROM people WHERE income IN (SELECT employees FROM firms) GROUP BY region`, true},
		{`SELECT p.region, count(*) FROM people p JOIN firms f ON p.region = f.region GROUP BY p.region`, false},
		{`SELECT p.region, count(*) FROM people p, firms f GROUP BY p.region`, false},
		{`SELECT region, count(*) FROM (SELECT * FROM people) s GROUP BY region`, false},
		{`WITH c AS (SELECT * FROM people) SELECT region, count(*) FROM c GROUP BY region`, false},
		{`WITH people AS (SELECT * FROM firms) SELECT region, count(*) FROM people GROUP BY region`, false},
		{`SELECT region, count(*) FROM people AS p(r, i) GROUP BY region`, false},
		{`SELECT region, income FROM people`, false}, // not an aggregate
	} {
		a, err := Analyze(ctx(t), tc.query, cellTables)
		if err != nil {
			t.Fatalf("%s: %v", tc.query, err)
		}
		if got := a.MembersSQL != ""; got != tc.members {
			t.Errorf("%s: MembersSQL %q, want one: %v", tc.query, a.MembersSQL, tc.members)
		}
		if a.MembersSQL != "" && (!strings.Contains(a.MembersSQL, CellCountColumn) || !strings.Contains(a.MembersSQL, MembersColumn) || strings.Contains(a.CellSQL, MembersColumn)) {
			t.Errorf("%s: MembersSQL %s does not extend CellSQL %s", tc.query, a.MembersSQL, a.CellSQL)
		}
	}
	// A dataset with a field named rowid: rowid is that field, not the row number.
	a, err := Analyze(ctx(t), `SELECT region, count(*) FROM people GROUP BY region`, map[string][]string{"people": {"region", "rowid"}})
	if err != nil {
		t.Fatal(err)
	}
	if a.MembersSQL != "" {
		t.Errorf("MembersSQL over a table with a rowid field: %s", a.MembersSQL)
	}
	// The job's own SQL still may not name rowid.
	if _, err := Analyze(ctx(t), `SELECT region, list(rowid) FROM people GROUP BY region`, cellTables); err == nil {
		t.Error("a query naming rowid was analysed")
	}
}

func TestCellsMembers(t *testing.T) {
	snapshot := writeCellSnapshot(t)
	for _, tc := range []struct {
		query string
		want  [][]int64 // north, south
	}{
		{`SELECT region, count(*) AS n FROM people p WHERE p.income > 1 GROUP BY region ORDER BY region`,
			[][]int64{{0, 2, 3, 5}, {4, 7}}},
		{`SELECT region, count(*) FILTER (WHERE age > 30) AS n FROM people GROUP BY region ORDER BY region`,
			[][]int64{{0, 3, 5, 6, 9, 10}, {1, 7}}},
		// sum skips the null income of row 10.
		{`SELECT region, count(*) AS n, sum(income) AS s FROM people AS p GROUP BY region ORDER BY region`,
			[][]int64{{0, 2, 3, 5, 6, 8, 9}, {1, 4, 7}}},
		// Every aggregate's rows: age > 30 and a non-null income.
		{`SELECT region, count(*) FILTER (WHERE age > 30) AS old, sum(income) AS s FROM people GROUP BY region ORDER BY region`,
			[][]int64{{0, 3, 5, 6, 9}, {1, 7}}},
		// A group no row passes: empty, not nil.
		{`SELECT region, count(*) FILTER (WHERE age > 65) AS n FROM people GROUP BY region ORDER BY region`,
			[][]int64{{10}, {}}},
	} {
		a, rep := runCells(t, snapshot, tc.query)
		if a.MembersSQL == "" {
			t.Fatalf("%s: no MembersSQL", tc.query)
		}
		if len(rep.Cells) != len(tc.want) {
			t.Fatalf("%s: %d cells, want %d", tc.query, len(rep.Cells), len(tc.want))
		}
		for i, c := range rep.Cells {
			if !reflect.DeepEqual(c.Members, tc.want[i]) {
				t.Errorf("%s: cell %d members %#v, want %#v", tc.query, i, c.Members, tc.want[i])
			}
		}
	}
	// CellSQL alone (without members or magnitudes) reports no Cells.
	a, err := Analyze(ctx(t), `SELECT region, count(*) AS n FROM people GROUP BY region`, cellTables)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Run(ctx(t), cellSpec(t, snapshot, a.CellSQL))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Cells != nil || len(rep.CellCounts) != 2 {
		t.Errorf("CellSQL without statistics: Cells %+v, CellCounts %v", rep.Cells, rep.CellCounts)
	}
}

// TestReservedColumnsRefused: a result column in the reserved namespace
// that the sandbox did not append, at its place and with its type, fails the
// run and leaves no file.
func TestReservedColumnsRefused(t *testing.T) {
	snapshot := writeCellSnapshot(t)
	for _, tc := range []struct {
		query string
		want  string
	}{
		{`SELECT region, count(*) AS __dsbx_cell_n, 1 AS __dsbx_evil FROM people GROUP BY region`, `"__dsbx_evil"`},
		{`SELECT region, 1 AS __DSBX_EVIL FROM people`, `"__DSBX_EVIL"`},
		{`SELECT region, 1 AS __dsbx_evil, count(*) AS __dsbx_cell_n FROM people GROUP BY region`, `"__dsbx_evil"`},
		{`SELECT list(rowid) AS __dsbx_members, region, count(*) AS __dsbx_cell_n FROM people GROUP BY region`, `"__dsbx_members"`},
		{`SELECT region, count(*) AS __dsbx_cell_n, 1 AS __dsbx_m1_total, [1.0] AS __dsbx_m1_top, 1 AS __dsbx_m1_n FROM people GROUP BY region`, `"__dsbx_m1_total"`},
		{`SELECT region, count(*) AS __dsbx_cell_n, 1 AS __dsbx_m0_total, [1.0] AS __dsbx_m0_top, 1 AS __dsbx_m0_n FROM people GROUP BY region`, "__dsbx_m0_total column has type int32"},
		{`SELECT region, count(*) AS __dsbx_cell_n, 1.0::DOUBLE AS __dsbx_m0_total, [1] AS __dsbx_m0_top, count(*) AS __dsbx_m0_n FROM people GROUP BY region`, "__dsbx_m0_top column has type"},
		{`SELECT region, count(*) AS __dsbx_cell_n, [1.0] AS __dsbx_members FROM people GROUP BY region`, "__dsbx_members column has type"},
		{`SELECT region, count(*) AS __dsbx_cell_n, region AS r2 FROM people GROUP BY region`, `"r2" follows`},
		{`SELECT count(*) AS __dsbx_cell_n FROM people`, "no columns besides"},
	} {
		spec := cellSpec(t, snapshot, tc.query)
		_, err := Derive(ctx(t), spec, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error mentioning %s", tc.query, err, tc.want)
		}
		noFileAt(t, spec.Out)
	}
	// Analyze refuses the names in a job's own SQL.
	if _, err := Analyze(ctx(t), `SELECT region, count(*) AS __dsbx_members FROM people GROUP BY region`, cellTables); err == nil {
		t.Error("a query aliasing __dsbx_members was analysed")
	}
	// The host's own appended columns pass.
	spec := cellSpec(t, snapshot, `SELECT region, count(*) AS __dsbx_cell_n, 2.5::DOUBLE AS __dsbx_m0_total, [2.5::DOUBLE] AS __dsbx_m0_top, 1::BIGINT AS __dsbx_m0_n FROM people GROUP BY region ORDER BY region`)
	rep, err := Derive(ctx(t), spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Cells) != 2 || !reflect.DeepEqual(rep.Cells[0].Magnitudes, []MagnitudeStats{mag(2.5, 1, 2.5)}) || rep.Cells[0].Members != nil {
		t.Errorf("Cells = %+v", rep.Cells)
	}
	noReservedColumns(t, spec.Out, 1)
}

func TestCellsSurviveIsolation(t *testing.T) {
	snapshot := writeCellSnapshot(t)
	a, err := Analyze(ctx(t), `SELECT region, sum(income) FILTER (WHERE age > 30) AS s, count(*) AS n FROM people GROUP BY region ORDER BY region`, cellTables)
	if err != nil {
		t.Fatal(err)
	}
	in, err := Run(ctx(t), cellSpec(t, snapshot, a.MembersSQL))
	if err != nil {
		t.Fatal(err)
	}
	out, err := RunIsolated(ctx(t), cellSpec(t, snapshot, a.MembersSQL))
	if err != nil {
		t.Fatal(err)
	}
	if in.Cells == nil || !reflect.DeepEqual(in.Cells, out.Cells) || !reflect.DeepEqual(in.CellCounts, out.CellCounts) {
		t.Fatalf("isolated Cells %+v, in-process %+v", out.Cells, in.Cells)
	}
	// Non-finite values (a DOUBLE column may hold them) cross as JSON too.
	cells := []CellStats{{Count: 2, Magnitudes: []MagnitudeStats{{Total: math.Inf(1), Top: []float64{math.NaN(), math.Inf(1), 1.5}, N: 3}, mag(0, 0)}, Members: []int64{}}}
	b, err := json.Marshal(Report{Cells: cells})
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	got := back.Cells[0].Magnitudes[0]
	if !math.IsInf(got.Total, 1) || len(got.Top) != 3 || !math.IsNaN(got.Top[0]) || !math.IsInf(got.Top[1], 1) || got.Top[2] != 1.5 || got.N != 3 ||
		!reflect.DeepEqual(back.Cells[0].Magnitudes[1], mag(0, 0)) || back.Cells[0].Members == nil {
		t.Errorf("round trip: %s gave %+v", b, back.Cells)
	}
}
