package sql

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// DominanceTop is how many of a magnitude's largest contributions CellSQL
// reports per cell, for the dominance rules.
const DominanceTop = 5

// MembersColumn names the column MembersSQL appends after CellSQL's: the
// snapshot row numbers behind each result row, ascending.
const MembersColumn = reservedPrefix + "_members"

// Magnitude is one sum or mean in an aggregate's select list, whose per-cell contributions CellSQL reports for the dominance rules.
type Magnitude struct {
	Output   int    // index of the select-list item (Outputs) it is in
	Function string // sum, avg, mean, fsum, sumkahan, kahan_sum or favg
	Column   string // prefix of its CellSQL columns: __dsbx_m<i> (i = its index in Magnitudes), followed by _total, _top and _n
}

// magnitudeFunctions are the reducing sums and means whose contributions
// CellSQL reports. (DuckDB's sum_no_overflow is internal: a query cannot
// call it.)
var magnitudeFunctions = map[string]bool{
	"sum": true, "avg": true, "mean": true, "fsum": true, "sumkahan": true, "kahan_sum": true, "favg": true,
}

// magnitudeColumn is the prefix of the columns of the i-th magnitude.
func magnitudeColumn(i int) string { return reservedPrefix + "_m" + strconv.Itoa(i) }

// appendedColumn reports whether name is one of the columns CellSQL or
// MembersSQL append, which Run's screen lets the analysed SQL alias.
func appendedColumn(name string) bool {
	if name == CellCountColumn || name == MembersColumn {
		return true
	}
	rest, ok := strings.CutPrefix(name, reservedPrefix+"_m")
	if !ok {
		return false
	}
	for _, suffix := range []string{"_total", "_top", "_n"} {
		if digits, ok := strings.CutSuffix(rest, suffix); ok {
			i, err := strconv.Atoi(digits)
			return err == nil && i >= 0 && magnitudeColumn(i) == reservedPrefix+"_m"+digits
		}
	}
	return false
}

// CellStats is what the host computed about one result row of an aggregate alongside the job's query.
type CellStats struct {
	Count      int64            // = CellCounts[i]
	Magnitudes []MagnitudeStats // one per Analysis.Magnitudes, in order
	Members    []int64          // snapshot row numbers (0-based) behind the cell, ascending, when MembersSQL ran; nil otherwise
}

// MagnitudeStats are one magnitude's contributions to one cell: the
// absolute values of its argument, as DOUBLE, over the rows its FILTER
// (and DISTINCT) lets in. Values that do not convert to DOUBLE (the avg of
// a date, time or interval) contribute to N only.
type MagnitudeStats struct {
	Total float64   // sum of the absolute values; 0 for none
	Top   []float64 // the DominanceTop largest absolute values, descending (fewer if fewer rows); empty for none
	N     int64     // non-null values: count(arg)
}

// jsonFloat is a float64 whose JSON form survives NaN and ±Inf (as the
// strings "NaN", "+Inf", "-Inf"), which encoding/json refuses.
type jsonFloat float64

func (f jsonFloat) MarshalJSON() ([]byte, error) {
	v := float64(f)
	switch {
	case math.IsNaN(v):
		return []byte(`"NaN"`), nil
	case math.IsInf(v, 1):
		return []byte(`"+Inf"`), nil
	case math.IsInf(v, -1):
		return []byte(`"-Inf"`), nil
	}
	return json.Marshal(v)
}

func (f *jsonFloat) UnmarshalJSON(b []byte) error {
	if bytes.HasPrefix(b, []byte(`"`)) {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		switch s {
		case "NaN", "+Inf", "-Inf":
			v, _ := strconv.ParseFloat(s, 64)
			*f = jsonFloat(v)
			return nil
		}
		return fmt.Errorf("sql: %q is not a number", s)
	}
	var v float64
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*f = jsonFloat(v)
	return nil
}

// magnitudeJSON is MagnitudeStats as JSON.
type magnitudeJSON struct {
	Total jsonFloat
	Top   []jsonFloat
	N     int64
}

// MarshalJSON encodes m, keeping NaN and infinite values (a DOUBLE column
// may hold them), so a Report crosses from the worker process intact.
func (m MagnitudeStats) MarshalJSON() ([]byte, error) {
	out := magnitudeJSON{Total: jsonFloat(m.Total), N: m.N}
	if m.Top != nil {
		out.Top = make([]jsonFloat, len(m.Top))
		for i, v := range m.Top {
			out.Top[i] = jsonFloat(v)
		}
	}
	return json.Marshal(out)
}

// UnmarshalJSON decodes what MarshalJSON wrote.
func (m *MagnitudeStats) UnmarshalJSON(b []byte) error {
	var in magnitudeJSON
	if err := json.Unmarshal(b, &in); err != nil {
		return err
	}
	*m = MagnitudeStats{Total: float64(in.Total), N: in.N}
	if in.Top != nil {
		m.Top = make([]float64, len(in.Top))
		for i, v := range in.Top {
			m.Top[i] = float64(v)
		}
	}
	return nil
}

// Placeholders in the templates below, replaced by cloned parts of the
// job's own syntax tree.
const (
	argPlaceholder = reservedPrefix + "_arg"
	relPlaceholder = reservedPrefix + "_rel"
)

// cellTemplates are serialized expressions CellSQL and MembersSQL are built
// from: DuckDB's parser wrote them once, so no SQL text is ever assembled.
type cellTemplates struct {
	total   map[string]any // sum(abs(TRY_CAST(arg AS DOUBLE)))
	top     map[string]any // max(abs(TRY_CAST(arg AS DOUBLE)), DominanceTop)
	n       map[string]any // count(arg)
	rowids  map[string]any // list(rel.rowid ORDER BY rel.rowid), which DuckDB parses as list_sort(list(rel.rowid))
	and     map[string]any // (arg AND arg): a conjunction whose children are replaced
	notNull map[string]any // arg IS NOT NULL
	column  map[string]any // arg: a column reference whose names are replaced
}

var sharedTemplates = sync.OnceValues(newCellTemplates)

// newCellTemplates serializes the templates with the shared parser.
//
// TRY_CAST, not CAST: avg and mean also take dates, times, timestamps and
// intervals, which do not convert to DOUBLE, and CAST would fail such a
// job at bind time.
func newCellTemplates() (*cellTemplates, error) {
	p, err := sharedParser()
	if err != nil {
		return nil, err
	}
	abs := "abs(TRY_CAST(" + argPlaceholder + " AS DOUBLE))"
	rowid := relPlaceholder + ".rowid"
	query := "SELECT sum(" + abs + "), max(" + abs + ", " + strconv.Itoa(DominanceTop) + "), count(" + argPlaceholder + "), " +
		"list(" + rowid + " ORDER BY " + rowid + "), (" + argPlaceholder + " AND " + argPlaceholder + "), " +
		argPlaceholder + " IS NOT NULL, " + argPlaceholder
	fail := func(format string, args ...any) (*cellTemplates, error) {
		return nil, fmt.Errorf("sql: serialize cell statistics templates: "+format, args...)
	}
	doc, err := serialize(context.Background(), p.db, query)
	if err != nil {
		return fail("%w", err)
	}
	node, e := singleSelect(doc)
	if e != nil {
		return fail("%w", e)
	}
	list, _ := node["select_list"].([]any)
	if len(list) != 7 {
		return fail("%d select-list items, want 7", len(list))
	}
	item := func(i int, class, typ string) map[string]any {
		m, _ := list[i].(map[string]any)
		if m["class"] != class || m["type"] != typ {
			return nil
		}
		return m
	}
	t := &cellTemplates{
		total:   item(0, "FUNCTION", "FUNCTION"),
		top:     item(1, "FUNCTION", "FUNCTION"),
		n:       item(2, "FUNCTION", "FUNCTION"),
		rowids:  item(3, "FUNCTION", "FUNCTION"),
		and:     item(4, "CONJUNCTION", "CONJUNCTION_AND"),
		notNull: item(5, "OPERATOR", "OPERATOR_IS_NOT_NULL"),
		column:  item(6, "COLUMN_REF", "COLUMN_REF"),
	}
	for name, m := range map[string]map[string]any{"total": t.total, "top": t.top, "n": t.n, "rowids": t.rowids, "and": t.and, "not null": t.notNull, "column": t.column} {
		if m == nil {
			return fail("unexpected shape of the %s template", name)
		}
	}
	// DuckDB's parser writes list(x ORDER BY x) as list_sort(list(x)).
	for name, m := range map[string]map[string]any{"sum": t.total, "max": t.top, "count": t.n, "list": findFunction(t.rowids, "list")} {
		if m["function_name"] != name {
			return fail("template %v, want function %s", m["function_name"], name)
		}
		if _, ok := m["filter"]; !ok {
			return fail("the %s template has no filter", name)
		}
		if _, ok := m["distinct"]; !ok {
			return fail("the %s template has no distinct flag", name)
		}
	}
	return t, nil
}

// isPlaceholder reports whether v is a column reference to the argument placeholder.
func isPlaceholder(v any) bool {
	m, _ := v.(map[string]any)
	if m["class"] != "COLUMN_REF" {
		return false
	}
	names, _ := m["column_names"].([]any)
	return len(names) == 1 && names[0] == argPlaceholder
}

// substitute returns template (cloned) with every argument placeholder
// replaced by a clone of arg and every relation placeholder by rel.
func substitute(template map[string]any, arg any, rel string) map[string]any {
	var walk func(v any) any
	walk = func(v any) any {
		switch x := v.(type) {
		case []any:
			for i := range x {
				x[i] = walk(x[i])
			}
		case map[string]any:
			if isPlaceholder(x) {
				return clone(arg)
			}
			if x["class"] == "COLUMN_REF" {
				if names, _ := x["column_names"].([]any); len(names) == 2 && names[0] == relPlaceholder {
					names[0] = rel
				}
				return x
			}
			for k := range x {
				x[k] = walk(x[k])
			}
		}
		return v
	}
	return walk(clone(template)).(map[string]any)
}

// aggregateCalls calls visit for each aggregate call in expression e that
// is not inside a window function or a subquery, in a fixed order.
func aggregateCalls(e any, aggregates map[string]bool, visit func(call map[string]any, name string)) {
	switch v := e.(type) {
	case []any:
		for _, x := range v {
			aggregateCalls(x, aggregates, visit)
		}
	case map[string]any:
		switch v["class"] {
		case "WINDOW", "SUBQUERY":
			return
		case "FUNCTION":
			name, _ := v["function_name"].(string)
			name = strings.ToLower(name)
			if aggregates[name] {
				visit(v, name)
				return
			}
		}
		for _, k := range slices.Sorted(maps.Keys(v)) {
			aggregateCalls(v[k], aggregates, visit)
		}
	}
}

// aggregateNames lists the aggregate functions of one select-list item,
// sorted and unique.
func aggregateNames(item any, aggregates map[string]bool) []string {
	set := map[string]bool{}
	aggregateCalls(item, aggregates, func(_ map[string]any, name string) { set[name] = true })
	return append([]string{}, slices.Sorted(maps.Keys(set))...)
}

// callArgs returns the arguments an aggregate call is bound with: x.f(a)
// is f(x, a) unless x is the schema holding f. main.f() (optional
// receiver) binds as the built-in f when it has arguments.
func (t *cellTemplates) callArgs(call map[string]any) []any {
	args, _ := call["children"].([]any)
	receiver, optional := methodReceiver(call)
	if receiver == nil || (optional && len(args) > 0) {
		return args
	}
	ref := clone(t.column)
	names := make([]any, len(receiver))
	for i, n := range receiver {
		names[i] = n
	}
	ref["column_names"] = names
	return append([]any{ref}, args...)
}

// magnitudes returns the Magnitudes of a select list and the CellSQL items
// that report them.
func (t *cellTemplates) magnitudes(list []any, aggregates map[string]bool) ([]Magnitude, []any) {
	var mags []Magnitude
	var items []any
	for out, item := range list {
		aggregateCalls(item, aggregates, func(call map[string]any, name string) {
			args := t.callArgs(call)
			if !magnitudeFunctions[name] || len(args) == 0 {
				return
			}
			m := Magnitude{Output: out, Function: name, Column: magnitudeColumn(len(mags))}
			mags = append(mags, m)
			for _, part := range []struct {
				template map[string]any
				suffix   string
			}{{t.total, "_total"}, {t.top, "_top"}, {t.n, "_n"}} {
				e := substitute(part.template, args[0], "")
				e["alias"] = m.Column + part.suffix
				e["filter"] = clone(call["filter"])
				if d, _ := call["distinct"].(bool); d {
					e["distinct"] = true
				}
				items = append(items, e)
			}
		})
	}
	return mags, items
}

// members returns the MembersSQL item: the row ids of rel behind each
// cell, restricted to the rows every aggregate of the select list counts
// (those its FILTER lets in and whose first argument is not null).
func (t *cellTemplates) members(list []any, rel string, aggregates map[string]bool) map[string]any {
	var conds []any
	for _, item := range list {
		aggregateCalls(item, aggregates, func(call map[string]any, name string) {
			if f := call["filter"]; f != nil {
				conds = append(conds, clone(f))
			}
			if args := t.callArgs(call); len(args) > 0 && name != "count_star" {
				conds = append(conds, substitute(t.notNull, args[0], ""))
			}
		})
	}
	m := substitute(t.rowids, nil, rel)
	m["alias"] = MembersColumn
	agg := findFunction(m, "list")
	switch len(conds) {
	case 0:
		agg["filter"] = nil
	case 1:
		agg["filter"] = conds[0]
	default:
		and := clone(t.and)
		and["children"] = conds
		agg["filter"] = and
	}
	return m
}

// findFunction returns the first call of the function name in e (e itself,
// else depth-first through its children), or nil.
func findFunction(e map[string]any, name string) map[string]any {
	if e == nil {
		return nil
	}
	if e["class"] == "FUNCTION" && e["function_name"] == name {
		return e
	}
	children, _ := e["children"].([]any)
	for _, c := range children {
		m, _ := c.(map[string]any)
		if f := findFunction(m, name); f != nil {
			return f
		}
	}
	return nil
}

// membersRelation returns the name (alias, else table name) under which
// the top-level SELECT reads its only FROM item, when that is a dataset
// table whose rowid names its snapshot rows; "" otherwise.
func membersRelation(top map[string]any, w *walker, sc *schema) string {
	from, _ := top["from_table"].(map[string]any)
	if from == nil || from["type"] != "BASE_TABLE" || from["at_clause"] != nil {
		return ""
	}
	for _, k := range []string{"schema_name", "catalog_name"} {
		if s, _ := from[k].(string); s != "" {
			return ""
		}
	}
	if cols, _ := from["column_name_alias"].([]any); len(cols) > 0 {
		return "" // t AS x(rowid) would rename a column rowid
	}
	name, _ := from["table_name"].(string)
	lname := strings.ToLower(name)
	if name == "" || w.ctes[lname] {
		return ""
	}
	fields, ok := sc.fields[lname]
	if !ok {
		return ""
	}
	if _, ok := fields["rowid"]; ok {
		return "" // a field named rowid hides the pseudo-column
	}
	if a, _ := from["alias"].(string); a != "" {
		return a
	}
	return name
}
