package datasets

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/duckdb/duckdb-go/v2"

	"github.com/datasandbox/dsbx/audit"
	"github.com/datasandbox/dsbx/failpoint"
)

// Import formats.
const (
	FormatCSV     = "csv"
	FormatParquet = "parquet"
	FormatArrow   = "arrow"
)

// Source describes one file to import as a new version.
type Source struct {
	// Name is the file's original name; its extension selects the reader
	// unless Format is set.
	Name string `json:"name"`
	// Format is csv, parquet or arrow (Arrow IPC file or stream).
	Format string `json:"format,omitempty"`
	// Encoding of a CSV file: utf-8 or gbk; empty detects it.
	Encoding string `json:"encoding,omitempty"`
	// Schema overrides column types by field name, for example
	// {"zip": "VARCHAR"}. It may not contradict the catalogued schema.
	Schema map[string]string `json:"schema,omitempty"`
	// NullifyViolations stores values that do not fit their column's type
	// as NULL, counted in the version's quality report, instead of
	// refusing the import.
	NullifyViolations bool `json:"nullify_violations,omitempty"`
}

// Step reports the progress of an import: the phase it is in and, where the
// phase knows them, the bytes done out of a total.
type Step struct {
	Phase string `json:"phase"`
	Done  int64  `json:"done,omitempty"`
	Total int64  `json:"total,omitempty"`
}

// Imported is the outcome of an import.
type Imported struct {
	Entry   Entry   `json:"entry"`
	Version Version `json:"version"`
	// Existing is true when the same snapshot was already stored; nothing
	// changed.
	Existing bool `json:"existing"`
}

// ColumnStats describes one column of a version.
type ColumnStats struct {
	Name     string  `json:"name"`
	Type     string  `json:"type"`
	Nulls    int64   `json:"nulls"`
	NullRate float64 `json:"null_rate"`
	// Distinct is DuckDB's approximate count of distinct values.
	Distinct int64 `json:"distinct"`
	// Min and Max are real values: only shown to those who may see the
	// data's extremes (see Entry.Redacted).
	Min string `json:"min,omitempty"`
	Max string `json:"max,omitempty"`
}

// Quality is the data quality report of a version; nothing in it was
// silently dropped.
type Quality struct {
	// Violations are values that did not fit their column's type and were
	// stored as NULL (an import without NullifyViolations refuses them).
	Violations []Violation `json:"type_violations"`
	// Keys are the entry's declared key fields; DuplicateKeys counts rows
	// whose key repeats an earlier row's and NullKeys rows with a NULL key
	// field.
	Keys          []string `json:"keys"`
	DuplicateKeys int64    `json:"duplicate_keys"`
	NullKeys      int64    `json:"null_keys"`
}

// forLog is q as the audit log records it: each example value replaced by
// its SHA-256, since the values may be personal data and the log keeps
// them forever.
func (q Quality) forLog() Quality {
	out := q
	out.Violations = make([]Violation, len(q.Violations))
	for i, v := range q.Violations {
		v.Examples = slices.Clone(v.Examples)
		for j, ex := range v.Examples {
			sum := sha256.Sum256([]byte(ex.Value))
			v.Examples[j].Value = "sha256:" + hex.EncodeToString(sum[:])
		}
		out.Violations[i] = v
	}
	return out
}

// Violation counts the values of one field that did not fit its type.
type Violation struct {
	Field    string    `json:"field"`
	Type     string    `json:"type"`
	Count    int64     `json:"count"`
	Examples []Example `json:"examples,omitempty"`
}

// Example is one offending value and its data row (1 is the first row after
// the header).
type Example struct {
	Row   int64  `json:"row"`
	Value string `json:"value"`
}

// ImportMemory bounds DuckDB's memory during an import; larger data spills
// to the staging directory.
var ImportMemory = "1GB"

func (s *Source) format() (string, error) {
	f := strings.ToLower(s.Format)
	if f == "" {
		switch strings.ToLower(filepath.Ext(s.Name)) {
		case ".csv":
			f = FormatCSV
		case ".parquet", ".pq":
			f = FormatParquet
		case ".arrow", ".arrows", ".feather", ".ipc":
			f = FormatArrow
		default:
			return "", inputErrorf("%s: cannot tell the format from the name; name it .csv, .parquet or .arrow, or give the format", s.Name)
		}
	}
	if err := oneOf("format", f, FormatCSV, FormatParquet, FormatArrow); err != nil {
		return "", err
	}
	if s.Encoding != "" && f != FormatCSV {
		return "", inputErrorf("encoding applies to CSV only; %s is %s", s.Name, f)
	}
	if s.Encoding != "" {
		s.Encoding = strings.ToLower(s.Encoding)
		if s.Encoding == "utf8" {
			s.Encoding = EncodingUTF8
		}
		if s.Encoding == "gb18030" || s.Encoding == "gb2312" {
			s.Encoding = EncodingGBK
		}
		if err := oneOf("encoding", s.Encoding, EncodingUTF8, EncodingGBK); err != nil {
			return "", err
		}
	}
	return f, nil
}

// Import converts the file at path into a new immutable Parquet version of
// dataset name: it stages the file, types every field, counts values that do
// not fit, computes statistics and the quality report, records the import in
// the audit log and only then stores it. actor is the principal importing;
// progress, if not nil, hears each phase. On any error, or if the process
// dies half-way, the catalog is unchanged.
func (c *Catalog) Import(ctx context.Context, actor, name string, src Source, path string, progress func(Step)) (Imported, error) {
	if progress == nil {
		progress = func(Step) {}
	}
	entry, err := c.Get(ctx, name)
	if err != nil {
		return Imported{}, err
	}
	if src.Name == "" {
		src.Name = filepath.Base(path)
	}
	source := filepath.Base(src.Name)
	format, err := src.format()
	if err != nil {
		return Imported{}, err
	}
	if err := ensureDir(c.staging()); err != nil {
		return Imported{}, fmt.Errorf("import %s: %w", name, err)
	}
	work, err := os.MkdirTemp(c.staging(), name+"-")
	if err != nil {
		return Imported{}, fmt.Errorf("import %s: %w", name, err)
	}
	defer os.RemoveAll(work)

	db, err := openImportDB(ctx, work)
	if err != nil {
		return Imported{}, fmt.Errorf("import %s: %w", name, err)
	}
	defer db.Close()

	raw, encoding, err := stage(ctx, db, format, &src, source, path, work, progress)
	if err != nil {
		return Imported{}, err
	}
	progress(Step{Phase: "type"})
	cols, err := describe(ctx, db, raw, source)
	if err != nil {
		return Imported{}, err
	}
	plan, err := planColumns(ctx, db, entry, cols, src.Schema, raw, format, source)
	if err != nil {
		return Imported{}, err
	}
	progress(Step{Phase: "check"})
	violations, err := countViolations(ctx, db, plan, raw, format)
	if err != nil {
		return Imported{}, err
	}
	if len(violations) > 0 && !src.NullifyViolations {
		return Imported{}, violationError(source, violations)
	}

	progress(Step{Phase: "write"})
	final := filepath.Join(work, "snapshot.parquet")
	var sel []string
	for _, p := range plan {
		sel = append(sel, cast(ident(p.column), p.from, p.to)+" AS "+ident(p.field))
	}
	if _, err := db.ExecContext(ctx, "COPY (SELECT "+strings.Join(sel, ", ")+" FROM "+raw+") TO "+literal(final)+" (FORMAT parquet, COMPRESSION zstd)"); err != nil {
		return Imported{}, fmt.Errorf("import %s: write snapshot: %w", name, err)
	}
	failpoint.Hit(failpoint.ImportStaged)
	snapshot := "read_parquet(" + literal(final) + ")"
	var rows int64
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM "+snapshot).Scan(&rows); err != nil {
		return Imported{}, fmt.Errorf("import %s: %w", name, err)
	}
	if rows == 0 {
		return Imported{}, inputErrorf("%s: has no data rows", source)
	}
	progress(Step{Phase: "statistics"})
	stats, err := columnStats(ctx, db, plan, snapshot, rows)
	if err != nil {
		return Imported{}, fmt.Errorf("import %s: statistics: %w", name, err)
	}
	quality := Quality{Violations: violations, Keys: entry.Keys}
	if quality.Violations == nil {
		quality.Violations = []Violation{}
	}
	if err := keyQuality(ctx, db, entry.Keys, snapshot, &quality); err != nil {
		return Imported{}, fmt.Errorf("import %s: key check: %w", name, err)
	}
	db.Close() // release DuckDB's memory before profiling and storing

	progress(Step{Phase: "profile"})
	profile, err := buildProfile(ctx, final)
	if err != nil {
		return Imported{}, fmt.Errorf("import %s: %w", name, err)
	}
	sum, size, err := hashFile(final)
	if err != nil {
		return Imported{}, fmt.Errorf("import %s: %w", name, err)
	}
	// Another import of this dataset may have stored a version since entry
	// was read: look again, holding the lock until this one is stored.
	c.mu.Lock()
	defer c.mu.Unlock()
	if entry, err = c.Get(ctx, name); err != nil {
		return Imported{}, err
	}
	for i, f := range entry.Fields {
		if f.Type != "" && f.Type != plan[i].to {
			return Imported{}, inputErrorf("dataset %s: another import fixed its schema meanwhile (%s is %s, this file's %s); import the file again", name, f.Name, f.Type, plan[i].to)
		}
	}
	for _, v := range entry.Versions {
		if v.ID != sum {
			continue
		}
		if v.Status == VersionDestroyed {
			return Imported{}, inputErrorf("dataset %s: this data is version %.12s, which was destroyed; destroyed data is not imported again", name, sum)
		}
		return Imported{Entry: entry, Version: v, Existing: true}, nil
	}

	progress(Step{Phase: "store"})
	version := Version{
		ID: sum, Rows: rows, Bytes: size, Source: source, Format: format, Encoding: encoding, Importer: actor,
		Status: VersionActive, Stats: stats, Quality: quality, CreatedAt: c.now().UTC(),
	}
	fields := slices.Clone(entry.Fields)
	for i := range fields {
		fields[i].Type = plan[i].to
	}
	if _, err := c.log.Append(ctx, audit.Event{
		Kind: "dataset.imported", Principal: actor, Subject: "dataset/" + name,
		Data: map[string]any{
			"dataset": name, "version": sum, "rows": rows, "bytes": size, "source": source,
			"format": format, "encoding": encoding, "schema": schemaOf(fields), "quality": quality.forLog(),
		},
	}); err != nil {
		return Imported{}, fmt.Errorf("import %s: %w", name, err)
	}
	dst := c.SnapshotPath(name, version)
	if err := ensureDir(filepath.Dir(dst)); err != nil {
		return Imported{}, fmt.Errorf("import %s: %w", name, err)
	}
	if err := os.Chmod(final, 0o444); err != nil {
		return Imported{}, fmt.Errorf("import %s: %w", name, err)
	}
	if err := os.Rename(final, dst); err != nil {
		return Imported{}, fmt.Errorf("import %s: %w", name, err)
	}
	failpoint.Hit(failpoint.ImportStore)
	if err := c.storeVersion(ctx, name, fields, version, profile); err != nil {
		os.Remove(dst)
		return Imported{}, fmt.Errorf("import %s: %w", name, err)
	}
	entry.Fields = fields
	entry.Versions = append([]Version{version}, entry.Versions...)
	return Imported{Entry: entry, Version: version}, nil
}

func (c *Catalog) staging() string { return filepath.Join(c.dir, ".staging") }

func (c *Catalog) storeVersion(ctx context.Context, name string, fields []Field, v Version, profile []byte) error {
	fj, err := marshal(fields)
	if err != nil {
		return err
	}
	stats, err := marshal(v.Stats)
	if err != nil {
		return err
	}
	quality, err := marshal(v.Quality)
	if err != nil {
		return err
	}
	tx, err := c.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `UPDATE datasets SET fields = ? WHERE name = ?`, fj, name); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO dataset_versions(dataset, version, rows, bytes, source, format, encoding, importer, stats, quality, profile, status, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		name, v.ID, v.Rows, v.Bytes, v.Source, v.Format, v.Encoding, v.Importer, stats, quality, string(profile), v.Status,
		v.CreatedAt.Format(time.RFC3339Nano)); err != nil {
		return err
	}
	return tx.Commit()
}

func schemaOf(fields []Field) []map[string]string {
	out := make([]map[string]string, len(fields))
	for i, f := range fields {
		out[i] = map[string]string{"name": f.Name, "type": f.Type}
	}
	return out
}

// openImportDB starts a DuckDB for one import: bounded memory, spilling to
// the import's own staging directory.
func openImportDB(ctx context.Context, work string) (*sql.DB, error) {
	conn, err := duckdb.NewConnector("", nil)
	if err != nil {
		return nil, fmt.Errorf("start duckdb: %w", err)
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(1)
	tmp := filepath.Join(work, "spill")
	for _, stmt := range []string{
		fmt.Sprintf("SET threads = %d", min(runtime.NumCPU(), 4)),
		"SET memory_limit = " + literal(ImportMemory),
		"SET temp_directory = " + literal(tmp),
		"SET preserve_insertion_order = true",
		"SET autoinstall_known_extensions = false",
		"SET autoload_known_extensions = false",
	} {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			db.Close()
			return nil, fmt.Errorf("configure duckdb (%s): %w", stmt, err)
		}
	}
	return db, nil
}

// stage turns the upload into a Parquet file DuckDB can scan fast and
// returns the SQL that reads it: CSV is parsed strictly with every column
// as text (typing comes after), Arrow IPC is converted, Parquet is read in
// place.
func stage(ctx context.Context, db *sql.DB, format string, src *Source, source, path, work string, progress func(Step)) (string, string, error) {
	switch format {
	case FormatParquet:
		return "read_parquet(" + literal(path) + ", file_row_number = true)", "", nil
	case FormatArrow:
		progress(Step{Phase: "convert"})
		out := filepath.Join(work, "staged.parquet")
		if _, err := arrowToParquet(ctx, path, out); err != nil {
			var ie *InputError
			if errors.As(err, &ie) {
				// Name the file as the user knows it, not as it was stored.
				return "", "", &InputError{Msg: strings.ReplaceAll(ie.Msg, filepath.Base(path), source)}
			}
			return "", "", err
		}
		return "read_parquet(" + literal(out) + ", file_row_number = true)", "", nil
	}
	st, err := os.Stat(path)
	if err != nil {
		return "", "", fmt.Errorf("import %s: %w", source, err)
	}
	if st.Size() == 0 {
		return "", "", inputErrorf("%s: is empty; it needs a header row and at least one data row", source)
	}
	encoding := src.Encoding
	if encoding == "" {
		if encoding, err = detectEncoding(path, source); err != nil {
			return "", "", err
		}
	}
	csvPath := path
	if encoding == EncodingGBK {
		csvPath = filepath.Join(work, "utf8.csv")
		total := st.Size()
		if err := transcodeGBK(ctx, path, csvPath, source, func(done int64) {
			progress(Step{Phase: "transcode", Done: done, Total: total})
		}); err != nil {
			return "", "", err
		}
	}
	progress(Step{Phase: "parse", Total: st.Size()})
	out := filepath.Join(work, "staged.parquet")
	// An explicit dialect: with auto-detection DuckDB may pick "no quote"
	// for a file with an unbalanced quote, or read a ragged file as having
	// no rows. Every column is read as text and typed afterwards from all
	// of its values, not from a sample.
	reader := "read_csv(" + literal(csvPath) + `, header = true, delim = ',', quote = '"', escape = '"', comment = '', skip = 0, strict_mode = true, null_padding = false, all_varchar = true, encoding = 'utf-8')`
	if _, err := db.ExecContext(ctx, "COPY (SELECT * FROM "+reader+") TO "+literal(out)+" (FORMAT parquet)"); err != nil {
		if ctx.Err() != nil {
			return "", "", fmt.Errorf("import %s: %w", source, ctx.Err())
		}
		return "", "", inputErrorf("%s: malformed: %v", source, cleanDuckDBError(err, encoding))
	}
	return "read_parquet(" + literal(out) + ", file_row_number = true)", encoding, nil
}

// column is a column of a staged file as DuckDB typed it.
type column struct{ name, typ string }

func describe(ctx context.Context, db *sql.DB, raw, source string) ([]column, error) {
	rows, err := db.QueryContext(ctx, "DESCRIBE SELECT * EXCLUDE (file_row_number) FROM "+raw)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("import %s: %w", source, ctx.Err())
		}
		return nil, inputErrorf("%s: malformed: %v", source, cleanDuckDBError(err, ""))
	}
	defer rows.Close()
	var cols []column
	for rows.Next() {
		var name, typ string
		var null, key, def, extra sql.NullString
		if err := rows.Scan(&name, &typ, &null, &key, &def, &extra); err != nil {
			return nil, fmt.Errorf("import: describe %s: %w", source, err)
		}
		cols = append(cols, column{name, typ})
	}
	if err := rows.Err(); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("import %s: %w", source, ctx.Err())
		}
		return nil, inputErrorf("%s: malformed: %v", source, cleanDuckDBError(err, ""))
	}
	return cols, nil
}

// planned is how one field is filled: from which file column, converted
// from which type to which.
type planned struct {
	field, column, from, to string
}

// planColumns pairs every catalogued field with its file column and decides
// its type: an override, else the catalogued type, else (first import) the
// file's own type or, for CSV, the narrowest type all values fit.
func planColumns(ctx context.Context, db *sql.DB, e Entry, cols []column, overrides map[string]string, raw, format, source string) ([]planned, error) {
	fileType := map[string]string{}
	for _, c := range cols {
		fileType[c.name] = c.typ
	}
	for name := range overrides {
		if _, ok := e.Field(name); !ok {
			return nil, inputErrorf("schema override names %q, which is not a field of %s (fields: %v)", name, e.Name, e.FieldNames())
		}
	}
	var plan []planned
	var missing []string
	want := map[string]bool{}
	for _, f := range e.Fields {
		col := f.Name
		if f.Column != "" {
			col = f.Column
		}
		want[col] = true
		from, ok := fileType[col]
		if !ok {
			missing = append(missing, col)
			continue
		}
		to := f.Type
		if o, ok := overrides[f.Name]; ok {
			t, err := parseType(o)
			if err != nil {
				return nil, inputErrorf("schema override for %s: %v", f.Name, err)
			}
			if to != "" && t != to {
				return nil, inputErrorf("schema override %s=%s contradicts the catalogued type %s; the schema of %s is fixed by its first version", f.Name, t, to, e.Name)
			}
			to = t
		}
		plan = append(plan, planned{field: f.Name, column: col, from: from, to: to})
	}
	var extra []string
	for _, c := range cols {
		if !want[c.name] {
			extra = append(extra, c.name)
		}
	}
	if len(missing) > 0 || len(extra) > 0 {
		msg := fmt.Sprintf("%s does not match the schema of %s:", source, e.Name)
		if len(missing) > 0 {
			msg += fmt.Sprintf(" it lacks %v;", missing)
		}
		if len(extra) > 0 {
			msg += fmt.Sprintf(" it has columns %v that are not catalogued fields (label them in the dataset file, or map a header with 'column:');", extra)
		}
		return nil, inputErrorf("%s the file's columns are %v", msg, columnNames(cols))
	}
	var infer []int
	for i := range plan {
		if plan[i].to != "" {
			continue
		}
		if format == FormatCSV {
			infer = append(infer, i)
			continue
		}
		t, err := servedType(plan[i].column, plan[i].from)
		if err != nil {
			return nil, err
		}
		plan[i].to = t
	}
	if len(infer) == 0 {
		return plan, nil
	}
	// One pass over the staged text counts, per column, the values that
	// match each candidate type.
	var aggs []string
	for _, i := range infer {
		col := ident(plan[i].column)
		aggs = append(aggs, "count("+col+")")
		for _, c := range inferred {
			aggs = append(aggs, "count(*) FILTER (WHERE "+fmt.Sprintf(c.test, col)+")")
		}
	}
	counts := make([]int64, len(aggs))
	dest := make([]any, len(aggs))
	for i := range counts {
		dest[i] = &counts[i]
	}
	if err := db.QueryRowContext(ctx, "SELECT "+strings.Join(aggs, ", ")+" FROM "+raw).Scan(dest...); err != nil {
		return nil, fmt.Errorf("import %s: infer types: %w", source, err)
	}
	per := len(inferred) + 1
	for k, i := range infer {
		c := counts[k*per : (k+1)*per]
		plan[i].to = "VARCHAR"
		if c[0] == 0 {
			continue // all NULL: nothing says it is anything but text
		}
		for j, cand := range inferred {
			if c[j+1] == c[0] {
				plan[i].to = cand.typ
				break
			}
		}
	}
	return plan, nil
}

// countViolations counts, per field, the non-NULL values that do not convert
// to the field's type, with the first few as examples.
func countViolations(ctx context.Context, db *sql.DB, plan []planned, raw, format string) ([]Violation, error) {
	var aggs []string
	var idx []int
	for i, p := range plan {
		if p.from == p.to {
			continue
		}
		col := ident(p.column)
		aggs = append(aggs, fmt.Sprintf("count(*) FILTER (WHERE %s IS NOT NULL AND %s IS NULL)", col, cast(col, p.from, p.to)))
		idx = append(idx, i)
	}
	if len(aggs) == 0 {
		return nil, nil
	}
	counts := make([]int64, len(aggs))
	dest := make([]any, len(aggs))
	for i := range counts {
		dest[i] = &counts[i]
	}
	if err := db.QueryRowContext(ctx, "SELECT "+strings.Join(aggs, ", ")+" FROM "+raw).Scan(dest...); err != nil {
		return nil, fmt.Errorf("count type violations: %w", err)
	}
	var out []Violation
	for k, i := range idx {
		if counts[k] == 0 {
			continue
		}
		p := plan[i]
		v := Violation{Field: p.field, Type: p.to, Count: counts[k]}
		col := ident(p.column)
		rows, err := db.QueryContext(ctx, fmt.Sprintf("SELECT file_row_number + 1, CAST(%s AS VARCHAR) FROM %s WHERE %s IS NOT NULL AND %s IS NULL ORDER BY file_row_number LIMIT 3",
			col, raw, col, cast(col, p.from, p.to)))
		if err != nil {
			return nil, fmt.Errorf("type violations of %s: %w", p.field, err)
		}
		for rows.Next() {
			var ex Example
			if err := rows.Scan(&ex.Row, &ex.Value); err != nil {
				rows.Close()
				return nil, err
			}
			v.Examples = append(v.Examples, ex)
		}
		rows.Close()
		out = append(out, v)
	}
	return out, nil
}

func violationError(source string, vs []Violation) error {
	var parts []string
	for _, v := range vs {
		var ex []string
		for _, e := range v.Examples {
			ex = append(ex, fmt.Sprintf("row %d: %q", e.Row, e.Value))
		}
		parts = append(parts, fmt.Sprintf("%s: %d values are not %s (%s)", v.Field, v.Count, v.Type, strings.Join(ex, ", ")))
	}
	return inputErrorf("%s: values do not fit their types: %s; fix the data, override the type (--schema FIELD=VARCHAR) on a first import, or store them as NULL (--nullify-violations)",
		source, strings.Join(parts, "; "))
}

// columnStats computes each column's nulls, distinct count and extremes in
// one pass over the snapshot.
func columnStats(ctx context.Context, db *sql.DB, plan []planned, snapshot string, rows int64) ([]ColumnStats, error) {
	var aggs []string
	for _, p := range plan {
		col := ident(p.field)
		aggs = append(aggs, "count("+col+")", "approx_count_distinct("+col+")",
			"CAST(min("+col+") AS VARCHAR)", "CAST(max("+col+") AS VARCHAR)")
	}
	type agg struct {
		nonNull, distinct int64
		min, max          sql.NullString
	}
	vals := make([]agg, len(plan))
	var dest []any
	for i := range vals {
		dest = append(dest, &vals[i].nonNull, &vals[i].distinct, &vals[i].min, &vals[i].max)
	}
	if err := db.QueryRowContext(ctx, "SELECT "+strings.Join(aggs, ", ")+" FROM "+snapshot).Scan(dest...); err != nil {
		return nil, err
	}
	out := make([]ColumnStats, len(plan))
	for i, p := range plan {
		nulls := rows - vals[i].nonNull
		out[i] = ColumnStats{
			Name: p.field, Type: p.to, Nulls: nulls, NullRate: float64(nulls) / float64(rows),
			Distinct: vals[i].distinct, Min: vals[i].min.String, Max: vals[i].max.String,
		}
	}
	return out, nil
}

// keyQuality counts duplicate and NULL keys for the declared key fields.
func keyQuality(ctx context.Context, db *sql.DB, keys []string, snapshot string, q *Quality) error {
	if len(keys) == 0 {
		return nil
	}
	var cols, nullTests []string
	for _, k := range keys {
		cols = append(cols, ident(k))
		nullTests = append(nullTests, ident(k)+" IS NULL")
	}
	// Rows with a NULL key field are counted as NULL keys only, not as
	// duplicates (count(DISTINCT) skips a single NULL column but not a
	// row of several with a NULL in it).
	null := strings.Join(nullTests, " OR ")
	return db.QueryRowContext(ctx, fmt.Sprintf("SELECT count(*) FILTER (WHERE NOT (%[2]s)) - count(DISTINCT (%[1]s)) FILTER (WHERE NOT (%[2]s)), count(*) FILTER (WHERE %[2]s) FROM %[3]s",
		strings.Join(cols, ", "), null, snapshot)).Scan(&q.DuplicateKeys, &q.NullKeys)
}

func columnNames(cols []column) []string {
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = c.name
	}
	return out
}

// cleanDuckDBError keeps the first line of a DuckDB error, which names the
// problem, and the lines that locate it; the rest is advice about DuckDB
// options users cannot pass here.
func cleanDuckDBError(err error, encoding string) string {
	msg := err.Error()
	if strings.Contains(msg, "Invalid unicode") || strings.Contains(msg, "invalid unicode") {
		hint := "save it as UTF-8"
		if encoding == EncodingUTF8 {
			hint = "if it is GBK, import with --encoding gbk; otherwise save it as UTF-8"
		}
		return "the text is not valid UTF-8 further into the file; " + hint
	}
	if strings.Contains(msg, "Error when sniffing file") {
		return "not a well-formed comma-separated file with a header row; check for rows with a different number of fields and for unbalanced quotes"
	}
	if i := strings.Index(msg, "\n"); i > 0 {
		rest := msg[i+1:]
		msg = msg[:i]
		for _, line := range strings.Split(rest, "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "Original Line:") || strings.Contains(line, "Expected Number of Columns") || strings.Contains(line, "Line:") {
				msg += "; " + strings.TrimSpace(line)
			}
		}
	}
	return msg
}

func hashFile(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}
