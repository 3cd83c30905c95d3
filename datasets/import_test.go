package datasets

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	_ "github.com/duckdb/duckdb-go/v2"
)

// querySnapshot runs query over the Parquet file at path, available as the
// view t, and returns its rows with every value as text ("NULL" for NULL).
func querySnapshot(t testing.TB, path, query string) [][]string {
	t.Helper()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.Exec("CREATE VIEW t AS SELECT * FROM read_parquet(" + literal(path) + ")"); err != nil {
		t.Fatal(err)
	}
	rows, err := db.Query(query)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out [][]string
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		dest := make([]any, len(cols))
		for i := range vals {
			dest[i] = &vals[i]
		}
		if err := rows.Scan(dest...); err != nil {
			t.Fatal(err)
		}
		row := make([]string, len(cols))
		for i, v := range vals {
			row[i] = "NULL"
			if v.Valid {
				row[i] = v.String
			}
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// snapshotSchema returns "name TYPE" for each column of the Parquet file at
// path as DuckDB reads it.
func snapshotSchema(t testing.TB, path string) []string {
	t.Helper()
	var out []string
	for _, r := range querySnapshot(t, path, "SELECT column_name, column_type FROM (DESCRIBE t)") {
		out = append(out, r[0]+" "+r[1])
	}
	return out
}

func fieldTypes(e Entry) map[string]string {
	m := map[string]string{}
	for _, f := range e.Fields {
		m[f.Name] = f.Type
	}
	return m
}

func statsOf(t *testing.T, v Version, name string) ColumnStats {
	t.Helper()
	for _, s := range v.Stats {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no statistics for %s in %+v", name, v.Stats)
	return ColumnStats{}
}

func field(name, column, sensitivity, identifier string) Field {
	return Field{Name: name, Column: column, Sensitivity: sensitivity, Identifier: identifier}
}

// inferSpec labels every column of inferCSV; none has a type.
func inferSpec() Spec {
	return Spec{
		Name: "infer", Grade: GradeGeneral, Open: OpenUnconditional, Keys: []string{"id"},
		Fields: []Field{
			field("id", "", "public", IdentifierDirect),
			field("n", "", "public", IdentifierNone),
			field("code", "", "public", IdentifierNone),
			field("amount", "", "internal", IdentifierNone),
			field("day", "", "public", IdentifierNone),
			field("at", "", "public", IdentifierNone),
			field("flag", "", "public", IdentifierNone),
			field("empty", "", "public", IdentifierNone),
			field("district", "所属区县", "public", IdentifierQuasi),
			field("neg", "", "public", IdentifierNone),
		},
	}
}

var inferDistricts = []string{"西湖区", "上城区", "拱墅区", "滨江区", "萧山区"}

// inferCSV has rows+1 data rows. id is numeric until its last value,
// 12345X; rows 10 and 11 repeat the id of row 9 and row 12 has none.
func inferCSV(rows int) string {
	var b strings.Builder
	b.WriteString("id,n,code,amount,day,at,flag,empty,所属区县,neg\n")
	for i := 1; i <= rows; i++ {
		id := fmt.Sprint(i)
		switch i {
		case 10, 11:
			id = "9"
		case 12:
			id = ""
		}
		flag := "true"
		if i%3 == 0 {
			flag = "FALSE"
		}
		fmt.Fprintf(&b, "%s,%d,%04d,%d.%02d,2024-%02d-%02d,2024-01-02 03:04:%02d,%s,,%s,%d\n",
			id, i, i%1000, i, i%100, i%12+1, i%28+1, i%60, flag, inferDistricts[i%len(inferDistricts)], -i)
	}
	fmt.Fprintf(&b, "12345X,0,0571,0.5,2023-12-31,2024-01-02T03:04:05.25,true,,西湖区,0\n")
	return b.String()
}

// Types come from every value, not a sample; the version is named by its
// snapshot's hash; statistics and the quality report are exact.
func TestImportCSVInfersTypesFromAllValues(t *testing.T) {
	ctx := context.Background()
	tc := newTestCatalog(t)
	tc.mustCreate(t, inferSpec())
	const n = 5000
	src := writeTestFile(t, "infer.csv", []byte(inferCSV(n)))
	var phases []string
	got, err := tc.Import(ctx, "importer", "infer", Source{}, src, func(s Step) {
		if len(phases) == 0 || phases[len(phases)-1] != s.Phase {
			phases = append(phases, s.Phase)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	wantTypes := map[string]string{
		"id": "VARCHAR", "n": "BIGINT", "code": "VARCHAR", "amount": "DOUBLE", "day": "DATE",
		"at": "TIMESTAMP", "flag": "BOOLEAN", "empty": "VARCHAR", "district": "VARCHAR", "neg": "BIGINT",
	}
	if tys := fieldTypes(got.Entry); !reflect.DeepEqual(tys, wantTypes) {
		t.Errorf("types = %v\nwant    %v", tys, wantTypes)
	}
	e, err := tc.Get(ctx, "infer")
	if err != nil {
		t.Fatal(err)
	}
	if tys := fieldTypes(e); !reflect.DeepEqual(tys, wantTypes) {
		t.Errorf("stored types = %v, want %v", tys, wantTypes)
	}
	if !slices.Equal(phases, []string{"parse", "type", "check", "write", "statistics", "profile", "store"}) {
		t.Errorf("progress phases %v", phases)
	}

	v := got.Version
	if v.Rows != n+1 || v.Format != FormatCSV || v.Encoding != EncodingUTF8 || v.Importer != "importer" ||
		v.Source != "infer.csv" || v.Status != VersionActive || got.Existing || v.CreatedAt.IsZero() {
		t.Errorf("version = %+v", v)
	}
	if len(e.Versions) != 1 || !reflect.DeepEqual(e.Versions[0].Stats, v.Stats) || e.Versions[0].ID != v.ID {
		t.Errorf("stored version %+v differs from returned %+v", e.Versions, v)
	}

	// Content addressed, read-only.
	path := tc.SnapshotPath("infer", v)
	if filepath.Dir(path) != filepath.Join(tc.dir, "infer") {
		t.Errorf("snapshot at %s", path)
	}
	sum, size, err := hashFile(path)
	if err != nil || sum != v.ID || size != v.Bytes {
		t.Fatalf("snapshot sha256 %s (%d bytes), version %s (%d bytes), %v", sum, size, v.ID, v.Bytes, err)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm()&0o222 != 0 {
		t.Errorf("snapshot mode %v, %v; want read-only", st.Mode(), err)
	}
	wantSchema := []string{"id VARCHAR", "n BIGINT", "code VARCHAR", "amount DOUBLE", "day DATE", "at TIMESTAMP",
		"flag BOOLEAN", "empty VARCHAR", "district VARCHAR", "neg BIGINT"}
	if s := snapshotSchema(t, path); !slices.Equal(s, wantSchema) {
		t.Errorf("snapshot schema %v, want %v", s, wantSchema)
	}
	rows := querySnapshot(t, path, `SELECT id, code, CAST(amount AS VARCHAR), CAST(day AS VARCHAR), CAST("at" AS VARCHAR), CAST(flag AS VARCHAR), district FROM t WHERE id IN ('12345X', '3') ORDER BY id`)
	want := [][]string{
		{"12345X", "0571", "0.5", "2023-12-31", "2024-01-02 03:04:05.25", "true", "西湖区"},
		{"3", "0003", "3.03", "2024-04-04", "2024-01-02 03:04:03", "false", "滨江区"},
	}
	if !reflect.DeepEqual(rows, want) {
		t.Errorf("rows %v\nwant %v", rows, want)
	}

	// Statistics.
	if s := statsOf(t, v, "id"); s.Nulls != 1 || math.Abs(s.NullRate-1.0/(n+1)) > 1e-12 || s.Type != "VARCHAR" {
		t.Errorf("id stats %+v", s)
	}
	if s := statsOf(t, v, "empty"); s.Nulls != n+1 || s.NullRate != 1 || s.Distinct != 0 || s.Min != "" || s.Max != "" {
		t.Errorf("empty stats %+v", s)
	}
	if s := statsOf(t, v, "n"); s.Nulls != 0 || s.NullRate != 0 || s.Min != "0" || s.Max != fmt.Sprint(n) || s.Type != "BIGINT" {
		t.Errorf("n stats %+v", s)
	}
	if s := statsOf(t, v, "neg"); s.Min != fmt.Sprint(-n) || s.Max != "0" {
		t.Errorf("neg stats %+v", s)
	}
	if s := statsOf(t, v, "amount"); s.Min != "0.5" || s.Max != "5000.0" {
		t.Errorf("amount stats %+v", s)
	}
	if s := statsOf(t, v, "day"); s.Min != "2023-12-31" || s.Max != "2024-12-28" {
		t.Errorf("day stats %+v", s)
	}
	if s := statsOf(t, v, "flag"); s.Distinct != 2 || s.Min != "false" || s.Max != "true" {
		t.Errorf("flag stats %+v", s)
	}
	if s := statsOf(t, v, "district"); s.Distinct != int64(len(inferDistricts)) || s.Min == "" {
		t.Errorf("district stats %+v", s)
	}
	// approx_count_distinct is an estimate (HyperLogLog, off by over 10%
	// here).
	if s := statsOf(t, v, "n"); math.Abs(float64(s.Distinct)-float64(n+1)) > 0.25*float64(n) {
		t.Errorf("n distinct %d, want about %d", s.Distinct, n+1)
	}

	// Quality: two rows repeat id 9's key, one has none.
	q := v.Quality
	if !slices.Equal(q.Keys, []string{"id"}) || q.DuplicateKeys != 2 || q.NullKeys != 1 || q.Violations == nil || len(q.Violations) != 0 {
		t.Errorf("quality %+v; want 2 duplicate keys, 1 NULL key, no violations", q)
	}

	// Audit.
	if tc.log.Size() != 2 {
		t.Fatalf("audit size %d, want created + imported", tc.log.Size())
	}
	a := tc.lastAudit(t)
	if a.Kind != "dataset.imported" || a.Principal != "importer" || a.Subject != "dataset/infer" ||
		!strings.Contains(string(a.Data), v.ID) || !strings.Contains(string(a.Data), `"TIMESTAMP"`) {
		t.Errorf("audit entry %+v %s", a, a.Data)
	}

	// The same file again: the existing version, nothing recorded.
	before := tc.stateOf(t)
	again, err := tc.Import(ctx, "someone_else", "infer", Source{}, src, nil)
	if err != nil || !again.Existing || again.Version.ID != v.ID || again.Version.Importer != "importer" {
		t.Fatalf("re-import: %+v, %v; want the existing version", again.Version, err)
	}
	if after := tc.stateOf(t); after != before {
		t.Errorf("re-import changed state:\nbefore %s\nafter  %s", before, after)
	}
	// The same data under another name is also the existing version.
	again, err = tc.Import(ctx, "importer", "infer", Source{Name: "copy.csv"}, src, nil)
	if err != nil || !again.Existing || again.Version.ID != v.ID {
		t.Fatalf("re-import under another name: %+v, %v", again.Version, err)
	}
}

// A second version keeps the first one's types; values that would have been
// inferred otherwise must fit them.
func TestImportSecondVersionKeepsSchema(t *testing.T) {
	ctx := context.Background()
	tc := newTestCatalog(t)
	tc.mustCreate(t, peopleSpec())
	first := tc.mustImport(t, "people", peopleCSV)
	if tys := fieldTypes(first.Entry); tys["id_number"] != "BIGINT" || tys["district"] != "VARCHAR" || tys["income"] != "BIGINT" {
		t.Fatalf("types %v", tys)
	}
	// id_number now has an X: the catalogued BIGINT refuses it.
	_, err := tc.Import(ctx, "importer", "people", Source{}, writeTestFile(t, "people.csv", []byte(peopleCSV+"33010219700303345X,拱墅区,47000\n")), nil)
	wantInputError(t, err, "id_number", "BIGINT", "row 3", "33010219700303345X")

	second := tc.mustImport(t, "people", peopleCSV+"330102197003033456,拱墅区,47000\n")
	if second.Version.ID == first.Version.ID || second.Version.Rows != 3 || second.Existing {
		t.Fatalf("second version %+v", second.Version)
	}
	e, v, err := tc.Resolve(ctx, "people")
	if err != nil || v.ID != second.Version.ID || len(e.Versions) != 2 || e.Versions[1].ID != first.Version.ID {
		t.Fatalf("Resolve newest = %s (%d versions), %v", v.ID, len(e.Versions), err)
	}
	if _, v, err = tc.Resolve(ctx, "people@"+first.Version.ID[:10]); err != nil || v.ID != first.Version.ID {
		t.Fatalf("Resolve pinned = %s, %v", v.ID, err)
	}
	if _, _, err = tc.Resolve(ctx, "people@"); !errors.Is(err, ErrNotFound) {
		t.Errorf("empty prefix: %v", err)
	}
	if _, _, err = tc.Resolve(ctx, "people@zzzz"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown version: %v", err)
	}
	if _, _, err = tc.Resolve(ctx, "nobody"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown dataset: %v", err)
	}
	tc.mustCreate(t, func() Spec { s := peopleSpec(); s.Name = "empty"; return s }())
	if _, _, err = tc.Resolve(ctx, "empty"); !errors.Is(err, ErrNotFound) {
		t.Errorf("dataset without versions: %v", err)
	}
}

func violationSpec() Spec {
	return Spec{
		Name: "amounts", Grade: GradeGeneral, Open: OpenUnconditional, Keys: []string{"region", "year"},
		Fields: []Field{
			{Name: "region", Sensitivity: "public", Identifier: IdentifierNone},
			{Name: "year", Sensitivity: "public", Identifier: IdentifierNone},
			{Name: "amount", Type: "bigint", Sensitivity: "public", Identifier: IdentifierNone},
			{Name: "owner", Sensitivity: "public", Identifier: IdentifierDirect},
			{Name: "salary", Type: "DECIMAL(10, 2)", Sensitivity: "sensitive", Identifier: IdentifierNone},
		},
	}
}

// Rows 3 and 6 have amounts that are not BIGINT (12.5 is not rounded); row 5
// a salary that does not fit DECIMAL(10,2). (杭州, 2023) is in three rows
// and row 7 has no year.
const violationCSV = `region,year,amount,owner,salary
杭州,2023,100,张三,1000.50
宁波,2023,200,李四,2000.25
温州,2023,abc,王五,3000
杭州,2023,-5,赵六,4000
杭州,2023,300,钱七,123456789012.5
嘉兴,2024,12.5,孙八,10
湖州,,7,周九,20
`

func TestImportTypeViolations(t *testing.T) {
	ctx := context.Background()
	tc := newTestCatalog(t)
	tc.mustCreate(t, violationSpec())
	src := writeTestFile(t, "amounts.csv", []byte(violationCSV))
	before := tc.stateOf(t)
	_, err := tc.Import(ctx, "importer", "amounts", Source{}, src, nil)
	wantInputError(t, err, "amounts.csv", "amount: 2 values are not BIGINT", `row 3: "abc"`, `row 6: "12.5"`,
		"salary: 1 values are not DECIMAL(10,2)", `row 5: "123456789012.5"`, "--nullify-violations")
	if after := tc.stateOf(t); after != before {
		t.Errorf("a refused import changed state:\nbefore %s\nafter  %s", before, after)
	}

	got, err := tc.Import(ctx, "importer", "amounts", Source{NullifyViolations: true}, src, nil)
	if err != nil {
		t.Fatal(err)
	}
	v := got.Version
	want := []Violation{
		{Field: "amount", Type: "BIGINT", Count: 2, Examples: []Example{{Row: 3, Value: "abc"}, {Row: 6, Value: "12.5"}}},
		{Field: "salary", Type: "DECIMAL(10,2)", Count: 1, Examples: []Example{{Row: 5, Value: "123456789012.5"}}},
	}
	if !reflect.DeepEqual(v.Quality.Violations, want) {
		t.Errorf("violations %+v\nwant %+v", v.Quality.Violations, want)
	}
	// The audit log, kept forever, holds the examples' hashes, never the values.
	rec, err := tc.log.Record(tc.log.Size() - 1)
	if err != nil {
		t.Fatal(err)
	}
	abc := sha256.Sum256([]byte("abc"))
	if !strings.Contains(string(rec), `"dataset.imported"`) || strings.Contains(string(rec), "123456789012.5") || strings.Contains(string(rec), `"abc"`) ||
		!strings.Contains(string(rec), "sha256:"+hex.EncodeToString(abc[:])) {
		t.Errorf("import entry %s", rec)
	}
	// (杭州, 2023) three times: two duplicates; the row without a year is a
	// NULL key and not a duplicate.
	if v.Quality.DuplicateKeys != 2 || v.Quality.NullKeys != 1 || !slices.Equal(v.Quality.Keys, []string{"region", "year"}) {
		t.Errorf("key quality %+v", v.Quality)
	}
	if tys := fieldTypes(got.Entry); tys["amount"] != "BIGINT" || tys["salary"] != "DECIMAL(10,2)" || tys["year"] != "BIGINT" {
		t.Errorf("types %v", tys)
	}
	rows := querySnapshot(t, tc.SnapshotPath("amounts", v), "SELECT amount, CAST(salary AS VARCHAR) FROM t")
	wantRows := [][]string{{"100", "1000.50"}, {"200", "2000.25"}, {"NULL", "3000.00"}, {"-5", "4000.00"}, {"300", "NULL"}, {"NULL", "10.00"}, {"7", "20.00"}}
	if !reflect.DeepEqual(rows, wantRows) {
		t.Errorf("rows %v\nwant %v", rows, wantRows)
	}
	if s := statsOf(t, v, "amount"); s.Nulls != 2 || s.Min != "-5" || s.Max != "300" {
		t.Errorf("amount stats %+v", s)
	}
	var logged struct {
		Quality Quality `json:"quality"`
	}
	if err := json.Unmarshal(tc.lastAudit(t).Data, &logged); err != nil || !reflect.DeepEqual(logged.Quality.Violations, Quality{Violations: want}.forLog().Violations) {
		t.Errorf("audited quality %+v, %v; want the examples hashed", logged.Quality, err)
	}

	// Redacted: no examples; extremes only for public, non-identifying
	// fields.
	e, err := tc.Get(ctx, "amounts")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(e.Versions[0].Quality.Violations, want) {
		t.Errorf("stored violations %+v", e.Versions[0].Quality.Violations)
	}
	r := e.Redacted()
	rv := r.Versions[0]
	for _, vi := range rv.Quality.Violations {
		if vi.Examples != nil || vi.Count == 0 {
			t.Errorf("redacted violation %+v", vi)
		}
	}
	if len(rv.Quality.Violations) != 2 || rv.Quality.DuplicateKeys != 2 {
		t.Errorf("redacted quality %+v", rv.Quality)
	}
	for _, s := range rv.Stats {
		public := s.Name == "region" || s.Name == "year" || s.Name == "amount"
		if public != (s.Min != "" && s.Max != "") {
			t.Errorf("redacted %s: min %q max %q", s.Name, s.Min, s.Max)
		}
		if s.Nulls != statsOf(t, v, s.Name).Nulls || s.Distinct != statsOf(t, v, s.Name).Distinct {
			t.Errorf("redacted %s lost counts: %+v", s.Name, s)
		}
	}
	if s := statsOf(t, rv, "amount"); s.Min != "-5" {
		t.Errorf("redacted amount %+v", s)
	}
	// Redacting copies: the entry itself keeps everything.
	if e.Versions[0].Quality.Violations[0].Examples == nil || statsOf(t, e.Versions[0], "salary").Min == "" {
		t.Error("Redacted changed the entry it was called on")
	}
}

func TestImportSchemaOverride(t *testing.T) {
	ctx := context.Background()
	tc := newTestCatalog(t)
	spec := Spec{Name: "zips", Grade: GradeGeneral, Open: OpenUnconditional, Fields: []Field{
		field("city", "城市", "public", IdentifierNone),
		field("zip", "邮编", "public", IdentifierNone),
	}}
	tc.mustCreate(t, spec)
	spec.Name = "zips_inferred"
	tc.mustCreate(t, spec)
	const first = "城市,邮编\n杭州,310000\n北京,100000\n"

	// Without an override the codes are numbers.
	inferred := tc.mustImport(t, "zips_inferred", first)
	if f, _ := inferred.Entry.Field("zip"); f.Type != "BIGINT" {
		t.Fatalf("zip inferred as %s", f.Type)
	}

	before := tc.stateOf(t)
	_, err := tc.Import(ctx, "importer", "zips", Source{Schema: map[string]string{"邮编": "VARCHAR"}}, writeTestFile(t, "z.csv", []byte(first)), nil)
	wantInputError(t, err, "邮编", "not a field")
	_, err = tc.Import(ctx, "importer", "zips", Source{Schema: map[string]string{"zip": "MONEY"}}, writeTestFile(t, "z.csv", []byte(first)), nil)
	wantInputError(t, err, "zip", "MONEY")
	if after := tc.stateOf(t); after != before {
		t.Errorf("refused overrides changed state:\nbefore %s\nafter  %s", before, after)
	}

	got, err := tc.Import(ctx, "importer", "zips", Source{Schema: map[string]string{"zip": "text"}}, writeTestFile(t, "z.csv", []byte(first)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if f, _ := got.Entry.Field("zip"); f.Type != "VARCHAR" {
		t.Fatalf("zip overridden to %s", f.Type)
	}
	// The catalogued type holds for later versions, so leading zeros stay.
	second, err := tc.Import(ctx, "importer", "zips", Source{}, writeTestFile(t, "z.csv", []byte(first+"天津,010020\n某地,000001\n")), nil)
	if err != nil {
		t.Fatal(err)
	}
	rows := querySnapshot(t, tc.SnapshotPath("zips", second.Version), "SELECT zip FROM t ORDER BY zip")
	if !reflect.DeepEqual(rows, [][]string{{"000001"}, {"010020"}, {"100000"}, {"310000"}}) {
		t.Errorf("zips %v", rows)
	}
	// Restating the catalogued type is fine; contradicting it is not.
	if _, err := tc.Import(ctx, "importer", "zips", Source{Schema: map[string]string{"zip": "varchar"}}, writeTestFile(t, "z.csv", []byte(first)), nil); err != nil {
		t.Errorf("restating the type: %v", err)
	}
	before = tc.stateOf(t)
	_, err = tc.Import(ctx, "importer", "zips", Source{Schema: map[string]string{"zip": "BIGINT"}}, writeTestFile(t, "z.csv", []byte("城市,邮编\n上海,200000\n")), nil)
	wantInputError(t, err, "zip=BIGINT", "contradicts", "VARCHAR")
	if after := tc.stateOf(t); after != before {
		t.Errorf("a contradicting override changed state:\nbefore %s\nafter  %s", before, after)
	}
}

// Every bad input is refused with an error naming the problem, and changes
// nothing: not the catalog, not the audit log, not the snapshot directory.
func TestImportRefusesBadInput(t *testing.T) {
	ctx := context.Background()
	tc := newTestCatalog(t)
	tc.mustCreate(t, peopleSpec())
	tc.mustImport(t, "people", peopleCSV)
	const header = "id_number,所属区县,income\n"
	cases := []struct {
		name, file, content string
		src                 Source
		dataset             string
		want                []string
	}{
		{"empty file", "people.csv", "", Source{}, "people", []string{"people.csv", "empty"}},
		{"header only", "people.csv", header, Source{}, "people", []string{"people.csv", "no data rows"}},
		{"ragged row", "people.csv", header + "1,a,2\n3,b,4,5\n", Source{}, "people", []string{"people.csv", "malformed"}},
		{"short row", "people.csv", header + "1,a,2\n3,b\n", Source{}, "people", []string{"people.csv", "malformed"}},
		{"ragged row past any sample", "people.csv", header + strings.Repeat("1,a,2\n", 30000) + "3,b,4,5\n", Source{}, "people", []string{"malformed"}},
		{"unbalanced quote", "people.csv", header + "1,\"a,2\n4,b,5\n", Source{}, "people", []string{"people.csv", "malformed"}},
		{"missing column", "people.csv", "id_number,所属区县\n1,a\n", Source{}, "people", []string{"lacks [income]"}},
		{"extra column", "people.csv", header[:len(header)-1] + ",extra\n1,a,2,3\n", Source{}, "people", []string{"[extra]", "not catalogued"}},
		{"field name instead of its header", "people.csv", "id_number,district,income\n1,a,2\n", Source{}, "people", []string{"lacks [所属区县]", "[district]"}},
		{"unknown extension", "people.xlsx", peopleCSV, Source{}, "people", []string{"people.xlsx", ".csv"}},
		{"no extension", "people", peopleCSV, Source{}, "people", []string{"cannot tell the format"}},
		{"unknown format", "people.csv", peopleCSV, Source{Format: "xlsx"}, "people", []string{"format", "xlsx"}},
		{"CSV named parquet", "people.parquet", peopleCSV, Source{}, "people", []string{"people.parquet"}},
		{"values unfit for the catalogued type", "people.csv", header + "1,a,lots\n", Source{}, "people", []string{"income", "BIGINT", "row 1"}},
	}
	before := tc.stateOf(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := tc.Import(ctx, "importer", c.dataset, c.src, writeTestFile(t, c.file, []byte(c.content)), nil)
			wantInputError(t, err, c.want...)
			if after := tc.stateOf(t); after != before {
				t.Errorf("state changed:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
	t.Run("unknown dataset", func(t *testing.T) {
		_, err := tc.Import(ctx, "importer", "nobody", Source{}, writeTestFile(t, "people.csv", []byte(peopleCSV)), nil)
		if !errors.Is(err, ErrNotFound) {
			t.Fatalf("err = %v, want ErrNotFound", err)
		}
		if after := tc.stateOf(t); after != before {
			t.Errorf("state changed:\nbefore %s\nafter  %s", before, after)
		}
	})
	t.Run("missing file", func(t *testing.T) {
		_, err := tc.Import(ctx, "importer", "people", Source{}, filepath.Join(t.TempDir(), "people.csv"), nil)
		if err == nil {
			t.Fatal("imported a file that does not exist")
		}
		if after := tc.stateOf(t); after != before {
			t.Errorf("state changed:\nbefore %s\nafter  %s", before, after)
		}
	})
	e, err := tc.Get(ctx, "people")
	if err != nil || len(e.Versions) != 1 {
		t.Fatalf("versions %v, %v", e.Versions, err)
	}
}

// cast turns values that do not fit into NULL, including those TRY_CAST
// would round or truncate.
func TestCastRefusesLossyConversions(t *testing.T) {
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cases := []struct {
		value, from, to string
		want            string // "NULL" when it does not fit
	}{
		{"12", "VARCHAR", "BIGINT", "12"},
		{"-12", "VARCHAR", "INTEGER", "-12"},
		{" 7 ", "VARCHAR", "BIGINT", "7"},
		{"12.0", "VARCHAR", "BIGINT", "12"},
		{"12.5", "VARCHAR", "BIGINT", "NULL"},
		{"12.5", "VARCHAR", "INTEGER", "NULL"},
		{"3000000000", "VARCHAR", "INTEGER", "NULL"},
		{"3000000000", "VARCHAR", "BIGINT", "3000000000"},
		{"abc", "VARCHAR", "BIGINT", "NULL"},
		{"1,000", "VARCHAR", "BIGINT", "NULL"},
		{"1000.5", "VARCHAR", "DECIMAL(10,2)", "1000.50"},
		{"1000.50000", "VARCHAR", "DECIMAL(10,2)", "1000.50"},
		{"-.25", "VARCHAR", "DECIMAL(10,2)", "-0.25"},
		{"1000.505", "VARCHAR", "DECIMAL(10,2)", "NULL"},
		{"0.125", "VARCHAR", "DECIMAL(10,2)", "NULL"},
		{"12", "VARCHAR", "DECIMAL(4,0)", "12"},
		{"12.5", "VARCHAR", "DECIMAL(4,0)", "NULL"},
		{"123456789", "VARCHAR", "DECIMAL(4,0)", "NULL"},
		{"1.5", "VARCHAR", "DOUBLE", "1.5"},
		{"2024-02-29", "VARCHAR", "DATE", "2024-02-29"},
		{"2024-02-30", "VARCHAR", "DATE", "NULL"},
		{"2024-01-02 00:00:00", "VARCHAR", "DATE", "2024-01-02"},
		{"2024-01-02 10:00", "VARCHAR", "DATE", "NULL"},
		{"2024-01-02 10:00", "VARCHAR", "TIMESTAMP", "2024-01-02 10:00:00"},
		{"TRUE", "VARCHAR", "BOOLEAN", "true"},
		{"false", "VARCHAR", "BOOLEAN", "false"},
		{"maybe", "VARCHAR", "BOOLEAN", "NULL"},
		{"12.5", "DOUBLE", "BIGINT", "NULL"},
		{"12.0", "DOUBLE", "BIGINT", "12"},
		{"0.125", "DOUBLE", "DECIMAL(10,2)", "NULL"},
		{"0.25", "DOUBLE", "DECIMAL(10,2)", "0.25"},
		{"1.25", "DECIMAL(10,3)", "DECIMAL(10,2)", "1.25"},
		{"1.255", "DECIMAL(10,3)", "DECIMAL(10,2)", "NULL"},
		{"1.5", "FLOAT", "INTEGER", "NULL"},
		{"2024-01-02 10:00:00", "TIMESTAMP", "DATE", "NULL"},
		{"2024-01-02 00:00:00", "TIMESTAMP", "DATE", "2024-01-02"},
		{"5", "INTEGER", "BIGINT", "5"},
		{"5", "BIGINT", "VARCHAR", "5"},
	}
	for _, c := range cases {
		q := fmt.Sprintf("SELECT CAST(%s AS VARCHAR) FROM (SELECT CAST(%s AS %s) AS v)", cast("v", c.from, c.to), literal(c.value), c.from)
		var got sql.NullString
		if err := db.QueryRow(q).Scan(&got); err != nil {
			t.Errorf("%s %s → %s: %v", c.from, c.value, c.to, err)
			continue
		}
		if s := cmpNull(got); s != c.want {
			t.Errorf("%s %q → %s = %s, want %s", c.from, c.value, c.to, s, c.want)
		}
	}
}

func cmpNull(s sql.NullString) string {
	if !s.Valid {
		return "NULL"
	}
	return s.String
}

// A version prefix that fits two versions is refused, not resolved to
// either.
func TestResolveAmbiguousPrefix(t *testing.T) {
	ctx := context.Background()
	tc := newTestCatalog(t)
	tc.mustCreate(t, peopleSpec())
	byFirst := map[byte]string{}
	// Seventeen versions are sure to share a first hex digit.
	for i := 0; i < 17; i++ {
		v := tc.mustImport(t, "people", fmt.Sprintf("%s330102199001019%03d,西湖区,%d\n", peopleCSV, i, i)).Version
		if other, ok := byFirst[v.ID[0]]; ok {
			common := 1
			for common < len(v.ID) && v.ID[common] == other[common] {
				common++
			}
			_, _, err := tc.Resolve(ctx, "people@"+v.ID[:common])
			wantInputError(t, err, "ambiguous")
			for _, id := range []string{v.ID, other} {
				if _, got, err := tc.Resolve(ctx, "people@"+id[:common+1]); err != nil || got.ID != id {
					t.Errorf("Resolve(people@%s) = %.12s, %v", id[:common+1], got.ID, err)
				}
			}
			return
		}
		byFirst[v.ID[0]] = v.ID
	}
	t.Fatal("no two versions share a first digit")
}
