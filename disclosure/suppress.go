package disclosure

import (
	"fmt"
	"math"
	"strings"
)

// suppression runs primary and secondary cell suppression when p.Suppress
// asks for it, and rewords the min_cell_count and dominance findings
// (minCell, dom) to say what became of their failing cells.
func (a *assessment) suppression(minCell, dom *Finding) Finding {
	f := Finding{Check: checkSuppression, Verdict: Pass}
	primaries := 0
	for _, why := range a.primary {
		if len(why) > 0 {
			primaries++
		}
	}
	if primaries == 0 {
		f.Detail = "no cell needed suppression"
		return f
	}
	if !a.p.Suppress {
		f.Detail = fmt.Sprintf("%s fail min_cell_count or dominance and suppression was not requested; request it to release the table with them suppressed",
			plural(primaries, "cell"))
		return f
	}

	reason := make([]string, len(a.t.Rows))
	for i, why := range a.primary {
		if len(why) > 0 {
			a.suppressed[i] = true
			reason[i] = "primary: " + strings.Join(why, "; ")
		}
	}
	lines := a.suppressionLines()
	counts := make([]int, len(lines))
	// Repeat until nothing changes: a line with exactly one suppressed
	// cell gives that cell away as its total less the others, so suppress
	// the line's smallest other cell too.
	for changed := true; changed; {
		changed = false
		for n, ln := range lines {
			lone, nsup, best := -1, 0, -1
			for _, i := range ln.rows {
				if a.suppressed[i] {
					nsup++
					lone = i
					continue
				}
				if best < 0 || cheaper(a.t.Rows[i].Count, a.t.Rows[best].Count) {
					best = i
				}
			}
			counts[n] = nsup
			if nsup != 1 || best < 0 {
				continue
			}
			a.suppressed[best] = true
			reason[best] = fmt.Sprintf("secondary: protects row %d in %s", lone, ln.desc)
			counts[n] = 2
			changed = true
		}
	}
	// A line still holding exactly one suppressed cell has no other cell:
	// its total is that cell.
	alone := map[int]string{}
	for n, ln := range lines {
		if counts[n] == 1 {
			for _, i := range ln.rows {
				if _, seen := alone[i]; a.suppressed[i] && !seen {
					alone[i] = ln.desc
				}
			}
		}
	}

	total, secondaries := 0, 0
	for i, s := range a.suppressed {
		if !s {
			continue
		}
		total++
		if len(a.primary[i]) == 0 {
			secondaries++
		}
		why := reason[i]
		if desc, ok := alone[i]; ok {
			why += fmt.Sprintf("; alone in %s: its margin reveals it", desc)
		}
		addCell(&f, CellFinding{Row: i, Reason: why})
		for c, col := range a.t.Columns {
			if col.Role != RoleKey {
				a.changes = append(a.changes, change{Change{Row: i, Column: col.Name, Action: ActionSuppressed, Reason: reason[i]}, c})
			}
		}
	}
	protected := len(alone) == 0
	if protected {
		f.Detail = fmt.Sprintf("%s suppressed (%d primary, %d secondary): no suppressed cell can be recovered from the totals of its lines",
			plural(total, "cell"), total-secondaries, secondaries)
	} else {
		var rows []string
		first := -1
		for i := range a.suppressed {
			if _, ok := alone[i]; ok {
				rows = append(rows, fmt.Sprint(i))
				if first < 0 {
					first = i
				}
			}
		}
		f.Verdict = Review
		f.Detail = fmt.Sprintf("cell at row %d is alone in %s; its margin reveals it", first, alone[first])
		if len(rows) > 1 {
			f.Detail = fmt.Sprintf("cells at rows %s are alone in their lines (row %d in %s); their margins reveal them",
				strings.Join(rows, ", "), first, alone[first])
		}
		f.Detail += "; widen the groups or have the table reviewed"
	}

	if a.small > 0 {
		if protected && a.unknown == 0 {
			minCell.Verdict = Pass
		}
		minCell.Detail = a.minCellDetail(true, protected)
	}
	if a.sensitive > 0 {
		if protected && a.unchecked == 0 {
			dom.Verdict = Pass
		}
		dom.Detail = a.dominanceDetail(true, protected)
	}
	return f
}

// suppressionLines returns the lines whose totals may be known: for a table
// with two or more keys, for each key, the rows sharing the values of all
// the other keys; otherwise the whole table, whose total another query may
// reveal.
func (a *assessment) suppressionLines() []line {
	if len(a.keys) < 2 {
		rows := make([]int, len(a.t.Rows))
		for i := range rows {
			rows[i] = i
		}
		return []line{{desc: "the table total", rows: rows}}
	}
	var out []line
	for d := range a.keys {
		for _, ln := range a.lines(d) {
			ln.desc = "line " + ln.desc
			out = append(out, ln)
		}
	}
	return out
}

// cheaper reports whether a cell counting x records is a cheaper secondary
// suppression than one counting y; unknown counts come last.
func cheaper(x, y int64) bool {
	if x < 0 {
		x = math.MaxInt64
	}
	if y < 0 {
		y = math.MaxInt64
	}
	return x < y
}
