package sql

import (
	"context"
	"errors"
	"maps"
	"slices"
	"testing"
	"time"
)

// analyzeFuzzSeeds are queries from the analyser's tests: accepted ones of
// every shape and refused ones of every refusal code.
var analyzeFuzzSeeds = []string{
	`WITH c AS (SELECT income AS inc, district FROM people) SELECT district, sum(inc) FROM c GROUP BY district`,
	`SELECT d FROM (SELECT district AS d FROM people WHERE income > 10) s`,
	`SELECT * FROM people`,
	`SELECT p.* FROM people p`,
	`SELECT COLUMNS('inc.*') FROM people`,
	`SELECT district, employees FROM people JOIN firms USING (district)`,
	`SELECT p.name FROM people p, firms f WHERE f.employees > 3`,
	`SELECT to_json(people) FROM people`,
	`SELECT a FROM people AS x(a)`,
	`SELECT #2 FROM people`,
	`SELECT district, count(*) FROM people GROUP BY ALL ORDER BY ALL`,
	`SELECT list_transform([income], x -> x + 1) FROM people`,
	`SELECT district, count(*) FROM people GROUP BY ROLLUP (district)`,
	`SELECT income, sum(income) OVER () FROM people`,
	`SELECT district FROM people UNION SELECT district FROM firms`,
	`SELECT region, count(*), max(income), stddev(income), sum(income) FILTER (WHERE age > 1) + avg(age) + count(age) FROM people GROUP BY region`,
	`WITH c(inc) AS (SELECT income FROM people) SELECT s.total, inc FROM (SELECT sum(income) + 0 AS total FROM people) s, c`,
	`SELECT x.name FROM (SELECT people AS x FROM people)`,
	`SELECT struct_extract(people, 'name') FROM people`,
	`SELECT (SELECT string_agg(name, ',') FROM people)`,
	`select   district,count(*)   from people  group by district -- note`,
	// Refused.
	`SELECT rowid FROM people`,
	`SELECT * FROM read_csv('/etc/passwd')`,
	`SELECT read_text('/etc/passwd') FROM people`,
	`COPY people TO '/tmp/a.csv'; SELECT * FROM read_csv('/tmp/a.csv')`,
	`UNPIVOT people ON name, district INTO NAME k VALUE v`,
	`CALL enable_logging(storage := 'file', storage_path := '/tmp/logs')`,
	`SELECT * FROM secrets`,
	`SELECT 1; SELECT 2`,
	`SELECT nosuchfield FROM people`,
	`SELECT * FROM duckdb_settings()`,
	`SELECT __dsbx_cell_n FROM people`,
	`ATTACH '/tmp/x.db'`,
	`SELECT (`,
	``,
	`;`,
}

// FuzzAnalyze runs the analyser on arbitrary text. It must not panic or
// hang; a refusal is an *Error with a code and a message; and a query it
// accepts reads only the tables it may name and only their fields, exactly
// as it reports: the reported tables and fields are within the view given,
// every output's fields are among the reported ones, and the rendered SQL
// that runs analyses the same.
func FuzzAnalyze(f *testing.F) {
	for _, q := range analyzeFuzzSeeds {
		f.Add(q)
	}
	// One table shares a field name with the other, so unqualified names
	// are ambiguous.
	tables := map[string][]string{
		"people": {"id_number", "name", "district", "income", "birth_date", "region", "age"},
		"firms":  {"firm_id", "district", "employees"},
	}
	f.Fuzz(func(t *testing.T, query string) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		a, err := Analyze(ctx, query, tables)
		if ctx.Err() != nil {
			t.Fatalf("Analyze did not finish in 20s: %v", err)
		}
		if err != nil {
			var e *Error
			if errors.As(err, &e) && (e.Code == "" || e.Message == "") {
				t.Fatalf("refusal without a code or a message: %#v", e)
			}
			// Other errors are DuckDB failing to render a tree it parsed;
			// they refuse the job too, which is safe.
			return
		}
		if a.SQL == "" {
			t.Fatal("accepted with no SQL to run")
		}
		reported := map[string]bool{}
		for _, tb := range a.Tables {
			all, ok := tables[tb]
			if !ok {
				t.Fatalf("accepted query reads table %q, which it may not name (tables %v)", tb, a.Tables)
			}
			for _, fl := range a.Fields[tb] {
				if !slices.Contains(all, fl) {
					t.Fatalf("reported field %s.%s is not a field of the view", tb, fl)
				}
				reported[fl] = true
			}
		}
		for tb := range a.Fields {
			if !slices.Contains(a.Tables, tb) {
				t.Fatalf("fields reported for %q, which is not among the tables %v", tb, a.Tables)
			}
		}
		for _, o := range a.Outputs {
			for _, fl := range o.Fields {
				if !reported[fl] {
					t.Fatalf("output %q derives from %q, which is not a reported field (%v)", o.Name, fl, a.Fields)
				}
			}
		}
		// What runs is the rendering; it must analyse the same.
		again, err := Analyze(ctx, a.SQL, tables)
		if err != nil {
			if ctx.Err() != nil {
				t.Fatalf("Analyze of the rendering did not finish in 20s: %v", err)
			}
			t.Fatalf("the rendered SQL %q is refused: %v", a.SQL, err)
		}
		if !slices.Equal(again.Tables, a.Tables) || !maps.EqualFunc(again.Fields, a.Fields, slices.Equal) {
			t.Fatalf("the rendered SQL %q reads %v %v, the query analysed %v %v", a.SQL, again.Tables, again.Fields, a.Tables, a.Fields)
		}
	})
}
