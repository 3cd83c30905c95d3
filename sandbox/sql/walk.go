package sql

import (
	"fmt"
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
	output   int      // index of the top-level output the reference belongs to, or -1
	reducing bool     // sits inside a reducing aggregate
	scopes   []string // lower-case names of the aliased expressions, CTEs and subqueries it sits in
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
// still have their column references, functions and table references found.
type walker struct {
	top     map[string]any  // the statement's query node
	screen  bool            // Run's re-check: the sandbox's own reserved aliases are allowed
	ctes    map[string]bool // lower-case CTE names
	defined map[string]bool // lower-case names the query defines: aliases, CTE and subquery columns, lambda parameters
	tables  []tableRef
	refs    []ref
	funcs   map[string]bool
	aliasOf map[string][]string // lower-case column alias → the scopes whose columns it renames
	err     *Error              // the first refusal
}

// state is what a node inherits from its ancestors.
type state struct {
	output   int
	reducing bool
	from     []string
	scopes   []string
}

func newWalker(top map[string]any, screen bool) *walker {
	return &walker{top: top, screen: screen, ctes: map[string]bool{}, defined: map[string]bool{}, funcs: map[string]bool{}, aliasOf: map[string][]string{}}
}

// run walks the whole tree under the top node.
func (w *walker) run() *Error {
	w.walk(w.top, state{output: -1})
	return w.err
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
		w.define(a)
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
	case "COLUMN_DATA", "DELIM_GET", "BOUND_TABLE_REF":
		w.fail(refuse(CodeTableFunction, "table reference of type %s is not allowed", typ))
		return
	case "ORDER_MODIFIER":
		// ORDER BY ALL parses as COLUMNS(*) in the ORDER BY, which DuckDB
		// binds to the select list (measured: it orders by the output
		// columns, while COLUMNS('regex') there reads table columns); it
		// reads no column itself.
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
	st.from = w.fromNames(m["from_table"], nil)
	for _, k := range sortedKeys(m) {
		switch {
		case k == "cte_map":
		case k == "select_list" && reflect.ValueOf(m).Pointer() == reflect.ValueOf(w.top).Pointer():
			list, _ := m[k].([]any)
			for i, item := range list {
				inner := st
				inner.output = i
				w.walk(item, inner)
			}
		default:
			w.walk(m[k], st)
		}
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
	if a, _ := m["alias"].(string); a != "" {
		if !(w.screen && a == CellCountColumn) {
			w.checkReserved(a)
		}
		w.define(a)
		st.scopes = append(slices.Clip(st.scopes), strings.ToLower(a))
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
		w.addRef(ref{star: true, written: "*", relation: strings.ToLower(rel), from: st.from}, st)
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
		for _, k := range sortedKeys(x) {
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

func (w *walker) define(name string) { w.defined[strings.ToLower(name)] = true }

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

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
