// Package disclosure runs statistical disclosure checks on a quarantined
// result before release: minimum cell counts for aggregate outputs and no
// direct identifiers in any output column.
package disclosure

import (
	"fmt"
	"sort"
	"strings"
)

// Check is one check's verdict.
type Check struct {
	Name   string `json:"name"`
	Passed bool   `json:"passed"`
	Detail string `json:"detail"`
	// Cells lists the result rows (0-based) that failed, at most MaxCells.
	Cells []int `json:"cells,omitempty"`
}

// MaxCells bounds how many failing cells a check lists.
const MaxCells = 100

// Column is one output column and the dataset fields it derives from.
type Column struct {
	Name       string
	Fields     []string
	Aggregated bool // every field reference is inside a reducing aggregate
}

// Result is what the checks look at.
type Result struct {
	// Aggregate is true when the result is a table of aggregates, one row
	// per cell; CellCounts then holds each cell's number of input rows.
	Aggregate  bool
	CellCounts []int64
	Columns    []Column
}

// Rules parameterise the checks.
type Rules struct {
	MinCellCount int64
	// DirectIdentifiers are the fields labelled identifier=direct.
	DirectIdentifiers []string
}

// Run applies every check to r and returns the verdicts in a fixed order.
func Run(r Result, rules Rules) []Check {
	return []Check{aggregateOutput(r), minCellCount(r, rules.MinCellCount), directIdentifiers(r, rules.DirectIdentifiers)}
}

// aggregateOutput holds row-level extracts: only aggregate tables are
// released without review.
func aggregateOutput(r Result) Check {
	if r.Aggregate {
		return Check{Name: "aggregate_output", Passed: true, Detail: "result is an aggregate table"}
	}
	return Check{Name: "aggregate_output", Detail: "result is row-level (no GROUP BY or aggregate at the top level); row-level extracts are not released automatically"}
}

func minCellCount(r Result, threshold int64) Check {
	c := Check{Name: "min_cell_count"}
	if !r.Aggregate {
		c.Detail = "not applicable to a row-level result; held by aggregate_output"
		return c
	}
	if len(r.CellCounts) == 0 {
		c.Passed = true
		c.Detail = "result has no cells"
		return c
	}
	var failed int
	for i, n := range r.CellCounts {
		if n < threshold {
			failed++
			if len(c.Cells) < MaxCells {
				c.Cells = append(c.Cells, i)
			}
		}
	}
	if failed == 0 {
		c.Passed = true
		c.Detail = fmt.Sprintf("all %d cells count at least %d records", len(r.CellCounts), threshold)
		return c
	}
	c.Detail = fmt.Sprintf("%d of %d cells count fewer than %d records (an aggregate with FILTER or CASE counts only the rows it uses); widen the groups or drop them with HAVING count(*) >= %d", failed, len(r.CellCounts), threshold, threshold)
	return c
}

func directIdentifiers(r Result, direct []string) Check {
	isDirect := map[string]bool{}
	for _, f := range direct {
		isDirect[f] = true
	}
	var bad []string
	for _, col := range r.Columns {
		if isDirect[col.Name] {
			bad = append(bad, col.Name)
			continue
		}
		if col.Aggregated {
			continue
		}
		for _, f := range col.Fields {
			if isDirect[f] {
				bad = append(bad, fmt.Sprintf("%s (from %s)", col.Name, f))
				break
			}
		}
	}
	if len(bad) == 0 {
		return Check{Name: "direct_identifiers", Passed: true, Detail: "no output column carries a direct identifier"}
	}
	sort.Strings(bad)
	return Check{Name: "direct_identifiers", Detail: "output columns carry direct identifiers: " + strings.Join(bad, ", ")}
}
