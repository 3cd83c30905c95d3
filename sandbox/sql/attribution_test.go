package sql

import (
	stdsql "database/sql"
	"errors"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// The attribution suite: a job that reads a field by any route must have that
// field in Analysis.Fields and, when the value reaches an output column, in
// that output's Fields; otherwise the query must be refused with an *Error.
// Expectations are exact sets: over-approximation (a field counted that the
// query does not really read) is allowed by design and written out as such,
// under-approximation is the bug this suite exists to catch.

// attrTables is what Analyze is told the job may name. income is the field
// the adversarial queries try to read without it being attributed.
var attrTables = map[string][]string{
	"people": {"id_number", "district", "income", "birth_date"},
	"firms":  {"firm_id", "district", "employees"},
}

// attrSetup creates the same tables in a plain DuckDB so that each accepted
// query is shown to be one DuckDB really runs.
var attrSetup = []string{
	`CREATE TABLE people AS SELECT printf('ID%02d', i) AS id_number, 'd' || (i % 3) AS district,
		(1000 + (i * 37) % 90)::INTEGER AS income, DATE '2000-01-01' + i::INTEGER AS birth_date FROM range(6) r(i)`,
	`CREATE TABLE firms AS SELECT i::INTEGER AS firm_id, 'd' || (i % 3) AS district, (i * 10)::INTEGER AS employees FROM range(4) r(i)`,
}

// attrCol is one expected output column; an empty name is not checked (DuckDB's
// rendering of an unaliased expression).
type attrCol struct {
	name   string
	fields []string
}

func col(name string, fields ...string) attrCol { return attrCol{name, fields} }

// inPeople and inBoth build an expected Fields map.
func inPeople(fields ...string) map[string][]string { return map[string][]string{"people": fields} }

func inBoth(p, f []string) map[string][]string { return map[string][]string{"people": p, "firms": f} }

var peopleAll = []string{"birth_date", "district", "id_number", "income"}

var firmsAll = []string{"district", "employees", "firm_id"}

// attrCase is one query. Exactly one of fields (accepted) and code (refused) is set.
type attrCase struct {
	name    string
	query   string
	fields  map[string][]string // exact Analysis.Fields
	outputs []attrCol           // exact Outputs, in order
	code    string              // refusal code
	says    []string            // the refusal message mentions each
	noRun   bool                // accepted, but DuckDB does not run it as is (parameters; a form it parses but does not bind)
}

func TestAttribution(t *testing.T) {
	groups := map[string][]attrCase{
		"views and ctes":        viewAndCTECases,
		"subqueries":            subqueryCases,
		"stars and joins":       starCases,
		"structs lists maps":    structCases,
		"lateral unnest pivot":  lateralCases,
		"clauses and aliases":   clauseCases,
		"functions and macros":  functionCases,
		"set operations":        setCases,
		"values sample from":    miscCases,
		"identifiers and joins": identifierCases,
	}
	db := openPlain(t)
	for _, s := range attrSetup {
		if _, err := db.Exec(s); err != nil {
			t.Fatal(err)
		}
	}
	for _, group := range slices.Sorted(maps.Keys(groups)) {
		t.Run(group, func(t *testing.T) {
			for _, c := range groups[group] {
				t.Run(c.name, func(t *testing.T) { checkAttribution(t, db, c) })
			}
		})
	}
}

func checkAttribution(t *testing.T, db *stdsql.DB, c attrCase) {
	t.Helper()
	if (c.code == "") == (c.fields == nil) {
		t.Fatalf("case %q must set exactly one of fields and code", c.name)
	}
	a, err := Analyze(ctx(t), c.query, attrTables)
	if c.code != "" {
		attrAssertRefused(t, c.query, err, c.code, c.says...)
		return
	}
	if err != nil {
		t.Fatalf("%s\nrefused: %v", c.query, err)
	}
	attrAssertFields(t, a, c.fields)
	attrAssertOutputs(t, a, c.outputs)
	if !c.noRun {
		// The attack is real: DuckDB runs the very SQL that was analysed.
		rows, err := db.QueryContext(ctx(t), a.SQL)
		if err != nil {
			t.Fatalf("%s\nDuckDB does not run the analysed SQL %q: %v", c.query, a.SQL, err)
		}
		for rows.Next() {
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("%s\nDuckDB fails running %q: %v", c.query, a.SQL, err)
		}
		rows.Close()
	}
}

// attrAssertRefused checks that err is an *Error with code whose message mentions each of says.
func attrAssertRefused(t *testing.T, query string, err error, code string, says ...string) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("%s\naccepted (err %v), want refusal %s", query, err, code)
	}
	if e.Code != code {
		t.Errorf("%s\nrefused with %s (%s), want %s", query, e.Code, e.Message, code)
	}
	for _, s := range says {
		if !strings.Contains(e.Message, s) {
			t.Errorf("%s\nrefusal %q does not mention %q", query, e.Message, s)
		}
	}
}

// attrAssertFields checks that Analysis.Fields is exactly want: every table and
// every field, no more, no fewer.
func attrAssertFields(t *testing.T, a *Analysis, want map[string][]string) {
	t.Helper()
	if !reflect.DeepEqual(a.Fields, want) {
		t.Errorf("%s\nFields = %v\nwant     %v", a.SQL, a.Fields, want)
	}
	for table, fields := range want {
		for _, f := range fields {
			if !attrHasField(a, table, f) {
				t.Errorf("%s\nfield %s.%s is read but not in Fields %v", a.SQL, table, f, a.Fields)
			}
		}
	}
}

// attrHasField reports whether field f of table tab is in a.Fields.
func attrHasField(a *Analysis, tab, f string) bool { return slices.Contains(a.Fields[tab], f) }

// attrAssertOutputs checks the output columns one by one: the name (when given)
// and exactly the fields each attrDerives from.
func attrAssertOutputs(t *testing.T, a *Analysis, want []attrCol) {
	t.Helper()
	if len(a.Outputs) != len(want) {
		t.Fatalf("%s\n%d outputs %+v, want %d %+v", a.SQL, len(a.Outputs), a.Outputs, len(want), want)
	}
	for i, w := range want {
		got := a.Outputs[i]
		if w.name != "" && got.Name != w.name {
			t.Errorf("%s\noutput %d is named %q, want %q", a.SQL, i, got.Name, w.name)
		}
		fields := w.fields
		if fields == nil {
			fields = []string{}
		}
		if !reflect.DeepEqual(got.Fields, fields) {
			t.Errorf("%s\noutput %d (%s) attrDerives from %v, want %v", a.SQL, i, got.Name, got.Fields, fields)
		}
		for _, f := range fields {
			if !attrDerives(a, i, f) {
				t.Errorf("%s\noutput %d (%s) carries %s but does not list it", a.SQL, i, got.Name, f)
			}
		}
	}
}

// attrDerives reports whether output i lists field f among the fields it attrDerives from.
func attrDerives(a *Analysis, i int, f string) bool { return slices.Contains(a.Outputs[i].Fields, f) }

var viewAndCTECases = []attrCase{
	{name: "create view is not a select", query: `CREATE VIEW v AS SELECT income FROM people`, code: CodeNotSelect},
	{name: "create temp view", query: `CREATE TEMP VIEW v AS SELECT income FROM people`, code: CodeNotSelect},
	{name: "view then select", query: `CREATE VIEW v AS SELECT income FROM people; SELECT * FROM v`, code: CodeNotSelect},
	{name: "cte star", query: `WITH x AS (SELECT income FROM people) SELECT * FROM x`,
		fields: inPeople("income"), outputs: []attrCol{col("*", "income")}},
	{name: "cte qualified star", query: `WITH x AS (SELECT income FROM people) SELECT y.* FROM x AS y`,
		fields: inPeople("income"), outputs: []attrCol{col("y.*", "income")}},
	// district is also counted: an unqualified name counts for every referenced table that has it.
	{name: "cte alias shadowing a field", query: `WITH x AS (SELECT income AS district FROM people) SELECT district FROM x`,
		fields: inPeople("district", "income"), outputs: []attrCol{col("district", "district", "income")}},
	{name: "cte column list", query: `WITH x(d) AS (SELECT income FROM people) SELECT d FROM x`,
		fields: inPeople("income"), outputs: []attrCol{col("d", "income")}},
	{name: "chained ctes", query: `WITH x AS (SELECT income FROM people), y AS (SELECT income AS z FROM x) SELECT z FROM y`,
		fields: inPeople("income"), outputs: []attrCol{col("z", "income")}},
	{name: "nested cte", query: `WITH x AS (WITH y AS (SELECT income FROM people) SELECT income AS q FROM y) SELECT q FROM x`,
		fields: inPeople("income"), outputs: []attrCol{col("q", "income")}},
	{name: "recursive cte", query: `WITH RECURSIVE r(n) AS (SELECT income FROM people UNION ALL SELECT n + 1 FROM r WHERE n < 1010) SELECT n FROM r`,
		fields: inPeople("income"), outputs: []attrCol{col("n", "income")}},
	{name: "recursive cte alias in the anchor", query: `WITH RECURSIVE r AS (SELECT income AS n FROM people UNION ALL SELECT n + 1 FROM r WHERE n < 1010) SELECT n FROM r`,
		fields: inPeople("income"), outputs: []attrCol{col("n", "income")}},
	{name: "recursive cte reading in the step", query: `WITH RECURSIVE r(n, k) AS (SELECT 0, 'x' UNION ALL SELECT n + 1, p.district FROM r, people p WHERE n < 2) SELECT k FROM r`,
		fields: inPeople("district"), outputs: []attrCol{col("k", "district")}},
	{name: "materialized cte", query: `WITH c AS MATERIALIZED (SELECT income FROM people) SELECT * FROM c`,
		fields: inPeople("income"), outputs: []attrCol{col("*", "income")}},
	// The CTE shadows the table: people.income is the CTE's column, which is id_number.
	{name: "cte named like the table", query: `WITH people AS (SELECT id_number AS income FROM people) SELECT people.income FROM people`,
		fields: inPeople("id_number", "income"), outputs: []attrCol{col("income", "id_number", "income")}},
	// A star over a CTE that shadows a table counts the table (over-approximation) and the CTE.
	{name: "cte named like a table over another table", query: `WITH people AS (SELECT employees AS x FROM firms) SELECT * FROM people`,
		fields: inBoth(peopleAll, []string{"employees"}), outputs: []attrCol{col("*", "birth_date", "district", "employees", "id_number", "income")}},
	// firms here is the CTE c, whose district is income.
	{name: "cte aliased like a table", query: `WITH c AS (SELECT income AS district FROM people) SELECT firms.district FROM c AS firms, firms AS x`,
		fields: inBoth([]string{"income"}, []string{"district"}), outputs: []attrCol{col("district", "district", "income")}},
}

var subqueryCases = []attrCase{
	{name: "from subquery alias", query: `SELECT s FROM (SELECT income AS s FROM people) t`,
		fields: inPeople("income"), outputs: []attrCol{col("s", "income")}},
	{name: "from subquery qualified", query: `SELECT t.s FROM (SELECT income AS s, id_number AS i FROM people) t`,
		fields: inPeople("id_number", "income"), outputs: []attrCol{col("s", "income")}},
	{name: "from subquery as a row value", query: `SELECT t FROM (SELECT income FROM people) t`,
		fields: inPeople("income"), outputs: []attrCol{col("t", "income")}},
	{name: "where in", query: `SELECT district FROM people WHERE income IN (SELECT income FROM people WHERE income > 1000)`,
		fields: inPeople("district", "income"), outputs: []attrCol{col("district", "district")}},
	{name: "where exists", query: `SELECT district FROM people p WHERE EXISTS (SELECT 1 FROM people q WHERE q.id_number = p.id_number AND q.income > 1030)`,
		fields: inPeople("district", "id_number", "income"), outputs: []attrCol{col("district", "district")}},
	{name: "where scalar", query: `SELECT district FROM people WHERE 1000 < (SELECT max(income) FROM people)`,
		fields: inPeople("district", "income"), outputs: []attrCol{col("district", "district")}},
	{name: "select list scalar", query: `SELECT district, (SELECT max(income) FROM people) AS top FROM people`,
		fields: inPeople("district", "income"), outputs: []attrCol{col("district", "district"), col("top", "income")}},
	{name: "having", query: `SELECT district FROM people GROUP BY district HAVING max(income) > (SELECT avg(income) FROM people)`,
		fields: inPeople("district", "income"), outputs: []attrCol{col("district", "district")}},
	{name: "correlated in select list", query: `SELECT (SELECT max(q.income) FROM people q WHERE q.district = p.district) AS m FROM people p`,
		fields: inPeople("district", "income"), outputs: []attrCol{col("m", "district", "income")}},
	{name: "correlated reading the outer row", query: `SELECT district, (SELECT p.income) AS x FROM people p`,
		fields: inPeople("district", "income"), outputs: []attrCol{col("district", "district"), col("x", "income")}},
	{name: "correlated unqualified", query: `SELECT (SELECT birth_date) FROM people`,
		fields: inPeople("birth_date"), outputs: []attrCol{col("", "birth_date")}},
	{name: "order by subquery", query: `SELECT district FROM people ORDER BY (SELECT max(income) FROM people)`,
		fields: inPeople("district", "income"), outputs: []attrCol{col("district", "district")}},
	{name: "limit subquery", query: `SELECT district FROM people LIMIT (SELECT count(*) FROM people WHERE income > 1030)`,
		fields: inPeople("district", "income"), outputs: []attrCol{col("district", "district")}},
	{name: "array subquery", query: `SELECT ARRAY(SELECT income FROM people) AS l`,
		fields: inPeople("income"), outputs: []attrCol{col("l", "income")}},
	// The inner p is a struct column, which DuckDB binds before the outer table p.
	{name: "inner struct shadowing an outer alias", query: `SELECT (SELECT p.income FROM (SELECT CAST(ROW(q.id_number) AS STRUCT(income VARCHAR)) AS p) x) AS v FROM people q`,
		fields: inPeople("id_number", "income"), outputs: []attrCol{col("v", "id_number", "income")}},
}

var starCases = []attrCase{
	{name: "star", query: `SELECT * FROM people`, fields: inPeople(peopleAll...), outputs: []attrCol{col("*", peopleAll...)}},
	{name: "qualified star", query: `SELECT p.* FROM people p`, fields: inPeople(peopleAll...), outputs: []attrCol{col("p.*", peopleAll...)}},
	{name: "columns star", query: `SELECT COLUMNS(*) FROM people`, fields: inPeople(peopleAll...), outputs: []attrCol{col("", peopleAll...)}},
	// A pattern counts every field of the table (over-approximation).
	{name: "columns regex", query: `SELECT COLUMNS('inc.*') FROM people`, fields: inPeople(peopleAll...), outputs: []attrCol{col("", peopleAll...)}},
	{name: "columns lambda", query: `SELECT COLUMNS(c -> c LIKE 'inc%') FROM people`, fields: inPeople(peopleAll...), outputs: []attrCol{col("", peopleAll...)}},
	{name: "unpacked columns", query: `SELECT coalesce(*COLUMNS('inc.*')) FROM people`, fields: inPeople(peopleAll...), outputs: []attrCol{col("", peopleAll...)}},
	{name: "columns in an aggregate", query: `SELECT max(COLUMNS(*)) FROM people`, fields: inPeople(peopleAll...), outputs: []attrCol{col("", peopleAll...)}},
	{name: "columns in where", query: `SELECT district FROM people WHERE COLUMNS('inc.*') > 1000`, fields: inPeople(peopleAll...), outputs: []attrCol{col("district", "district")}},
	{name: "star exclude", query: `SELECT * EXCLUDE (income) FROM people`, fields: inPeople(peopleAll...), outputs: []attrCol{col("", peopleAll...)}},
	{name: "star replace", query: `SELECT * REPLACE (district AS income) FROM people`, fields: inPeople(peopleAll...), outputs: []attrCol{col("", peopleAll...)}},
	{name: "star rename", query: `SELECT * RENAME (income AS k) FROM people`, fields: inPeople(peopleAll...), outputs: []attrCol{col("", peopleAll...)}},
	{name: "renamed column read outside", query: `SELECT k FROM (SELECT * RENAME (income AS k) FROM people) s`,
		fields: inPeople(peopleAll...), outputs: []attrCol{col("k", peopleAll...)}},
	{name: "replaced column read outside", query: `SELECT income FROM (SELECT * REPLACE (id_number AS income) FROM people) s`,
		fields: inPeople(peopleAll...), outputs: []attrCol{col("income", "id_number", "income")}},
	{name: "star over a subquery", query: `SELECT * FROM (SELECT income FROM people) s`, fields: inPeople("income"), outputs: []attrCol{col("*", "income")}},
	{name: "pattern-renamed columns", query: `SELECT income FROM (SELECT COLUMNS('id_number') AS 'income' FROM people) s`,
		fields: inPeople(peopleAll...), outputs: []attrCol{col("income", peopleAll...)}},
	{name: "join using star", query: `SELECT * FROM people JOIN firms USING (district)`,
		fields: inBoth(peopleAll, firmsAll), outputs: []attrCol{col("*", "birth_date", "district", "employees", "firm_id", "id_number", "income")}},
	{name: "join using filters on a field", query: `SELECT p.district FROM people p JOIN (SELECT 1000 AS income) s USING (income)`,
		fields: inPeople("district", "income"), outputs: []attrCol{col("district", "district")}},
	{name: "natural join star", query: `SELECT * FROM people NATURAL JOIN firms`,
		fields: inBoth(peopleAll, firmsAll), outputs: []attrCol{col("*", "birth_date", "district", "employees", "firm_id", "id_number", "income")}},
	// The natural join compares income without naming it.
	{name: "natural join filters on a field", query: `SELECT p.district FROM people p NATURAL JOIN (SELECT 1000 AS income) s`,
		fields: inPeople(peopleAll...), outputs: []attrCol{col("district", "district")}},
	{name: "natural join with a cte", query: `WITH c AS (SELECT 1000 AS income) SELECT p.district FROM people p NATURAL JOIN c`,
		fields: inPeople(peopleAll...), outputs: []attrCol{col("district", "district")}},
	{name: "natural self join", query: `SELECT count(*) AS n FROM people a NATURAL JOIN people b`,
		fields: inPeople(peopleAll...), outputs: []attrCol{col("n")}},
	{name: "positional reference", query: `SELECT #3 FROM people`, fields: inPeople(peopleAll...), outputs: []attrCol{col("", peopleAll...)}},
	{name: "positional reference over a subquery", query: `SELECT #1 FROM (SELECT income FROM people)`, fields: inPeople("income"), outputs: []attrCol{col("", "income")}},
	{name: "table as a row value", query: `SELECT p FROM people p`, fields: inPeople(peopleAll...), outputs: []attrCol{col("p", peopleAll...)}},
	{name: "table row hashed", query: `SELECT hash(people) AS h FROM people`, fields: inPeople(peopleAll...), outputs: []attrCol{col("h", peopleAll...)}},
	{name: "table column alias list", query: `SELECT s.income FROM people AS s(income)`, fields: inPeople(peopleAll...), outputs: []attrCol{col("income", peopleAll...)}},
	{name: "table column alias list unqualified", query: `SELECT b FROM people AS s(a, b)`, fields: inPeople(peopleAll...), outputs: []attrCol{col("b", peopleAll...)}},
}

var structCases = []attrCase{
	{name: "struct literal", query: `SELECT {'a': income} AS s FROM people`, fields: inPeople("income"), outputs: []attrCol{col("s", "income")}},
	{name: "struct_pack", query: `SELECT struct_pack(a := income) AS s FROM people`, fields: inPeople("income"), outputs: []attrCol{col("s", "income")}},
	{name: "row", query: `SELECT CAST(row(income, district) AS VARCHAR) AS r FROM people`, fields: inPeople("district", "income"), outputs: []attrCol{col("r", "district", "income")}},
	{name: "struct_insert", query: `SELECT struct_insert({'a': 1}, b := income) AS s FROM people`, fields: inPeople("income"), outputs: []attrCol{col("s", "income")}},
	{name: "dot access", query: `SELECT s.a FROM (SELECT {'a': income} AS s FROM people) t`, fields: inPeople("income"), outputs: []attrCol{col("a", "income")}},
	{name: "qualified dot access", query: `SELECT t.s.a FROM (SELECT {'a': income} AS s FROM people) t`, fields: inPeople("income"), outputs: []attrCol{col("a", "income")}},
	{name: "parenthesised dot access", query: `SELECT (s).a AS v FROM (SELECT {'a': income} AS s FROM people) t`, fields: inPeople("income"), outputs: []attrCol{col("v", "income")}},
	{name: "struct_extract", query: `SELECT struct_extract(s, 'a') AS v FROM (SELECT {'a': income} AS s FROM people) t`, fields: inPeople("income"), outputs: []attrCol{col("v", "income")}},
	{name: "bracket access", query: `SELECT s['a'] AS v FROM (SELECT {'a': income} AS s FROM people) t`, fields: inPeople("income"), outputs: []attrCol{col("v", "income")}},
	{name: "struct star", query: `SELECT s.* FROM (SELECT {'a': income} AS s FROM people) t`, fields: inPeople("income"), outputs: []attrCol{col("s.*", "income")}},
	{name: "struct key named like a field", query: `SELECT s.district FROM (SELECT {'district': income} AS s FROM people) t`,
		fields: inPeople("district", "income"), outputs: []attrCol{col("district", "district", "income")}},
	// The key comes from a type, not an alias: the struct column s is followed instead.
	{name: "cast struct key named like a field", query: `SELECT s.district FROM (SELECT CAST(ROW(id_number) AS STRUCT(district VARCHAR)) AS s FROM people) t`,
		fields: inPeople("district", "id_number"), outputs: []attrCol{col("district", "district", "id_number")}},
	{name: "struct field carried through a bare column", query: `SELECT income FROM (SELECT s.income FROM (SELECT CAST(ROW(id_number) AS STRUCT(income VARCHAR)) AS s FROM people) t) u`,
		fields: inPeople("id_number", "income"), outputs: []attrCol{col("income", "id_number", "income")}},
	{name: "whole row in a struct", query: `SELECT s.p.income FROM (SELECT people AS p FROM people) s`,
		fields: inPeople(peopleAll...), outputs: []attrCol{col("income", peopleAll...)}},
	{name: "unnest of a cast struct", query: `SELECT income FROM (SELECT unnest(CAST(ROW(id_number) AS STRUCT(income VARCHAR))) FROM people) u`,
		fields: inPeople("id_number", "income"), outputs: []attrCol{col("income", "id_number", "income")}},
	{name: "unnest of a json struct", query: `SELECT income FROM (SELECT unnest(json_transform(json_object('income', id_number), '{"income": "VARCHAR"}')) FROM people) u`,
		fields: inPeople("id_number", "income"), outputs: []attrCol{col("income", "id_number", "income")}},
	{name: "unnest of a struct literal", query: `SELECT a FROM (SELECT unnest({'a': income}) FROM people) u`,
		fields: inPeople("income"), outputs: []attrCol{col("a", "income")}},
	{name: "recursive unnest", query: `SELECT a FROM (SELECT unnest([{'a': income}], recursive := true) FROM people) u`,
		fields: inPeople("income"), outputs: []attrCol{col("a", "income")}},
	{name: "list literal", query: `SELECT [income] AS l FROM people`, fields: inPeople("income"), outputs: []attrCol{col("l", "income")}},
	{name: "list_value", query: `SELECT list_value(income, 1) AS l FROM people`, fields: inPeople("income"), outputs: []attrCol{col("l", "income")}},
	{name: "list element", query: `SELECT l[1] AS v FROM (SELECT [income] AS l FROM people)`, fields: inPeople("income"), outputs: []attrCol{col("v", "income")}},
	{name: "unnest in the select list", query: `SELECT district, unnest([income]) AS v FROM people`,
		fields: inPeople("district", "income"), outputs: []attrCol{col("district", "district"), col("v", "income")}},
	{name: "unnest of a list from a subquery", query: `SELECT v FROM (SELECT unnest([income]) AS v FROM people)`,
		fields: inPeople("income"), outputs: []attrCol{col("v", "income")}},
	{name: "map literal", query: `SELECT MAP {district: income} AS m FROM people`, fields: inPeople("district", "income"), outputs: []attrCol{col("m", "district", "income")}},
	{name: "map function", query: `SELECT map([district], [income]) AS m FROM people`, fields: inPeople("district", "income"), outputs: []attrCol{col("m", "district", "income")}},
	{name: "map extract", query: `SELECT m['k'] AS v FROM (SELECT MAP {'k': income} AS m FROM people)`, fields: inPeople("income"), outputs: []attrCol{col("v", "income")}},
	{name: "json object", query: `SELECT json_object('k', income) AS j FROM people`, fields: inPeople("income"), outputs: []attrCol{col("j", "income")}},
}

var lateralCases = []attrCase{
	{name: "lateral subquery", query: `SELECT x FROM people, LATERAL (SELECT income AS x) l`, fields: inPeople("income"), outputs: []attrCol{col("x", "income")}},
	{name: "join lateral", query: `SELECT l.x FROM people p JOIN LATERAL (SELECT p.income AS x) l ON true`, fields: inPeople("income"), outputs: []attrCol{col("x", "income")}},
	{name: "lateral correlated self join", query: `SELECT x FROM people p1, LATERAL (SELECT p2.income AS x FROM people p2 WHERE p2.id_number = p1.id_number)`,
		fields: inPeople("id_number", "income"), outputs: []attrCol{col("x", "income")}},
	{name: "table-valued unnest", query: `SELECT u FROM people, unnest([income]) AS t(u)`, code: CodeTableFunction, says: []string{"unnest"}},
	{name: "lateral table-valued unnest", query: `SELECT * FROM people, LATERAL unnest([income])`, code: CodeTableFunction, says: []string{"unnest"}},
	{name: "pivot statement", query: `PIVOT people ON district USING sum(income)`, code: CodeNotSelect},
	{name: "pivot in from", query: `SELECT * FROM people PIVOT (sum(income) FOR district IN ('d0', 'd1'))`, code: CodeTableFunction, says: []string{"PIVOT"}},
	{name: "pivot column by name", query: `SELECT d0 FROM people PIVOT (sum(income) FOR district IN ('d0', 'd1'))`, code: CodeTableFunction, says: []string{"PIVOT"}},
	{name: "unpivot statement", query: `UNPIVOT people ON income, district INTO NAME k VALUE v`, code: CodeTableFunction, says: []string{"UNPIVOT"}},
	// UNPIVOT names its columns as string constants: the value column v is income.
	{name: "unpivot in from", query: `SELECT v FROM people UNPIVOT (v FOR k IN (income))`, code: CodeTableFunction, says: []string{"UNPIVOT"}},
	{name: "pivot in a subquery", query: `SELECT * FROM (SELECT * FROM people PIVOT (sum(income) FOR district IN ('d0')))`, code: CodeTableFunction, says: []string{"PIVOT"}},
}

var clauseCases = []attrCase{
	{name: "window partition", query: `SELECT district, row_number() OVER (PARTITION BY income ORDER BY birth_date) AS r FROM people`,
		fields: inPeople("birth_date", "district", "income"), outputs: []attrCol{col("district", "district"), col("r", "birth_date", "income")}},
	{name: "window aggregate", query: `SELECT sum(income) OVER (PARTITION BY district) AS s FROM people`,
		fields: inPeople("district", "income"), outputs: []attrCol{col("s", "district", "income")}},
	{name: "named window", query: `SELECT rank() OVER w AS r FROM people WINDOW w AS (PARTITION BY income)`,
		fields: inPeople("income"), outputs: []attrCol{col("r", "income")}},
	{name: "qualify", query: `SELECT district FROM people QUALIFY row_number() OVER (PARTITION BY income) = 1`,
		fields: inPeople("district", "income"), outputs: []attrCol{col("district", "district")}},
	{name: "order by a field not in the output", query: `SELECT district FROM people ORDER BY income`,
		fields: inPeople("district", "income"), outputs: []attrCol{col("district", "district")}},
	{name: "distinct on", query: `SELECT DISTINCT ON (income) district FROM people`,
		fields: inPeople("district", "income"), outputs: []attrCol{col("district", "district")}},
	{name: "group by all", query: `SELECT district, count(*) AS n FROM people GROUP BY ALL`,
		fields: inPeople("district"), outputs: []attrCol{col("district", "district"), col("n")}},
	{name: "order by all", query: `SELECT district, count(*) AS n FROM people GROUP BY ALL ORDER BY ALL`,
		fields: inPeople("district"), outputs: []attrCol{col("district", "district"), col("n")}},
	{name: "order by star", query: `SELECT district FROM people ORDER BY *`,
		fields: inPeople("district"), outputs: []attrCol{col("district", "district")}},
	// Inside an aggregate, ORDER BY ALL orders by every column of the table.
	{name: "order by all in an aggregate", query: `SELECT list(district ORDER BY ALL) AS l FROM people`,
		fields: inPeople(peopleAll...), outputs: []attrCol{col("l", peopleAll...)}},
	{name: "order by all descending in an aggregate", query: `SELECT first(district ORDER BY ALL DESC) AS f FROM people`,
		fields: inPeople(peopleAll...), outputs: []attrCol{col("f", peopleAll...)}},
	{name: "positional reference in an aggregate order", query: `SELECT list(district ORDER BY #3) AS l FROM people`,
		fields: inPeople(peopleAll...), outputs: []attrCol{col("l", peopleAll...)}},
	{name: "order by all in a window", query: `SELECT list(district) OVER (ORDER BY ALL) FROM people`, code: CodeParse, says: []string{"ORDER BY ALL"}},
	{name: "group by position", query: `SELECT district, count(*) AS n FROM people GROUP BY 1`,
		fields: inPeople("district"), outputs: []attrCol{col("district", "district"), col("n")}},
	{name: "order by position", query: `SELECT district, income FROM people ORDER BY 2`,
		fields: inPeople("district", "income"), outputs: []attrCol{col("district", "district"), col("income", "income")}},
	{name: "grouping sets", query: `SELECT district, count(*) AS n FROM people GROUP BY GROUPING SETS ((district), (income))`,
		fields: inPeople("district", "income"), outputs: []attrCol{col("district", "district"), col("n")}},
	{name: "alias shadowing a field", query: `SELECT district AS income FROM people`,
		fields: inPeople("district"), outputs: []attrCol{col("income", "district")}},
	{name: "alias shadowing a field read in where", query: `SELECT district AS income FROM people WHERE income > 1000`,
		fields: inPeople("district", "income"), outputs: []attrCol{col("income", "district")}},
	// Each alias is also a field name, so each output counts both (over-approximation).
	{name: "swapped aliases", query: `SELECT income AS district, district AS income FROM people`,
		fields: inPeople("district", "income"), outputs: []attrCol{col("district", "district", "income"), col("income", "district", "income")}},
	{name: "lateral column alias", query: `SELECT id_number AS x, x AS income FROM people`,
		fields: inPeople("id_number"), outputs: []attrCol{col("x", "id_number"), col("income", "id_number")}},
	{name: "group by an alias", query: `SELECT income AS d, count(*) AS n FROM people GROUP BY d`,
		fields: inPeople("income"), outputs: []attrCol{col("d", "income"), col("n")}},
	{name: "case", query: `SELECT CASE WHEN income > 1030 THEN district ELSE 'x' END AS c FROM people`,
		fields: inPeople("district", "income"), outputs: []attrCol{col("c", "district", "income")}},
	{name: "coalesce", query: `SELECT coalesce(NULL, income) AS c FROM people`, fields: inPeople("income"), outputs: []attrCol{col("c", "income")}},
	{name: "if", query: `SELECT if(income > 1030, 'a', 'b') AS c FROM people`, fields: inPeople("income"), outputs: []attrCol{col("c", "income")}},
	{name: "cast", query: `SELECT CAST(income AS VARCHAR) AS a, income::VARCHAR AS b, TRY_CAST(income AS DOUBLE) AS c FROM people`,
		fields: inPeople("income"), outputs: []attrCol{col("a", "income"), col("b", "income"), col("c", "income")}},
	{name: "string_agg", query: `SELECT string_agg(district, ',') AS s FROM people`, fields: inPeople("district"), outputs: []attrCol{col("s", "district")}},
	{name: "list aggregate", query: `SELECT array_agg(income ORDER BY birth_date) AS l FROM people`,
		fields: inPeople("birth_date", "income"), outputs: []attrCol{col("l", "birth_date", "income")}},
	{name: "filter", query: `SELECT count(*) FILTER (WHERE income > 1030) AS n FROM people`, fields: inPeople("income"), outputs: []attrCol{col("n", "income")}},
	{name: "filter on another field", query: `SELECT avg(income) FILTER (WHERE id_number = 'ID01') AS a FROM people`,
		fields: inPeople("id_number", "income"), outputs: []attrCol{col("a", "id_number", "income")}},
	{name: "having without group by", query: `SELECT count(*) AS n FROM people HAVING sum(income) > 5`, fields: inPeople("income"), outputs: []attrCol{col("n")}},
}

var functionCases = []attrCase{
	{name: "lambda over a field", query: `SELECT list_transform([income], x -> x + 1) AS l FROM people`, fields: inPeople("income"), outputs: []attrCol{col("l", "income")}},
	{name: "lambda capturing a field", query: `SELECT list_transform([1], x -> x + income) AS l FROM people`, fields: inPeople("income"), outputs: []attrCol{col("l", "income")}},
	// A parameter named like a field counts the field (over-approximation).
	{name: "lambda parameter named like a field", query: `SELECT list_transform([1], income -> income + 1) AS l FROM people`, fields: inPeople("income"), outputs: []attrCol{col("l", "income")}},
	{name: "python lambda", query: `SELECT list_filter([district], lambda d: d > 'd0') AS l FROM people`, fields: inPeople("district"), outputs: []attrCol{col("l", "district")}},
	{name: "list comprehension", query: `SELECT [x + 1 FOR x IN [income]] AS l FROM people`, fields: inPeople("income"), outputs: []attrCol{col("l", "income")}},
	{name: "list_reduce", query: `SELECT list_reduce([income], (x, y) -> x + y) AS l FROM people`, fields: inPeople("income"), outputs: []attrCol{col("l", "income")}},
	{name: "create macro", query: `CREATE MACRO m(a) AS a + 1`, code: CodeNotSelect},
	{name: "create table macro", query: `CREATE MACRO t() AS TABLE SELECT income FROM people`, code: CodeNotSelect},
	{name: "query function", query: `SELECT query('SELECT income FROM people')`, code: CodeForbiddenFunction, says: []string{"query"}},
	{name: "query table function", query: `SELECT * FROM query('SELECT income FROM people')`, code: CodeTableFunction, says: []string{"query"}},
	{name: "query_table", query: `SELECT * FROM query_table('people')`, code: CodeTableFunction, says: []string{"query_table"}},
	{name: "query_table in a subquery", query: `SELECT count(*) FROM people WHERE income IN (SELECT income FROM query_table('people'))`, code: CodeTableFunction, says: []string{"query_table"}},
	{name: "prepared positional parameter", query: `SELECT district FROM people WHERE income > ?`,
		fields: inPeople("district", "income"), outputs: []attrCol{col("district", "district")}, noRun: true},
	{name: "prepared numbered parameter", query: `SELECT district FROM people WHERE income > $1`,
		fields: inPeople("district", "income"), outputs: []attrCol{col("district", "district")}, noRun: true},
	{name: "prepared named parameter", query: `SELECT $x AS p, district FROM people`,
		fields: inPeople("district"), outputs: []attrCol{col("p"), col("district", "district")}, noRun: true},
	{name: "prepare", query: `PREPARE p AS SELECT income FROM people`, code: CodeNotSelect},
	{name: "execute", query: `EXECUTE p`, code: CodeNotSelect},
	// x.f() is f(x): the column before the dot is read.
	{name: "method call", query: `SELECT district.upper() AS u FROM people`, fields: inPeople("district"), outputs: []attrCol{col("u", "district")}},
	{name: "qualified method call", query: `SELECT p.district.upper() AS u FROM people p`, fields: inPeople("district"), outputs: []attrCol{col("u", "district")}},
	{name: "method call aggregate", query: `SELECT income.sum() AS s FROM people`, fields: inPeople("income"), outputs: []attrCol{col("s", "income")}},
	// DuckDB 1.5 parses but does not bind this one; it is attributed all the same.
	{name: "method call window", query: `SELECT income.sum() OVER () AS s FROM people`, fields: inPeople("income"), outputs: []attrCol{col("s", "income")}, noRun: true},
	{name: "method call on a subquery column", query: `SELECT t.d.upper() AS u FROM (SELECT district AS d FROM people) t`, fields: inPeople("district"), outputs: []attrCol{col("u", "district")}},
	{name: "method call on a column named like a schema", query: `SELECT pg_catalog.upper() AS u FROM (SELECT district AS pg_catalog FROM people)`,
		fields: inPeople("district"), outputs: []attrCol{col("u", "district")}},
	{name: "function in the main schema", query: `SELECT main.upper(district) AS u FROM people`, fields: inPeople("district"), outputs: []attrCol{col("u", "district")}},
	{name: "function in system.main", query: `SELECT system.main.upper(district) AS u FROM people`, fields: inPeople("district"), outputs: []attrCol{col("u", "district")}},
	{name: "function in another schema", query: `SELECT pg_catalog.upper(district) FROM people`, code: CodeUnknownField, says: []string{"pg_catalog"}},
	{name: "default", query: `SELECT DEFAULT`, code: CodeParse, says: []string{"DEFAULT"}},
}

var setCases = []attrCase{
	{name: "union second branch", query: `SELECT district FROM people UNION SELECT income::VARCHAR FROM people`,
		fields: inPeople("district", "income"), outputs: []attrCol{col("district", "district", "income")}},
	{name: "union all second branch", query: `SELECT 'x' AS c FROM people UNION ALL SELECT income::VARCHAR FROM people`,
		fields: inPeople("income"), outputs: []attrCol{col("c", "income")}},
	{name: "intersect second branch", query: `SELECT district FROM people INTERSECT SELECT income::VARCHAR FROM people`,
		fields: inPeople("district", "income"), outputs: []attrCol{col("district", "district", "income")}},
	{name: "except second branch", query: `SELECT district FROM people EXCEPT SELECT income::VARCHAR FROM people`,
		fields: inPeople("district", "income"), outputs: []attrCol{col("district", "district", "income")}},
	{name: "union column by column", query: `SELECT district AS a, income AS b FROM people UNION ALL SELECT id_number, year(birth_date) FROM people`,
		fields: inPeople(peopleAll...), outputs: []attrCol{col("a", "district", "id_number"), col("b", "birth_date", "income")}},
	{name: "union of three", query: `SELECT district FROM people UNION SELECT id_number FROM people UNION ALL SELECT income::VARCHAR FROM people`,
		fields: inPeople("district", "id_number", "income"), outputs: []attrCol{col("district", "district", "id_number", "income")}},
	// BY NAME and stars do not match column by column: every branch counts for every output.
	{name: "union by name", query: `SELECT district, 'x' AS k FROM people UNION ALL BY NAME SELECT income::VARCHAR AS district, id_number AS k FROM people`,
		fields: inPeople("district", "id_number", "income"), outputs: []attrCol{col("district", "district", "id_number", "income"), col("k", "district", "id_number", "income")}},
	{name: "union with a star", query: `SELECT district, 1 AS one FROM firms UNION ALL SELECT * FROM (SELECT district, income FROM people)`,
		fields: inBoth([]string{"district", "income"}, []string{"district"}), outputs: []attrCol{col("district", "district", "income"), col("one", "district", "income")}},
	{name: "union with an unnest", query: `SELECT district, 1 AS one FROM people UNION ALL SELECT unnest({'d': id_number, 'i': income}) FROM people`,
		fields: inPeople("district", "id_number", "income"), outputs: []attrCol{col("district", "district", "id_number", "income"), col("one", "district", "id_number", "income")}},
	{name: "union with a cte branch", query: `WITH c AS (SELECT income FROM people) SELECT district FROM people UNION SELECT income::VARCHAR FROM c`,
		fields: inPeople("district", "income"), outputs: []attrCol{col("district", "district", "income")}},
	{name: "union in a subquery", query: `SELECT * FROM (SELECT district FROM people UNION SELECT income::VARCHAR FROM people) u`,
		fields: inPeople("district", "income"), outputs: []attrCol{col("*", "district", "income")}},
	{name: "union in where", query: `SELECT district FROM people WHERE income IN (SELECT 1 UNION SELECT income FROM people)`,
		fields: inPeople("district", "income"), outputs: []attrCol{col("district", "district")}},
	{name: "union ordered by all", query: `SELECT district FROM people UNION SELECT district FROM firms ORDER BY ALL`,
		fields: inBoth([]string{"district"}, []string{"district"}), outputs: []attrCol{col("district", "district")}},
}

var miscCases = []attrCase{
	{name: "values", query: `VALUES (1), (2)`, fields: map[string][]string{}, outputs: []attrCol{col("*")}},
	{name: "values with column names", query: `SELECT a FROM (VALUES (1), (2)) v(a)`, fields: map[string][]string{}, outputs: []attrCol{col("a")}},
	{name: "values holding a subquery", query: `SELECT a FROM (VALUES ((SELECT max(income) FROM people))) v(a)`,
		fields: inPeople("income"), outputs: []attrCol{col("a", "income")}},
	{name: "values holding an outer field", query: `SELECT v.a FROM people p, (VALUES (p.income)) v(a)`,
		fields: inPeople("income"), outputs: []attrCol{col("a", "income")}},
	{name: "in values", query: `SELECT district FROM people WHERE income IN (VALUES (1000), (1037))`,
		fields: inPeople("district", "income"), outputs: []attrCol{col("district", "district")}},
	{name: "using sample", query: `SELECT district FROM people USING SAMPLE 50%`, fields: inPeople("district"), outputs: []attrCol{col("district", "district")}},
	{name: "tablesample", query: `SELECT income FROM people TABLESAMPLE 2 ROWS`, fields: inPeople("income"), outputs: []attrCol{col("income", "income")}},
	{name: "sample with seed", query: `SELECT income FROM people USING SAMPLE reservoir(2 ROWS) REPEATABLE (1)`, fields: inPeople("income"), outputs: []attrCol{col("income", "income")}},
	{name: "from first", query: `FROM people SELECT income`, fields: inPeople("income"), outputs: []attrCol{col("income", "income")}},
	{name: "from only", query: `FROM people`, fields: inPeople(peopleAll...), outputs: []attrCol{col("*", peopleAll...)}},
	{name: "table statement", query: `TABLE people`, fields: inPeople(peopleAll...), outputs: []attrCol{col("*", peopleAll...)}},
	{name: "from first with where", query: `FROM people SELECT district WHERE income > 1030`, fields: inPeople("district", "income"), outputs: []attrCol{col("district", "district")}},
	{name: "describe", query: `DESCRIBE SELECT income FROM people`, code: CodeTableFunction},
	{name: "summarize subquery", query: `SELECT * FROM (SUMMARIZE people)`, code: CodeTableFunction},
	{name: "explain", query: `EXPLAIN SELECT income FROM people`, code: CodeNotSelect},
	{name: "insert", query: `INSERT INTO people SELECT * FROM people`, code: CodeNotSelect},
}

var identifierCases = []attrCase{
	{name: "upper case", query: `SELECT INCOME FROM PEOPLE`, fields: inPeople("income"), outputs: []attrCol{col("INCOME", "income")}},
	{name: "quoted upper case", query: `SELECT "INCOME" FROM "PEOPLE"`, fields: inPeople("income"), outputs: []attrCol{col("INCOME", "income")}},
	{name: "quoted qualified", query: `SELECT "people"."income" FROM "people"`, fields: inPeople("income"), outputs: []attrCol{col("income", "income")}},
	{name: "quoted mixed case", query: `SELECT "People"."InCome" FROM people`, fields: inPeople("income"), outputs: []attrCol{col("InCome", "income")}},
	{name: "quoted alias named like a field", query: `SELECT "people"."INCOME" AS "District" FROM "People"`, fields: inPeople("income"), outputs: []attrCol{col("District", "income")}},
	{name: "catalog and schema qualified column", query: `SELECT memory.main.people.income FROM people`, fields: inPeople("income"), outputs: []attrCol{col("income", "income")}},
	{name: "unknown field", query: `SELECT "SECRET" FROM people`, code: CodeUnknownField, says: []string{"SECRET", "income"}},
	{name: "unknown field of an alias", query: `SELECT p.secret FROM people p`, code: CodeUnknownField, says: []string{"secret"}},
	{name: "schema qualified table", query: `SELECT income FROM main.people`, code: CodeUnknownTable, says: []string{"main.people"}},
	{name: "table alias", query: `SELECT p.income FROM people AS p`, fields: inPeople("income"), outputs: []attrCol{col("income", "income")}},
	{name: "table alias named like a field", query: `SELECT income.district FROM people AS income`, fields: inPeople("district"), outputs: []attrCol{col("district", "district")}},
	{name: "self join", query: `SELECT a.income, b.district FROM people a JOIN people b ON a.id_number = b.id_number`,
		fields: inPeople("district", "id_number", "income"), outputs: []attrCol{col("income", "income"), col("district", "district")}},
	{name: "self join filtering on the other side", query: `SELECT a.district FROM people a, people b WHERE a.id_number = b.id_number AND b.income > 1030`,
		fields: inPeople("district", "id_number", "income"), outputs: []attrCol{col("district", "district")}},
	{name: "self join alias named like a field", query: `SELECT a.income AS district FROM people a, people b`,
		fields: inPeople("income"), outputs: []attrCol{col("district", "income")}},
	// firms here is the people table: both tables' district count.
	{name: "aliases swapping table names", query: `SELECT firms.district FROM people AS firms, firms AS people`,
		fields: inBoth([]string{"district"}, []string{"district"}), outputs: []attrCol{col("district", "district")}},
	{name: "join two tables", query: `SELECT p.income, f.employees FROM people p JOIN firms f ON p.district = f.district`,
		fields: inBoth([]string{"district", "income"}, []string{"district", "employees"}), outputs: []attrCol{col("income", "income"), col("employees", "employees")}},
	{name: "asof join", query: `SELECT p.district FROM people p ASOF JOIN firms f ON p.district = f.district AND p.income >= f.employees`,
		fields: inBoth([]string{"district", "income"}, []string{"district", "employees"}), outputs: []attrCol{col("district", "district")}},
	{name: "positional join", query: `SELECT p.district, f.employees FROM people p POSITIONAL JOIN firms f`,
		fields: inBoth([]string{"district"}, []string{"employees"}), outputs: []attrCol{col("district", "district"), col("employees", "employees")}},
}

// TestAttributionAggregated checks the Aggregated flags and the Aggregate
// verdict where a field hides inside a construct: a method call outside an
// aggregate is a raw column.
func TestAttributionAggregated(t *testing.T) {
	cases := []struct {
		query      string
		aggregate  bool
		aggregated []bool
	}{
		{`SELECT count(*) FILTER (WHERE income > 0) AS n FROM people`, true, []bool{true}},
		{`SELECT income.sum() AS s FROM people`, true, []bool{true}},
		{`SELECT district.upper(), count(*) FROM people`, false, []bool{false, true}},
		{`SELECT string_agg(district, ',') AS s FROM people`, true, []bool{false}},
		{`SELECT list(income) AS l FROM people`, true, []bool{false}},
		{`SELECT sum(income) OVER () AS s FROM people`, false, []bool{false}},
		{`SELECT district FROM people UNION SELECT income::VARCHAR FROM people`, false, []bool{false}},
		{`SELECT count(*) AS n FROM people UNION ALL SELECT sum(income) FROM people`, false, []bool{true}},
		{`SELECT x FROM (SELECT sum(income) AS x FROM people)`, false, []bool{false}},
	}
	for _, c := range cases {
		a, err := Analyze(ctx(t), c.query, attrTables)
		if err != nil {
			t.Errorf("%s: %v", c.query, err)
			continue
		}
		if a.Aggregate != c.aggregate {
			t.Errorf("%s: Aggregate = %v, want %v", c.query, a.Aggregate, c.aggregate)
		}
		var got []bool
		for _, out := range a.Outputs {
			got = append(got, out.Aggregated)
		}
		if !slices.Equal(got, c.aggregated) {
			t.Errorf("%s: Aggregated = %v, want %v", c.query, got, c.aggregated)
		}
	}
}
