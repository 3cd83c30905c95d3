// Package sql analyses operators' SQL and runs it in a locked-down, in-memory DuckDB
// that holds only the columns a job was allowed to see.
package sql
