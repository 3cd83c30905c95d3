package sql

import (
	"context"
	stdsql "database/sql"
	"path/filepath"
	"testing"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"
)

// peopleFields are the columns of the test snapshot.
var peopleFields = []string{"id_number", "name", "district", "income", "birth_date"}

// testTables is what Analyze is told the job may name.
var testTables = map[string][]string{
	"people": peopleFields,
	"firms":  {"firm_id", "district", "employees"},
}

// openPlain opens an ordinary, unlocked DuckDB for test set-up and checks.
func openPlain(t testing.TB) *stdsql.DB {
	t.Helper()
	c, err := duckdb.NewConnector("", nil)
	if err != nil {
		t.Fatal(err)
	}
	db := stdsql.OpenDB(c)
	t.Cleanup(func() { db.Close() })
	return db
}

// writeSnapshot writes a 500-row people table to a Parquet file and returns its path.
func writeSnapshot(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "people.parquet")
	db := openPlain(t)
	_, err := db.Exec(`COPY (
		SELECT printf('ID%06d', i) AS id_number,
		       'person ' || i AS name,
		       'district ' || (i % 5) AS district,
		       1000 + (i * 37) % 900 AS income,
		       CAST(DATE '1950-01-01' + INTERVAL (i * 13) DAY AS DATE) AS birth_date
		FROM range(500) r(i)
	) TO ` + literal(path) + ` (FORMAT parquet)`)
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// testSpec is a job over the snapshot that may see every column but name.
func testSpec(t *testing.T, snapshot, query string) Spec {
	t.Helper()
	return Spec{
		Query: query,
		Tables: []Table{{Name: "people", Parquet: snapshot, Columns: []Column{
			{"id_number", FormRaw}, {"district", FormRaw}, {"income", FormRaw}, {"birth_date", FormRaw},
		}}},
		Limits: Limits{
			Memory: "256MB", Threads: 2, Timeout: 10 * time.Second,
			MaxRows: 100000, MaxBytes: 64 << 20, TempDir: filepath.Join(t.TempDir(), "tmp"),
		},
		Out: filepath.Join(t.TempDir(), "result.parquet"),
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}
