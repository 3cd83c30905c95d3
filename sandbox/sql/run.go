package sql

import (
	"context"
	stdsql "database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	duckdb "github.com/duckdb/duckdb-go/v2"
)

// Spec is one SQL job: the query, the view of the data it may see, its limits and where its result goes.
type Spec struct {
	Query  string  // analysed SQL (Analysis.SQL or Analysis.CellSQL)
	Tables []Table // what the job's database holds
	Limits Limits
	Out    string // path of the Parquet file to write (its directory exists, the file does not); on any error no file is left at Out
	// Views, if set, is a directory where the tables are kept as a built
	// view (see views.go) that the job, and later jobs with the same
	// tables, open read-only instead of copying the columns into memory.
	// It must not lie in or hold the job's temp directory.
	Views string
}

// Table is one dataset view: the host copies exactly Columns, each computed in its form, out of the snapshot Parquet file into the job's database before lockdown.
type Table struct {
	Name    string   // table name the query uses
	Parquet string   // absolute path of the immutable snapshot
	Columns []Column // the allowed columns
	// HashKey keys the hashed columns (at least MinHashKey bytes); give each
	// agreement its own, so hashes from two agreements cannot be linked.
	HashKey []byte
	// Bound, if set, limits each person's contribution, for differential
	// privacy; the job's rowid then no longer numbers the snapshot's rows.
	Bound *Bounding
}

// Bounding limits how much any one person contributes to a table: at most
// MaxRows rows per PersonKey value (the same rows, chosen by a hash of
// their position, every time) and each Clamp column held within [lo, hi]
// before any form applies.
type Bounding struct {
	PersonKey string
	MaxRows   int
	Clamp     map[string][2]float64
}

// Column is one allowed column and the form the job sees it in.
type Column struct {
	Name string
	Form string // FormRaw, FormMasked, FormHashed or FormGeneralised
}

// Limits bounds one job's resources; every field except TempSize must be set.
type Limits struct {
	Memory   string        // DuckDB memory_limit, e.g. "512MB"
	Threads  int           // DuckDB threads
	Timeout  time.Duration // wall clock for the query and the writing of its result
	MaxRows  int64         // result rows cap: exceeding it fails with ErrLimit (no truncated output)
	MaxBytes int64         // result bytes cap, on both the Arrow buffers and the Parquet file: exceeding it fails with ErrLimit
	TempDir  string        // the job's own temp directory (DuckDB's temp_directory): absent or empty, private to the job, not holding Out or a snapshot
	TempSize string        // max_temp_directory_size, e.g. "1GB"; "" means the same as Memory
}

// Report describes a written result.
type Report struct {
	Rows       int64          // rows written
	Bytes      int64          // size of the Parquet file
	SHA256     string         // hex SHA-256 of the Parquet file
	Columns    []ResultColumn // the written columns (the cell-count column excluded)
	CellCounts []int64        // the values of the result's CellCountColumn in row order, if it had one (trust it only for a CellSQL query); that column is not written
	Cells      []CellStats    // per result row, when the query had CellSQL or MembersSQL columns beyond the count (trust it only for such a query); nil otherwise
	Wall       time.Duration  // time from the start of Run to the renamed, synced file
	View       string         // how the job's tables were made: "copied" into memory, or a built view "built" now or "reused"
	Resources  Resources      // what the query used, from DuckDB's profiler
	Process    Usage          // what the worker process used (RunIsolated only)
}

// ResultColumn is one column of a written result.
type ResultColumn struct {
	Name string
	Type string // the Arrow data type, e.g. "int64", "utf8", "date32"
}

// Run executes one SELECT in a fresh in-memory DuckDB that holds only the given columns, locked down before the query runs, and streams the result as Arrow record batches into a Parquet file in quarantine.
//
// Before running, Run parses the query again on the locked connection and refuses
// (with an *Error) anything but one SELECT over the job's tables that calls no table
// function and no forbidden function, even if the caller skipped Analyze.
func Run(ctx context.Context, spec Spec) (*Report, error) {
	return run(ctx, spec, true, nil)
}

// Derive runs spec.Query, a SELECT the host wrote (it is not screened), over
// spec's tables and over inputs, Arrow streams the query sees as views of the
// given names, and writes its result as Run does: with the same caps, and a
// CellCountColumn in the result becomes Report.CellCounts. The host derives a
// Wasm job's result this way, joining the guest's output to its own count of
// each group's rows.
func Derive(ctx context.Context, spec Spec, inputs map[string]array.RecordReader) (*Report, error) {
	if len(spec.Tables) == 0 && len(inputs) == 0 {
		return nil, errors.New("sql: a derived result needs a table or an input")
	}
	for name := range inputs {
		if !strings.HasPrefix(strings.ToLower(name), reservedPrefix) {
			return nil, fmt.Errorf("sql: input %q must be named with the reserved prefix %s", name, reservedPrefix)
		}
	}
	return run(ctx, spec, false, inputs)
}

// run is Run with the parse check optional, so tests can show the lockdown
// holds alone, and with Arrow inputs registered as views for Derive.
func run(ctx context.Context, spec Spec, screen bool, inputs map[string]array.RecordReader) (rep *Report, err error) {
	start := time.Now()
	if err := spec.validate(); err != nil {
		return nil, err
	}
	if screen && len(spec.Tables) == 0 {
		return nil, errors.New("sql: a job needs at least one table")
	}
	w := startWriter(ctx, spec.Out, spec.Limits)
	defer w.close()
	dsn, view := "", "copied"
	if spec.Views != "" && len(spec.Tables) > 0 {
		shared, built, err := openView(ctx, spec)
		if err != nil {
			return nil, err
		}
		// The job opens a private copy: DuckDB lets SQL write the file it
		// opened, and the shared view must stay as built.
		private := privateView(spec.Out)
		defer removePrivateView(private)
		if err := copyFile(shared, private); err != nil {
			return nil, fmt.Errorf("sql: copy view: %w", err)
		}
		dsn, view = private+"?access_mode=READ_ONLY", "reused"
		if built {
			view = "built"
		}
	}
	connector, err := duckdb.NewConnector(dsn, nil)
	if err != nil {
		return nil, fmt.Errorf("sql: open job database: %w", err)
	}
	db := stdsql.OpenDB(connector)
	defer db.Close()
	db.SetMaxOpenConns(1)
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("sql: connect job database: %w", err)
	}
	defer conn.Close()

	if dsn == "" {
		for _, t := range spec.Tables {
			if err := load(ctx, conn, t); err != nil {
				return nil, err
			}
		}
	}
	tempSize := spec.Limits.TempSize
	if tempSize == "" {
		tempSize = spec.Limits.Memory
	}
	if err := lockdown(ctx, conn, lockSettings{
		threads:  spec.Limits.Threads,
		memory:   spec.Limits.Memory,
		tempDir:  spec.Limits.TempDir,
		tempSize: tempSize,
		profile:  true,
	}); err != nil {
		return nil, err
	}
	if screen {
		if err := screenQuery(ctx, conn, spec); err != nil {
			return nil, err
		}
	}

	qctx, cancel := context.WithTimeout(ctx, spec.Limits.Timeout)
	defer cancel()
	var res *written
	err = conn.Raw(func(dc any) (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("sql: panic while running query: %v", r)
			}
		}()
		dconn, ok := dc.(driver.Conn)
		if !ok {
			return fmt.Errorf("sql: unexpected driver connection %T", dc)
		}
		ar, err := duckdb.NewArrowFromConn(dconn)
		if err != nil {
			return fmt.Errorf("sql: arrow interface: %w", err)
		}
		for name, in := range inputs {
			release, err := ar.RegisterView(in, name)
			if err != nil {
				return fmt.Errorf("sql: register input %s: %w", name, err)
			}
			defer release()
		}
		rr, err := ar.QueryContext(qctx, spec.Query)
		if err != nil {
			return fmt.Errorf("sql: query: %w", err)
		}
		defer rr.Release()
		res, err = writeParquet(qctx, rr, w, spec.Out, spec.Limits)
		return err
	})
	if err != nil {
		if errors.Is(qctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
			return nil, fmt.Errorf("%w: time limit of %s exceeded: %w", ErrLimit, spec.Limits.Timeout, context.DeadlineExceeded)
		}
		return nil, err
	}
	return &Report{
		Rows:       res.rows,
		Bytes:      res.bytes,
		SHA256:     res.sha256,
		Columns:    res.columns,
		CellCounts: res.cells,
		Cells:      res.stats,
		Wall:       time.Since(start),
		View:       view,
		Resources:  resources(conn),
	}, nil
}

// Resources is what one job's query used, as DuckDB's profiler measured it.
type Resources struct {
	RowsScanned int64         // rows read from the job's tables
	PeakMemory  int64         // peak buffer memory, bytes
	CPU         time.Duration // CPU time of the query's operators
	Query       time.Duration // the query's own latency, without loading and writing
}

// resources reads the profiler's metrics of the last query on conn; a
// metric DuckDB did not report stays zero.
func resources(conn *stdsql.Conn) Resources {
	info, err := duckdb.GetProfilingInfo(conn)
	if err != nil {
		return Resources{}
	}
	var r Resources
	num := func(k string) float64 {
		f, _ := strconv.ParseFloat(info.Metrics[k], 64)
		return f
	}
	r.RowsScanned = int64(num("CUMULATIVE_ROWS_SCANNED"))
	r.PeakMemory = int64(num("SYSTEM_PEAK_BUFFER_MEMORY"))
	r.CPU = time.Duration(num("CPU_TIME") * float64(time.Second))
	r.Query = time.Duration(num("LATENCY") * float64(time.Second))
	return r
}

// screenQuery refuses, on the job's own locked connection, anything but one SELECT
// over the job's tables without table functions or forbidden functions.
func screenQuery(ctx context.Context, conn *stdsql.Conn, spec Spec) error {
	if e := checkText(spec.Query); e != nil {
		return e
	}
	doc, err := serialize(ctx, conn, spec.Query)
	if err != nil {
		return err
	}
	top, e := singleSelect(doc)
	if e != nil {
		return e
	}
	w := newWalker(top, true)
	if e := w.run(); e != nil {
		return e
	}
	tables := map[string][]string{}
	for _, t := range spec.Tables {
		tables[t.Name] = []string{}
		for _, c := range t.Columns {
			tables[t.Name] = append(tables[t.Name], c.Name)
		}
	}
	if _, e := newSchema(tables).resolve(w, false); e != nil {
		return e
	}
	return nil
}

// load copies a table's allowed columns out of its snapshot into the job's database.
func load(ctx context.Context, conn *stdsql.Conn, t Table) error {
	sel, err := selectView(ctx, conn, t)
	if err != nil {
		return fmt.Errorf("sql: load table %s: %w", t.Name, err)
	}
	if _, err := conn.ExecContext(ctx, "CREATE TABLE "+ident(t.Name)+" AS "+sel); err != nil {
		return fmt.Errorf("sql: load table %s: %w", t.Name, err)
	}
	return nil
}

// rowColumn is the reserved, empty column a view without allowed columns
// gets: a job that reads no field (SELECT count(*) …) still needs the rows,
// and a table needs a column that no analysed query can name.
const rowColumn = reservedPrefix + "_row"

// selectView returns the SELECT that computes t's allowed columns, each in
// its form, from its snapshot.
func selectView(ctx context.Context, conn *stdsql.Conn, t Table) (string, error) {
	types, err := columnTypes(ctx, conn, t.Parquet)
	if err != nil {
		return "", err
	}
	cols := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		typ, ok := types[c.Name]
		if !ok {
			return "", fmt.Errorf("the snapshot has no column %s", c.Name)
		}
		if cols[i], err = formExpr(c, typ, t.HashKey); err != nil {
			return "", err
		}
	}
	if len(cols) == 0 {
		cols = []string{"NULL::BOOLEAN AS " + ident(rowColumn)}
	}
	from := "read_parquet(" + literal(t.Parquet) + ")"
	if b := t.Bound; b != nil {
		if from, err = bounded(t.Parquet, b, types); err != nil {
			return "", err
		}
	}
	return "SELECT " + strings.Join(cols, ", ") + " FROM " + from, nil
}

// bounded is the FROM item of a snapshot under contribution bounding.
func bounded(parquet string, b *Bounding, types map[string]string) (string, error) {
	if _, ok := types[b.PersonKey]; !ok {
		return "", fmt.Errorf("the snapshot has no person key column %s", b.PersonKey)
	}
	if b.MaxRows < 1 {
		return "", fmt.Errorf("contribution bound of %d rows per person; it must be at least 1", b.MaxRows)
	}
	src := "SELECT * FROM read_parquet(" + literal(parquet) + ", file_row_number = true)"
	if len(b.Clamp) > 0 {
		var repl []string
		for _, c := range slices.Sorted(maps.Keys(b.Clamp)) {
			typ, ok := types[c]
			if !ok {
				return "", fmt.Errorf("the snapshot has no column %s to clamp", c)
			}
			r := b.Clamp[c]
			if math.IsNaN(r[0]) || math.IsNaN(r[1]) || math.IsInf(r[0], 0) || math.IsInf(r[1], 0) || r[0] > r[1] {
				return "", fmt.Errorf("clamp range [%v, %v] of %s is not a finite range", r[0], r[1], c)
			}
			repl = append(repl, fmt.Sprintf("CAST(greatest(%s::DOUBLE, least(%s::DOUBLE, %s)) AS %s) AS %s",
				strconv.FormatFloat(r[0], 'g', -1, 64), strconv.FormatFloat(r[1], 'g', -1, 64), ident(c), typ, ident(c)))
		}
		src = "SELECT * REPLACE (" + strings.Join(repl, ", ") + ") FROM read_parquet(" + literal(parquet) + ", file_row_number = true)"
	}
	return "(" + src + " QUALIFY row_number() OVER (PARTITION BY " + ident(b.PersonKey) + " ORDER BY hash(file_row_number)) <= " +
		strconv.Itoa(b.MaxRows) + " ORDER BY file_row_number)", nil
}

// validate checks a Spec before anything is opened.
func (s Spec) validate() error {
	if s.Out == "" || !filepath.IsAbs(s.Out) {
		return fmt.Errorf("sql: output path %q must be absolute", s.Out)
	}
	if _, err := os.Lstat(s.Out); err == nil {
		return fmt.Errorf("sql: output %s already exists", s.Out)
	}
	l := s.Limits
	switch {
	case l.Memory == "":
		return errors.New("sql: Limits.Memory must be set")
	case l.Threads <= 0:
		return errors.New("sql: Limits.Threads must be positive")
	case l.Timeout <= 0:
		return errors.New("sql: Limits.Timeout must be positive")
	case l.MaxRows <= 0:
		return errors.New("sql: Limits.MaxRows must be positive")
	case l.MaxBytes <= 0:
		return errors.New("sql: Limits.MaxBytes must be positive")
	case l.TempDir == "" || !filepath.IsAbs(l.TempDir):
		return fmt.Errorf("sql: Limits.TempDir %q must be an absolute path", l.TempDir)
	}
	// DuckDB lets the job's SQL read and write its temp_directory even with external
	// access off, so it must start empty: nothing planted there can be read.
	if entries, err := os.ReadDir(l.TempDir); err == nil && len(entries) > 0 {
		return fmt.Errorf("sql: temp directory %s is not empty", l.TempDir)
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("sql: temp directory: %w", err)
	}
	if within(l.TempDir, s.Out) {
		return fmt.Errorf("sql: output %s lies inside the job's temp directory %s", s.Out, l.TempDir)
	}
	if s.Views != "" {
		// The job's SQL may write its temp directory: a view there could be
		// changed for the next job.
		if !filepath.IsAbs(s.Views) || within(l.TempDir, s.Views) || within(s.Views, l.TempDir) {
			return fmt.Errorf("sql: view directory %q must be an absolute path apart from the job's temp directory %s", s.Views, l.TempDir)
		}
	}
	names := map[string]bool{}
	for _, t := range s.Tables {
		lt := strings.ToLower(t.Name)
		if names[lt] {
			return fmt.Errorf("sql: table %q listed twice", t.Name)
		}
		names[lt] = true
		if err := t.validate(); err != nil {
			return err
		}
		if within(l.TempDir, t.Parquet) {
			return fmt.Errorf("sql: table %s: snapshot %s lies inside the job's temp directory", t.Name, t.Parquet)
		}
	}
	return nil
}

// validate checks one table: its name, snapshot path, columns and forms.
func (t Table) validate() error {
	switch {
	case t.Name == "" || strings.ContainsRune(t.Name, 0):
		return fmt.Errorf("sql: invalid table name %q", t.Name)
	case strings.HasPrefix(strings.ToLower(t.Name), reservedPrefix):
		return fmt.Errorf("sql: table name %q is reserved", t.Name)
	case !filepath.IsAbs(t.Parquet) || strings.ContainsRune(t.Parquet, 0):
		return fmt.Errorf("sql: table %s: snapshot path %q must be absolute", t.Name, t.Parquet)
	}
	cols := map[string]bool{}
	for _, c := range t.Columns {
		lc := strings.ToLower(c.Name)
		switch {
		case c.Name == "" || strings.ContainsRune(c.Name, 0):
			return fmt.Errorf("sql: table %s: invalid column name %q", t.Name, c.Name)
		case cols[lc]:
			return fmt.Errorf("sql: table %s: column %q listed twice", t.Name, c.Name)
		case c.Form != FormRaw && c.Form != FormMasked && c.Form != FormHashed && c.Form != FormGeneralised:
			return fmt.Errorf("sql: table %s: column %s: form %q is not one of raw, masked, hashed, generalised", t.Name, c.Name, c.Form)
		case c.Form == FormHashed && len(t.HashKey) < MinHashKey:
			return fmt.Errorf("sql: table %s: column %s is hashed but the table's hash key has %d bytes, fewer than %d", t.Name, c.Name, len(t.HashKey), MinHashKey)
		}
		cols[lc] = true
	}
	return nil
}

// within reports whether path lies in or is dir.
func within(dir, path string) bool {
	rel, err := filepath.Rel(filepath.Clean(dir), filepath.Clean(path))
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}
