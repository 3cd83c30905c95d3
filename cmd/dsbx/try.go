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
	"github.com/datasandbox/dsbx/sandbox/wasm"
	"github.com/datasandbox/dsbx/sandbox/wasmjob"
)

// jobTryCmd is sandbox mode's other half: it runs a job locally over dummy
// data, through the same analysis or module check and the same locked-down
// execution the server uses, so that what passes here is submitted
// unchanged.
func jobTryCmd() *cobra.Command {
	var l localRun
	cmd := &cobra.Command{
		Use:   "try --table NAME=FILE.parquet (--sql QUERY | --wasm FILE.wasm)",
		Short: "Run a SQL or Wasm job locally over dummy data (sandbox mode), on the same host code as the server",
		Long: `Run a job locally over synthetic data written by 'dsbx dataset dummy NAME
--out NAME.parquet'. SQL goes through the same analysis (one SELECT, no
table or host functions) and the same locked-down DuckDB as on the server; a
Wasm module through the same check, wazero host and result checks. A job
that runs here runs there: submit it unchanged with 'dsbx job submit'. Output
checks are not applied to dummy data; a Wasm guest's log is shown here (it
is not on the server, where the guest read real data).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return l.run(cmd) },
	}
	l.flags(cmd)
	cmd.Flags().StringArrayVar(&l.tables, "table", nil, "NAME=FILE.parquet: a dummy dataset and the table name the SQL uses (repeatable; one for Wasm)")
	cmd.MarkFlagRequired("table")
	return cmd
}

// runCmd is 'dsbx run --local': sandbox mode as one command, fetching the
// dummy data from the server when no file is given.
func runCmd(g *globals) *cobra.Command {
	var l localRun
	var local bool
	var dummies []string
	var rows int64
	cmd := &cobra.Command{
		Use:   "run --local (--wasm FILE.wasm | --sql QUERY) --dummy NAME[=FILE.parquet]",
		Short: "Run a job locally over a dataset's synthetic data (sandbox mode), then submit the same job unchanged",
		Long: `Sandbox mode: run a SQL or Wasm job locally against synthetic data with the
real schema of dataset NAME, on the same host code as the server. With
--dummy NAME the synthetic rows are fetched from the server (as 'dsbx dataset
dummy' does); with --dummy NAME=FILE.parquet they are read from FILE.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !local {
				return fmt.Errorf("only --local runs are done by 'dsbx run'; to run on the real data, submit the job with 'dsbx job submit'")
			}
			work, err := os.MkdirTemp("", "dsbx-dummy-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(work)
			for _, d := range dummies {
				name, file, ok := strings.Cut(d, "=")
				if !ok {
					file = filepath.Join(work, name+".parquet")
					f, err := os.Create(file)
					if err != nil {
						return err
					}
					err = g.client().Dummy(cmd.Context(), name, "", rows, 1, "parquet", f)
					if cerr := f.Close(); err == nil {
						err = cerr
					}
					if err != nil {
						return fmt.Errorf("--dummy %s: fetch synthetic rows: %w", name, err)
					}
				}
				l.tables = append(l.tables, name+"="+file)
			}
			return l.run(cmd)
		},
	}
	l.flags(cmd)
	cmd.Flags().BoolVar(&local, "local", false, "run here, over synthetic data (required)")
	cmd.Flags().StringArrayVar(&dummies, "dummy", nil, "NAME or NAME=FILE.parquet: the dataset whose synthetic rows the job reads (repeatable for SQL)")
	cmd.Flags().Int64Var(&rows, "rows", 1000, "synthetic rows to fetch per dataset")
	cmd.MarkFlagRequired("dummy")
	return cmd
}

// localRun is one sandbox-mode run.
type localRun struct {
	tables   []string
	query    string
	wasmFile string
	maxRows  int64
}

func (l *localRun) flags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&l.query, "sql", "", "one SELECT statement")
	cmd.Flags().StringVar(&l.wasmFile, "wasm", "", "a WebAssembly module (guest ABI v1, see sandbox/wasm/ABI.md)")
	cmd.Flags().Int64Var(&l.maxRows, "max-rows", 100000, "result row cap, as on the server")
	cmd.MarkFlagsOneRequired("sql", "wasm")
	cmd.MarkFlagsMutuallyExclusive("sql", "wasm")
}

func (l *localRun) run(cmd *cobra.Command) error {
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

	var tables []sqlbox.Table
	schema := map[string][]string{}
	for _, t := range l.tables {
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
		tables = append(tables, table)
	}
	out := filepath.Join(work, "result.parquet")
	limits := sqlbox.Limits{Memory: "512MB", Threads: 2, Timeout: time.Minute, MaxRows: l.maxRows, MaxBytes: 64 << 20, TempDir: filepath.Join(work, "tmp")}
	if l.wasmFile != "" {
		if err := l.runWasm(cmd, tables, limits, out); err != nil {
			return err
		}
		return printParquet(cmd, db, out)
	}
	an, err := sqlbox.Analyze(ctx, l.query, schema)
	if err != nil {
		return &exitError{code: 3, err: fmt.Errorf("the server would refuse this SQL: %w", err)}
	}
	rep, err := sqlbox.Run(ctx, sqlbox.Spec{Query: an.SQL, Tables: tables, Out: out, Limits: limits})
	if err != nil {
		return &exitError{code: 3, err: err}
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "ran in %s: %d rows; aggregate=%v; fields read: %v\n", rep.Wall.Round(time.Millisecond), rep.Rows, an.Aggregate, an.Fields)
	return printParquet(cmd, db, out)
}

// runWasm runs the module over the one dummy table it reads, through the
// same wasmjob host as the server, and shows the guest's log.
func (l *localRun) runWasm(cmd *cobra.Command, tables []sqlbox.Table, limits sqlbox.Limits, out string) error {
	if len(tables) != 1 {
		return fmt.Errorf("a Wasm job reads one dataset; give exactly one dummy table, not %d", len(tables))
	}
	module, err := os.ReadFile(l.wasmFile)
	if err != nil {
		return err
	}
	m, err := wasm.Check(cmd.Context(), module)
	if err != nil {
		return &exitError{code: 3, err: fmt.Errorf("the server would refuse %s: %w", l.wasmFile, err)}
	}
	t := tables[0]
	have := map[string]bool{}
	for _, c := range t.Columns {
		have[c.Name] = true
	}
	t.Columns = nil
	for _, f := range m.Fields {
		if !have[f] {
			return &exitError{code: 3, err: fmt.Errorf("%s declares field %s, which %s does not have", l.wasmFile, f, t.Name)}
		}
		t.Columns = append(t.Columns, sqlbox.Column{Name: f, Form: sqlbox.FormRaw})
	}
	rep, err := wasmjob.Run(cmd.Context(), wasmjob.Spec{Module: module, Table: t, Out: out, Limits: wasmjob.Limits{
		Timeout: limits.Timeout, Memory: limits.Memory, Threads: limits.Threads,
		MaxRows: limits.MaxRows, MaxBytes: limits.MaxBytes, TempDir: limits.TempDir,
	}})
	w := cmd.ErrOrStderr()
	if rep != nil && rep.Guest != nil {
		if log := strings.TrimSpace(rep.Guest.Log); log != "" {
			fmt.Fprintf(w, "guest log:\n%s\n", log)
		}
		for _, d := range rep.Guest.Denied {
			fmt.Fprintf(w, "denied: %s\n", d)
		}
	}
	if err != nil {
		return &exitError{code: 3, err: err}
	}
	fmt.Fprintf(w, "ran in %s: read %d rows in %d batches, wrote %d rows; output %s; seed %d\n",
		rep.Wall.Round(time.Millisecond), rep.InputRows, rep.InputBatches, rep.Rows, m.Output.Kind, rep.Guest.Seed)
	if rep.CellCounts != nil {
		fmt.Fprintf(w, "rows per group, as the host counted them: %v\n", rep.CellCounts)
	}
	return nil
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
