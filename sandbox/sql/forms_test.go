package sql

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// formsSpec is a job that sees id_number hashed, name masked, district and
// income generalised, and birth_date generalised, under key.
func formsSpec(t *testing.T, snapshot, query string, key []byte) Spec {
	t.Helper()
	spec := testSpec(t, snapshot, query)
	spec.Tables[0].Columns = []Column{
		{"id_number", FormHashed}, {"name", FormMasked}, {"district", FormGeneralised},
		{"income", FormGeneralised}, {"birth_date", FormGeneralised},
	}
	spec.Tables[0].HashKey = key
	return spec
}

// resultRows reads a result file as rows of text.
func resultRows(t *testing.T, path string) [][]string {
	t.Helper()
	rows, err := openPlain(t).Query(`SELECT * FROM read_parquet(` + literal(path) + `)`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out [][]string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		row := make([]string, len(vals))
		for i, v := range vals {
			if v == nil {
				row[i] = "NULL"
			} else {
				row[i] = fmt.Sprint(v)
			}
		}
		out = append(out, row)
	}
	return out
}

// TestFormsAreWhatTheJobSees runs SELECT * over a view in every form and
// checks each value against the form computed here from the generator.
func TestFormsAreWhatTheJobSees(t *testing.T) {
	snapshot := writeSnapshot(t)
	key := []byte("agreement-7-hash-key-0123456789ab")
	spec := formsSpec(t, snapshot, `SELECT id_number, name, district, income, birth_date FROM people ORDER BY name`, key)
	if _, err := Run(ctx(t), spec); err != nil {
		t.Fatal(err)
	}
	got := resultRows(t, spec.Out)
	if len(got) != 500 {
		t.Fatalf("%d rows, want 500", len(got))
	}
	want := map[string][]string{} // hashed id → row
	for i := 0; i < 500; i++ {
		id := fmt.Sprintf("ID%06d", i)
		sum := sha256.Sum256([]byte(hex.EncodeToString(key) + "\x1f" + id))
		name := fmt.Sprintf("person %d", i)
		k := len(name) / 4
		masked := name[:k] + strings.Repeat("*", len(name)-2*k) + name[len(name)-k:]
		income := 1000 + (i*37)%900 // 1000..1899 → 1000
		born := time.Date(1950, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, i*13)
		want[hex.EncodeToString(sum[:])] = []string{hex.EncodeToString(sum[:]), masked, "NULL", fmt.Sprint(income / 1000 * 1000), fmt.Sprint(born.Year())}
	}
	for _, row := range got {
		w, ok := want[row[0]]
		if !ok {
			t.Fatalf("hash %s matches no person's id_number under the key", row[0])
		}
		if strings.Join(row, "|") != strings.Join(w, "|") {
			t.Fatalf("row %v, want %v", row, w)
		}
	}
}

func TestGeneralisedValues(t *testing.T) {
	for _, tc := range []struct{ typ, in, want string }{
		{"INTEGER", "45321", "40000"},
		{"INTEGER", "-45321", "-40000"},
		{"INTEGER", "7", "7"},
		{"INTEGER", "0", "0"},
		{"BIGINT", "123456789012", "100000000000"},
		{"DECIMAL(10,2)", "1234.56", "1000.00"},
		{"DOUBLE", "0.0456", "0.04"},
		{"DATE", "1987-06-05", "1987"},
		{"TIMESTAMP", "2001-02-03 04:05:06", "2001"},
		{"VARCHAR", "330106", "330100"},
		{"VARCHAR", "330100", "330000"},
		{"VARCHAR", "西湖区", "NULL"},
		{"VARCHAR", "33010", "NULL"},
		{"BOOLEAN", "true", "NULL"},
	} {
		var got string
		q := fmt.Sprintf(`SELECT coalesce(CAST(%s AS VARCHAR), 'NULL') FROM (SELECT CAST(%s AS %s) AS v)`, generalised("v", tc.typ), literal(tc.in), tc.typ)
		if err := openPlain(t).QueryRow(q).Scan(&got); err != nil {
			t.Fatalf("%s %s: %v", tc.typ, tc.in, err)
		}
		if got != tc.want {
			t.Errorf("generalised %s %s = %s, want %s", tc.typ, tc.in, got, tc.want)
		}
	}
}

func TestMaskedValues(t *testing.T) {
	for in, want := range map[string]string{
		"330102199001011234": "3301**********1234",
		"张三":                 "张*",
		"王小明":                "王**",
		"13812345678":        "13*******78",
		"":                   "",
	} {
		expr, _ := formExpr(Column{"v", FormMasked}, "VARCHAR", nil)
		var got string
		if err := openPlain(t).QueryRow(`SELECT ` + expr + ` FROM (SELECT ` + literal(in) + ` AS v)`).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("masked %q = %q, want %q", in, got, want)
		}
	}
}

// TestHashKeyDoesNotLeak tries to read the key, or any raw value of a
// hashed column, from inside the job's database (with the parse check off,
// so the lockdown stands alone).
func TestHashKeyDoesNotLeak(t *testing.T) {
	snapshot := writeSnapshot(t)
	key := []byte("secret-key-of-agreement-42-xyzzy")
	for _, q := range []string{
		`SELECT sql FROM duckdb_tables()`,
		`SELECT coalesce(sql, '') FROM duckdb_views()`,
		`SELECT function_name || coalesce(macro_definition, '') FROM duckdb_functions() WHERE macro_definition IS NOT NULL`,
		`SELECT column_name || coalesce(column_default, '') FROM duckdb_columns()`,
		`SELECT coalesce(expression, '') FROM duckdb_constraints()`,
		`SELECT * FROM people`,
		`SELECT name, value FROM duckdb_settings()`,
		`SELECT coalesce(statement, '') FROM duckdb_prepared_statements()`,
	} {
		spec := formsSpec(t, snapshot, q, key)
		if _, err := run(ctx(t), spec, false, nil); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		data, err := os.ReadFile(spec.Out)
		if err != nil {
			t.Fatal(err)
		}
		var all strings.Builder
		for _, row := range resultRows(t, spec.Out) {
			all.WriteString(strings.Join(row, "|"))
		}
		for _, secret := range []string{hex.EncodeToString(key), string(key), "ID000042", "person 42"} {
			if strings.Contains(all.String(), secret) || strings.Contains(string(data), secret) {
				t.Errorf("%s reveals %q", q, secret)
			}
		}
	}
}

// TestHashesDifferByKey: equal values hash equal under one key, so jobs can
// join and count, and differently under another, so two agreements' outputs
// cannot be linked.
func TestHashesDifferByKey(t *testing.T) {
	snapshot := writeSnapshot(t)
	first := func(key string) string {
		spec := formsSpec(t, snapshot, `SELECT id_number FROM people ORDER BY id_number LIMIT 1`, []byte(key))
		if _, err := Run(ctx(t), spec); err != nil {
			t.Fatal(err)
		}
		return resultRows(t, spec.Out)[0][0]
	}
	a, again, b := first("key-a-0123456789abcdef"), first("key-a-0123456789abcdef"), first("key-b-0123456789abcdef")
	if a != again || a == b || len(a) != 64 {
		t.Fatalf("hashes %s %s %s: want equal under one key, different under two", a, again, b)
	}
}
