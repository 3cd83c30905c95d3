package sql

import (
	"context"
	stdsql "database/sql"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// The adversarial suite: hostile SQL, each query run twice — through Analyze,
// which must refuse it with a clear code or attribute it correctly, and
// through run with the parse screen off, where the lockdown alone must
// contain it: an error (or a harmless result), never a file read or written
// outside the job, never a setting changed, never a crash or a hang.

// advMarker is planted in every file of the vault; advHidden starts every
// value of the snapshot's name column, which no test job may see (testSpec
// leaves it out).
const (
	advMarker = "DSBXSECRET"
	advHidden = "person "
)

// advVault is a directory of files a job must never read, and must never write into.
type advVault struct {
	dir      string
	csv      string // a CSV file whose header and value hold advMarker
	parquet  string // a Parquet file with a column and a value named after advMarker
	json     string
	text     string
	duckdb   string // a DuckDB database holding a table with advMarker
	snapshot string // the people snapshot, name column included
	planted  []string
}

func advPlantVault(t *testing.T) *advVault {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "vault")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	v := &advVault{
		dir:      dir,
		csv:      filepath.Join(dir, "s.csv"),
		parquet:  filepath.Join(dir, "s.parquet"),
		json:     filepath.Join(dir, "s.json"),
		text:     filepath.Join(dir, "s.txt"),
		duckdb:   filepath.Join(dir, "s.duckdb"),
		snapshot: writeSnapshot(t),
	}
	for path, data := range map[string]string{
		v.csv:  advMarker + "_c\n" + advMarker + "_v\n",
		v.json: `{"` + advMarker + `_c": "` + advMarker + `_v"}` + "\n",
		v.text: advMarker + " plain text\n",
	} {
		if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	db := openPlain(t)
	for _, stmt := range []string{
		`COPY (SELECT '` + advMarker + `_v' AS ` + advMarker + `_c) TO ` + literal(v.parquet) + ` (FORMAT parquet)`,
		`ATTACH ` + literal(v.duckdb) + ` AS planted`,
		`CREATE TABLE planted.t AS SELECT '` + advMarker + `_v' AS ` + advMarker + `_c`,
		`DETACH planted`,
	} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	v.planted = v.list(t)
	return v
}

// list names the vault's files.
func (v *advVault) list(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(v.dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// untouched fails the test if a job left anything in the vault.
func (v *advVault) untouched(t *testing.T, what string) {
	t.Helper()
	if got := v.list(t); !slices.Equal(got, v.planted) {
		t.Errorf("%s: the vault now holds %v, planted %v", what, got, v.planted)
	}
}

// expand fills a query's placeholders.
func (v *advVault) expand(q, tmp string) string {
	return strings.NewReplacer(
		"{csv}", v.csv, "{parquet}", v.parquet, "{json}", v.json, "{text}", v.text,
		"{duckdb}", v.duckdb, "{dir}", v.dir, "{snapshot}", v.snapshot, "{tmp}", tmp,
	).Replace(q)
}

// secrets are strings no output of a contained job may hold.
func (v *advVault) secrets() []string {
	return []string{advMarker, advHidden, v.snapshot, v.dir}
}

// advMayRun as a lockdown expectation: the unscreened run may succeed; its output
// is then checked for secrets.
const advMayRun = "(may run)"

type advCase struct {
	category string
	query    string
	// What Analyze must say: a refusal code, or "" when the query is a
	// SELECT it must accept and attribute.
	code    string
	fields  []string // code "": people fields the analysis must report (at least)
	outputs []string // code "": fields that must reach an output not aggregated
	// What the lockdown alone must do: a regexp the unscreened run's error
	// must match, or advMayRun.
	lock    string
	timeout time.Duration // the job's time limit; 5s if zero
	temp    bool          // may write and read the job's own temp directory (see TestAdversarialTempDirectory)
	check   func(t *testing.T, out string)
}

const (
	advDisabled = `disabled by configuration|external access|Permission`
	advLocked   = `configuration has been locked`
	advNotFound = `Binder Error|not found|does not exist|Catalog Error`
	advBombStop = `time limit of|Out of Memory|more than the limit of`
)

// advAllFields is every field of the people table in testTables.
var advAllFields = peopleFields

var advCases = []advCase{
	// Reading files through every kind of reader (TestAdversarialFileFunctions
	// covers every file function DuckDB has, found from its catalog).
	{category: "file", query: `SELECT * FROM read_csv('{csv}')`, code: CodeTableFunction, lock: advDisabled},
	{category: "file", query: `SELECT * FROM read_csv_auto('{csv}', header = false)`, code: CodeTableFunction, lock: advDisabled},
	{category: "file", query: `SELECT name FROM read_parquet('{snapshot}')`, code: CodeTableFunction, lock: advDisabled},
	{category: "file", query: `SELECT * FROM parquet_scan(['{parquet}', '{snapshot}'])`, code: CodeTableFunction, lock: advDisabled},
	{category: "file", query: `SELECT * FROM read_json('{json}')`, code: CodeTableFunction, lock: advDisabled},
	{category: "file", query: `SELECT * FROM read_json_auto('{json}')`, code: CodeTableFunction, lock: advDisabled},
	{category: "file", query: `SELECT * FROM read_ndjson('{json}')`, code: CodeTableFunction, lock: advDisabled},
	{category: "file", query: `SELECT content FROM read_text('{text}')`, code: CodeTableFunction, lock: advDisabled},
	{category: "file", query: `SELECT content FROM read_blob('/etc/passwd')`, code: CodeTableFunction, lock: advDisabled},
	{category: "file", query: `SELECT file FROM glob('{dir}/*')`, code: CodeTableFunction, lock: advDisabled},
	{category: "file", query: `SELECT * FROM parquet_metadata('{snapshot}')`, code: CodeTableFunction, lock: advDisabled},
	{category: "file", query: `SELECT * FROM parquet_schema('{parquet}')`, code: CodeTableFunction, lock: advDisabled},
	{category: "file", query: `SELECT * FROM sniff_csv('{csv}')`, code: CodeTableFunction, lock: advDisabled},
	{category: "file", query: `SELECT * FROM read_duckdb('{duckdb}')`, code: CodeTableFunction, lock: advDisabled},
	{category: "file", query: `SELECT * FROM '{csv}'`, code: CodeUnknownTable, lock: advDisabled},
	{category: "file", query: `SELECT * FROM "{parquet}"`, code: CodeUnknownTable, lock: advDisabled},
	{category: "file", query: `SELECT read_text('{text}')`, code: CodeForbiddenFunction, lock: advNotFound},
	{category: "file", query: `SELECT income, (SELECT content FROM read_text('{text}')) FROM people`, code: CodeTableFunction, lock: advDisabled},
	{category: "file", query: `WITH c AS (SELECT * FROM read_csv('{csv}')) SELECT * FROM c`, code: CodeTableFunction, lock: advDisabled},
	{category: "file", query: `SELECT district FROM people UNION ALL SELECT content FROM read_text('{text}')`, code: CodeTableFunction, lock: advDisabled},
	{category: "file", query: `SELECT count(*) FROM people WHERE district IN (SELECT file FROM glob('/*'))`, code: CodeTableFunction, lock: advDisabled},
	{category: "file", query: `SELECT * FROM query('SELECT * FROM read_csv(''{csv}'')')`, code: CodeTableFunction, lock: advDisabled},
	{category: "file", query: `SELECT * FROM read_csv(current_setting('temp_directory') || '/../../vault/s.csv')`, code: CodeTableFunction, lock: advDisabled},

	// Writing files.
	{category: "write", query: `COPY people TO '{dir}/out.csv'`, code: CodeNotSelect, lock: advDisabled},
	{category: "write", query: `COPY (SELECT id_number, income FROM people) TO '{dir}/out.parquet' (FORMAT parquet)`, code: CodeNotSelect, lock: advDisabled},
	{category: "write", query: `COPY people FROM '{csv}'`, code: CodeNotSelect, lock: advDisabled},
	{category: "write", query: `EXPORT DATABASE '{dir}/export'`, code: CodeNotSelect, lock: advDisabled},
	{category: "write", query: `CREATE TABLE leak AS SELECT * FROM people; COPY leak TO '{dir}/leak.json'`, code: CodeNotSelect, lock: advDisabled},

	// Other databases and extensions.
	{category: "attach", query: `ATTACH '{duckdb}' AS planted`, code: CodeNotSelect, lock: advDisabled},
	{category: "attach", query: `ATTACH '{dir}/new.duckdb' AS fresh`, code: CodeNotSelect, lock: advDisabled},
	{category: "attach", query: `ATTACH '{csv}' AS x (TYPE sqlite)`, code: CodeNotSelect, lock: `disabled|not (been )?loaded|Extension|extension`},
	{category: "extension", query: `INSTALL httpfs`, code: CodeNotSelect, lock: advDisabled},
	{category: "extension", query: `FORCE INSTALL httpfs FROM 'http://127.0.0.1:1/'`, code: CodeNotSelect, lock: advDisabled},
	{category: "extension", query: `LOAD httpfs`, code: CodeNotSelect, lock: advDisabled},
	{category: "extension", query: `LOAD '{dir}/evil.duckdb_extension'`, code: CodeNotSelect, lock: `disabled`},
	{category: "extension", query: `SELECT * FROM read_csv('http://127.0.0.1:1/x.csv')`, code: CodeTableFunction, lock: advDisabled},

	// Settings: every attempt to change one fails, and the job reads them
	// back unchanged.
	{category: "setting", query: `SET enable_external_access = true`, code: CodeNotSelect, lock: advLocked},
	{category: "setting", query: `SET enable_external_access = true; SELECT * FROM read_text('{text}')`, code: CodeNotSelect, lock: advLocked},
	{category: "setting", query: `SET lock_configuration = false`, code: CodeNotSelect, lock: advLocked},
	{category: "setting", query: `RESET lock_configuration`, code: CodeNotSelect, lock: advLocked},
	{category: "setting", query: `RESET enable_external_access`, code: CodeNotSelect, lock: advLocked},
	{category: "setting", query: `SET GLOBAL enable_external_access = true`, code: CodeNotSelect, lock: advLocked},
	{category: "setting", query: `SET GLOBAL memory_limit = '64GB'`, code: CodeNotSelect, lock: advLocked},
	{category: "setting", query: `SET SESSION threads = 64`, code: CodeNotSelect, lock: advLocked},
	{category: "setting", query: `SET allowed_directories = ['/']`, code: CodeNotSelect, lock: advLocked},
	{category: "setting", query: `SET allowed_paths = ['{csv}']`, code: CodeNotSelect, lock: advLocked},
	{category: "setting", query: `SET disabled_filesystems = ''`, code: CodeNotSelect, lock: advLocked},
	{category: "setting", query: `SET temp_directory = '{dir}'`, code: CodeNotSelect, lock: advLocked},
	{category: "setting", query: `SET log_query_path = '{dir}/queries.log'`, code: CodeNotSelect, lock: advLocked},
	{category: "setting", query: `SET profiling_output = '{dir}/profile.json'`, code: CodeNotSelect, lock: advLocked},
	{category: "setting", query: `SET enable_logging = true`, code: CodeNotSelect, lock: advLocked},
	{category: "setting", query: `SET autoinstall_known_extensions = true`, code: CodeNotSelect, lock: advLocked},
	{category: "setting", query: `RESET ALL`, code: CodeNotSelect, lock: `Can only SET or RESET|locked`},
	{category: "setting", query: `PRAGMA threads = 64`, code: CodeNotSelect, lock: advLocked},
	// PRAGMA enable_profiling is not guarded by lock_configuration: it runs,
	// and later queries of the same job print their plans on the host's
	// stdout; profiling_output, which would write a file, stays locked.
	{category: "setting", query: `PRAGMA enable_profiling`, code: CodeNotSelect, lock: advMayRun},
	{category: "setting", query: `PRAGMA enable_profiling; PRAGMA profiling_output = '{dir}/profile.json'`, code: CodeNotSelect, lock: advLocked},
	{category: "setting", query: `PRAGMA enable_external_access`, code: CodeNotSelect, lock: `does not exist`},
	{category: "setting", query: `SELECT name, value FROM duckdb_settings() WHERE name IN ('enable_external_access', 'lock_configuration', 'allowed_paths', 'autoload_known_extensions', 'memory_limit', 'threads')`,
		code: CodeTableFunction, lock: advMayRun, check: advSettingsHeld},
	{category: "setting", query: `SELECT current_setting('enable_external_access')::VARCHAR AS ext, current_setting('lock_configuration')::VARCHAR AS locked`,
		code: CodeForbiddenFunction, lock: advMayRun, check: func(t *testing.T, out string) {
			if out != "{'ext': false, 'locked': true}" {
				t.Errorf("settings read back as %q", out)
			}
		}},
	{category: "setting", query: `SELECT * FROM pg_settings`, code: CodeUnknownTable, lock: advMayRun},
	{category: "setting", query: `SELECT getenv('HOME')`, code: CodeForbiddenFunction, lock: advNotFound},
	{category: "setting", query: `SELECT getvariable('x')`, code: CodeForbiddenFunction, lock: advMayRun},
	{category: "call", query: `CALL pragma_version()`, code: CodeNotSelect, lock: advMayRun},
	{category: "call", query: `CALL duckdb_settings()`, code: CodeNotSelect, lock: advMayRun},
	{category: "call", query: `CALL checkpoint()`, code: CodeNotSelect, lock: advMayRun},
	{category: "catalog", query: `SELECT * FROM duckdb_external_file_cache()`, code: CodeTableFunction, lock: advMayRun},
	{category: "catalog", query: `SELECT * FROM duckdb_tables()`, code: CodeTableFunction, lock: advMayRun},
	{category: "catalog", query: `SELECT * FROM information_schema.columns`, code: CodeUnknownTable, lock: advMayRun},
	{category: "catalog", query: `SELECT * FROM duckdb_temporary_files()`, code: CodeTableFunction, lock: advMayRun},
	{category: "catalog", query: `SELECT current_query()`, code: CodeForbiddenFunction, lock: advMayRun},
	{category: "catalog", query: `DESCRIBE people`, code: CodeTableFunction, lock: advMayRun},
	{category: "catalog", query: `SUMMARIZE people`, code: CodeTableFunction, lock: advMayRun},
	{category: "catalog", query: `SHOW TABLES`, code: CodeTableFunction, lock: advMayRun},

	// Resource bombs: the time or memory limit stops them, soon after the deadline.
	{category: "bomb", query: `WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r`,
		fields: []string{}, lock: advBombStop, timeout: 500 * time.Millisecond},
	{category: "bomb", query: `WITH RECURSIVE r(n, s) AS (SELECT 1, district FROM people UNION ALL SELECT n + 1, s || s FROM r) SELECT max(length(s)) FROM r`,
		fields: []string{"district"}, lock: advBombStop, timeout: 500 * time.Millisecond},
	{category: "bomb", query: `SELECT count(*) FROM people a, people b, people c, people d`,
		fields: []string{}, lock: advBombStop, timeout: 500 * time.Millisecond},
	{category: "bomb", query: `SELECT a.income, b.income, c.district FROM people a, people b, people c`,
		fields: []string{"district", "income"}, lock: advBombStop, timeout: 500 * time.Millisecond},
	{category: "bomb", query: `SELECT repeat('x', 1e10)`, fields: []string{}, lock: `No function matches|Binder Error`},
	{category: "bomb", query: `SELECT length(repeat('x', CAST(1e10 AS BIGINT)))`, fields: []string{}, lock: `maximum supported string size|Out of Range`},
	{category: "bomb", query: `SELECT repeat(district, 10000000000) FROM people`,
		fields: []string{"district"}, lock: `maximum supported string size|Out of Range|Out of Memory`, timeout: 500 * time.Millisecond},
	{category: "bomb", query: `SELECT length(string_agg(repeat(district, 1000000), '')) FROM people`,
		fields: []string{"district"}, lock: advBombStop, timeout: 500 * time.Millisecond},
	// RE2 does not backtrack: patterns that are exponential elsewhere run in linear time.
	{category: "bomb", query: `SELECT count(*) FROM people WHERE regexp_matches(repeat(district, 1000), '(a*)*(b|c+)*$d')`,
		fields: []string{"district"}, lock: advMayRun, timeout: 500 * time.Millisecond},
	{category: "bomb", query: `SELECT count(*) FROM people a, people b, people c WHERE regexp_matches(a.district || b.district || c.district, '^(([a-z])+.)+[A-Z]([a-z])+$')`,
		fields: []string{"district"}, lock: advMayRun + "|" + advBombStop, timeout: 500 * time.Millisecond},
	{category: "bomb", query: `SELECT count(*) FROM people WHERE regexp_matches(district, repeat('(a|b|c)*', 20000))`,
		fields: []string{"district"}, lock: advMayRun + `|pattern too large|Invalid Input|` + advBombStop, timeout: 500 * time.Millisecond},
	{category: "bomb", query: `SELECT count(*) FROM people a, people b, people c, people d, people e WHERE hash(a.income, b.income, c.income, d.income, e.income) = 7`,
		fields: []string{"income"}, lock: advBombStop, timeout: 500 * time.Millisecond},

	// Unicode and comment tricks: what DuckDB parses is what Analyze sees.
	{category: "text", query: `SELECT/**/name FROM people`, fields: []string{"name"}, outputs: []string{"name"}, lock: advNotFound},
	{category: "text", query: "SELECT income -- \n, name FROM people", fields: []string{"income", "name"}, outputs: []string{"name"}, lock: advNotFound},
	{category: "text", query: `SELECT income /* , name */ FROM people`, fields: []string{"income"}, lock: advMayRun, check: func(t *testing.T, out string) {
		if strings.Contains(out, "name") {
			t.Errorf("the commented-out column ran: %.80q", out)
		}
	}},
	{category: "text", query: "SELECT na\u200bme FROM people", code: CodeUnknownField, lock: advNotFound},
	{category: "text", query: "SELECT\u200bname FROM people", fields: []string{"name"}, outputs: []string{"name"}, lock: advNotFound},
	{category: "text", query: "SELECT income\u00a0\u200b, name FROM people", fields: []string{"income", "name"}, outputs: []string{"name"}, lock: advNotFound},
	{category: "text", query: "SELECT ｎａｍｅ FROM people", code: CodeUnknownField, lock: advNotFound},
	{category: "text", query: "ＳＥＬＥＣＴ name FROM people", code: CodeParse, lock: `Parser Error|syntax error`},
	{category: "text", query: "SELECT n\u0430me FROM people", code: CodeUnknownField, lock: advNotFound},
	{category: "text", query: `SELECT "NAME" FROM "PEOPLE"`, fields: []string{"name"}, outputs: []string{"name"}, lock: advNotFound},
	{category: "text", query: "SELECT income FROM people WHERE district = 'x\x00' OR name > ''", code: CodeParse, lock: `Parser Error|unterminated`},
	{category: "text", query: "SELECT income FROM people --\u2028, name FROM people", fields: []string{"income"}, lock: advMayRun},

	// Several statements.
	{category: "multi", query: `SELECT 1; SELECT name FROM people`, code: CodeMultipleStatements, lock: advNotFound},
	{category: "multi", query: `SELECT income FROM people; COPY people TO '{dir}/m.csv'`, code: CodeNotSelect, lock: advDisabled},
	{category: "multi", query: `SELECT 1; ATTACH '{dir}/m.duckdb' AS m; SELECT 2`, code: CodeNotSelect, lock: advDisabled},
	{category: "multi", query: "SELECT income FROM people;\n;\nSELECT content FROM read_text('{text}')", code: CodeMultipleStatements, lock: advDisabled},

	// Reaching a field outside the allowed view (name is never granted):
	// Analyze attributes it, the lockdown's table does not hold it.
	{category: "reach", query: `SELECT name AS district FROM people`, fields: []string{"name"}, outputs: []string{"name"}, lock: advNotFound},
	{category: "reach", query: `SELECT * FROM people`, fields: advAllFields, outputs: advAllFields, lock: advMayRun},
	{category: "reach", query: `SELECT p.* EXCLUDE (income) FROM people p`, fields: advAllFields, outputs: []string{"name"}, lock: advMayRun},
	{category: "reach", query: `SELECT * REPLACE (name AS district) FROM people`, fields: advAllFields, outputs: []string{"name"}, lock: advNotFound},
	{category: "reach", query: `SELECT COLUMNS('n.*') FROM people`, fields: advAllFields, outputs: []string{"name"}, lock: advMayRun},
	{category: "reach", query: `SELECT COLUMNS('^na') FROM people`, fields: advAllFields, outputs: []string{"name"}, lock: `No matching columns|Binder Error`},
	{category: "reach", query: `SELECT COLUMNS(c -> c LIKE '%am%') FROM people`, fields: advAllFields, outputs: []string{"name"}, lock: `No matching columns|Binder Error`},
	{category: "reach", query: `SELECT {'x': name} FROM people`, fields: []string{"name"}, outputs: []string{"name"}, lock: advNotFound},
	{category: "reach", query: `SELECT struct_pack(x := name, y := income) FROM people`, fields: []string{"income", "name"}, outputs: []string{"name"}, lock: advNotFound},
	{category: "reach", query: `SELECT row(name, income) FROM people`, fields: []string{"income", "name"}, outputs: []string{"name"}, lock: advNotFound},
	{category: "reach", query: `SELECT people FROM people`, fields: advAllFields, outputs: advAllFields, lock: advMayRun},
	{category: "reach", query: `SELECT hash(people) FROM people`, fields: advAllFields, outputs: advAllFields, lock: advMayRun},
	{category: "reach", query: `SELECT to_json(p) FROM people p`, fields: advAllFields, outputs: advAllFields, lock: advMayRun},
	{category: "reach", query: `SELECT row_to_json(people) FROM people`, fields: advAllFields, outputs: advAllFields, lock: advMayRun},
	{category: "reach", query: `SELECT json_extract_string(to_json(people), '$.name') FROM people`, fields: advAllFields, outputs: []string{"name"}, lock: advMayRun},
	{category: "reach", query: `SELECT struct_extract(people, 'name') FROM people`, fields: advAllFields, outputs: []string{"name"}, lock: advNotFound + `|Could not find key`},
	{category: "reach", query: `SELECT people.name FROM people`, fields: []string{"name"}, outputs: []string{"name"}, lock: advNotFound},
	{category: "reach", query: `SELECT d FROM people AS p(a, b, c, d)`, fields: advAllFields, outputs: advAllFields, lock: advMayRun},
	{category: "reach", query: `SELECT #2 FROM people`, fields: advAllFields, outputs: advAllFields, lock: advMayRun},
	{category: "reach", query: `UNPIVOT people ON name, district INTO NAME k VALUE v`, code: CodeTableFunction, lock: advNotFound},
	{category: "reach", query: `SELECT * FROM (UNPIVOT people ON COLUMNS(* EXCLUDE (income, birth_date)) INTO NAME k VALUE v)`, code: CodeTableFunction, lock: advMayRun},
	{category: "reach", query: `SELECT first_value(name) OVER (ORDER BY income) FROM people`, fields: []string{"income", "name"}, outputs: []string{"name"}, lock: advNotFound},
	{category: "reach", query: `SELECT sum(income) OVER (PARTITION BY name) FROM people`, fields: []string{"income", "name"}, outputs: []string{"income", "name"}, lock: advNotFound},
	{category: "reach", query: `SELECT list(name) FROM people`, fields: []string{"name"}, outputs: []string{"name"}, lock: advNotFound},
	{category: "reach", query: `SELECT max(name), count(*) FROM people`, fields: []string{"name"}, outputs: []string{"name"}, lock: advNotFound},
	{category: "reach", query: `SELECT (SELECT string_agg(name, ',') FROM people)`, fields: []string{"name"}, outputs: []string{"name"}, lock: advNotFound},
	{category: "reach", query: `WITH c(x) AS (SELECT name FROM people) SELECT x FROM c`, fields: []string{"name"}, outputs: []string{"name"}, lock: advNotFound},
	{category: "reach", query: `SELECT income FROM people ORDER BY name`, fields: []string{"income", "name"}, lock: advNotFound},
	{category: "reach", query: `SELECT count(*) FROM people WHERE name LIKE '%1'`, fields: []string{"name"}, lock: advNotFound},
	{category: "reach", query: `SELECT rowid FROM people`, code: CodeUnknownField, lock: advMayRun},
	{category: "reach", query: `SELECT x.name FROM (SELECT people AS x FROM people)`, fields: advAllFields, outputs: []string{"name"}, lock: advNotFound + `|Could not find key`},
	{category: "reach", query: `SELECT unnest(people) FROM people`, fields: advAllFields, outputs: advAllFields, lock: advMayRun},

	// The job's own temp directory is the one place the lockdown lets SQL
	// touch files; only the screen keeps jobs out of it.
	{category: "temp", query: `COPY people TO '{tmp}/a.csv'; SELECT * FROM read_csv('{tmp}/a.csv')`, code: CodeNotSelect, lock: advMayRun, temp: true},
}

// advIntList scans a DuckDB LIST of integers.
type advIntList []int

func (l *advIntList) Scan(src any) error {
	items, ok := src.([]any)
	if !ok {
		return fmt.Errorf("scan %T into a list", src)
	}
	for _, it := range items {
		switch n := it.(type) {
		case int64:
			*l = append(*l, int(n))
		case uint64:
			*l = append(*l, int(n))
		default:
			return fmt.Errorf("list item %T", it)
		}
	}
	return nil
}

// advSettingsHeld checks a job's read-back of duckdb_settings().
func advSettingsHeld(t *testing.T, out string) {
	t.Helper()
	for _, want := range []string{
		"{'name': enable_external_access, 'value': false}",
		"{'name': lock_configuration, 'value': true}",
		"{'name': allowed_paths, 'value': '[]'}",
		"{'name': autoload_known_extensions, 'value': false}",
		"{'name': threads, 'value': 2}",
		"{'name': memory_limit, 'value': 244.1 MiB}",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("settings read back without %s:\n%s", want, out)
		}
	}
}

func TestAdversarialAnalyze(t *testing.T) {
	if len(advCases) < 30 {
		t.Fatalf("only %d hostile cases", len(advCases))
	}
	v := advPlantVault(t)
	for _, c := range advCases {
		q := v.expand(c.query, "/srv/jobs/7/tmp")
		a, err := Analyze(ctx(t), q, testTables)
		if c.code != "" {
			var e *Error
			if !errors.As(err, &e) {
				t.Errorf("%s %q: err = %v, want refusal %s", c.category, c.query, err, c.code)
				continue
			}
			if e.Code != c.code || e.Message == "" {
				t.Errorf("%s %q: refused %s (%s), want %s with a message", c.category, c.query, e.Code, e.Message, c.code)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s %q: %v, want it analysed", c.category, c.query, err)
			continue
		}
		got := a.Fields["people"]
		for _, f := range c.fields {
			if !slices.Contains(got, f) {
				t.Errorf("%s %q: fields %v miss %s", c.category, c.query, got, f)
			}
		}
		for _, f := range c.outputs {
			reached := false
			for _, o := range a.Outputs {
				if slices.Contains(o.Fields, f) && !o.Aggregated {
					reached = true
				}
			}
			if !reached {
				t.Errorf("%s %q: no unaggregated output attributed to %s: %+v", c.category, c.query, f, a.Outputs)
			}
		}
		// What runs is DuckDB's rendering, which Analyze analysed: it holds
		// no comment or trick the analysis did not see.
		again, err := Analyze(ctx(t), a.SQL, testTables)
		if err != nil || !slices.Equal(again.Functions, a.Functions) || !maps.EqualFunc(again.Fields, a.Fields, func(x, y []string) bool { return slices.Equal(x, y) }) {
			t.Errorf("%s %q: the rendered SQL %q analyses differently: %v", c.category, c.query, a.SQL, err)
		}
	}
	v.untouched(t, "analysis")
}

func TestAdversarialLockdownAlone(t *testing.T) {
	v := advPlantVault(t)
	for _, c := range advCases {
		t.Run(c.category, func(t *testing.T) {
			t.Parallel()
			out, err := advRunUnscreened(t, v, c, "")
			if err != nil {
				if c.lock == advMayRun {
					return // an error is containment too
				}
				if !regexp.MustCompile(c.lock).MatchString(err.Error()) {
					t.Errorf("%q: err = %v, want it to match %q", c.query, advFirstLine(err), c.lock)
				}
				return
			}
			if !strings.HasPrefix(c.lock, advMayRun) {
				t.Errorf("%q ran with the screen off, want an error matching %q; output %.200q", c.query, c.lock, out)
			}
			if c.check != nil {
				c.check(t, out)
			}
		})
	}
}

// advRunUnscreened runs c with the parse screen off, in a job whose temp
// directory exists (as the job service makes it), and checks what no
// hostile query may do: leave a file, write into the vault or the temp
// directory, leak a secret into its output or error, or outlast its deadline.
// It returns the result's rows as text. With views set, the job's tables
// are a built view kept there.
func advRunUnscreened(t *testing.T, v *advVault, c advCase, views string) (string, error) {
	t.Helper()
	spec := testSpec(t, v.snapshot, "")
	spec.Views = views
	spec.Query = strings.ReplaceAll(v.expand(c.query, spec.Limits.TempDir), "{out}", spec.Out)
	spec.Limits.Timeout = 5 * time.Second
	if c.timeout > 0 {
		spec.Limits.Timeout = c.timeout
	}
	if err := os.MkdirAll(spec.Limits.TempDir, 0o700); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := run(context.Background(), spec, false, nil)
	if took := time.Since(start); took > spec.Limits.Timeout+4*time.Second {
		t.Errorf("%q returned after %s, limit %s", c.query, took.Round(time.Millisecond), spec.Limits.Timeout)
	}
	v.untouched(t, c.query)
	if entries, _ := os.ReadDir(spec.Limits.TempDir); len(entries) > 0 && !c.temp {
		t.Errorf("%q left %d entries in the job's temp directory", c.query, len(entries))
	}
	if left, _ := filepath.Glob(privateView(spec.Out) + "*"); len(left) > 0 {
		t.Errorf("%q left the job's copy of its view: %v", c.query, left)
	}
	if err != nil {
		noFileAt(t, spec.Out)
		for _, s := range []string{advMarker, advHidden} {
			if strings.Contains(err.Error(), s) {
				t.Errorf("%q: the error reveals %q: %v", c.query, s, err)
			}
		}
		return "", err
	}
	raw, rerr := os.ReadFile(spec.Out)
	if rerr != nil {
		t.Fatal(rerr)
	}
	var out string
	if err := openPlain(t).QueryRow(`SELECT coalesce(string_agg(CAST(t AS VARCHAR), chr(10)), '') FROM read_parquet(` + literal(spec.Out) + `) t`).Scan(&out); err != nil {
		t.Fatal(err)
	}
	for _, s := range v.secrets() {
		if strings.Contains(out, s) || strings.Contains(string(raw), s) {
			t.Errorf("%q: the result reveals %q: %.300q", c.query, s, out)
		}
	}
	return out, nil
}

func advFirstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}

// TestAdversarialSettingsHold runs every hostile statement on one locked
// connection and reads every setting back there: none changed, and files are
// still out of reach.
func TestAdversarialSettingsHold(t *testing.T) {
	v := advPlantVault(t)
	db := openPlain(t)
	db.SetMaxOpenConns(1)
	conn, err := db.Conn(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	tmp := filepath.Join(t.TempDir(), "tmp")
	if _, err := conn.ExecContext(ctx(t), `CREATE TABLE people AS SELECT id_number, district, income, birth_date FROM read_parquet(`+literal(v.snapshot)+`)`); err != nil {
		t.Fatal(err)
	}
	if err := lockdown(ctx(t), conn, lockSettings{threads: 2, memory: "256MB", tempDir: tmp, tempSize: "256MB"}); err != nil {
		t.Fatal(err)
	}
	before := advSettings(t, conn)
	// PRAGMA enable_profiling bypasses lock_configuration (DuckDB applies it
	// to the client directly): those statements go last, after the strict
	// read-back, and what they change is reported, not failed.
	profiles := func(c advCase) bool { return strings.Contains(c.query, "PRAGMA enable_profiling") }
	exec := func(c advCase) {
		qctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := conn.ExecContext(qctx, v.expand(c.query, tmp))
		if c.category == "setting" && c.lock != advMayRun && err == nil {
			t.Errorf("%q succeeded on a locked connection", c.query)
		}
	}
	for _, c := range advCases {
		if c.category != "bomb" && !c.temp && !profiles(c) {
			exec(c)
		}
	}
	after := advSettings(t, conn)
	if !maps.Equal(before, after) {
		for name, was := range before {
			if after[name] != was {
				t.Errorf("setting %s changed from %q to %q", name, was, after[name])
			}
		}
		t.Errorf("%d settings before, %d after", len(before), len(after))
	}
	for name, want := range map[string]string{"enable_external_access": "false", "lock_configuration": "true", "allowed_paths": "[]", "autoinstall_known_extensions": "false"} {
		if after[name] != want {
			t.Errorf("%s = %q, want %q", name, after[name], want)
		}
	}
	for _, q := range []string{`SELECT content FROM read_text(` + literal(v.text) + `)`, `SELECT * FROM read_csv(` + literal(v.csv) + `)`} {
		var s string
		if err := conn.QueryRowContext(ctx(t), q).Scan(&s); err == nil {
			t.Errorf("after the hostile statements %s read %q", q, s)
		}
	}
	for _, c := range advCases {
		if profiles(c) {
			exec(c)
		}
	}
	profiled := advSettings(t, conn)
	for name, now := range profiled {
		if now != after[name] {
			if name != "enable_profiling" && name != "profiling_mode" && name != "profiling_output" {
				t.Errorf("setting %s changed from %q to %q", name, after[name], now)
			} else {
				t.Logf("KNOWN GAP: PRAGMA enable_profiling changed %s from %q to %q despite lock_configuration; profiles go to the host's stdout", name, after[name], now)
			}
		}
	}
	if profiled["profiling_output"] != "" {
		t.Errorf("profiling_output = %q: profiles would be written to a file", profiled["profiling_output"])
	}
	v.untouched(t, "statements on a locked connection")
}

func advSettings(t *testing.T, conn *stdsql.Conn) map[string]string {
	t.Helper()
	rows, err := conn.QueryContext(ctx(t), `SELECT name, coalesce(value, '') FROM duckdb_settings()`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	m := map[string]string{}
	for rows.Next() {
		var name, value string
		if err := rows.Scan(&name, &value); err != nil {
			t.Fatal(err)
		}
		m[name] = value
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestAdversarialFileFunctions finds, in plain DuckDBs, every function whose
// answer changes when the files it is pointed at disappear — every file
// reader, including any a new DuckDB version adds — and checks each is
// forbidden by name, refused by Analyze, and stopped by the lockdown alone.
func TestAdversarialFileFunctions(t *testing.T) {
	v := advPlantVault(t)
	type fn struct {
		name, typ string
		arities   []int
	}
	var fns []fn
	rows, err := openPlain(t).Query(`SELECT function_name, function_type, list(DISTINCT len(parameters)) FROM duckdb_functions()
		WHERE function_type IN ('table', 'scalar', 'table_macro', 'macro')
		  AND (len(parameter_types) = 0 OR parameter_types[1] IS NULL OR parameter_types[1] IN ('VARCHAR', 'VARCHAR[]', 'ANY', 'BLOB'))
		GROUP BY ALL ORDER BY ALL`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var f fn
		var lens advIntList
		if err := rows.Scan(&f.name, &f.typ, &lens); err != nil {
			t.Fatal(err)
		}
		for _, n := range lens {
			if n >= 1 && n <= 3 {
				f.arities = append(f.arities, n)
			}
		}
		if f.typ == "table" || f.typ == "table_macro" {
			f.arities = []int{1, 2, 3} // their named parameters are listed too
		}
		slices.Sort(f.arities)
		fns = append(fns, f)
	}
	rows.Close()
	// Names that also belong to a scalar or aggregate (histogram is both an
	// aggregate and a table macro over a file or table name).
	scalarNames := map[string]bool{}
	rows, err = openPlain(t).Query(`SELECT DISTINCT function_name FROM duckdb_functions() WHERE function_type NOT IN ('table', 'table_macro')`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		scalarNames[name] = true
	}
	rows.Close()
	// Functions that change the database's state are not called; Analyze
	// refuses every table function anyway, which is checked below.
	sideEffects := map[string]bool{
		"enable_logging": true, "disable_logging": true, "enable_profiling": true, "disable_profiling": true,
		"truncate_duckdb_logs": true, "checkpoint": true, "force_checkpoint": true,
		"enable_peg_parser": true, "disable_peg_parser": true,
	}
	paths := []string{v.csv, v.parquet, v.json, v.text, v.duckdb, v.dir + "/*"}
	type probe struct {
		fn
		arity int
		path  string // "" for a scalar probed over every path at once
	}
	var probes []probe
	for _, f := range fns {
		if sideEffects[f.name] {
			continue
		}
		for _, arity := range f.arities {
			if f.typ == "table" || f.typ == "table_macro" {
				for _, p := range paths {
					probes = append(probes, probe{f, arity, p})
				}
			} else {
				probes = append(probes, probe{f, arity, ""})
			}
		}
	}
	sqlOf := func(p probe, path string) string {
		list := []string{literal(path), "'col'", "'val'"}[:p.arity]
		if p.typ == "table" || p.typ == "table_macro" {
			return "SELECT * FROM " + ident(p.name) + "(" + strings.Join(list, ", ") + ")"
		}
		if path == "" {
			list[0] = "p"
			var values []string
			for _, p := range paths {
				values = append(values, "("+literal(p)+")")
			}
			return "SELECT " + ident(p.name) + "(" + strings.Join(list, ", ") + ") FROM (VALUES " + strings.Join(values, ", ") + ") v(p)"
		}
		return "SELECT " + ident(p.name) + "(" + strings.Join(list, ", ") + ")"
	}
	// answers calls the probes (all, or those listed) in a fresh plain
	// database (no file cache carried over) and returns what each would tell
	// a job.
	blank := strings.NewReplacer(v.csv, "<path>", v.parquet, "<path>", v.json, "<path>", v.text, "<path>", v.duckdb, "<path>", v.dir+"/*", "<path>")
	answers := func(only map[int]bool) []string {
		db := openPlain(t)
		db.SetMaxOpenConns(1)
		if _, err := db.Exec("SET threads = 1"); err != nil {
			t.Fatal(err)
		}
		out := make([]string, len(probes))
		for i, p := range probes {
			if only != nil && !only[i] {
				continue
			}
			qctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			rows, err := db.QueryContext(qctx, "SELECT CAST(t AS VARCHAR) FROM ("+sqlOf(p, p.path)+") t")
			var b strings.Builder
			if err == nil {
				for rows.Next() {
					var s stdsql.NullString
					rows.Scan(&s)
					b.WriteString(s.String + "\n")
				}
				err = rows.Err()
				rows.Close()
			}
			cancel()
			if err != nil {
				b.WriteString("error: " + err.Error())
			}
			// Which path a batched probe trips on first is not fixed.
			out[i] = blank.Replace(b.String())
		}
		return out
	}
	present := answers(nil)
	moved := v.dir + ".moved"
	if err := os.Rename(v.dir, moved); err != nil {
		t.Fatal(err)
	}
	absent := answers(nil)
	if err := os.Rename(moved, v.dir); err != nil {
		t.Fatal(err)
	}
	// A probe whose answer changes from one database to the next (catalog
	// oids, time) is asked again with the files back: only a stable
	// difference counts.
	changed := map[int]bool{}
	for i := range probes {
		if present[i] != absent[i] {
			changed[i] = true
		}
	}
	again := answers(changed)
	var readers []probe
	var names []string
	for i, p := range probes {
		if changed[i] && again[i] == present[i] && !slices.Contains(names, p.name) {
			readers = append(readers, p)
			names = append(names, p.name)
		}
	}
	t.Logf("%d candidate functions, %d read files: %v", len(fns), len(readers), names)
	for _, want := range []string{"read_csv", "read_csv_auto", "read_parquet", "parquet_scan", "read_json", "read_json_auto",
		"read_ndjson", "read_text", "read_blob", "glob", "parquet_metadata", "parquet_schema", "sniff_csv", "read_duckdb"} {
		if !slices.Contains(names, want) {
			t.Errorf("%s was not found to read files: the probe is broken", want)
		}
	}
	for _, r := range readers {
		code := CodeForbiddenFunction
		if r.typ == "table" || r.typ == "table_macro" {
			code = CodeTableFunction
		}
		var e *Error
		probed := []string{r.path}
		if r.path == "" {
			probed = paths
		}
		refused := false
		for _, path := range probed {
			q := sqlOf(r, path)
			if _, err := Analyze(ctx(t), q, testTables); !errors.As(err, &e) || e.Code != code {
				t.Errorf("Analyze(%s) = %v, want %s", q, err, code)
			}
			// advRunUnscreened fails the test if the answer reveals a secret.
			_, err := advRunUnscreened(t, v, advCase{category: "file", query: q}, "")
			refused = refused || (err != nil && regexp.MustCompile(advDisabled).MatchString(err.Error()))
		}
		if !refused {
			t.Errorf("unscreened %s: file access not refused", r.name)
		}
		// Unless the name is also an ordinary function's, it is forbidden
		// outright, so it is refused in scalar position too.
		if code == CodeTableFunction && scalarNames[r.name] {
			t.Logf("%s reads files as a table function and is also a scalar or aggregate: refused in FROM only", r.name)
		} else {
			if !forbidden(r.name) {
				t.Errorf("%s reads files but functions.go does not forbid it", r.name)
			}
			if _, err := Analyze(ctx(t), "SELECT "+ident(r.name)+"('x') FROM people", testTables); !errors.As(err, &e) || e.Code != CodeForbiddenFunction {
				t.Errorf("Analyze(%s in scalar position) = %v, want %s", r.name, err, CodeForbiddenFunction)
			}
		}
	}
	// Every table function is refused in FROM, whatever it does.
	for _, f := range fns {
		if f.typ != "table" && f.typ != "table_macro" {
			continue
		}
		var e *Error
		if _, err := Analyze(ctx(t), "SELECT * FROM "+ident(f.name)+"()", testTables); !errors.As(err, &e) || (e.Code != CodeTableFunction && e.Code != CodeForbiddenFunction) {
			t.Errorf("table function %s: Analyze = %v, want it refused", f.name, err)
		}
	}
}

// TestAdversarialTempDirectory documents the lockdown's one file hole: DuckDB
// lets SQL read and write the job's temp directory even with external access
// off. The screen refuses every statement that could, and what a job finds
// there is only what it wrote itself from its own view.
func TestAdversarialTempDirectory(t *testing.T) {
	v := advPlantVault(t)
	c := advCase{category: "temp", query: `COPY (SELECT * FROM people) TO '{tmp}/a.csv'; SELECT * FROM read_csv('{tmp}/a.csv')`, temp: true}
	out, err := advRunUnscreened(t, v, c, "")
	if err != nil {
		t.Logf("the temp directory is closed to SQL now: %v", advFirstLine(err))
	} else if !strings.Contains(out, "ID000001") {
		t.Errorf("read back %.100q", out)
	}
	spec := testSpec(t, v.snapshot, v.expand(c.query, "/tmp/x"))
	var e *Error
	if _, err := Run(ctx(t), spec); !errors.As(err, &e) {
		t.Errorf("screened run: %v, want a refusal", err)
	}
}

// TestAdversarialGapFileLogging: CALL enable_logging(storage := 'file', …)
// changes the log storage through a table function that lock_configuration
// does not guard; with external access off the file storage cannot flush,
// and DuckDB throws from a destructor when the database closes, which aborts
// the process. No setting prevents it (disabled_filesystems would also stop
// spilling), so only the screen keeps it out: Analyze and Run refuse it. The
// unscreened run happens in a child process, so the abort is observed
// without killing the suite.
func TestAdversarialGapFileLogging(t *testing.T) {
	if os.Getenv("DSBX_LOGGING_CHILD") != "" {
		v := &advVault{dir: os.Getenv("DSBX_LOGGING_CHILD"), snapshot: os.Getenv("DSBX_LOGGING_SNAPSHOT")}
		spec := testSpec(t, v.snapshot, `CALL enable_logging(storage := 'file', storage_path := '`+v.dir+`/logs'); SELECT 1 AS one`)
		_, err := run(context.Background(), spec, false, nil)
		fmt.Printf("child returned: %v\n", err)
		return
	}
	v := advPlantVault(t)
	for _, q := range []string{
		`CALL enable_logging(storage := 'file', storage_path := '{dir}/logs')`,
		`SELECT * FROM enable_logging(storage := 'file', storage_path := '{dir}/logs')`,
	} {
		q = v.expand(q, "")
		var e *Error
		if _, err := Analyze(ctx(t), q, testTables); !errors.As(err, &e) {
			t.Errorf("Analyze(%s) = %v, want a refusal", q, err)
		}
		if _, err := Run(ctx(t), testSpec(t, v.snapshot, q)); !errors.As(err, &e) {
			t.Errorf("Run(%s) = %v, want a refusal", q, err)
		}
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestAdversarialGapFileLogging$", "-test.count=1")
	// The aborted child cannot remove its temp directories: they go in ours.
	cmd.Env = append(os.Environ(), "DSBX_LOGGING_CHILD="+v.dir, "DSBX_LOGGING_SNAPSHOT="+v.snapshot, "TMPDIR="+t.TempDir())
	out, err := cmd.CombinedOutput()
	v.untouched(t, "file logging")
	if err != nil {
		t.Logf("KNOWN GAP, contained only by the screen: with the screen off, file logging aborts the process (%v): %s", err, advFirstLine(errors.New(string(out))))
	} else {
		t.Logf("the unscreened run no longer aborts: %s", advFirstLine(errors.New(string(out))))
	}
}

// TestAdversarialExpressionMemoryIsContained: an admitted SELECT that only
// calls allowed functions can build huge strings inside one vector. DuckDB
// neither counts that memory against memory_limit nor checks for
// interruption until the vector is done (repeat, lpad, printf widths or
// nested replace all do it), so in process the job overruns both limits and,
// at larger sizes, the host's memory. In its worker process the job is killed
// by the watchdog, and the platform's own memory does not move.
func TestAdversarialExpressionMemoryIsContained(t *testing.T) {
	v := advPlantVault(t)
	a, err := Analyze(ctx(t), `SELECT max(length(repeat(district, 10000000))) AS m FROM people`, testTables)
	if err != nil {
		t.Fatal(err)
	}
	spec := testSpec(t, v.snapshot, a.CellSQL)
	spec.Limits.Timeout = 500 * time.Millisecond
	spec.Limits.Memory = "64MB"
	base := advResidentMB()
	start := time.Now()
	_, err = RunIsolated(context.Background(), spec)
	took := time.Since(start)
	if !errors.Is(err, ErrLimit) {
		t.Fatalf("a 10M-fold repeat per row under 64MB: %v, want a limit", err)
	}
	if limit := spec.Limits.Timeout + KillGrace + 3*time.Second; took > limit {
		t.Errorf("stopped after %s, more than %s", took, limit)
	}
	if grew := advResidentMB() - base; grew > 200 {
		t.Errorf("the platform process grew by %d MB; the job's memory belongs to its worker", grew)
	}
	noFileAt(t, spec.Out)
}

// advResidentMB is the process's resident set in MB (Linux), or 0.
func advResidentMB() int64 {
	data, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	var size, resident int64
	fmt.Sscan(string(data), &size, &resident)
	return resident * int64(os.Getpagesize()) >> 20
}
