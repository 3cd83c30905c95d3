package sql

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestAnalyzeFields(t *testing.T) {
	all := slices.Sorted(slices.Values(peopleFields))
	cases := []struct {
		name   string
		query  string
		tables []string
		fields map[string][]string
	}{
		{"cte alias", `WITH c AS (SELECT income AS inc, district FROM people) SELECT district, sum(inc) FROM c GROUP BY district`,
			[]string{"people"}, map[string][]string{"people": {"district", "income"}}},
		{"subquery", `SELECT d FROM (SELECT district AS d FROM people WHERE income > 10) s`,
			[]string{"people"}, map[string][]string{"people": {"district", "income"}}},
		{"star", `SELECT * FROM people`, []string{"people"}, map[string][]string{"people": all}},
		{"qualified star", `SELECT p.* FROM people p`, []string{"people"}, map[string][]string{"people": all}},
		{"columns regex", `SELECT COLUMNS('inc.*') FROM people`, []string{"people"}, map[string][]string{"people": all}},
		{"star over subquery", `SELECT * FROM (SELECT district FROM people) s`, []string{"people"}, map[string][]string{"people": {"district"}}},
		{"join unqualified", `SELECT district, employees FROM people JOIN firms USING (district)`,
			[]string{"firms", "people"}, map[string][]string{"people": {"district"}, "firms": {"district", "employees"}}},
		{"join qualified", `SELECT p.name FROM people p, firms f WHERE f.employees > 3`,
			[]string{"firms", "people"}, map[string][]string{"people": {"name"}, "firms": {"employees"}}},
		{"table as row value", `SELECT to_json(people) FROM people`, []string{"people"}, map[string][]string{"people": all}},
		{"column alias list", `SELECT a FROM people AS x(a)`, []string{"people"}, map[string][]string{"people": all}},
		{"positional reference", `SELECT #2 FROM people`, []string{"people"}, map[string][]string{"people": all}},
		{"order by all", `SELECT district, count(*) FROM people GROUP BY ALL ORDER BY ALL`, []string{"people"}, map[string][]string{"people": {"district"}}},
		{"order by a column pattern reads the table", `SELECT district FROM people ORDER BY COLUMNS('inc.*')`, []string{"people"}, map[string][]string{"people": all}},
		{"count star", `SELECT count(*) FROM people`, []string{"people"}, map[string][]string{"people": {}}},
		{"case insensitive", `SELECT DISTRICT FROM People`, []string{"people"}, map[string][]string{"people": {"district"}}},
		{"lambda", `SELECT list_transform([income], x -> x + 1) FROM people`, []string{"people"}, map[string][]string{"people": {"income"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, err := Analyze(ctx(t), c.query, testTables)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(a.Tables, c.tables) {
				t.Errorf("Tables = %v, want %v", a.Tables, c.tables)
			}
			if !reflect.DeepEqual(a.Fields, c.fields) {
				t.Errorf("Fields = %v, want %v", a.Fields, c.fields)
			}
		})
	}
}

func TestAnalyzeAggregate(t *testing.T) {
	cases := []struct {
		query string
		want  bool
	}{
		{`SELECT district, count(*) FROM people GROUP BY district`, true},
		{`SELECT district, count(*) FROM people GROUP BY ALL`, true},
		{`SELECT district, count(*) FROM people GROUP BY ROLLUP (district)`, true},
		{`SELECT count(*), avg(income) / 2, 'x' FROM people`, true},
		{`SELECT district FROM people`, false},
		{`SELECT 1 FROM people`, false},
		{`SELECT DISTINCT district FROM people`, false},
		{`SELECT income, sum(income) OVER () FROM people`, false},
		{`SELECT unnest(list(income)) FROM people`, false},
		{`SELECT district FROM people UNION SELECT district FROM firms`, false},
		{`WITH c AS (SELECT district, count(*) AS n FROM people GROUP BY 1) SELECT * FROM c`, false},
	}
	for _, c := range cases {
		a, err := Analyze(ctx(t), c.query, testTables)
		if err != nil {
			t.Fatalf("%s: %v", c.query, err)
		}
		if a.Aggregate != c.want {
			t.Errorf("%s: Aggregate = %v, want %v", c.query, a.Aggregate, c.want)
		}
		if a.Aggregate != (a.CellSQL != "") {
			t.Errorf("%s: Aggregate %v but CellSQL %q", c.query, a.Aggregate, a.CellSQL)
		}
	}
}

// Bare outputs and plain queries are what differential privacy can noise.
func TestAnalyzeBareAndPlain(t *testing.T) {
	for _, tc := range []struct {
		query string
		bare  []bool
		plain bool
	}{
		{`SELECT district, count(*) AS n, sum(income) AS s, count(income) FROM people GROUP BY district`, []bool{false, true, true, true}, true},
		{`SELECT district, count(*) FILTER (WHERE income > 10) AS n FROM people p WHERE income < 100 GROUP BY district`, []bool{false, true}, true},
		{`SELECT district, 2 * sum(income) AS s, sum(income + 1), sum(DISTINCT income), income.sum() FROM people GROUP BY district`, []bool{false, false, false, false, false}, true},
		{`SELECT district, count(*) FROM people GROUP BY district HAVING count(*) > 5`, []bool{false, true}, false},
		{`SELECT district, count(*) FROM people GROUP BY district ORDER BY 2 DESC LIMIT 1`, []bool{false, true}, false},
		{`SELECT district, sum(income) FROM (SELECT district, income * 1000 AS income FROM people) GROUP BY district`, []bool{false, true}, false},
		{`SELECT a.district, count(*) FROM people a JOIN people b USING (district) GROUP BY a.district`, []bool{false, true}, false},
		{`WITH p AS (SELECT * FROM people) SELECT district, count(*) FROM p GROUP BY district`, []bool{false, true}, false},
	} {
		a, err := Analyze(ctx(t), tc.query, testTables)
		if err != nil {
			t.Fatalf("%s: %v", tc.query, err)
		}
		var bare []bool
		for _, o := range a.Outputs {
			bare = append(bare, o.Bare)
		}
		if !reflect.DeepEqual(bare, tc.bare) || a.Plain != tc.plain {
			t.Errorf("%s: bare %v plain %v, want %v %v", tc.query, bare, a.Plain, tc.bare, tc.plain)
		}
	}
}

func TestAnalyzeOutputs(t *testing.T) {
	a, err := Analyze(ctx(t), `SELECT district, sum(income) AS total, max(name), count(*) FROM people GROUP BY district`, testTables)
	if err != nil {
		t.Fatal(err)
	}
	want := []Output{
		{Name: "district", Fields: []string{"district"}, Aggregated: false, Aggregates: []string{}},
		{Name: "total", Fields: []string{"income"}, Aggregated: true, Aggregates: []string{"sum"}, Bare: true},
		{Name: `max("name")`, Fields: []string{"name"}, Aggregated: false, Aggregates: []string{"max"}, Bare: true},
		{Name: "count_star()", Fields: []string{}, Aggregated: true, Aggregates: []string{"count_star"}, Bare: true},
	}
	if !reflect.DeepEqual(a.Outputs, want) {
		t.Errorf("Outputs = %+v\nwant %+v", a.Outputs, want)
	}
	if want := []string{"count_star", "max", "sum"}; !reflect.DeepEqual(a.Functions, want) {
		t.Errorf("Functions = %v, want %v", a.Functions, want)
	}

	// Through a CTE's column alias and a subquery's expression alias.
	a, err = Analyze(ctx(t), `WITH c(inc) AS (SELECT income FROM people) SELECT s.total, inc FROM (SELECT sum(income) + 0 AS total FROM people) s, c`, testTables)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Outputs) != 2 || !reflect.DeepEqual(a.Outputs[0].Fields, []string{"income"}) || !reflect.DeepEqual(a.Outputs[1].Fields, []string{"income"}) {
		t.Errorf("Outputs through aliases = %+v", a.Outputs)
	}
	if a.Outputs[1].Aggregated {
		t.Errorf("raw income through a CTE alias reported as aggregated")
	}

	// Through a star over an aliased CTE.
	a, err = Analyze(ctx(t), `WITH c AS (SELECT income, 1 AS one FROM people) SELECT x.* FROM c AS x`, testTables)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Outputs) != 1 || !reflect.DeepEqual(a.Outputs[0].Fields, []string{"income"}) || a.Outputs[0].Aggregated {
		t.Errorf("Outputs through a star over a CTE = %+v", a.Outputs)
	}
}

func TestAnalyzeRefusals(t *testing.T) {
	snapshot := "/srv/datasets/people/v1/people.parquet"
	cases := []struct {
		query, code string
		says        []string
	}{
		{``, CodeEmpty, nil},
		{`  -- only a comment`, CodeEmpty, nil},
		{`SELEC 1`, CodeParse, []string{"syntax error"}},
		{`COPY people TO '/tmp/leak.csv'`, CodeNotSelect, nil},
		{`ATTACH ':memory:' AS x`, CodeNotSelect, nil},
		{`SET enable_external_access = true`, CodeNotSelect, nil},
		{`PRAGMA version`, CodeNotSelect, nil},
		{`INSTALL httpfs`, CodeNotSelect, nil},
		{`LOAD httpfs`, CodeNotSelect, nil},
		{`CALL pragma_version()`, CodeNotSelect, nil},
		{`CREATE TABLE x AS SELECT 1`, CodeNotSelect, nil},
		{`EXPORT DATABASE '/tmp/out'`, CodeNotSelect, nil},
		{`SELECT 1; SELECT 2`, CodeMultipleStatements, nil},
		{`SELECT * FROM read_csv('/etc/passwd')`, CodeTableFunction, []string{"read_csv"}},
		{`SELECT * FROM read_parquet('` + snapshot + `')`, CodeTableFunction, []string{"read_parquet"}},
		{`SELECT * FROM query('SELECT 1')`, CodeTableFunction, []string{"query"}},
		{`SELECT * FROM duckdb_settings()`, CodeTableFunction, []string{"duckdb_settings"}},
		{`DESCRIBE people`, CodeTableFunction, nil},
		{`SUMMARIZE people`, CodeTableFunction, nil},
		{`SELECT current_setting('temp_directory')`, CodeForbiddenFunction, []string{"current_setting"}},
		{`SELECT getenv('HOME')`, CodeForbiddenFunction, []string{"getenv"}},
		{`SELECT stats(income) FROM people`, CodeForbiddenFunction, []string{"stats"}},
		{`SELECT count(*) FROM people WHERE name IN (SELECT x FROM (SELECT current_database() AS x))`, CodeForbiddenFunction, nil},
		{`SELECT * FROM nosuch`, CodeUnknownTable, []string{"nosuch", "firms, people"}},
		{`SELECT * FROM pg_settings`, CodeUnknownTable, nil},
		{`SELECT * FROM main.people`, CodeUnknownTable, []string{"main.people"}},
		{`SELECT nosuch FROM people`, CodeUnknownField, []string{"nosuch", "birth_date"}},
		{`SELECT p.nosuch FROM people p`, CodeUnknownField, []string{"nosuch", "income"}},
		{`SELECT rowid FROM people`, CodeUnknownField, []string{"rowid"}},
		{`SELECT count(*) AS __dsbx_cell_n FROM people`, CodeReservedName, nil},
	}
	for _, c := range cases {
		_, err := Analyze(ctx(t), c.query, testTables)
		var e *Error
		if !errors.As(err, &e) {
			t.Errorf("%q: err = %v, want refusal %s", c.query, err, c.code)
			continue
		}
		if e.Code != c.code {
			t.Errorf("%q: code %s (%s), want %s", c.query, e.Code, e.Message, c.code)
		}
		for _, s := range c.says {
			if !strings.Contains(e.Message, s) {
				t.Errorf("%q: message %q does not mention %q", c.query, e.Message, s)
			}
		}
	}
}

func TestAnalyzeSQLIsRendered(t *testing.T) {
	a, err := Analyze(ctx(t), "select   district,count(*)   from people  group by district -- note", testTables)
	if err != nil {
		t.Fatal(err)
	}
	if a.SQL != "SELECT district, count_star() FROM people GROUP BY district" {
		t.Errorf("SQL = %q", a.SQL)
	}
	if !strings.HasSuffix(a.CellSQL, "count_star() AS "+CellCountColumn+" FROM people GROUP BY district") {
		t.Errorf("CellSQL = %q", a.CellSQL)
	}
}

func TestParserIsLocked(t *testing.T) {
	p, err := sharedParser()
	if err != nil {
		t.Fatal(err)
	}
	// A connection other than the one that applied the lockdown sees it too.
	conns := make([]interface{ Close() error }, 0, 3)
	for range 3 {
		c, err := p.db.Conn(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		var external, locked string
		if err := c.QueryRowContext(ctx(t), "SELECT current_setting('enable_external_access')::VARCHAR, current_setting('lock_configuration')::VARCHAR").Scan(&external, &locked); err != nil {
			t.Fatal(err)
		}
		if external != "false" || locked != "true" {
			t.Errorf("parser connection: enable_external_access=%s lock_configuration=%s", external, locked)
		}
		if _, err := c.ExecContext(ctx(t), "SELECT * FROM read_text('/etc/passwd')"); err == nil {
			t.Error("parser database read /etc/passwd")
		}
	}
	for _, c := range conns {
		c.Close()
	}
}

func TestAnalyzeConcurrent(t *testing.T) {
	errs := make(chan error, 16)
	for i := range 16 {
		go func() {
			a, err := Analyze(ctx(t), fmt.Sprintf(`SELECT district, count(*) + %d FROM people GROUP BY district`, i), testTables)
			if err == nil && !a.Aggregate {
				err = fmt.Errorf("query %d not aggregate", i)
			}
			errs <- err
		}()
	}
	for range 16 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
