package sql

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
)

// ref is one reference to table data found in a syntax tree: a column, or a star
// (*, t.*, COLUMNS(...), #n) that stands for several columns.
type ref struct {
	names    []string // lower-case column_names of a column reference; nil for a star
	written  string   // the reference as written, for messages
	star     bool     // a star, COLUMNS(...) or positional reference
	relation string   // lower-case relation of a qualified star
	from     []string // lower-case relations in the FROM clause of the SELECT that holds the star
	output   int      // index of the top-level output the reference belongs to, -1, or allOutputs
	reducing bool     // sits inside a reducing aggregate
	scopes   []string // lower-case names of the aliased expressions, CTEs and subqueries it sits in
	optional bool     // the receiver of a main.f() call, which DuckDB binds as a function first: not refused when it names nothing
}

// allOutputs marks a reference in a set operation branch whose columns cannot
// be matched to the outputs one by one: it counts for every output.
const allOutputs = -2

// wildcardScope holds the references whose values may reappear under names the
// syntax tree does not show: the arguments of unnest (a struct unnests to
// columns named by its fields) and stars renamed by a pattern, below the top
// level. Every reference resolved by column name also reaches this scope.
const wildcardScope = "*generated"

// knownClasses are the expression classes the walker understands; any other is refused.
var knownClasses = map[string]bool{
	"BETWEEN": true, "CASE": true, "CAST": true, "COLLATE": true, "COLUMN_REF": true, "COMPARISON": true,
	"CONJUNCTION": true, "CONSTANT": true, "FUNCTION": true, "LAMBDA": true, "OPERATOR": true,
	"PARAMETER": true, "POSITIONAL_REFERENCE": true, "STAR": true, "SUBQUERY": true, "WINDOW": true,
}

// fromTypes are the FROM items a query may use; TABLE_FUNCTION, PIVOT and the
// internal types are listed so that visit refuses them with a specific message.
var fromTypes = map[string]bool{
	"BASE_TABLE": true, "JOIN": true, "SUBQUERY": true, "EMPTY": true, "EXPRESSION_LIST": true,
	"TABLE_FUNCTION": true, "PIVOT": true, "SHOW_REF": true, "COLUMN_DATA": true, "DELIM_GET": true, "BOUND_TABLE_REF": true,
}

// tableRef is one BASE_TABLE reference.
type tableRef struct {
	name    string // lower case
	written string
	alias   string // lower case, "" if none
	renamed bool   // has a column alias list, t AS x(a, b)
}

// walker collects, in one pass over a DuckDB syntax tree, what the query
// references. It walks every object generically, so node types it does not know
// still have their column references, functions and table references found;
// expression classes and FROM items it does not know are refused, as they may
// read columns by names held in fields the walk does not look at.
type walker struct {
	top        map[string]any  // the statement's query node
	screen     bool            // Run's re-check: the sandbox's own reserved aliases are allowed
	ctes       map[string]bool // lower-case CTE names
	defined    map[string]bool // lower-case names the query defines: aliases, CTE and subquery columns, lambda parameters
	columns    map[string]bool // the defined names that name columns (not relations): expression aliases, column alias lists, lambda parameters, renamed star columns
	bare       map[string]bool // lower-case last names of unaliased column references in select lists, which name the column they yield
	relAliases map[string]bool // lower-case aliases of subqueries and other FROM items that are not tables
	tables     []tableRef
	refs       []ref
	funcs      map[string]bool
	aliasOf    map[string][]string // lower-case column alias → the scopes whose columns it renames
	outputs    map[uintptr]bool    // the SELECT nodes whose select lists are the top-level outputs
	spread     bool                // a set operation whose branches cannot be matched column by column
	orders     map[uintptr]bool    // the ORDER BY modifiers of query nodes, where ORDER BY ALL binds to the select list
	err        *Error              // the first refusal
}

// state is what a node inherits from its ancestors.
type state struct {
	output   int
	reducing bool
	from     []string
	scopes   []string
	outer    bool // the innermost SELECT is one whose select list is the top-level outputs
}

func newWalker(top map[string]any, screen bool) *walker {
	return &walker{top: top, screen: screen, ctes: map[string]bool{}, defined: map[string]bool{}, columns: map[string]bool{},
		bare: map[string]bool{}, relAliases: map[string]bool{}, funcs: map[string]bool{}, aliasOf: map[string][]string{},
		outputs: map[uintptr]bool{}, orders: map[uintptr]bool{}}
}

// run walks the whole tree under the top node.
func (w *walker) run() *Error {
	selects, positional, unknown := outputSelects(w.top)
	if unknown != "" {
		return refuse(CodeNotSelect, "a query node of type %s is not supported; submit a SELECT or a set operation of SELECTs", unknown)
	}
	for _, s := range selects {
		w.outputs[pointer(s)] = true
	}
	w.spread = !positional
	w.walk(w.top, state{output: -1})
	return w.err
}

func pointer(m map[string]any) uintptr { return reflect.ValueOf(m).Pointer() }

// outputSelects lists the SELECT nodes whose select lists make the top-level
// outputs: the top node, or the branches of a top-level set operation, left
// to right (the first names the outputs). positional reports whether the
// branches' select lists match column by column: no BY NAME, the same number
// of items, and no item that can expand to several columns (a star, COLUMNS or
// unnest). unknown names a node type found where a SELECT or set operation
// should be, whose outputs could not be followed.
func outputSelects(top map[string]any) (selects []map[string]any, positional bool, unknown string) {
	positional = true
	var collect func(m map[string]any)
	collect = func(m map[string]any) {
		switch typ, _ := m["type"].(string); typ {
		case "SELECT_NODE":
			selects = append(selects, m)
		case "SET_OPERATION_NODE":
			if op, _ := m["setop_type"].(string); strings.HasSuffix(op, "BY_NAME") {
				positional = false
			}
			for _, k := range []string{"left", "right"} {
				if child, ok := m[k].(map[string]any); ok {
					collect(child)
				}
			}
			if children, ok := m["children"].([]any); ok {
				positional = false // a layout this code does not know: count every branch for every output
				for _, c := range children {
					child, _ := c.(map[string]any)
					collect(child)
				}
			}
		default:
			if unknown == "" {
				unknown = fmt.Sprintf("%q", typ)
			}
		}
	}
	collect(top)
	if len(selects) < 2 {
		return selects, positional, unknown
	}
	for _, s := range selects {
		list, _ := s["select_list"].([]any)
		first, _ := selects[0]["select_list"].([]any)
		if len(list) != len(first) || expands(list) {
			positional = false
		}
	}
	return selects, positional, unknown
}

// expands reports whether v, outside subqueries, holds a star, COLUMNS(...) or
// unnest, any of which can yield several columns from one select-list item.
func expands(v any) bool {
	switch x := v.(type) {
	case []any:
		for _, item := range x {
			if expands(item) {
				return true
			}
		}
	case map[string]any:
		class, _ := x["class"].(string)
		switch class {
		case "STAR":
			return true
		case "SUBQUERY":
			return false
		case "FUNCTION":
			if name, _ := x["function_name"].(string); setReturning[strings.ToLower(name)] {
				return true
			}
		}
		for _, k := range slices.Sorted(maps.Keys(x)) {
			if expands(x[k]) {
				return true
			}
		}
	}
	return false
}

func (w *walker) fail(e *Error) {
	if w.err == nil {
		w.err = e
	}
}

func (w *walker) walk(v any, st state) {
	if w.err != nil {
		return
	}
	switch x := v.(type) {
	case []any:
		for _, item := range x {
			w.walk(item, st)
		}
	case map[string]any:
		w.visit(x, st)
	}
}

// children walks every member of m except the skipped keys, in key order.
func (w *walker) children(m map[string]any, st state, skip ...string) {
	keys := make([]string, 0, len(m))
	for k := range m {
		if !slices.Contains(skip, k) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		w.walk(m[k], st)
	}
}

func (w *walker) visit(m map[string]any, st state) {
	if class, ok := m["class"].(string); ok {
		w.expr(class, m, st)
		return
	}
	w.cteMap(m, st)
	typ, _ := m["type"].(string)
	switch typ {
	case "SELECT_NODE", "SET_OPERATION_NODE", "RECURSIVE_CTE_NODE", "CTE_NODE":
		mods, _ := m["modifiers"].([]any)
		for _, mod := range mods {
			if mm, ok := mod.(map[string]any); ok {
				w.orders[pointer(mm)] = true
			}
		}
	}
	switch typ {
	case "SUBQUERY":
		w.renames(m["column_name_alias"], scopeName(m))
	case "BASE_TABLE":
		name, _ := m["table_name"].(string)
		w.renames(m["column_name_alias"], tableScope(name))
	default:
		w.defineAll(m["column_name_alias"])
	}
	w.defineAll(m["aliases"])
	w.defineAll(m["unpivot_names"])
	if a, _ := m["alias"].(string); a != "" {
		// A relation alias, not a column name; a table's is resolved against the schema.
		w.defined[strings.ToLower(a)] = true
		if typ != "BASE_TABLE" {
			w.relAliases[strings.ToLower(a)] = true
		}
	}
	switch typ {
	case "SELECT_NODE":
		w.selectNode(m, st)
		return
	case "BASE_TABLE":
		w.baseTable(m)
	case "SUBQUERY":
		st.scopes = append(slices.Clip(st.scopes), scopeName(m))
	case "TABLE_FUNCTION":
		name := "?"
		if f, ok := m["function"].(map[string]any); ok {
			name, _ = f["function_name"].(string)
		}
		w.fail(refuse(CodeTableFunction, "table function %s() is not allowed in FROM; query the dataset tables", name))
		return
	case "SHOW_REF":
		w.fail(refuse(CodeTableFunction, "DESCRIBE, SUMMARIZE and SHOW are not allowed"))
		return
	case "PIVOT":
		// Pivoted and unpivoted columns are named by data or by string
		// constants, so their fields cannot be followed by name.
		w.fail(refuse(CodeTableFunction, "PIVOT and UNPIVOT are not allowed; aggregate with GROUP BY, using FILTER or CASE for the columns"))
		return
	case "COLUMN_DATA", "DELIM_GET", "BOUND_TABLE_REF":
		w.fail(refuse(CodeTableFunction, "table reference of type %s is not allowed", typ))
		return
	case "ORDER_MODIFIER":
		// ORDER BY ALL parses as COLUMNS(*) in the ORDER BY, which DuckDB
		// binds to the select list (measured: it orders by the output
		// columns, while COLUMNS('regex') there reads table columns); it
		// reads no column itself. Only a query's own ORDER BY does so: in an
		// aggregate, list(x ORDER BY ALL) orders by every table column
		// (measured), so it counts as a star.
		if !w.orders[pointer(m)] {
			break
		}
		orders, _ := m["orders"].([]any)
		for _, o := range orders {
			if om, _ := o.(map[string]any); !isBareStar(om["expression"]) {
				w.walk(o, st)
			}
		}
		return
	case "JOIN":
		if cols, ok := m["using_columns"].([]any); ok {
			for _, c := range cols {
				if s, ok := c.(string); ok {
					w.addRef(ref{names: []string{strings.ToLower(s)}, written: s}, st)
				}
			}
		}
		if rt, _ := m["ref_type"].(string); rt == "NATURAL" {
			// A natural join compares every column the two sides share.
			from := w.fromNames(m["right"], w.fromNames(m["left"], nil))
			w.addRef(ref{star: true, written: "NATURAL JOIN", from: from}, st)
		}
	}
	w.children(m, st, "cte_map", "using_columns")
}

// isBareStar reports whether v is an unqualified * or COLUMNS(*) with no
// pattern, EXCLUDE, REPLACE or RENAME.
func isBareStar(v any) bool {
	m, _ := v.(map[string]any)
	if class, _ := m["class"].(string); class != "STAR" {
		return false
	}
	rel, _ := m["relation_name"].(string)
	if rel != "" || m["expr"] != nil {
		return false
	}
	for _, k := range []string{"exclude_list", "replace_list", "qualified_exclude_list", "rename_list"} {
		if l, _ := m[k].([]any); len(l) > 0 {
			return false
		}
	}
	return true
}

// cteMap records the CTEs a query node defines and walks their bodies, each under its own scope.
func (w *walker) cteMap(m map[string]any, st state) {
	cm, _ := m["cte_map"].(map[string]any)
	entries, _ := cm["map"].([]any)
	for _, e := range entries {
		entry, _ := e.(map[string]any)
		key, _ := entry["key"].(string)
		w.checkReserved(key)
		w.ctes[strings.ToLower(key)] = true
		if value, ok := entry["value"].(map[string]any); ok {
			w.renames(value["aliases"], strings.ToLower(key))
		}
		inner := st
		inner.scopes = append(slices.Clip(st.scopes), strings.ToLower(key))
		w.walk(entry["value"], inner)
	}
}

func (w *walker) selectNode(m map[string]any, st state) {
	w.checkFrom(m["from_table"])
	st.from = w.fromNames(m["from_table"], nil)
	out := w.outputs[pointer(m)]
	st.outer = out
	for _, k := range slices.Sorted(maps.Keys(m)) {
		switch k {
		case "cte_map":
		case "select_list":
			list, _ := m[k].([]any)
			for i, item := range list {
				inner := st
				if out {
					inner.output = i
					if w.spread {
						inner.output = allOutputs
					}
				}
				// An unaliased column reference yields a column named by its
				// last name (s.income yields income), which outer queries
				// may name.
				if im, _ := item.(map[string]any); im["class"] == "COLUMN_REF" {
					if a, _ := im["alias"].(string); a == "" {
						if names, _ := im["column_names"].([]any); len(names) > 0 {
							if last, ok := names[len(names)-1].(string); ok {
								w.bare[strings.ToLower(last)] = true
								inner.scopes = append(slices.Clip(inner.scopes), strings.ToLower(last))
							}
						}
					}
				}
				w.walk(item, inner)
			}
		default:
			w.walk(m[k], st)
		}
	}
}

// checkFrom refuses FROM items of a type the walker does not know.
func (w *walker) checkFrom(v any) {
	m, ok := v.(map[string]any)
	if !ok {
		return
	}
	typ, _ := m["type"].(string)
	if !fromTypes[typ] {
		w.fail(refuse(CodeTableFunction, "table reference of type %s is not allowed", typ))
		return
	}
	if typ == "JOIN" {
		w.checkFrom(m["left"])
		w.checkFrom(m["right"])
	}
}

// fromNames lists the relations a FROM clause brings into scope: table names,
// subquery scope names, and the sources of pivots, through joins.
func (w *walker) fromNames(v any, acc []string) []string {
	m, _ := v.(map[string]any)
	typ, _ := m["type"].(string)
	switch typ {
	case "BASE_TABLE":
		name, _ := m["table_name"].(string)
		acc = append(acc, strings.ToLower(name))
	case "SUBQUERY":
		acc = append(acc, scopeName(m))
	case "JOIN":
		acc = w.fromNames(m["left"], acc)
		acc = w.fromNames(m["right"], acc)
	case "PIVOT":
		acc = w.fromNames(m["source"], acc)
	}
	return acc
}

// scopeName names a subquery in FROM: its alias, or a name unique to the node.
func scopeName(m map[string]any) string {
	if a, _ := m["alias"].(string); a != "" {
		return strings.ToLower(a)
	}
	return fmt.Sprintf("#%x", reflect.ValueOf(m).Pointer())
}

func (w *walker) baseTable(m map[string]any) {
	name, _ := m["table_name"].(string)
	schema, _ := m["schema_name"].(string)
	catalog, _ := m["catalog_name"].(string)
	if schema != "" || catalog != "" {
		w.fail(refuse(CodeUnknownTable, "qualified table name %s is not allowed; name dataset tables without schema or catalog",
			strings.Join(slices.DeleteFunc([]string{catalog, schema, name}, func(s string) bool { return s == "" }), ".")))
		return
	}
	alias, _ := m["alias"].(string)
	renamed := false
	if cols, ok := m["column_name_alias"].([]any); ok && len(cols) > 0 {
		renamed = true
	}
	w.checkReserved(name)
	if alias != "" && !strings.EqualFold(alias, name) {
		// The alias stands for the table or CTE in qualified stars.
		w.aliasOf[strings.ToLower(alias)] = append(w.aliasOf[strings.ToLower(alias)], strings.ToLower(name))
	}
	w.tables = append(w.tables, tableRef{name: strings.ToLower(name), written: name, alias: strings.ToLower(alias), renamed: renamed})
}

func (w *walker) expr(class string, m map[string]any, st state) {
	if !knownClasses[class] {
		w.fail(refuse(CodeParse, "expressions of kind %s are not supported", class))
		return
	}
	if a, _ := m["alias"].(string); a != "" {
		if !(w.screen && appendedColumn(a)) {
			w.checkReserved(a)
		}
		w.define(a)
		st.scopes = append(slices.Clip(st.scopes), strings.ToLower(a))
		if class == "STAR" && !st.outer {
			// COLUMNS('(.*)') AS 'x\1' names columns by a pattern.
			st.scopes = append(st.scopes, wildcardScope)
		}
	}
	switch class {
	case "COLUMN_REF":
		raw, _ := m["column_names"].([]any)
		r := ref{}
		var written []string
		for _, n := range raw {
			s, _ := n.(string)
			w.checkReserved(s)
			written = append(written, s)
			r.names = append(r.names, strings.ToLower(s))
		}
		r.written = strings.Join(written, ".")
		if len(r.names) > 0 {
			w.addRef(r, st)
		}
	case "STAR":
		rel, _ := m["relation_name"].(string)
		inner := st
		renames, _ := m["rename_list"].([]any)
		for _, e := range renames {
			entry, _ := e.(map[string]any)
			if to, ok := entry["value"].(string); ok {
				// * RENAME (income AS k): the column k holds whatever the star does.
				w.checkReserved(to)
				w.define(to)
				inner.scopes = append(slices.Clip(inner.scopes), strings.ToLower(to))
			}
		}
		w.addRef(ref{star: true, written: "*", relation: strings.ToLower(rel), from: st.from}, inner)
		replaces, _ := m["replace_list"].([]any)
		for _, e := range replaces {
			// * REPLACE (id_number AS income): the column income holds the expression.
			entry, _ := e.(map[string]any)
			key, _ := entry["key"].(string)
			if key == "" {
				w.walk(e, st)
				continue
			}
			w.checkReserved(key)
			w.define(key)
			repl := st
			repl.scopes = append(slices.Clip(st.scopes), strings.ToLower(key))
			w.walk(entry["value"], repl)
		}
		w.children(m, st, "replace_list")
		return
	case "POSITIONAL_REFERENCE":
		w.addRef(ref{star: true, written: "#n", from: st.from}, st)
	case "FUNCTION", "WINDOW":
		name, _ := m["function_name"].(string)
		name = strings.ToLower(name)
		w.funcs[name] = true
		if forbidden(name) {
			w.fail(refuse(CodeForbiddenFunction, "function %s is not allowed: it reveals the host, the configuration or the catalog, or reads files", name))
			return
		}
		if class == "FUNCTION" && isReducing(name) {
			st.reducing = true
		}
		if receiver, optional := methodReceiver(m); receiver != nil {
			// x.f() is f(x) unless x is a schema that holds f: count x as a column.
			r := ref{written: strings.Join(receiver, "."), optional: optional}
			for _, n := range receiver {
				w.checkReserved(n)
				r.names = append(r.names, strings.ToLower(n))
			}
			w.addRef(r, st)
		}
		if (name == "unnest" || name == "unlist") && !st.outer {
			// A struct unnests to columns named by its fields.
			st.scopes = append(slices.Clip(st.scopes), wildcardScope)
		}
	case "LAMBDA":
		w.defineColumnRefs(m["lhs"])
		w.walk(m["expr"], st)
		return
	}
	w.children(m, st)
}

// addRef records a reference with what it inherits from st.
func (w *walker) addRef(r ref, st state) {
	r.output = st.output
	r.reducing = st.reducing
	r.scopes = st.scopes
	if r.from == nil && r.star {
		r.from = []string{}
	}
	w.refs = append(w.refs, r)
}

// methodReceiver returns the qualifier of a function call written x.f() or
// x.y.f(), which DuckDB binds as f(x) or f(x.y) unless the qualifier is a
// schema holding f. A qualifier of main or system.main, the schema of the
// built-in functions, is optional: DuckDB binds it as the schema first.
func methodReceiver(m map[string]any) (receiver []string, optional bool) {
	schema, _ := m["schema"].(string)
	catalog, _ := m["catalog"].(string)
	if schema == "" && catalog == "" {
		return nil, false
	}
	for _, s := range []string{catalog, schema} {
		if s != "" {
			receiver = append(receiver, s)
		}
	}
	optional = strings.EqualFold(schema, "main") && (catalog == "" || strings.EqualFold(catalog, "system"))
	return receiver, optional
}

// defineColumnRefs defines every column name under v (lambda parameters).
func (w *walker) defineColumnRefs(v any) {
	switch x := v.(type) {
	case []any:
		for _, item := range x {
			w.defineColumnRefs(item)
		}
	case map[string]any:
		if c, _ := x["class"].(string); c == "COLUMN_REF" {
			names, _ := x["column_names"].([]any)
			for _, n := range names {
				if s, ok := n.(string); ok {
					w.define(s)
				}
			}
		}
		for _, k := range slices.Sorted(maps.Keys(x)) {
			w.defineColumnRefs(x[k])
		}
	}
}

// renames defines the column aliases in v as names for the columns of scope.
func (w *walker) renames(v any, scope string) {
	list, _ := v.([]any)
	for _, item := range list {
		if s, ok := item.(string); ok {
			w.checkReserved(s)
			w.define(s)
			w.aliasOf[strings.ToLower(s)] = append(w.aliasOf[strings.ToLower(s)], scope)
		}
	}
}

// tableScope names the pseudo scope that holds all fields of a table whose columns are renamed.
func tableScope(name string) string { return "table:" + strings.ToLower(name) }

func (w *walker) define(name string) {
	w.defined[strings.ToLower(name)] = true
	w.columns[strings.ToLower(name)] = true
}

func (w *walker) defineAll(v any) {
	list, _ := v.([]any)
	for _, item := range list {
		if s, ok := item.(string); ok {
			w.checkReserved(s)
			w.define(s)
		}
	}
}

// checkReserved refuses names in the sandbox's reserved namespace.
func (w *walker) checkReserved(name string) {
	if strings.HasPrefix(strings.ToLower(name), reservedPrefix) {
		w.fail(refuse(CodeReservedName, "the name %q is reserved for the sandbox", name))
	}
}
