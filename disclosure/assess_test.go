package disclosure

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// checkOrder is the fixed order of Report.Findings.
var checkOrder = []string{"classification", "direct_identifiers", "row_level", "min_cell_count", "dominance",
	"extremes", "attributes", "degrees_of_freedom", "suppression", "rounding", "top_bottom_coding"}

// findingOf returns the finding of one check, failing the test when it is missing.
func findingOf(t *testing.T, r Report, check string) Finding {
	t.Helper()
	for _, f := range r.Findings {
		if f.Check == check {
			return f
		}
	}
	t.Fatalf("no finding %s in %+v", check, r.Findings)
	return Finding{}
}

// verdicts maps every check to its verdict.
func verdicts(r Report) map[string]Verdict {
	m := map[string]Verdict{}
	for _, f := range r.Findings {
		m[f.Check] = f.Verdict
	}
	return m
}

// wantVerdicts asserts the given checks' verdicts; every other check must pass.
func wantVerdicts(t *testing.T, r Report, want map[string]Verdict) {
	t.Helper()
	overall := Pass
	for _, c := range checkOrder {
		w, ok := want[c]
		if !ok {
			w = Pass
		}
		overall = worse(overall, w)
		if got := findingOf(t, r, c).Verdict; got != w {
			t.Errorf("%s: verdict %s, want %s (%s)", c, got, w, findingOf(t, r, c).Detail)
		}
	}
	if r.Verdict != overall {
		t.Errorf("report verdict %s, want %s", r.Verdict, overall)
	}
}

// wantCells asserts a finding's cells exactly.
func wantCells(t *testing.T, f Finding, want []CellFinding) {
	t.Helper()
	if !reflect.DeepEqual(f.Cells, want) {
		t.Errorf("%s cells:\n got %+v\nwant %+v", f.Check, f.Cells, want)
	}
}

// wantChanges asserts a report's changes exactly.
func wantChanges(t *testing.T, r Report, want []Change) {
	t.Helper()
	if !reflect.DeepEqual(r.Changes, want) {
		t.Errorf("changes:\n got %s\nwant %s", showChanges(r.Changes), showChanges(want))
	}
}

func showChanges(cs []Change) string {
	var s []string
	for _, c := range cs {
		v := "-"
		if c.NewValue != nil {
			v = fmt.Sprint(*c.NewValue)
		}
		s = append(s, fmt.Sprintf("{%d %s %s %q %s}", c.Row, c.Column, c.Action, c.Reason, v))
	}
	return "[" + strings.Join(s, " ") + "]"
}

func num(x float64) Value    { return Value{Num: x} }
func text(s string) Value    { return Value{Text: s} }
func ptr(x float64) *float64 { return &x }

// frequency1 is a 1-key frequency table region -> n.
func frequency1(regions []string, counts []float64) Table {
	t := Table{Kind: KindFrequency, Columns: []OutputColumn{
		{Name: "region", Role: RoleKey, Fields: []string{"region"}},
		{Name: "n", Role: RoleCount, Numeric: true},
	}}
	for i, r := range regions {
		t.Rows = append(t.Rows, Row{Keys: []string{r}, Values: []Value{text(r), num(counts[i])}, Count: int64(counts[i])})
	}
	return t
}

// frequency2 is a 2-key frequency table k1 x k2 -> n.
func frequency2(k1, k2 string, cells [][3]string, counts []int64) Table {
	t := Table{Kind: KindFrequency, Columns: []OutputColumn{
		{Name: k1, Role: RoleKey, Fields: []string{k1}},
		{Name: k2, Role: RoleKey, Fields: []string{k2}},
		{Name: "n", Role: RoleCount, Numeric: true},
	}}
	for i, c := range cells {
		t.Rows = append(t.Rows, Row{Keys: []string{c[0], c[1]}, Values: []Value{text(c[0]), text(c[1]), num(float64(counts[i]))}, Count: counts[i]})
	}
	return t
}

func TestMinCellCountAndOneKeySuppression(t *testing.T) {
	table := frequency1([]string{"A", "B", "C"}, []float64{12, 3, 40})
	small := []CellFinding{{Row: 1, Reason: "fewer than 10 records"}}
	cases := []struct {
		name       string
		suppress   bool
		verdicts   map[string]Verdict
		supCells   []CellFinding
		changes    []Change
		suppressed int
		nulls      []int // rows whose n is null after Apply
	}{
		{name: "no remedy", suppress: false,
			verdicts: map[string]Verdict{"min_cell_count": Review}},
		{name: "suppress", suppress: true,
			// B (3) is primary; the table total 55 would give it away as
			// 55 - 12 - 40, so the smallest other cell, A (12), goes too.
			supCells: []CellFinding{
				{Row: 0, Reason: "secondary: protects row 1 in the table total"},
				{Row: 1, Reason: "primary: fewer than 10 records"},
			},
			changes: []Change{
				{Row: 0, Column: "n", Action: "suppressed", Reason: "secondary: protects row 1 in the table total"},
				{Row: 1, Column: "n", Action: "suppressed", Reason: "primary: fewer than 10 records"},
			},
			suppressed: 2, nulls: []int{0, 1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := Assess(table, Params{MinCellCount: 10, Suppress: c.suppress})
			wantVerdicts(t, r, c.verdicts)
			mc := findingOf(t, r, "min_cell_count")
			wantCells(t, mc, small)
			wantCells(t, findingOf(t, r, "suppression"), c.supCells)
			wantChanges(t, r, c.changes)
			if r.Suppressed != c.suppressed {
				t.Errorf("suppressed %d, want %d", r.Suppressed, c.suppressed)
			}
			if c.suppress && !strings.Contains(mc.Detail, "2 cells suppressed") {
				t.Errorf("min_cell_count detail %q does not count the suppressed cells", mc.Detail)
			}
			if !c.suppress && !strings.Contains(mc.Detail, "1 of 3 cells count fewer than 10 records") {
				t.Errorf("min_cell_count detail %q", mc.Detail)
			}
			out := Apply(table, r)
			for i, row := range out.Rows {
				wantNull := false
				for _, n := range c.nulls {
					wantNull = wantNull || n == i
				}
				if row.Values[1].Null != wantNull {
					t.Errorf("row %d: n null=%v, want %v", i, row.Values[1].Null, wantNull)
				}
				if !wantNull && row.Values[1] != table.Rows[i].Values[1] {
					t.Errorf("row %d: n changed to %+v", i, row.Values[1])
				}
				if row.Values[0] != table.Rows[i].Values[0] {
					t.Errorf("row %d: key changed to %+v", i, row.Values[0])
				}
			}
		})
	}
}

// regionSex is the table of the issue: region x sex, all cells at least 10
// records except B/F with 4. Its row totals (A 45, B 34, C 33) and column
// totals (F 39, M 73) are public, so suppressing B/F alone is undone by
// either total.
func regionSex() Table {
	return frequency2("region", "sex", [][3]string{
		{"A", "F"}, {"A", "M"},
		{"B", "F"}, {"B", "M"},
		{"C", "F"}, {"C", "M"},
	}, []int64{20, 25, 4, 30, 15, 18})
}

// recoverCells plays the attacker: it knows every row (key 0) and column
// (key 1) total of the original table, and solves any line with a single
// unknown (null) cell, again and again. It returns the recovered cells.
func recoverCells(original, released Table) map[int]float64 {
	known := map[int]float64{}
	for i, r := range released.Rows {
		if !r.Values[2].Null {
			known[i] = r.Values[2].Num
		}
	}
	recovered := map[int]float64{}
	for progress := true; progress; {
		progress = false
		for d := 0; d < 2; d++ {
			lines := map[string][]int{}
			var order []string
			for i, r := range original.Rows {
				k := r.Keys[1-d] // rows sharing the other key
				if _, ok := lines[k]; !ok {
					order = append(order, k)
				}
				lines[k] = append(lines[k], i)
			}
			for _, k := range order {
				total, sum, unknown := 0.0, 0.0, []int{}
				for _, i := range lines[k] {
					total += original.Rows[i].Values[2].Num // the published margin
					if v, ok := known[i]; ok {
						sum += v
					} else {
						unknown = append(unknown, i)
					}
				}
				if len(unknown) == 1 {
					known[unknown[0]] = total - sum
					recovered[unknown[0]] = total - sum
					progress = true
				}
			}
		}
	}
	return recovered
}

func TestSecondarySuppressionTwoKeys(t *testing.T) {
	table := regionSex()

	// Suppressing only the primary cell: the attacker recovers B/F = 4.
	primaryOnly := Apply(table, Report{Changes: []Change{{Row: 2, Column: "n", Action: "suppressed"}}})
	if got := recoverCells(table, primaryOnly); !reflect.DeepEqual(got, map[int]float64{2: 4}) {
		t.Fatalf("primary-only suppression: recovered %v, want B/F = 4", got)
	}

	r := Assess(table, Params{MinCellCount: 10, Suppress: true})
	wantVerdicts(t, r, nil)
	// Lines are taken sex=F, sex=M, then region=A, B, C:
	//   sex=F {A/F 20, B/F 4*, C/F 15}: one suppressed -> C/F (15 < 20)
	//   sex=M: none suppressed yet
	//   region=B {B/F*, B/M 30}: one suppressed -> B/M
	//   region=C {C/F*, C/M 18}: one suppressed -> C/M
	// and the next pass finds every line with 0 or 2 suppressed cells.
	wantCells(t, findingOf(t, r, "suppression"), []CellFinding{
		{Row: 2, Reason: "primary: fewer than 10 records"},
		{Row: 3, Reason: "secondary: protects row 2 in line region=B"},
		{Row: 4, Reason: "secondary: protects row 2 in line sex=F"},
		{Row: 5, Reason: "secondary: protects row 4 in line region=C"},
	})
	wantChanges(t, r, []Change{
		{Row: 2, Column: "n", Action: "suppressed", Reason: "primary: fewer than 10 records"},
		{Row: 3, Column: "n", Action: "suppressed", Reason: "secondary: protects row 2 in line region=B"},
		{Row: 4, Column: "n", Action: "suppressed", Reason: "secondary: protects row 2 in line sex=F"},
		{Row: 5, Column: "n", Action: "suppressed", Reason: "secondary: protects row 4 in line region=C"},
	})
	if r.Suppressed != 4 {
		t.Errorf("suppressed %d cells, want 4", r.Suppressed)
	}
	released := Apply(table, r)
	// Every row line and column line holding a suppressed cell holds two.
	for d := 0; d < 2; d++ {
		perLine := map[string]int{}
		for _, row := range released.Rows {
			if row.Values[2].Null {
				perLine[row.Keys[1-d]]++
			}
		}
		for k, n := range perLine {
			if n < 2 {
				t.Errorf("line %s=%s holds %d suppressed cell", table.Columns[1-d].Name, k, n)
			}
		}
	}
	if got := recoverCells(table, released); len(got) != 0 {
		t.Fatalf("after Assess the attacker still recovers %v", got)
	}
}

func TestSuppressionCannotProtect(t *testing.T) {
	cases := []struct {
		name   string
		table  Table
		cells  []CellFinding
		detail string
	}{
		{name: "one cell", table: frequency1([]string{"A"}, []float64{3}),
			cells:  []CellFinding{{Row: 0, Reason: "primary: fewer than 10 records; alone in the table total: its margin reveals it"}},
			detail: "cell at row 0 is alone in the table total; its margin reveals it"},
		// A/F 20, A/M 25, D/F 3 (D has no M row). sex=F {A/F, D/F*} -> A/F;
		// region=A {A/F*, A/M} -> A/M; region=D {D/F*} and sex=M {A/M*}
		// hold a single cell each: their totals are those cells.
		{name: "two keys", table: frequency2("region", "sex", [][3]string{{"A", "F"}, {"A", "M"}, {"D", "F"}}, []int64{20, 25, 3}),
			cells: []CellFinding{
				{Row: 0, Reason: "secondary: protects row 2 in line sex=F"},
				{Row: 1, Reason: "secondary: protects row 0 in line region=A; alone in line sex=M: its margin reveals it"},
				{Row: 2, Reason: "primary: fewer than 10 records; alone in line region=D: its margin reveals it"},
			},
			detail: "cells at rows 1, 2 are alone in their lines (row 1 in line sex=M); their margins reveal them"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := Assess(c.table, Params{Suppress: true})
			wantVerdicts(t, r, map[string]Verdict{"min_cell_count": Review, "suppression": Review})
			f := findingOf(t, r, "suppression")
			wantCells(t, f, c.cells)
			if !strings.HasPrefix(f.Detail, c.detail) {
				t.Errorf("detail %q, want prefix %q", f.Detail, c.detail)
			}
		})
	}
}

func TestDominatedRules(t *testing.T) {
	cases := []struct {
		name          string
		m             Magnitude
		p             Params
		pRule, nkRule bool
		ok            bool
	}{
		// One firm has 90 of 100, ten others 1 each. p%: rest = 100-90-1 = 9,
		// not < 10% of 90 = 9. n-k: 90+1 = 91 > 85% of 100 = 85.
		{name: "one firm holds 90 of 100", m: Magnitude{Total: 100, Top: []float64{90, 1}, N: 11}, nkRule: true, ok: true},
		// x1 = 50, x2 = 45, rest 4 (four firms of 1), total 99. p%: 4 < 10% of 50 = 5.
		// n-k: 95 > 85% of 99 = 84.15, so it fails too at the defaults...
		{name: "p% and n-k", m: Magnitude{Total: 99, Top: []float64{50, 45}, N: 6}, pRule: true, nkRule: true, ok: true},
		// ...but not with k = 99: 95 <= 98.01.
		{name: "p% only", m: Magnitude{Total: 99, Top: []float64{50, 45}, N: 6}, p: Params{DominanceK: 99}, pRule: true, ok: true},
		// Twenty equal contributions of 5: p%: 90 >= 0.5; n-k: 10 <= 85.
		{name: "twenty equal", m: Magnitude{Total: 100, Top: []float64{5, 5}, N: 20}, ok: true},
		// A single contributor: p%: rest 0 < 10% of 7; n-k: 7 > 85% of 7.
		{name: "one contributor", m: Magnitude{Total: 7, Top: []float64{7}, N: 1}, pRule: true, nkRule: true, ok: true},
		{name: "zero total", m: Magnitude{Total: 0, N: 3}, ok: true},
		// n = 3 needs the three largest contributions.
		{name: "too few top", m: Magnitude{Total: 100, Top: []float64{20, 20}, N: 10}, p: Params{DominanceN: 3}},
		// Top out of order and negative is normalised: 60, 30; rest 10 >= 6; 90 > 85.
		{name: "unsorted", m: Magnitude{Total: 100, Top: []float64{30, -60}, N: 5}, nkRule: true, ok: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pr, nk, ok := dominated(c.m, c.p.withDefaults())
			if pr != c.pRule || nk != c.nkRule || ok != c.ok {
				t.Errorf("p%%=%v n-k=%v ok=%v, want %v %v %v", pr, nk, ok, c.pRule, c.nkRule, c.ok)
			}
		})
	}
}

// turnover is a 1-key magnitude table sector -> n, turnover with the
// contributions of the dominance cases above.
func turnover(missing bool) Table {
	t := Table{Kind: KindMagnitude, Columns: []OutputColumn{
		{Name: "sector", Role: RoleKey, Fields: []string{"sector"}},
		{Name: "n", Role: RoleCount, Numeric: true},
		{Name: "turnover", Role: RoleMagnitude, Fields: []string{"turnover"}, Numeric: true},
	}}
	add := func(s string, n int64, m *Magnitude) {
		row := Row{Keys: []string{s}, Values: []Value{text(s), num(float64(n)), num(100)}, Count: n}
		if m != nil {
			row.Magnitudes = map[string]Magnitude{"turnover": *m}
		}
		t.Rows = append(t.Rows, row)
	}
	add("mining", 11, &Magnitude{Total: 100, Top: []float64{90, 1}, N: 11})
	add("retail", 12, &Magnitude{Total: 99, Top: []float64{50, 45}, N: 6})
	add("farming", 20, &Magnitude{Total: 100, Top: []float64{5, 5}, N: 20})
	if missing {
		add("fishing", 15, nil)
	}
	return t
}

func TestDominance(t *testing.T) {
	nk := "n-k rule: the 2 largest contributors hold more than 85% of the total"
	pp := "p% rule: the second-largest contributor could estimate the largest within 10%"

	r := Assess(turnover(true), Params{})
	wantVerdicts(t, r, map[string]Verdict{"dominance": Review})
	wantCells(t, findingOf(t, r, "dominance"), []CellFinding{
		{Row: 0, Column: "turnover", Reason: nk},
		{Row: 1, Column: "turnover", Reason: pp + "; " + nk},
		{Row: 3, Column: "turnover", Reason: "contributions not computed; dominance cannot be checked"},
	})
	if r.Changes != nil || r.Suppressed != 0 {
		t.Errorf("changes without suppression: %+v", r.Changes)
	}

	// Suppressed: rows 0 and 1 are primary and protect each other in the
	// table total; every non-key value of theirs is nulled.
	r = Assess(turnover(false), Params{Suppress: true})
	wantVerdicts(t, r, nil)
	if d := findingOf(t, r, "dominance").Detail; !strings.Contains(d, "2 cells suppressed") {
		t.Errorf("dominance detail %q", d)
	}
	r0, r1 := "primary: dominance n-k rule on turnover", "primary: dominance p% and n-k rules on turnover"
	wantChanges(t, r, []Change{
		{Row: 0, Column: "n", Action: "suppressed", Reason: r0},
		{Row: 0, Column: "turnover", Action: "suppressed", Reason: r0},
		{Row: 1, Column: "n", Action: "suppressed", Reason: r1},
		{Row: 1, Column: "turnover", Action: "suppressed", Reason: r1},
	})
	if r.Suppressed != 2 {
		t.Errorf("suppressed %d, want 2", r.Suppressed)
	}

	// Noised (differential privacy over bounded contributions): dominance
	// does not apply.
	r = Assess(turnover(true), Params{Noised: true})
	if f := findingOf(t, r, "dominance"); f.Verdict != Pass || !strings.Contains(f.Detail, "differential-privacy noise") {
		t.Errorf("noised: %+v", f)
	}

	// A dominated statistic with no groups cannot be suppressed: Review.
	st := Table{Kind: KindStatistics, Observations: 50, Columns: []OutputColumn{{Name: "total", Role: RoleMagnitude, Numeric: true}},
		Rows: []Row{{Values: []Value{num(100)}, Count: 50, Magnitudes: map[string]Magnitude{"total": {Total: 100, Top: []float64{90, 1}, N: 50}}}}}
	r = Assess(st, Params{Suppress: true})
	wantVerdicts(t, r, map[string]Verdict{"dominance": Review})
	if r.Suppressed != 0 {
		t.Errorf("suppressed a statistic")
	}
}

func TestAssessDirectIdentifiers(t *testing.T) {
	params := Params{DirectIdentifiers: []string{"person_id"}, FreeText: []string{"note"}}
	cases := []struct {
		name    string
		col     OutputColumn
		verdict Verdict
		detail  string
	}{
		{"identifier key", OutputColumn{Name: "person_id", Role: RoleKey, Fields: []string{"person_id"}}, Fail, "person_id (direct identifier)"},
		{"derived key", OutputColumn{Name: "pid_prefix", Role: RoleKey, Fields: []string{"person_id"}}, Fail, "pid_prefix (from person_id, direct identifier)"},
		{"free-text key", OutputColumn{Name: "note_start", Role: RoleKey, Fields: []string{"note"}}, Fail, "note_start (from note, free text)"},
		{"extreme of identifier", OutputColumn{Name: "max_id", Role: RoleExtreme, Fields: []string{"person_id"}}, Fail, "max_id (from person_id, direct identifier)"},
		{"count of identifier", OutputColumn{Name: "people", Role: RoleCount, Fields: []string{"person_id"}, Numeric: true}, Pass, "no output column"},
		{"count of free text", OutputColumn{Name: "notes", Role: RoleCount, Fields: []string{"note"}, Numeric: true}, Pass, "no output column"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			table := Table{Kind: KindFrequency, Columns: []OutputColumn{{Name: "region", Role: RoleKey, Fields: []string{"region"}}, c.col}}
			f := findingOf(t, Assess(table, params), "direct_identifiers")
			if f.Verdict != c.verdict || !strings.Contains(f.Detail, c.detail) {
				t.Errorf("%s %q, want %s containing %q", f.Verdict, f.Detail, c.verdict, c.detail)
			}
		})
	}
}

func TestRowLevel(t *testing.T) {
	extract := Table{Kind: KindRows, Columns: []OutputColumn{
		{Name: "city", Role: RoleValue, Fields: []string{"city"}},
		{Name: "age_band", Role: RoleValue, Fields: []string{"age"}, Numeric: true},
	}, Rows: []Row{{Values: []Value{text("X"), num(30)}, Count: -1}}}
	cases := []struct {
		name    string
		p       Params
		verdict Verdict
		detail  string
	}{
		{"not allowed", Params{}, Fail, "the agreement does not allow row-level extracts; aggregate the result instead"},
		{"personal field", Params{RowLevel: true, Personal: []string{"age"}}, Fail, "row-level columns derive from personal fields: age_band (from age, personal); aggregate the result instead"},
		{"allowed", Params{RowLevel: true, Personal: []string{"income"}}, Pass, "row-level extracts are allowed and no column derives from a personal field"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := Assess(extract, c.p)
			want := map[string]Verdict{}
			if c.verdict != Pass {
				want["row_level"] = c.verdict
			}
			wantVerdicts(t, r, want)
			if f := findingOf(t, r, "row_level"); f.Detail != c.detail {
				t.Errorf("detail %q, want %q", f.Detail, c.detail)
			}
		})
	}
	if f := findingOf(t, Assess(regionSex(), Params{}), "row_level"); f.Verdict != Pass || f.Detail != "not a row-level extract" {
		t.Errorf("aggregate: %+v", f)
	}
}

func TestExtremes(t *testing.T) {
	table := Table{Kind: KindMagnitude, Columns: []OutputColumn{
		{Name: "region", Role: RoleKey},
		{Name: "max_income", Role: RoleExtreme, Fields: []string{"income"}, Numeric: true},
	}, Rows: []Row{{Keys: []string{"A"}, Values: []Value{text("A"), num(9e5)}, Count: 40}}}
	r := Assess(table, Params{})
	wantVerdicts(t, r, map[string]Verdict{"extremes": Review})
	if d := findingOf(t, r, "extremes").Detail; !strings.HasPrefix(d, "1 column (max_income) reports a single record's value") {
		t.Errorf("detail %q", d)
	}
}

func TestStatistics(t *testing.T) {
	stats := func(obs int64) Table {
		return Table{Kind: KindStatistics, Observations: obs, Columns: []OutputColumn{
			{Name: "b0", Role: RoleStatistic, Numeric: true},
			{Name: "b1", Role: RoleStatistic, Numeric: true},
			{Name: "b2", Role: RoleStatistic, Numeric: true},
		}, Rows: []Row{{Values: []Value{num(1), num(2), num(3)}, Count: obs}}}
	}
	cases := []struct {
		obs    int64
		want   map[string]Verdict
		detail string
	}{
		// 12 - 3 = 9 < 10.
		{12, map[string]Verdict{"degrees_of_freedom": Review}, "12 observations and 3 estimated statistics leave 9 degrees of freedom, fewer than 10; use more observations or estimate fewer statistics"},
		{100, nil, "97 degrees of freedom (at least 10)"},
		// 5 < 10 records fails the table; 5 - 3 = 2 degrees of freedom.
		{5, map[string]Verdict{"min_cell_count": Fail, "degrees_of_freedom": Review}, "5 observations and 3 estimated statistics leave 2 degrees of freedom, fewer than 10; use more observations or estimate fewer statistics"},
		{-1, map[string]Verdict{"min_cell_count": Review, "degrees_of_freedom": Review}, "the number of observations is unknown, so the degrees of freedom cannot be checked"},
	}
	for _, c := range cases {
		t.Run(fmt.Sprint(c.obs), func(t *testing.T) {
			r := Assess(stats(c.obs), Params{})
			wantVerdicts(t, r, c.want)
			if d := findingOf(t, r, "degrees_of_freedom").Detail; d != c.detail {
				t.Errorf("detail %q, want %q", d, c.detail)
			}
		})
	}
}

func TestAttributes(t *testing.T) {
	// region x diagnosis: A has both diagnoses; B only x (a full cell);
	// C has x and a zero y (a full cell and a zero cell).
	table := frequency2("region", "diagnosis", [][3]string{
		{"A", "x"}, {"A", "y"}, {"B", "x"}, {"C", "x"}, {"C", "y"},
	}, []int64{12, 15, 20, 11, 0})
	r := Assess(table, Params{CheckAttributes: true})
	wantVerdicts(t, r, map[string]Verdict{"attributes": Review})
	f := findingOf(t, r, "attributes")
	wantCells(t, f, []CellFinding{
		{Row: 2, Reason: "full cell: every record in line region=B has diagnosis=x"},
		{Row: 3, Reason: "full cell: every record in line region=C has diagnosis=x"},
		{Row: 4, Reason: "zero cell: no record has region=C, diagnosis=y"},
	})
	if !strings.HasPrefix(f.Detail, "1 zero cell and 2 full cells") {
		t.Errorf("detail %q", f.Detail)
	}
	for _, c := range []struct {
		name   string
		table  Table
		p      Params
		detail string
	}{
		{"not requested", table, Params{}, "not requested"},
		{"one key", frequency1([]string{"A", "B"}, []float64{0, 20}), Params{CheckAttributes: true}, "needs at least 2 key columns"},
		{"one category", frequency2("region", "sex", [][3]string{{"A", "F"}, {"B", "F"}}, []int64{12, 14}), Params{CheckAttributes: true}, "no zero or full cells"},
	} {
		if f := findingOf(t, Assess(c.table, c.p), "attributes"); f.Verdict != Pass || f.Detail != c.detail {
			t.Errorf("%s: %+v", c.name, f)
		}
	}
}

func TestRounding(t *testing.T) {
	cases := []struct {
		base    int64
		in      []float64
		changes []Change // every count, changed or not: which ones changed must not show
	}{
		// Base 5: 7 -> 5, 8 -> 10, 10 stays, 12.5 is half way -> 15 (half up), 22 -> 20.
		{5, []float64{7, 8, 10, 12.5, 22}, []Change{
			{Row: 0, Column: "n", Action: "rounded", Reason: "rounded to a multiple of 5", NewValue: ptr(5)},
			{Row: 1, Column: "n", Action: "rounded", Reason: "rounded to a multiple of 5", NewValue: ptr(10)},
			{Row: 2, Column: "n", Action: "rounded", Reason: "rounded to a multiple of 5", NewValue: ptr(10)},
			{Row: 3, Column: "n", Action: "rounded", Reason: "rounded to a multiple of 5", NewValue: ptr(15)},
			{Row: 4, Column: "n", Action: "rounded", Reason: "rounded to a multiple of 5", NewValue: ptr(20)},
		}},
		// Base 10: 15 and 25 are half way -> 20 and 30 (not to even); 14 -> 10; 30 stays.
		{10, []float64{15, 25, 14, 30}, []Change{
			{Row: 0, Column: "n", Action: "rounded", Reason: "rounded to a multiple of 10", NewValue: ptr(20)},
			{Row: 1, Column: "n", Action: "rounded", Reason: "rounded to a multiple of 10", NewValue: ptr(30)},
			{Row: 2, Column: "n", Action: "rounded", Reason: "rounded to a multiple of 10", NewValue: ptr(10)},
			{Row: 3, Column: "n", Action: "rounded", Reason: "rounded to a multiple of 10", NewValue: ptr(30)},
		}},
		{1, []float64{7, 8}, nil},
	}
	for _, c := range cases {
		t.Run(fmt.Sprint(c.base), func(t *testing.T) {
			keys := make([]string, len(c.in))
			for i := range keys {
				keys[i] = string(rune('A' + i))
			}
			table := frequency1(keys, c.in)
			r := Assess(table, Params{MinCellCount: 1, RoundBase: c.base})
			wantVerdicts(t, r, nil)
			wantChanges(t, r, c.changes)
			out := Apply(table, r)
			for _, ch := range c.changes {
				if v := out.Rows[ch.Row].Values[1]; v != num(*ch.NewValue) {
					t.Errorf("row %d released as %+v", ch.Row, v)
				}
			}
		})
	}

	// Suppressed cells stay null: A (3) and G (4) are primary and protect
	// each other; B 7 -> 5, C 8 -> 10.
	table := frequency1([]string{"A", "G", "B", "C"}, []float64{3, 4, 7, 8})
	r := Assess(table, Params{MinCellCount: 5, Suppress: true, RoundBase: 5})
	wantVerdicts(t, r, nil)
	wantChanges(t, r, []Change{
		{Row: 0, Column: "n", Action: "suppressed", Reason: "primary: fewer than 5 records"},
		{Row: 1, Column: "n", Action: "suppressed", Reason: "primary: fewer than 5 records"},
		{Row: 2, Column: "n", Action: "rounded", Reason: "rounded to a multiple of 5", NewValue: ptr(5)},
		{Row: 3, Column: "n", Action: "rounded", Reason: "rounded to a multiple of 5", NewValue: ptr(10)},
	})
	out := Apply(table, r)
	want := []Value{{Null: true}, {Null: true}, num(5), num(10)}
	for i, w := range want {
		if out.Rows[i].Values[1] != w {
			t.Errorf("row %d released as %+v, want %+v", i, out.Rows[i].Values[1], w)
		}
	}
}

func TestTopBottomCoding(t *testing.T) {
	table := Table{Kind: KindRows, Columns: []OutputColumn{
		{Name: "age", Role: RoleValue, Numeric: true},
		{Name: "income", Role: RoleValue, Numeric: true},
		{Name: "city", Role: RoleValue},
	}, Rows: []Row{
		{Values: []Value{num(30), num(250000), text("X")}, Count: -1},
		{Values: []Value{num(16), num(50000), text("Y")}, Count: -1},
		{Values: []Value{{Null: true}, num(-5), text("Z")}, Count: -1},
	}}
	p := Params{RowLevel: true,
		TopCode:    map[string]float64{"income": 100000, "missing": 1, "city": 3},
		BottomCode: map[string]float64{"age": 18, "income": 0}}
	r := Assess(table, p)
	wantVerdicts(t, r, nil)
	wantChanges(t, r, []Change{
		{Row: 0, Column: "income", Action: "top_coded", Reason: "top-coded at 100000", NewValue: ptr(100000)},
		{Row: 1, Column: "age", Action: "bottom_coded", Reason: "bottom-coded at 18", NewValue: ptr(18)},
		{Row: 2, Column: "income", Action: "bottom_coded", Reason: "bottom-coded at 0", NewValue: ptr(0)},
	})
	if d := findingOf(t, r, "top_bottom_coding").Detail; d != "1 value top-coded, 2 values bottom-coded; ignored (no numeric column of that name): city, missing" {
		t.Errorf("detail %q", d)
	}
	out := Apply(table, r)
	want := [][]Value{
		{num(30), num(100000), text("X")},
		{num(18), num(50000), text("Y")},
		{{Null: true}, num(0), text("Z")},
	}
	for i, w := range want {
		if !reflect.DeepEqual(out.Rows[i].Values, w) {
			t.Errorf("row %d released as %+v, want %+v", i, out.Rows[i].Values, w)
		}
	}

	// Not applied to a frequency table.
	r = Assess(frequency1([]string{"A"}, []float64{400}), Params{TopCode: map[string]float64{"n": 100}})
	if len(r.Changes) != 0 || findingOf(t, r, "top_bottom_coding").Verdict != Pass {
		t.Errorf("coded a frequency table: %+v", r.Changes)
	}
}

func TestClassificationAndOrder(t *testing.T) {
	r := Assess(regionSex(), Params{})
	var names []string
	for _, f := range r.Findings {
		names = append(names, f.Check)
	}
	if !reflect.DeepEqual(names, checkOrder) {
		t.Fatalf("findings in order %v, want %v", names, checkOrder)
	}
	if d := findingOf(t, r, "classification").Detail; d != "frequency table: 2 keys, 1 count column" {
		t.Errorf("classification %q", d)
	}
	untyped := turnover(false)
	untyped.Kind = ""
	r = Assess(untyped, Params{})
	if r.Kind != KindMagnitude || findingOf(t, r, "classification").Detail != "magnitude table: 1 key, 1 count column, 1 magnitude column (kind inferred from the column roles)" {
		t.Errorf("inferred %s: %q", r.Kind, findingOf(t, r, "classification").Detail)
	}
	for _, c := range []struct {
		roles []Role
		want  Kind
	}{
		{[]Role{RoleKey, RoleCount}, KindFrequency},
		{[]Role{RoleKey, RoleCount, RoleMagnitude}, KindMagnitude},
		{[]Role{RoleStatistic, RoleCount}, KindStatistics},
		{[]Role{RoleValue, RoleKey}, KindRows},
	} {
		var cols []OutputColumn
		for _, r := range c.roles {
			cols = append(cols, OutputColumn{Role: r})
		}
		if got := Classify(cols); got != c.want {
			t.Errorf("Classify(%v) = %s, want %s", c.roles, got, c.want)
		}
	}
	b, err := json.Marshal(Assess(frequency1([]string{"A", "B", "C"}, []float64{12, 3, 40}), Params{Suppress: true}))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{`"kind":"frequency"`, `"verdict":"pass"`, `"check":"classification"`, `"cells":[{"row":0,"reason":"secondary`, `"action":"suppressed"`, `"suppressed":2`} {
		if !strings.Contains(string(b), s) {
			t.Errorf("JSON lacks %s: %s", s, b)
		}
	}
}

func TestMaxFindings(t *testing.T) {
	n := MaxFindings + 50
	keys, counts := make([]string, n), make([]float64, n)
	for i := range keys {
		keys[i], counts[i] = fmt.Sprint(i), 2
	}
	r := Assess(frequency1(keys, counts), Params{Suppress: true})
	if c := findingOf(t, r, "min_cell_count").Cells; len(c) != MaxFindings {
		t.Errorf("listed %d cells, want the cap %d", len(c), MaxFindings)
	}
	if r.Suppressed != n || len(r.Changes) != n {
		t.Errorf("suppressed %d with %d changes, want %d", r.Suppressed, len(r.Changes), n)
	}
}

// cloneTable deep-copies a table.
func cloneTable(t Table) Table {
	b, err := json.Marshal(t)
	if err != nil {
		panic(err)
	}
	var c Table
	if err := json.Unmarshal(b, &c); err != nil {
		panic(err)
	}
	return c
}

func TestDeterminismAndApplyCopies(t *testing.T) {
	table := regionSex()
	// Add magnitudes and an extra, dominated cell so every path runs.
	table.Columns = append(table.Columns, OutputColumn{Name: "income", Role: RoleMagnitude, Numeric: true})
	table.Kind = KindMagnitude
	for i := range table.Rows {
		table.Rows[i].Values = append(table.Rows[i].Values, num(1000))
		table.Rows[i].Magnitudes = map[string]Magnitude{"income": {Total: 1000, Top: []float64{100, 90, 80}, N: table.Rows[i].Count}}
	}
	table.Rows[0].Magnitudes["income"] = Magnitude{Total: 1000, Top: []float64{950, 10}, N: 20}
	p := Params{Suppress: true, RoundBase: 5, CheckAttributes: true, DirectIdentifiers: []string{"x"}, Personal: []string{"sex"}}
	before := cloneTable(table)
	r1, r2 := Assess(table, p), Assess(table, p)
	if !reflect.DeepEqual(r1, r2) {
		t.Fatalf("two runs differ:\n%+v\n%+v", r1, r2)
	}
	if !reflect.DeepEqual(table, before) {
		t.Fatalf("Assess modified its input")
	}
	out := Apply(table, r1)
	if !reflect.DeepEqual(table, before) {
		t.Fatalf("Apply modified its input")
	}
	if reflect.DeepEqual(out, table) {
		t.Fatalf("Apply changed nothing")
	}
	// The copy shares no slice or map with the input.
	out.Rows[0].Values[0] = text("changed")
	out.Rows[0].Keys[0] = "changed"
	out.Rows[0].Magnitudes["income"] = Magnitude{}
	out.Columns[0].Name = "changed"
	if !reflect.DeepEqual(table, before) {
		t.Fatalf("Apply's result aliases its input")
	}
}
