package sql

import (
	"context"
	stdsql "database/sql"
	"fmt"
	"strconv"
	"strings"
)

// execer is what lockdown and loading need from a connection.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (stdsql.Result, error)
}

// lockSettings are the values a lockdown applies.
type lockSettings struct {
	threads  int
	memory   string   // memory_limit
	tempDir  string   // temp_directory; "" disables spilling
	tempSize string   // max_temp_directory_size
	allowed  []string // allowed_paths: the only files the database may touch once external access is off
	profile  bool     // keep the metrics of the last query for the job's resource report
}

// profileStatements turn on DuckDB's profiler without output: the metrics
// of the last query stay on the connection for the resource report.
var profileStatements = []string{
	"SET enable_profiling = 'no_output'",
	"SET profiling_mode = 'standard'",
	`SET custom_profiling_settings = '{"CPU_TIME": "true", "CUMULATIVE_ROWS_SCANNED": "true", "SYSTEM_PEAK_BUFFER_MEMORY": "true", "ROWS_RETURNED": "true", "LATENCY": "true"}'`,
}

// lockdownStatements returns, in the order DESIGN.md prescribes, the SET statements
// that confine a DuckDB database: resources first, then extensions, secrets, Arrow
// output shape, external access off, and the configuration locked last. A job's
// database gets no allowed_paths, even over a built view. Note that DuckDB adds temp_directory to
// allowed_directories by itself (and clearing allowed_directories does not remove
// it), so SQL could read and write files there: Run requires the job's temp
// directory to start empty and refuses file-touching SQL before it runs. The result
// writer's database is allowed exactly its output file.
func lockdownStatements(s lockSettings) []string {
	stmts := []string{
		"SET threads = " + strconv.Itoa(s.threads),
		"SET memory_limit = " + literal(s.memory),
		"SET temp_directory = " + literal(s.tempDir),
		"SET max_temp_directory_size = " + literal(s.tempSize),
	}
	if s.profile {
		stmts = append(stmts, profileStatements...)
	}
	// Always set: a job opened on a built view has DuckDB allow the view's
	// file and its WAL paths by itself, which would let the job's SQL
	// write a WAL the next job replays.
	paths := make([]string, len(s.allowed))
	for i, p := range s.allowed {
		paths[i] = literal(p)
	}
	stmts = append(stmts, "SET allowed_paths = ["+strings.Join(paths, ", ")+"]")
	return append(stmts,
		"SET autoinstall_known_extensions = false",
		"SET autoload_known_extensions = false",
		"SET allow_community_extensions = false",
		"SET allow_unsigned_extensions = false",
		"SET allow_persistent_secrets = false",
		// The external file cache keeps, per cached block, the path of every file
		// read before lockdown (the snapshot), and duckdb_external_file_cache()
		// lists them; turning it off empties it.
		"SET enable_external_file_cache = false",
		// Plain (not view, not large) Arrow strings, so arrow-go's Parquet and CSV writers accept them.
		"SET produce_arrow_string_view = false",
		"SET arrow_large_buffer_size = false",
		"SET arrow_lossless_conversion = false",
		"SET arrow_output_version = '1.0'",
		"SET enable_external_access = false",
		"SET lock_configuration = true",
	)
}

// lockdown applies lockdownStatements on conn, stopping at the first failure.
func lockdown(ctx context.Context, conn execer, s lockSettings) error {
	for _, stmt := range lockdownStatements(s) {
		if _, err := conn.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("sql: lockdown %q: %w", stmt, err)
		}
	}
	return nil
}

// ident quotes a SQL identifier.
func ident(name string) string {
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

// literal quotes a SQL string literal.
func literal(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}
