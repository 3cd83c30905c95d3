package sql

import (
	"maps"
	"slices"
	"strings"
)

// schema is the set of tables a query may name, keyed by lower-case names.
type schema struct {
	canon  map[string]string            // table → its name as given
	fields map[string]map[string]string // table → field → its name as given
	order  map[string][]string          // table → fields as given, in order
}

func newSchema(tables map[string][]string) *schema {
	s := &schema{canon: map[string]string{}, fields: map[string]map[string]string{}, order: map[string][]string{}}
	for t, fs := range tables {
		lt := strings.ToLower(t)
		s.canon[lt] = t
		s.fields[lt] = map[string]string{}
		s.order[lt] = fs
		for _, f := range fs {
			s.fields[lt][strings.ToLower(f)] = f
		}
	}
	return s
}

// field is one dataset field: lower-case table and field names.
type field struct{ table, name string }

// resolution is a walker's references resolved against a schema.
type resolution struct {
	s         *schema
	w         *walker
	used      map[string]bool       // lower-case dataset tables referenced
	relations map[string][]relation // table name or alias → the dataset tables it may stand for
	ambiguous map[string]bool       // relation names that may also stand for a CTE or subquery
	direct    [][]field             // per ref, the dataset fields it names itself
	via       [][]string            // per ref, the defined names (aliases) it names
	byScope   map[string][]int      // scope name → refs inside it
}

// relation is one dataset table a relation name may stand for.
type relation struct {
	table   string // lower case
	renamed bool   // referenced with a column alias list, so its column names say nothing
}

// resolve checks tables (and, with checkFields, columns) and resolves every reference.
func (s *schema) resolve(w *walker, checkFields bool) (*resolution, *Error) {
	r := &resolution{s: s, w: w, used: map[string]bool{}, relations: map[string][]relation{}, ambiguous: map[string]bool{}, byScope: map[string][]int{}}
	relations := r.relations
	add := func(name string, rel relation) {
		if !slices.Contains(relations[name], rel) {
			relations[name] = append(relations[name], rel)
		}
	}
	// A CTE may share a dataset table's name, and an alias may be given to
	// a dataset table in one place and to a CTE or subquery in another:
	// such names are followed both ways.
	for name := range w.ctes {
		r.ambiguous[name] = true
	}
	for name := range w.relAliases {
		r.ambiguous[name] = true
	}
	var renamed []string
	for _, t := range w.tables {
		if w.ctes[t.name] && t.alias != "" {
			r.ambiguous[t.alias] = true
		}
		if _, ok := s.canon[t.name]; !ok {
			if w.ctes[t.name] {
				continue
			}
			return nil, refuse(CodeUnknownTable, "table %q does not exist; available tables: %s", t.written, strings.Join(s.tableList(), ", "))
		}
		r.used[t.name] = true
		add(t.name, relation{t.name, t.renamed})
		if t.alias != "" {
			add(t.alias, relation{t.name, t.renamed})
		}
		if t.renamed && !slices.Contains(renamed, t.name) {
			renamed = append(renamed, t.name)
		}
	}
	for i, ref := range w.refs {
		for _, sc := range ref.scopes {
			r.byScope[sc] = append(r.byScope[sc], i)
		}
	}
	for _, ref := range w.refs {
		var direct []field
		var via []string
		switch {
		case ref.star && ref.relation != "":
			direct, via = r.whole(ref.relation)
		case ref.star:
			for _, rel := range ref.from {
				d, v := r.whole(rel)
				direct, via = append(direct, d...), append(via, v...)
			}
		default:
			d, v, e := r.column(ref, checkFields)
			if e != nil {
				return nil, e
			}
			direct, via = d, v
		}
		r.direct = append(r.direct, direct)
		r.via = append(r.via, via)
	}
	// A column alias list renames a table's columns: count all of its fields.
	for _, t := range renamed {
		r.byScope[tableScope(t)] = append(r.byScope[tableScope(t)], len(w.refs))
		r.direct = append(r.direct, s.all(t))
		r.via = append(r.via, nil)
		w.refs = append(w.refs, ref{output: -1})
	}
	return r, nil
}

// whole resolves a relation name standing for all its columns (a star): every
// field of the dataset tables it names, and the CTE or subquery it names.
func (r *resolution) whole(name string) ([]field, []string) {
	var direct []field
	var via []string
	for _, rel := range r.relations[name] {
		direct = append(direct, r.s.all(rel.table)...)
	}
	if len(r.relations[name]) == 0 || r.ambiguous[name] {
		via = append(via, name)
	}
	return direct, via
}

// column resolves one column reference.
func (r *resolution) column(ref ref, checkFields bool) ([]field, []string, *Error) {
	s := r.s
	names := ref.names
	last := names[len(names)-1]
	var via []string
	// A qualifier that names a column is a struct the field is taken from
	// (s.income, where s may be CAST(ROW(id_number) AS STRUCT(income ...))).
	for _, n := range names[:len(names)-1] {
		if r.w.columns[n] && !slices.Contains(via, n) {
			via = append(via, n)
		}
	}
	if len(names) >= 2 {
		q := names[len(names)-2]
		if rels, ok := r.relations[q]; ok {
			var direct []field
			for _, rel := range rels {
				if rel.renamed {
					// t AS x(a, b): x.a may be any of t's fields.
					direct = append(direct, s.all(rel.table)...)
				} else if _, ok := s.fields[rel.table][last]; ok {
					direct = append(direct, field{rel.table, last})
				}
			}
			if r.ambiguous[q] {
				via = append(via, q)
				via = r.byName(last, via)
			}
			if len(direct) > 0 || r.ambiguous[q] {
				return direct, via, nil
			}
			if r.w.defined[last] || !checkFields || ref.optional {
				return nil, r.byName(last, append(via, last)), nil
			}
			t := rels[0].table
			return nil, nil, refuse(CodeUnknownField, "column %q: table %s has no field %q; its fields: %s",
				ref.written, s.canon[t], last, strings.Join(s.order[t], ", "))
		}
	}
	var direct []field
	for _, n := range names {
		for _, t := range r.tableList() {
			if _, ok := s.fields[t][n]; ok {
				direct = append(direct, field{t, n})
			}
		}
	}
	if len(names) == 1 && len(direct) == 0 {
		if _, ok := r.relations[last]; ok {
			// A table used as a value is the whole row as a struct.
			d, v := r.whole(last)
			return d, append(via, v...), nil
		}
	}
	if r.w.defined[last] {
		via = append(via, last)
	}
	if len(direct) == 0 && len(via) == 0 && checkFields && !ref.optional {
		var known []string
		for _, t := range r.tableList() {
			known = append(known, s.canon[t]+": "+strings.Join(s.order[t], ", "))
		}
		if len(known) == 0 {
			return nil, nil, refuse(CodeUnknownField, "column %q does not exist: the query references no dataset table", ref.written)
		}
		return nil, nil, refuse(CodeUnknownField, "column %q does not exist in the referenced tables (%s)", ref.written, strings.Join(known, "; "))
	}
	return direct, r.byName(last, via), nil
}

// byName adds to via what else a column named name may hold: the unaliased
// column references of that name in select lists, and whatever unnest or a
// pattern-renamed star may have named so.
func (r *resolution) byName(name string, via []string) []string {
	if r.w.bare[name] && !slices.Contains(via, name) {
		via = append(via, name)
	}
	if len(r.byScope[wildcardScope]) > 0 && !slices.Contains(via, wildcardScope) {
		via = append(via, wildcardScope)
	}
	return via
}

// all lists every field of table t.
func (s *schema) all(t string) []field {
	out := make([]field, 0, len(s.fields[t]))
	for f := range s.fields[t] {
		out = append(out, field{t, f})
	}
	return out
}

func (s *schema) tableList() []string {
	return slices.Sorted(maps.Values(s.canon))
}

// tableList lists the referenced tables, lower case and sorted.
func (r *resolution) tableList() []string { return slices.Sorted(maps.Keys(r.used)) }

// tableNames lists the referenced tables as given, sorted.
func (r *resolution) tableNames() []string {
	out := []string{}
	for t := range r.used {
		out = append(out, r.s.canon[t])
	}
	slices.Sort(out)
	return out
}

// fields groups every directly referenced field by table, as given, sorted and unique.
func (r *resolution) fields() map[string][]string {
	out := map[string][]string{}
	for t := range r.used {
		out[r.s.canon[t]] = []string{}
	}
	for _, d := range r.direct {
		for _, f := range d {
			out[r.s.canon[f.table]] = append(out[r.s.canon[f.table]], r.s.fields[f.table][f.name])
		}
	}
	for t, fs := range out {
		slices.Sort(fs)
		out[t] = slices.Compact(fs)
	}
	return out
}

// output reports the fields behind top-level output i, following aliases, and
// whether every reference to a field sits inside a reducing aggregate.
func (r *resolution) output(i int) ([]string, bool) {
	set := map[string]bool{}
	aggregated := true
	for k, ref := range r.w.refs {
		if ref.output != i && ref.output != allOutputs {
			continue
		}
		fs := map[string]bool{}
		r.expand(k, fs, map[string]bool{})
		if len(fs) > 0 && !ref.reducing {
			aggregated = false
		}
		maps.Copy(set, fs)
	}
	fields := slices.Sorted(maps.Keys(set))
	if fields == nil {
		fields = []string{}
	}
	return fields, aggregated
}

// expand adds to out the fields ref k reaches, through the scopes it names.
func (r *resolution) expand(k int, out, seen map[string]bool) {
	for _, f := range r.direct[k] {
		out[r.s.fields[f.table][f.name]] = true
	}
	for _, name := range r.via[k] {
		if seen[name] {
			continue
		}
		seen[name] = true
		for _, j := range r.byScope[name] {
			r.expand(j, out, seen)
		}
		for _, scope := range r.w.aliasOf[name] {
			if seen[scope] {
				continue
			}
			seen[scope] = true
			for _, j := range r.byScope[scope] {
				r.expand(j, out, seen)
			}
		}
	}
}
