package main

import (
	"context"
	stdsql "database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	duckdb "github.com/duckdb/duckdb-go/v2"
)

// ParquetFile is the name of the Parquet copy of an export's entries.
const ParquetFile = "entries.parquet"

// exportParquet writes the entries of the export in dir as dir/entries.parquet,
// one row per entry with its data as JSON, for analysis in DuckDB or any
// Parquet reader. The JSON Lines file stays the record; this is a copy.
func exportParquet(ctx context.Context, dir string) (int64, error) {
	c, err := duckdb.NewConnector("", nil)
	if err != nil {
		return 0, fmt.Errorf("parquet export: %w", err)
	}
	db := stdsql.OpenDB(c)
	defer db.Close()
	src, out := filepath.Join(dir, "entries.jsonl"), filepath.Join(dir, ParquetFile)
	tmp := out + ".tmp"
	os.Remove(tmp)
	quote := func(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
	_, err = db.ExecContext(ctx, `COPY (SELECT * FROM read_json(`+quote(src)+`, format = 'newline_delimited',
		columns = {seq: 'BIGINT', time: 'TIMESTAMPTZ', prev: 'VARCHAR', kind: 'VARCHAR', principal: 'VARCHAR',
		           subject: 'VARCHAR', credential: 'VARCHAR', data: 'JSON'}) ORDER BY seq)
		TO `+quote(tmp)+` (FORMAT parquet)`)
	if err != nil {
		os.Remove(tmp)
		return 0, fmt.Errorf("parquet export: %w", err)
	}
	var n int64
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM read_parquet(`+quote(tmp)+`)`).Scan(&n); err != nil {
		os.Remove(tmp)
		return 0, fmt.Errorf("parquet export: %w", err)
	}
	if err := os.Rename(tmp, out); err != nil {
		return 0, fmt.Errorf("parquet export: %w", err)
	}
	return n, nil
}
