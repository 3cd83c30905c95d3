package main

import (
	"database/sql"
	"encoding/csv"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	sqlbox "github.com/datasandbox/dsbx/sandbox/sql"
)

// jobTryCmd is sandbox mode's other half: it runs a job's SQL locally over
// dummy data, through the same analysis and locked-down execution the
// server uses, so that what passes here is submitted unchanged.
func jobTryCmd() *cobra.Command {
	var tables []string
	var query string
	var maxRows int64
	cmd := &cobra.Command{
		Use:   "try --table NAME=FILE.parquet --sql QUERY",
		Short: "Run SQL locally over dummy data (sandbox mode), through the same analysis and locked DuckDB as the server",
		Long: `Run a job's SQL locally over synthetic data written by 'dsbx dataset dummy
NAME --out NAME.parquet'. The query goes through the same analysis (one
SELECT, no table or host functions) and the same locked-down DuckDB as on the
server, so a query that runs here runs there; submit it unchanged with
'dsbx job submit'. Output checks are not applied to dummy data.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			work, err := os.MkdirTemp("", "dsbx-try-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(work)
			db, err := sql.Open("duckdb", "")
			if err != nil {
				return err
			}
			defer db.Close()

			var spec sqlbox.Spec
			schema := map[string][]string{}
			for _, t := range tables {
				name, file, ok := strings.Cut(t, "=")
				if !ok || name == "" || file == "" {
					return fmt.Errorf("--table %q is not NAME=FILE.parquet", t)
				}
				if !strings.EqualFold(filepath.Ext(file), ".parquet") {
					return fmt.Errorf("--table %s: %s is not Parquet; write the dummy data with --out %s.parquet so its types are exact", name, file, name)
				}
				abs, err := filepath.Abs(file)
				if err != nil {
					return err
				}
				cols, err := parquetColumns(db, abs)
				if err != nil {
					return fmt.Errorf("--table %s: %w", name, err)
				}
				schema[name] = cols
				table := sqlbox.Table{Name: name, Parquet: abs}
				for _, c := range cols {
					table.Columns = append(table.Columns, sqlbox.Column{Name: c, Form: sqlbox.FormRaw})
				}
				spec.Tables = append(spec.Tables, table)
			}
			an, err := sqlbox.Analyze(ctx, query, schema)
			if err != nil {
				return &exitError{code: 3, err: fmt.Errorf("the server would refuse this SQL: %w", err)}
			}
			spec.Query = an.SQL
			spec.Out = filepath.Join(work, "result.parquet")
			spec.Limits = sqlbox.Limits{Memory: "512MB", Threads: 2, Timeout: time.Minute, MaxRows: maxRows, MaxBytes: 64 << 20, TempDir: filepath.Join(work, "tmp")}
			rep, err := sqlbox.Run(ctx, spec)
			if err != nil {
				return &exitError{code: 3, err: err}
			}
			w := cmd.ErrOrStderr()
			fmt.Fprintf(w, "ran in %s: %d rows; aggregate=%v; fields read: %v\n", rep.Wall.Round(time.Millisecond), rep.Rows, an.Aggregate, an.Fields)
			return printParquet(cmd, db, spec.Out)
		},
	}
	cmd.Flags().StringArrayVar(&tables, "table", nil, "NAME=FILE.parquet: a dummy dataset and the table name the SQL uses (repeatable)")
	cmd.Flags().StringVar(&query, "sql", "", "one SELECT statement")
	cmd.Flags().Int64Var(&maxRows, "max-rows", 100000, "result row cap, as on the server")
	cmd.MarkFlagRequired("table")
	cmd.MarkFlagRequired("sql")
	return cmd
}

func parquetColumns(db *sql.DB, path string) ([]string, error) {
	rows, err := db.Query("SELECT name FROM parquet_schema('" + strings.ReplaceAll(path, "'", "''") + "') WHERE num_children IS NULL OR num_children = 0")
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer rows.Close()
	var cols []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return nil, err
		}
		cols = append(cols, c)
	}
	if len(cols) == 0 {
		return nil, fmt.Errorf("%s has no columns", path)
	}
	return cols, rows.Err()
}

// printParquet writes the result file to stdout as CSV.
func printParquet(cmd *cobra.Command, db *sql.DB, path string) error {
	rows, err := db.Query("SELECT * FROM read_parquet('" + strings.ReplaceAll(path, "'", "''") + "')")
	if err != nil {
		return err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return err
	}
	w := csv.NewWriter(cmd.OutOrStdout())
	w.Write(cols)
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	rec := make([]string, len(cols))
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		for i, v := range vals {
			rec[i] = v.String
		}
		w.Write(rec)
	}
	w.Flush()
	if err := rows.Err(); err != nil {
		return err
	}
	return w.Error()
}
