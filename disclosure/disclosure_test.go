package disclosure

import (
	"strings"
	"testing"
)

func find(t *testing.T, checks []Check, name string) Check {
	t.Helper()
	for _, c := range checks {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no check %s in %+v", name, checks)
	return Check{}
}

func TestMinCellCount(t *testing.T) {
	rules := Rules{MinCellCount: 10}
	ok := Run(Result{Aggregate: true, CellCounts: []int64{10, 55, 300}}, rules)
	if c := find(t, ok, "min_cell_count"); !c.Passed {
		t.Fatalf("cells at and above the threshold failed: %+v", c)
	}
	bad := find(t, Run(Result{Aggregate: true, CellCounts: []int64{12, 9, 40, 1}}, rules), "min_cell_count")
	if bad.Passed || len(bad.Cells) != 2 || bad.Cells[0] != 1 || bad.Cells[1] != 3 || !strings.Contains(bad.Detail, "2 of 4 cells") {
		t.Fatalf("small cells: %+v", bad)
	}
	many := make([]int64, MaxCells+50)
	if c := find(t, Run(Result{Aggregate: true, CellCounts: many}, rules), "min_cell_count"); len(c.Cells) != MaxCells {
		t.Fatalf("listed %d failing cells, want the cap %d", len(c.Cells), MaxCells)
	}
}

func TestRowLevelIsHeld(t *testing.T) {
	checks := Run(Result{Aggregate: false}, Rules{MinCellCount: 10})
	if c := find(t, checks, "aggregate_output"); c.Passed {
		t.Fatalf("row-level result passed: %+v", c)
	}
}

func TestDirectIdentifiers(t *testing.T) {
	rules := Rules{MinCellCount: 1, DirectIdentifiers: []string{"id_number", "name"}}
	cases := []struct {
		col  Column
		pass bool
	}{
		{Column{Name: "district", Fields: []string{"district"}}, true},
		{Column{Name: "people", Fields: []string{"id_number"}, Aggregated: true}, true}, // count(DISTINCT id_number)
		{Column{Name: "first", Fields: []string{"name"}, Aggregated: false}, false},     // min(name) returns a name
		{Column{Name: "x", Fields: []string{"district", "id_number"}}, false},           // concat(district, id_number)
		{Column{Name: "name", Fields: nil}, false},                                      // named like an identifier
	}
	for _, tc := range cases {
		c := find(t, Run(Result{Aggregate: true, CellCounts: []int64{5}, Columns: []Column{tc.col}}, rules), "direct_identifiers")
		if c.Passed != tc.pass {
			t.Errorf("%+v: passed=%v, want %v (%s)", tc.col, c.Passed, tc.pass, c.Detail)
		}
	}
}
