package sql

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"slices"
	"strings"
)

// CellCountColumn names the column CellSQL appends: the number of input rows behind each result row.
const CellCountColumn = "__dsbx_cell_n"

// Analysis is what a query references, as DuckDB's parser sees it.
type Analysis struct {
	Tables    []string            // dataset tables referenced (CTE names excluded), sorted
	Fields    map[string][]string // per referenced table, the dataset fields the query references, sorted and unique
	Functions []string            // lower-case function names, sorted and unique (count(*) appears as count_star)
	Aggregate bool                // the top-level query is one SELECT that groups, or whose select list is all aggregates and constants
	Outputs   []Output            // the top-level select list in order; for a set operation, the first branch's, each with the fields of every branch's matching column
	SQL       string              // the statement as DuckDB re-serialized it; this, not the submitted text, is what runs
	CellSQL   string              // for Aggregate queries, SQL with the cell count (see cellCount) appended to the select list as __dsbx_cell_n, then each magnitude's columns (see Magnitude); "" otherwise
	// Magnitudes are the sums and means (outside windows and subqueries) of
	// an Aggregate query's select list, in order; CellSQL reports each one's
	// contributions per cell as <Column>_total, <Column>_top and <Column>_n.
	Magnitudes []Magnitude
	// MembersSQL is CellSQL with MembersColumn appended: per cell, the
	// rowids (snapshot row numbers) of the rows every aggregate of the
	// select list counts, ascending. Only when the top-level SELECT reads
	// exactly one dataset table (optionally aliased: no join, subquery, CTE
	// or column alias list); "" otherwise.
	MembersSQL string
	// Plain is true when the top-level SELECT reads one dataset table
	// directly (no join, subquery or CTE) and has no HAVING, QUALIFY,
	// DISTINCT, ORDER BY, LIMIT or SAMPLE: each result row is one group of
	// that table's rows and nothing else depends on the aggregates' values.
	Plain bool
}

// Output is one top-level output column and where it comes from.
type Output struct {
	Name       string   // the alias, else the column name of a bare column reference, else DuckDB's rendering of the expression
	Fields     []string // dataset fields its expression references, followed through CTE and subquery aliases
	Aggregated bool     // every field reference sits inside a reducing aggregate such as count, sum or avg
	// Bare is true when the item is exactly one aggregate call, not
	// DISTINCT, over one column reference or *, with nothing around it.
	Bare       bool
	Aggregates []string // lower-case names of the aggregate functions (outside windows and subqueries) in this output's expression, sorted and unique; count(*) is count_star
}

// Analyze parses query with DuckDB's parser (json_serialize_sql) in a private, locked, data-less DuckDB and reports what it references.
// tables maps each table the job may name (the dataset names) to ALL of that dataset's field names (not only the allowed ones).
// A refusal is returned as an *Error.
//
// Field references are over-approximated rather than missed: a star, COLUMNS(...),
// a positional reference, a table used as a row value or a table with a column
// alias list counts as all of that table's fields, and an unqualified column name
// counts for every referenced table that has such a field.
func Analyze(ctx context.Context, query string, tables map[string][]string) (*Analysis, error) {
	if e := checkText(query); e != nil {
		return nil, e
	}
	p, err := sharedParser()
	if err != nil {
		return nil, err
	}
	// Parse the submitted text, render it, and analyse the parse of the rendering:
	// the analysed tree is then exactly the tree of the SQL that runs.
	first, err := serialize(ctx, p.db, query)
	if err != nil {
		return nil, err
	}
	if _, e := singleSelect(first); e != nil {
		return nil, e
	}
	rendered, err := deserialize(ctx, p.db, first)
	if err != nil {
		return nil, err
	}
	doc, err := serialize(ctx, p.db, rendered)
	if err != nil {
		return nil, err
	}
	top, e := singleSelect(doc)
	if e != nil {
		return nil, e
	}
	w := newWalker(top, false)
	if e := w.run(); e != nil {
		return nil, e
	}
	sc := newSchema(tables)
	res, e := sc.resolve(w, true)
	if e != nil {
		return nil, e
	}
	a := &Analysis{
		Tables:    res.tableNames(),
		Fields:    res.fields(),
		Functions: slices.Sorted(maps.Keys(w.funcs)),
		SQL:       rendered,
	}
	if selects, _, _ := outputSelects(top); len(selects) > 0 {
		list, _ := selects[0]["select_list"].([]any)
		for i, item := range list {
			name, err := outputName(ctx, p.db, selects[0], item)
			if err != nil {
				return nil, err
			}
			fields, aggregated := res.output(i)
			a.Outputs = append(a.Outputs, Output{Name: name, Fields: fields, Aggregated: aggregated, Aggregates: aggregateNames(item, p.aggregates),
				Bare: bareAggregate(item, p.aggregates)})
		}
	}
	a.Aggregate = isAggregate(top, p.aggregates)
	a.Plain = membersRelation(top, w, sc) != "" && unmodified(top)
	if a.Aggregate {
		t, err := sharedTemplates()
		if err != nil {
			return nil, err
		}
		list, _ := top["select_list"].([]any)
		mags, stats := t.magnitudes(list, p.aggregates)
		extra := append([]any{p.cellCount(t, list)}, stats...)
		a.Magnitudes = mags
		top["select_list"] = append(slices.Clip(list), extra...)
		a.CellSQL, err = deserialize(ctx, p.db, doc)
		if err == nil {
			if rel := membersRelation(top, w, sc); rel != "" {
				top["select_list"] = append(slices.Clip(list), append(extra, t.members(list, rel, p.aggregates))...)
				a.MembersSQL, err = deserialize(ctx, p.db, doc)
			}
		}
		top["select_list"] = list
		if err != nil {
			return nil, err
		}
	}
	return a, nil
}

// bareAggregate reports whether a select-list item is exactly one
// aggregate call, not DISTINCT, over one column reference or *.
func bareAggregate(item any, aggregates map[string]bool) bool {
	m, _ := item.(map[string]any)
	if m["class"] != "FUNCTION" || m["distinct"] == true || m["is_operator"] == true {
		return false
	}
	name, _ := m["function_name"].(string)
	if !aggregates[strings.ToLower(name)] {
		return false
	}
	if receiver, _ := methodReceiver(m); receiver != nil {
		return false
	}
	args, _ := m["children"].([]any)
	switch len(args) {
	case 0:
		return strings.EqualFold(name, "count_star")
	case 1:
		arg, _ := args[0].(map[string]any)
		return arg["class"] == "COLUMN_REF" || arg["class"] == "STAR"
	}
	return false
}

// unmodified reports whether a SELECT node has no HAVING, QUALIFY, SAMPLE
// or result modifier (DISTINCT, ORDER BY, LIMIT).
func unmodified(top map[string]any) bool {
	if mods, _ := top["modifiers"].([]any); len(mods) > 0 {
		return false
	}
	for _, k := range []string{"having", "qualify", "sample"} {
		if top[k] != nil {
			return false
		}
	}
	return true
}

// outputName names one select-list item the way DuckDB names its result column.
func outputName(ctx context.Context, q queryer, top map[string]any, item any) (string, error) {
	m, _ := item.(map[string]any)
	if a, _ := m["alias"].(string); a != "" {
		return a, nil
	}
	if c, _ := m["class"].(string); c == "COLUMN_REF" {
		names, _ := m["column_names"].([]any)
		if len(names) > 0 {
			s, _ := names[len(names)-1].(string)
			return s, nil
		}
	}
	node := maps.Clone(top)
	node["select_list"] = []any{item}
	node["from_table"] = map[string]any{"type": "EMPTY", "alias": "", "sample": nil}
	node["cte_map"] = map[string]any{"map": []any{}}
	node["modifiers"] = []any{}
	node["group_expressions"] = []any{}
	node["group_sets"] = []any{}
	node["aggregate_handling"] = "STANDARD_HANDLING"
	for _, k := range []string{"where_clause", "having", "qualify", "sample"} {
		node[k] = nil
	}
	text, err := deserialize(ctx, q, map[string]any{"error": false, "statements": []any{map[string]any{"node": node, "named_param_map": []any{}}}})
	if err != nil {
		return "", err
	}
	return strings.TrimPrefix(text, "SELECT "), nil
}

// isAggregate reports whether the top-level SELECT yields one row per group: it
// groups, or its select list holds at least one aggregate and no column outside
// an aggregate, window, subquery or set-returning function.
func isAggregate(top map[string]any, aggregates map[string]bool) bool {
	if typ, _ := top["type"].(string); typ != "SELECT_NODE" {
		return false
	}
	groups, _ := top["group_expressions"].([]any)
	sets, _ := top["group_sets"].([]any)
	handling, _ := top["aggregate_handling"].(string)
	if len(groups) > 0 || len(sets) > 0 || handling == "FORCE_AGGREGATES" {
		return true
	}
	list, _ := top["select_list"].([]any)
	sawAggregate := false
	for _, item := range list {
		ok, agg := aggregateItem(item, aggregates)
		if !ok {
			return false
		}
		sawAggregate = sawAggregate || agg
	}
	return sawAggregate
}

// aggregateItem reports whether v has no column reference outside an aggregate
// (ok) and whether it holds an aggregate (agg).
func aggregateItem(v any, aggregates map[string]bool) (ok, agg bool) {
	switch x := v.(type) {
	case []any:
		ok = true
		for _, item := range x {
			o, a := aggregateItem(item, aggregates)
			ok, agg = ok && o, agg || a
		}
		return ok, agg
	case map[string]any:
		class, _ := x["class"].(string)
		switch class {
		case "COLUMN_REF", "STAR", "POSITIONAL_REFERENCE", "WINDOW", "SUBQUERY":
			return false, false
		case "FUNCTION":
			name, _ := x["function_name"].(string)
			name = strings.ToLower(name)
			if aggregates[name] {
				return true, true
			}
			if setReturning[name] {
				return false, false
			}
			if receiver, optional := methodReceiver(x); receiver != nil && !optional {
				return false, false // x.f() reads the column x
			}
		}
		ok = true
		for _, k := range slices.Sorted(maps.Keys(x)) {
			o, a := aggregateItem(x[k], aggregates)
			ok, agg = ok && o, agg || a
		}
		return ok, agg
	}
	return true, false
}

// cellCount is the expression CellSQL appends: the fewest input rows behind
// any aggregate of a result row. count(*) alone would be fooled by an
// aggregate over fewer rows than its group, such as
// sum(income) FILTER (WHERE id_number = '…') or
// sum(CASE WHEN name = '…' THEN income END), so each aggregate adds the
// count of its first argument's non-null values under its own filter, and
// the cell count is the least of them all.
func (p *parser) cellCount(t *cellTemplates, list []any) map[string]any {
	var counts []any
	for _, item := range list {
		p.aggregateCounts(t, item, &counts)
	}
	cell := clone(p.countStar)
	if len(counts) == 0 {
		return cell
	}
	star := clone(p.countStar)
	star["alias"] = ""
	cell["function_name"] = "least"
	cell["children"] = append([]any{star}, counts...)
	return cell
}

// aggregateCounts appends, for each aggregate call in expression e (not
// inside window functions or subqueries), count(first argument) with the
// call's filter.
func (p *parser) aggregateCounts(t *cellTemplates, e any, counts *[]any) {
	aggregateCalls(e, p.aggregates, func(v map[string]any, name string) {
		if name == "count_star" && v["filter"] == nil {
			return // the cell's own count(*)
		}
		n := clone(p.countStar)
		n["alias"] = ""
		n["filter"] = clone(v["filter"])
		// t.callArgs: x.sum() is sum(x).
		if args := t.callArgs(v); len(args) > 0 && name != "count_star" {
			n["function_name"] = "count"
			n["children"] = []any{clone(args[0])}
		}
		*counts = append(*counts, n)
	})
}

// clone deep-copies a serialized syntax tree value, keeping numbers exact
// (json.Number, as serialize decodes them).
func clone[T any](v T) T {
	b, _ := json.Marshal(v)
	var out T
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	dec.Decode(&out)
	return out
}
