package synthetic

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// people is a register with one of every supported type, a unique ID, a
// rare district, a rare household size, an income outlier, NULLs and a
// column of nothing but NULLs. Its names are awkward on purpose.
var people = []struct{ name, typ string }{
	{"id", "VARCHAR"},
	{"姓名", "VARCHAR"},
	{"district", "VARCHAR"},
	{"age", "INTEGER"},
	{"income", "DECIMAL(10,2)"},
	{"score", "DOUBLE"},
	{"birth", "DATE"},
	{"registered", "TIMESTAMP"},
	{"active", "BOOLEAN"},
	{"household", "INTEGER"},
	{"notes", "VARCHAR"},
	{`a "b", c`, "BIGINT"},
}

const (
	peopleRows  = 2003
	rareDistict = "临安区"
	outlier     = "9999999.00"
)

// peopleData returns the rows of people as text, "" for NULL.
func peopleData() [][]string {
	r := rand.New(rand.NewPCG(1, 2))
	surnames := []rune("王李张刘陈杨黄赵吴周徐孙马朱胡郭欧")
	given := []rune("伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超鑫淼犇骁瑾璇")
	districts := []string{"西湖区", "上城区", "拱墅区", "滨江区", "萧山区", "余杭区"}
	var rows [][]string
	for i := range peopleRows {
		birthYear := 1950 + r.IntN(55)
		birth := fmt.Sprintf("%04d-%02d-%02d", birthYear, 1+r.IntN(12), 1+r.IntN(28))
		name := string(surnames[r.IntN(len(surnames))])
		for range 1 + r.IntN(2) {
			name += string(given[r.IntN(len(given))])
		}
		district := districts[r.IntN(len(districts))]
		if i < 3 {
			district = rareDistict
		}
		income := fmt.Sprintf("%d.%02d", 1000+r.IntN(89000), r.IntN(100))
		if i == 7 {
			income = outlier
		}
		score := ""
		if r.Float64() >= 0.3 {
			score = strconv.FormatFloat(40+r.Float64()*60, 'f', 3, 64)
		}
		household := strconv.Itoa(1 + r.IntN(5))
		if i == 11 || i == 12 {
			household = "12"
		}
		rows = append(rows, []string{
			fmt.Sprintf("330106%s%04d", strings.ReplaceAll(birth, "-", ""), i),
			name,
			district,
			strconv.Itoa(18 + r.IntN(63)),
			income,
			score,
			birth,
			fmt.Sprintf("%04d-%02d-%02d %02d:%02d:%02d", 2015+r.IntN(10), 1+r.IntN(12), 1+r.IntN(28), r.IntN(24), r.IntN(60), r.IntN(60)),
			strconv.FormatBool(r.IntN(10) < 7),
			household,
			"",
			strconv.FormatInt(1+r.Int64N(1_000_000_000_000), 10),
		})
	}
	return rows
}

// realParquet writes rows (text, "" for NULL) to a Parquet file in dir
// with the given column names and types, and returns its path.
func realParquet(t *testing.T, db *sql.DB, dir string, cols []struct{ name, typ string }, rows [][]string) string {
	t.Helper()
	src := filepath.Join(dir, "src.csv")
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	if err := w.WriteAll(rows); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(src, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	var spec, sel []string
	for i, c := range cols {
		spec = append(spec, fmt.Sprintf("'c%d': 'VARCHAR'", i))
		sel = append(sel, fmt.Sprintf("CAST(c%d AS %s) AS %s", i, c.typ, ident(c.name)))
	}
	path := filepath.Join(dir, "real.parquet")
	exec(t, db, "COPY (SELECT "+strings.Join(sel, ", ")+" FROM read_csv("+literal(src)+", header = false, auto_detect = false, columns = {"+
		strings.Join(spec, ", ")+"})) TO "+literal(path)+" (FORMAT parquet)")
	return path
}

func openDB(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}

func exec(t *testing.T, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func queryInt(t *testing.T, db *sql.DB, q string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := db.QueryRow(q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

func queryStrings(t *testing.T, db *sql.DB, q string) []string {
	t.Helper()
	rows, err := db.Query(q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s sql.NullString
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s.String)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// fixture builds the people register and its profile once per test.
func fixture(t *testing.T) (db *sql.DB, realPath string, p Profile) {
	t.Helper()
	db = openDB(t)
	realPath = realParquet(t, db, t.TempDir(), people, peopleData())
	p, err := Build(context.Background(), realPath, 0)
	if err != nil {
		t.Fatal(err)
	}
	exec(t, db, "CREATE TABLE real AS SELECT * FROM read_parquet("+literal(realPath)+")")
	return db, realPath, p
}

func column(t *testing.T, p Profile, name string) Column {
	t.Helper()
	for _, c := range p.Columns {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("profile has no column %q", name)
	return Column{}
}

// generate runs Generate and returns its output.
func generate(t *testing.T, p Profile, rows int64, seed uint64, format string) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Generate(context.Background(), p, rows, seed, format, &buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// loadCSV loads generated CSV into table with the profile's types; it fails
// if any value does not parse as its column's type.
func loadCSV(t *testing.T, db *sql.DB, table string, p Profile, data []byte) {
	t.Helper()
	path := filepath.Join(t.TempDir(), table+".csv")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	var spec []string
	for _, c := range p.Columns {
		spec = append(spec, literal(c.Name)+": "+literal(c.Type))
	}
	exec(t, db, "CREATE TABLE "+table+" AS SELECT * FROM read_csv("+literal(path)+
		", header = true, auto_detect = false, delim = ',', quote = '\"', escape = '\"', allow_quoted_nulls = false, columns = {"+
		strings.Join(spec, ", ")+"})")
}

func TestBuildKeepsNoRareValue(t *testing.T) {
	db, _, p := fixture(t)
	js, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if p.MinCount != DefaultMinCount {
		t.Errorf("min_count = %d, want the default %d for k = 0", p.MinCount, DefaultMinCount)
	}
	if p.Rows != 2000 {
		t.Errorf("rows = %d, want %d rounded to 2000", p.Rows, peopleRows)
	}
	if len(p.Columns) != len(people) {
		t.Fatalf("%d columns, want %d", len(p.Columns), len(people))
	}
	for i, c := range people {
		if p.Columns[i].Name != c.name || p.Columns[i].Type != c.typ {
			t.Errorf("column %d = %s %s, want %s %s", i, p.Columns[i].Name, p.Columns[i].Type, c.name, c.typ)
		}
	}

	// Rare values, outliers and real identifiers are nowhere in the profile.
	for _, s := range []string{rareDistict, "9999999", `"12"`} {
		if bytes.Contains(js, []byte(s)) {
			t.Errorf("the profile contains the rare value %s:\n%s", s, js)
		}
	}
	for _, v := range queryStrings(t, db, `SELECT id FROM real UNION ALL SELECT "姓名" FROM real`) {
		if bytes.Contains(js, []byte(v)) {
			t.Fatalf("the profile contains the real value %s", v)
		}
	}

	if d := column(t, p, "district"); len(d.Categories) != 6 {
		t.Errorf("district categories = %v, want the 6 common districts", d.Categories)
	}
	var sizes []string
	for _, c := range column(t, p, "household").Categories {
		sizes = append(sizes, c.Value)
	}
	slices.Sort(sizes)
	if !slices.Equal(sizes, []string{"1", "2", "3", "4", "5"}) {
		t.Errorf("household categories = %v, want 1..5 without the rare 12", sizes)
	}
	if a := column(t, p, "active"); len(a.Categories) != 2 {
		t.Errorf("active categories = %v, want true and false", a.Categories)
	}

	id := column(t, p, "id").Pattern
	if id == nil || id.MinLength != 18 || id.MaxLength != 18 {
		t.Fatalf("id pattern = %+v, want 18 characters", id)
	}
	for i, pos := range id.Positions {
		if pos.Digit != 1 || pos.Upper+pos.Lower+pos.Hanzi != 0 || len(pos.Literals) != 0 {
			t.Errorf("id position %d = %+v, want digits only", i, pos)
		}
	}
	name := column(t, p, "姓名").Pattern
	if name == nil || name.MinLength != 2 || name.MaxLength != 3 || len(name.Positions) != 3 {
		t.Fatalf("姓名 pattern = %+v, want 2..3 characters", name)
	}
	for i, pos := range name.Positions {
		if pos.Hanzi != 1 {
			t.Errorf("姓名 position %d = %+v, want hanzi only", i, pos)
		}
	}

	for name, want := range map[string]float64{"id": 0, "age": 0, "notes": 1} {
		if got := column(t, p, name).NullRate; got != want {
			t.Errorf("%s null rate = %v, want %v", name, got, want)
		}
	}
	nulls := queryInt(t, db, "SELECT count(*) FROM real WHERE score IS NULL")
	if got, want := column(t, p, "score").NullRate, math.Round(100*float64(nulls)/peopleRows)/100; got != want || got < 0.25 || got > 0.35 {
		t.Errorf("score null rate = %v, want %v (%d of %d)", got, want, nulls, peopleRows)
	}

	// Ranges are robust: never the real extremes, and untouched by the
	// outlier.
	for _, c := range p.Columns {
		if c.Range == nil {
			continue
		}
		col := ident(c.Name)
		if n := queryInt(t, db, "SELECT count(*) FROM (SELECT min("+col+") AS lo, max("+col+") AS hi FROM real) WHERE lo = CAST(? AS "+c.Type+") OR hi = CAST(? AS "+c.Type+")",
			c.Range.Min, c.Range.Max); n != 0 {
			t.Errorf("%s range %s..%s has a real extreme", c.Name, c.Range.Min, c.Range.Max)
		}
	}
	for _, name := range []string{"age", "income", "score", "birth", "registered", `a "b", c`} {
		if column(t, p, name).Range == nil {
			t.Errorf("%s has no range: %+v", name, column(t, p, name))
		}
	}
	for _, name := range []string{"age", "income", "score", `a "b", c`} {
		rg := column(t, p, name).Range
		if significant(rg.Min) > 2 || significant(rg.Max) > 2 {
			t.Errorf("%s range %s..%s is not rounded to 2 significant digits", name, rg.Min, rg.Max)
		}
	}
	if hi, _ := strconv.ParseFloat(column(t, p, "income").Range.Max, 64); hi > 100000 {
		t.Errorf("income range max = %v, want it below 100000 despite the outlier", hi)
	}
}

// significant returns the number of significant digits in the number s,
// not counting trailing zeros.
func significant(s string) int {
	s = strings.NewReplacer("-", "", ".", "").Replace(s)
	return len(strings.Trim(s, "0"))
}

func TestGenerateCSVFollowsProfile(t *testing.T) {
	db, _, p := fixture(t)
	const n = 3000
	out := generate(t, p, n, 42, "csv")

	header, err := csv.NewReader(bytes.NewReader(out)).Read()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range people {
		names = append(names, c.name)
	}
	if !slices.Equal(header, names) {
		t.Errorf("header = %q, want %q", header, names)
	}

	loadCSV(t, db, "gen", p, out) // fails if a value does not parse as its type
	if got := queryInt(t, db, "SELECT count(*) FROM gen"); got != n {
		t.Fatalf("%d rows, want %d", got, n)
	}

	// NULLs: none where the rate is 0, about 30% where it is 0.3.
	if got := queryInt(t, db, "SELECT count(*) FROM gen WHERE id IS NULL OR age IS NULL OR district IS NULL"); got != 0 {
		t.Errorf("%d NULLs in columns with null rate 0", got)
	}
	if got := queryInt(t, db, "SELECT count(*) FROM gen WHERE score IS NULL"); got < n*25/100 || got > n*35/100 {
		t.Errorf("%d of %d scores are NULL, want about 30%%", got, n)
	}
	if got := queryInt(t, db, "SELECT count(notes) FROM gen"); got != 0 {
		t.Errorf("%d non-NULL notes, want none", got)
	}

	// Only listed categories, all ranges respected, no rare value.
	for _, c := range p.Columns {
		col := ident(c.Name)
		switch {
		case c.Categories != nil:
			var list []string
			for _, cat := range c.Categories {
				list = append(list, literal(cat.Value))
			}
			if got := queryInt(t, db, "SELECT count(*) FROM gen WHERE CAST("+col+" AS VARCHAR) NOT IN ("+strings.Join(list, ", ")+")"); got != 0 {
				t.Errorf("%s: %d values outside the categories", c.Name, got)
			}
			if got := queryInt(t, db, "SELECT count(DISTINCT "+col+") FROM gen"); got != int64(len(c.Categories)) {
				t.Errorf("%s: %d distinct values, want all %d categories", c.Name, got, len(c.Categories))
			}
		case c.Range != nil:
			if got := queryInt(t, db, "SELECT count(*) FROM gen WHERE "+col+" < CAST(? AS "+c.Type+") OR "+col+" > CAST(? AS "+c.Type+")", c.Range.Min, c.Range.Max); got != 0 {
				t.Errorf("%s: %d values outside %s..%s", c.Name, got, c.Range.Min, c.Range.Max)
			}
		}
	}
	if got := queryInt(t, db, "SELECT count(*) FROM gen WHERE district = ? OR household = 12 OR income >= 9999999", rareDistict); got != 0 {
		t.Errorf("%d rows with a rare value or the outlier", got)
	}

	// No real row, and no real ID, comes out.
	if got := queryInt(t, db, "SELECT count(*) FROM (SELECT * FROM gen INTERSECT SELECT * FROM real)"); got != 0 {
		t.Errorf("%d generated rows equal real rows", got)
	}
	if got := queryInt(t, db, "SELECT count(*) FROM gen WHERE id IN (SELECT id FROM real)"); got != 0 {
		t.Errorf("%d generated IDs are real IDs", got)
	}

	// Names are made of common characters from the package's list, not of
	// the data's (which has 鑫淼犇骁瑾璇, none of them in the list).
	for _, name := range queryStrings(t, db, `SELECT "姓名" FROM gen`) {
		rs := []rune(name)
		if len(rs) < 2 || len(rs) > 3 {
			t.Fatalf("name %q: want 2 or 3 characters", name)
		}
		for _, r := range rs {
			if !slices.Contains(hanzi, r) {
				t.Fatalf("name %q: %q is not one of the common characters", name, r)
			}
		}
	}
	if got := queryInt(t, db, `SELECT count(*) FROM gen WHERE regexp_full_match(id, '[0-9]{18}')`); got != n {
		t.Errorf("%d of %d IDs are 18 digits", got, n)
	}
}

func TestGenerateParquetTypes(t *testing.T) {
	db, _, p := fixture(t)
	out := generate(t, p, 500, 7, "parquet")
	path := filepath.Join(t.TempDir(), "gen.parquet")
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
	src := "read_parquet(" + literal(path) + ")"
	names, types, err := describe(context.Background(), db, src)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range p.Columns {
		if i >= len(names) || names[i] != c.Name || types[i] != c.Type {
			t.Fatalf("parquet columns %q %q, want the profile's %+v", names, types, p.Columns)
		}
	}
	if len(names) != len(p.Columns) {
		t.Fatalf("parquet has %d columns, want %d", len(names), len(p.Columns))
	}
	if got := queryInt(t, db, "SELECT count(*) FROM "+src); got != 500 {
		t.Errorf("%d rows, want 500", got)
	}
	if got := queryInt(t, db, "SELECT count(*) FROM "+src+" WHERE age IS NULL OR income IS NULL OR active IS NULL"); got != 0 {
		t.Errorf("%d NULLs in columns with null rate 0", got)
	}
	if got := queryInt(t, db, "SELECT count(notes) FROM "+src); got != 0 {
		t.Errorf("%d non-NULL notes, want none", got)
	}
	// The same rows as the CSV output with the same seed.
	loadCSV(t, db, "gen", p, generate(t, p, 500, 7, "csv"))
	if got := queryInt(t, db, "SELECT count(*) FROM (SELECT * FROM "+src+" EXCEPT ALL SELECT * FROM gen)"); got != 0 {
		t.Errorf("%d Parquet rows differ from the CSV rows", got)
	}
}

func TestGenerateIsDeterministic(t *testing.T) {
	_, _, p := fixture(t)
	for _, format := range []string{"csv", "parquet"} {
		a := generate(t, p, 300, 1, format)
		if b := generate(t, p, 300, 1, format); !bytes.Equal(a, b) {
			t.Errorf("%s: the same seed gave different bytes", format)
		}
		if c := generate(t, p, 300, 2, format); bytes.Equal(a, c) {
			t.Errorf("%s: different seeds gave the same bytes", format)
		}
	}
}

func TestBuildFewOrRareValues(t *testing.T) {
	db := openDB(t)
	cols := []struct{ name, typ string }{
		{"code", "VARCHAR"}, {"value", "DOUBLE"}, {"flag", "BOOLEAN"}, {"empty", "VARCHAR"}, {"secret", "VARCHAR"}, {"day", "DATE"}, {"few", "INTEGER"},
	}
	r := rand.New(rand.NewPCG(3, 4))
	var rows [][]string
	for i := range 60 {
		code := ""
		for range 3 + r.IntN(8) {
			code += string(rune(0x21 + r.IntN(0x5e))) // any printable ASCII
		}
		secret, few := "", ""
		if i < 5 {
			secret, few = fmt.Sprintf("SECRET-%d", i), strconv.Itoa(5000+i)
		}
		rows = append(rows, []string{code, strconv.FormatFloat(r.NormFloat64()*1e6, 'f', 6, 64), strconv.FormatBool(i == 0), "", secret,
			fmt.Sprintf("2020-01-%02d", 1+i%28), few})
	}
	path := realParquet(t, db, t.TempDir(), cols, rows)
	p, err := Build(context.Background(), path, 20)
	if err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(p)
	if p.MinCount != 20 {
		t.Errorf("min_count = %d, want 20", p.MinCount)
	}
	if c := column(t, p, "code"); c.Pattern == nil || c.Categories != nil {
		t.Errorf("code, all values rare, = %+v; want a pattern", c)
	}
	if c := column(t, p, "value"); c.Range == nil {
		t.Errorf("value, all values rare, = %+v; want a range", c)
	}
	if c := column(t, p, "flag"); len(c.Categories) != 1 || c.Categories[0].Value != "false" {
		t.Errorf("flag, true seen once, = %+v; want only false", c)
	}
	if c := column(t, p, "empty"); c.NullRate != 1 || c.Pattern == nil {
		t.Errorf("empty, all NULL, = %+v; want null rate 1 and a pattern", c)
	}
	// Fewer than k values: a generator from the type alone, nothing from
	// the values (not even their length).
	if c := column(t, p, "secret"); c.NullRate != 0.92 || c.Pattern == nil || bytes.Contains(js, []byte("SECRET")) ||
		!reflect.DeepEqual(*c.Pattern, Pattern{MinLength: 1, MaxLength: 8, Positions: []Position{{Lower: 1}}}) {
		t.Errorf("secret, 5 values, = %+v; want the default pattern", c)
	}
	if c := column(t, p, "few"); c.Range == nil || *c.Range != (Range{Min: "0", Max: "100"}) {
		t.Errorf("few, 5 values, = %+v; want the default range", c)
	}
	if c := column(t, p, "day"); c.Range == nil {
		t.Errorf("day = %+v; want a range", c)
	}
	loadCSV(t, db, "gen", p, generate(t, p, 1000, 9, "csv"))
	if got := queryInt(t, db, "SELECT count(*) FROM gen WHERE flag OR empty IS NOT NULL"); got != 0 {
		t.Errorf("%d rows with the rare flag or a non-NULL empty", got)
	}
	if got := queryInt(t, db, "SELECT count(*) FROM gen WHERE secret LIKE 'SECRET%'"); got != 0 {
		t.Errorf("%d secrets came out", got)
	}
	for _, c := range p.Columns {
		if c.Range == nil {
			continue
		}
		col := ident(c.Name)
		if n := queryInt(t, db, "SELECT count(*) FROM (SELECT min("+col+") AS lo, max("+col+") AS hi FROM read_parquet(?)) WHERE lo = CAST(? AS "+c.Type+") OR hi = CAST(? AS "+c.Type+")",
			path, c.Range.Min, c.Range.Max); n != 0 {
			t.Errorf("%s range %s..%s has a real extreme", c.Name, c.Range.Min, c.Range.Max)
		}
	}
}

func TestPatternKeepsOnlyCommonSeparators(t *testing.T) {
	db := openDB(t)
	// Plates like 浙A-12345: a separator at position 2, but 4 plates have
	// a rare "·" there and 3 a rare "#" at the end.
	r := rand.New(rand.NewPCG(5, 6))
	var rows [][]string
	for i := range 300 {
		sep, last := "-", strconv.Itoa(r.IntN(10))
		if i < 4 {
			sep = "·"
		}
		if i >= 4 && i < 7 {
			last = "#"
		}
		rows = append(rows, []string{fmt.Sprintf("浙%c%s%04d%s", 'A'+r.IntN(8), sep, r.IntN(10000), last)})
	}
	rows[299][0] = "" // one NULL in 300
	path := realParquet(t, db, t.TempDir(), []struct{ name, typ string }{{"plate", "VARCHAR"}}, rows)
	p, err := Build(context.Background(), path, 10)
	if err != nil {
		t.Fatal(err)
	}
	if got := column(t, p, "plate").NullRate; got != 0.01 {
		t.Errorf("plate null rate = %v, want 0.01 (1 in 300 rounds up, so that NULLs are not hidden)", got)
	}
	pt := column(t, p, "plate").Pattern
	if pt == nil || pt.MinLength != 8 || pt.MaxLength != 8 || len(pt.Positions) != 8 {
		t.Fatalf("plate pattern = %+v, want 8 positions", pt)
	}
	if pt.Positions[0].Hanzi != 1 || pt.Positions[1].Upper != 1 || !reflect.DeepEqual(pt.Positions[2], Position{Literals: map[string]float64{"-": 0.99}}) {
		t.Errorf("plate positions = %+v, want hanzi, upper, then only the common separator", pt.Positions)
	}
	if js, _ := json.Marshal(p); bytes.ContainsAny(js, "·#") {
		t.Errorf("the profile keeps a rare character: %s", js)
	}
	loadCSV(t, db, "gen", p, generate(t, p, 1000, 3, "csv"))
	if got := queryInt(t, db, `SELECT count(*) FROM gen WHERE NOT regexp_full_match(plate, '\p{Han}[A-Z]-[0-9]{5}')`); got != 0 {
		t.Errorf("%d plates do not look like 浙A-12345", got)
	}
}

func TestBuildOddValues(t *testing.T) {
	db := openDB(t)
	path := filepath.Join(t.TempDir(), "odd.parquet")
	// Infinite and BC dates, NaN and infinite doubles, 1500-character text:
	// all valid in DuckDB, none drawable as they are.
	exec(t, db, `COPY (SELECT
		CASE WHEN i < 15 THEN 'infinity'::DATE WHEN i < 45 THEN DATE '0001-01-01' - 1 ELSE DATE '2020-01-01' + i::INTEGER END AS day,
		CASE WHEN i < 15 THEN '-infinity'::TIMESTAMP ELSE TIMESTAMP '2020-01-01' + to_seconds(i * 1000) END AS "at",
		CASE WHEN i < 30 THEN 'nan'::DOUBLE WHEN i < 40 THEN 'inf'::DOUBLE ELSE i / 7 END AS ratio,
		repeat('ab-', 500) || i AS long
		FROM range(100) t(i)) TO `+literal(path)+" (FORMAT parquet)")
	p, err := Build(context.Background(), path, 10)
	if err != nil {
		t.Fatal(err)
	}
	if rg := column(t, p, "day").Range; rg == nil || rg.Min < "2020" || rg.Max > "2021" {
		t.Errorf("day range = %+v, want one within 2020 from the ordinary dates", rg)
	}
	if pt := column(t, p, "long").Pattern; pt == nil || pt.MaxLength != maxPatternLength {
		t.Errorf("long pattern = %+v, want lengths capped at %d", pt, maxPatternLength)
	}
	out := filepath.Join(t.TempDir(), "gen.parquet")
	if err := os.WriteFile(out, generate(t, p, 200, 1, "parquet"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := queryInt(t, db, "SELECT count(*) FROM read_parquet(?) WHERE isinf(day) OR isinf(\"at\") OR day < DATE '2020-01-01'", out); got != 0 {
		t.Errorf("%d rows with an infinite or BC value", got)
	}
}

func TestRangeAvoidsTiedExtremes(t *testing.T) {
	db := openDB(t)
	// A third of the counts are 0, so the 5th percentile is the minimum;
	// the rest are spread up to 1000, each seen too rarely to be a category.
	cols := []struct{ name, typ string }{{"visits", "INTEGER"}, {"amount", "DECIMAL(6,2)"}}
	var rows [][]string
	for i := range 900 {
		v := 0
		if i%3 != 0 {
			v = i + 100
		}
		rows = append(rows, []string{strconv.Itoa(v), fmt.Sprintf("%d.%02d", v/10, v%100)})
	}
	path := realParquet(t, db, t.TempDir(), cols, rows)
	p, err := Build(context.Background(), path, 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range p.Columns {
		if c.Range == nil {
			t.Fatalf("%s = %+v, want a range", c.Name, c)
		}
		if lo, _ := strconv.ParseFloat(c.Range.Min, 64); lo == 0 {
			t.Errorf("%s range min = %s, the real minimum", c.Name, c.Range.Min)
		}
		col := ident(c.Name)
		if n := queryInt(t, db, "SELECT count(*) FROM (SELECT min("+col+") AS lo, max("+col+") AS hi FROM read_parquet(?)) WHERE lo = CAST(? AS "+c.Type+") OR hi = CAST(? AS "+c.Type+")",
			path, c.Range.Min, c.Range.Max); n != 0 {
			t.Errorf("%s range %s..%s has a real extreme", c.Name, c.Range.Min, c.Range.Max)
		}
	}
}

func TestCSVQuotingAndNulls(t *testing.T) {
	db := openDB(t)
	p := Profile{Columns: []Column{{
		Name: `a "b", c`, Type: "VARCHAR", NullRate: 0.5,
		Categories: []Category{{Value: "", Weight: 1}, {Value: "x,\"y\"\nz", Weight: 1}, {Value: " lead", Weight: 1}, {Value: "西湖区", Weight: 1}},
	}}}
	loadCSV(t, db, "gen", p, generate(t, p, 400, 5, "csv"))
	got := queryStrings(t, db, `SELECT DISTINCT coalesce("a ""b"", c", '<NULL>') FROM gen ORDER BY 1`)
	want := []string{"", " lead", "<NULL>", "x,\"y\"\nz", "西湖区"}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("values read back = %q, want %q", got, want)
	}
	// A single column that is NULL still makes a row in Parquet.
	path := filepath.Join(t.TempDir(), "gen.parquet")
	if err := os.WriteFile(path, generate(t, p, 400, 5, "parquet"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := queryInt(t, db, "SELECT count(*) FROM read_parquet(?)", path); got != 400 {
		t.Errorf("parquet has %d rows, want 400", got)
	}
	if got := queryInt(t, db, "SELECT count(*) FROM (SELECT * FROM read_parquet(?) EXCEPT ALL SELECT * FROM gen)", path); got != 0 {
		t.Errorf("%d parquet rows differ from the CSV rows", got)
	}
}

func TestBuildErrors(t *testing.T) {
	db := openDB(t)
	dir := t.TempDir()
	text := filepath.Join(dir, "notes.parquet")
	if err := os.WriteFile(text, []byte("id,name\n1,张伟\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	odd := filepath.Join(dir, "odd.parquet")
	exec(t, db, "COPY (SELECT 1 AS id, TIME '10:00' AS \"at time\") TO "+literal(odd)+" (FORMAT parquet)")
	list := filepath.Join(dir, "list.parquet")
	exec(t, db, "COPY (SELECT [1, 2] AS tags) TO "+literal(list)+" (FORMAT parquet)")

	for _, tc := range []struct {
		path string
		want []string
	}{
		{filepath.Join(dir, "missing.parquet"), []string{"missing.parquet"}},
		{text, []string{text, "Parquet"}},
		{dir, []string{dir, "directory"}},
		{odd, []string{odd, `"at time"`, "TIME"}},
		{list, []string{list, `"tags"`, "INTEGER[]"}},
		{filepath.Join(dir, "*.parquet"), []string{"glob"}},
	} {
		_, err := Build(context.Background(), tc.path, 10)
		if err == nil {
			t.Errorf("Build(%s) succeeded", tc.path)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("Build(%s) = %v, want it to name %s", tc.path, err, w)
			}
		}
	}
}

func TestGenerateErrors(t *testing.T) {
	good := Column{Name: "n", Type: "INTEGER", Range: &Range{Min: "1", Max: "9"}}
	profile := func(c ...Column) Profile { return Profile{Columns: c} }
	for _, tc := range []struct {
		name   string
		p      Profile
		rows   int64
		format string
		want   []string
	}{
		{"negative rows", profile(good), -1, "csv", []string{"-1 rows"}},
		{"too many rows", profile(good), MaxRows + 1, "csv", []string{"10000001 rows", "10000000"}},
		{"unknown format", profile(good), 1, "xlsx", []string{`"xlsx"`, "csv", "parquet"}},
		{"no columns", profile(), 1, "csv", []string{"no columns"}},
		{"unknown type", profile(Column{Name: "when", Type: "TIME", Range: &Range{Min: "1", Max: "2"}}), 1, "csv", []string{`"when"`, `"TIME"`}},
		{"type injection", profile(Column{Name: "x", Type: "INTEGER) AS x FROM read_text('/etc/passwd') --", Range: &Range{Min: "1", Max: "2"}}), 1, "parquet", []string{`"x"`, "not supported"}},
		{"two generators", profile(Column{Name: "x", Type: "INTEGER", Range: good.Range, Categories: []Category{{Value: "1", Weight: 1}}}), 1, "csv", []string{"exactly one"}},
		{"no generator", profile(Column{Name: "x", Type: "VARCHAR"}), 1, "csv", []string{"exactly one"}},
		{"bad category", profile(Column{Name: "x", Type: "INTEGER", Categories: []Category{{Value: "abc", Weight: 1}}}), 1, "csv", []string{`"x"`, "abc"}},
		{"decimal scale", profile(Column{Name: "x", Type: "DECIMAL(4,1)", Categories: []Category{{Value: "1.25", Weight: 1}}}), 1, "csv", []string{"1.25"}},
		{"reversed range", profile(Column{Name: "x", Type: "DATE", Range: &Range{Min: "2020-02-01", Max: "2020-01-01"}}), 1, "csv", []string{"min is above max"}},
		{"range out of type", profile(Column{Name: "x", Type: "INTEGER", Range: &Range{Min: "0", Max: "3000000000"}}), 1, "csv", []string{"out of range"}},
		{"pattern on numbers", profile(Column{Name: "x", Type: "BIGINT", Pattern: &Pattern{MinLength: 1, MaxLength: 2, Positions: []Position{{Digit: 1}}}}), 1, "csv", []string{"VARCHAR"}},
		{"long literal", profile(Column{Name: "x", Type: "VARCHAR", Pattern: &Pattern{MinLength: 1, MaxLength: 2, Positions: []Position{{Literals: map[string]float64{"ab": 1}}}}}), 1, "csv", []string{`"ab"`}},
		{"null rate", profile(Column{Name: "x", Type: "INTEGER", NullRate: 1.5, Range: good.Range}), 1, "csv", []string{"null rate"}},
		{"zero weights", profile(Column{Name: "x", Type: "BOOLEAN", Categories: []Category{{Value: "true"}}}), 1, "csv", []string{"sum to 0"}},
		{"same name", profile(good, Column{Name: "N", Type: "BIGINT", Range: good.Range}), 1, "csv", []string{"twice"}},
	} {
		var buf bytes.Buffer
		err := Generate(context.Background(), tc.p, tc.rows, 1, tc.format, &buf)
		if err == nil {
			t.Errorf("%s: Generate succeeded", tc.name)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %v, want it to mention %s", tc.name, err, w)
			}
		}
		if buf.Len() != 0 {
			t.Errorf("%s: %d bytes written before the error", tc.name, buf.Len())
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Generate(ctx, profile(good), 10, 1, "csv", new(bytes.Buffer)); err == nil {
		t.Error("Generate with a cancelled context succeeded")
	}
}

func TestHanziList(t *testing.T) {
	seen := map[rune]bool{}
	for _, r := range hanzi {
		if seen[r] {
			t.Errorf("%c is listed twice", r)
		}
		seen[r] = true
	}
	if len(hanzi) < 150 {
		t.Errorf("%d common characters, want at least 150", len(hanzi))
	}
}
