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
	"slices"
	"strings"
	"time"

	"github.com/datasandbox/dsbx/audit"
	"github.com/duckdb/duckdb-go/v2"
)

// Spec describes one import: the catalog attributes and the field labels.
type Spec struct {
	Name   string `json:"name"`
	Grade  string `json:"grade"`
	Open   string `json:"open"`
	Labels Labels `json:"labels"`
	// Source is the uploaded file's original name; its extension (.csv or
	// .parquet) selects the reader.
	Source string `json:"source"`
}

// Imported is the outcome of an import.
type Imported struct {
	Entry   Entry   `json:"entry"`
	Version Version `json:"version"`
	// Existing is true when the same snapshot was already stored; nothing
	// changed.
	Existing bool `json:"existing"`
}

func (s *Spec) check() error {
	if err := checkName(s.Name); err != nil {
		return err
	}
	if err := oneOf("grade", s.Grade, GradeCore, GradeImportant, GradeGeneral); err != nil {
		return err
	}
	if err := oneOf("open attribute", s.Open, OpenUnconditional, OpenConditional, OpenClosed); err != nil {
		return err
	}
	if s.Labels.Share == "" {
		s.Labels.Share = ShareConditional
	}
	if err := oneOf("share attribute", s.Labels.Share, ShareUnconditional, ShareConditional, ShareNone); err != nil {
		return err
	}
	if err := checkFields(s.Labels.Fields); err != nil {
		return err
	}
	switch strings.ToLower(filepath.Ext(s.Source)) {
	case ".csv", ".parquet":
	default:
		return inputErrorf("source %q: only .csv and .parquet files can be imported", s.Source)
	}
	return nil
}

// Import converts the file at src (named by spec.Source) into an immutable
// Parquet snapshot, checks its columns against the labels, records the import
// in the audit log and only then stores it. actor is the principal importing.
// On any error nothing already stored changes.
func (c *Catalog) Import(ctx context.Context, actor string, spec Spec, src string) (Imported, error) {
	if err := spec.check(); err != nil {
		return Imported{}, err
	}
	staging := filepath.Join(c.dir, ".staging")
	if err := ensureDir(staging); err != nil {
		return Imported{}, fmt.Errorf("import %s: %w", spec.Name, err)
	}
	tmp, err := os.CreateTemp(staging, spec.Name+"-*.parquet")
	if err != nil {
		return Imported{}, fmt.Errorf("import %s: %w", spec.Name, err)
	}
	tmp.Close()
	defer os.Remove(tmp.Name())

	cols, rows, err := convert(ctx, src, spec.Source, tmp.Name())
	if err != nil {
		return Imported{}, err
	}
	fields, err := matchLabels(cols, spec.Labels.Fields)
	if err != nil {
		return Imported{}, err
	}
	sum, size, err := hashFile(tmp.Name())
	if err != nil {
		return Imported{}, fmt.Errorf("import %s: %w", spec.Name, err)
	}

	existing, err := c.Get(ctx, spec.Name)
	switch {
	case errors.Is(err, ErrNotFound):
	case err != nil:
		return Imported{}, err
	default:
		if !slices.Equal(existing.FieldNames(), names(fields)) {
			return Imported{}, inputErrorf("dataset %s: columns %v differ from the catalogued fields %v; import a changed schema under a new name", spec.Name, names(fields), existing.FieldNames())
		}
		if existing.Open != spec.Open || existing.Grade != spec.Grade || existing.Share != spec.Labels.Share {
			// Changing an entry's attributes is a catalog decision of its own
			// (and may have to hold running jobs); an import must not do it
			// on the side.
			return Imported{}, inputErrorf("dataset %s is catalogued as open=%s grade=%s share=%s; this import says open=%s grade=%s share=%s; import with the catalogued attributes",
				spec.Name, existing.Open, existing.Grade, existing.Share, spec.Open, spec.Grade, spec.Labels.Share)
		}
		for _, v := range existing.Versions {
			if v.ID == sum {
				return Imported{Entry: existing, Version: v, Existing: true}, nil
			}
		}
	}

	now := c.now().UTC()
	entry := Entry{
		Name: spec.Name, Title: spec.Labels.Title, Description: spec.Labels.Description,
		Agency: spec.Labels.Agency, Grade: spec.Grade, Open: spec.Open, Share: spec.Labels.Share,
		Frequency: spec.Labels.Frequency, Fields: fields, CreatedAt: now,
	}
	if existing.Name != "" {
		entry.CreatedAt = existing.CreatedAt
	}
	version := Version{ID: sum, Rows: rows, Bytes: size, Source: filepath.Base(spec.Source), CreatedAt: now}

	if _, err := c.log.Append(ctx, audit.Event{
		Kind: "dataset.imported", Principal: actor, Subject: "dataset/" + spec.Name,
		Data: map[string]any{"entry": entry, "version": version},
	}); err != nil {
		return Imported{}, fmt.Errorf("import %s: %w", spec.Name, err)
	}

	final := c.SnapshotPath(spec.Name, version)
	if err := ensureDir(filepath.Dir(final)); err != nil {
		return Imported{}, fmt.Errorf("import %s: %w", spec.Name, err)
	}
	if err := os.Chmod(tmp.Name(), 0o444); err != nil {
		return Imported{}, fmt.Errorf("import %s: %w", spec.Name, err)
	}
	if err := os.Rename(tmp.Name(), final); err != nil {
		return Imported{}, fmt.Errorf("import %s: %w", spec.Name, err)
	}
	if err := c.store(ctx, entry, version); err != nil {
		os.Remove(final)
		return Imported{}, fmt.Errorf("import %s: %w", spec.Name, err)
	}
	entry.Versions = append([]Version{version}, existing.Versions...)
	return Imported{Entry: entry, Version: version}, nil
}

func (c *Catalog) store(ctx context.Context, e Entry, v Version) error {
	fields, err := marshal(e.Fields)
	if err != nil {
		return err
	}
	tx, err := c.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `INSERT INTO datasets(name, title, description, agency, grade, open, share, frequency, fields, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT(name) DO UPDATE SET title=excluded.title, description=excluded.description, agency=excluded.agency,
			grade=excluded.grade, open=excluded.open, share=excluded.share, frequency=excluded.frequency, fields=excluded.fields`,
		e.Name, e.Title, e.Description, e.Agency, e.Grade, e.Open, e.Share, e.Frequency, fields, e.CreatedAt.Format(time.RFC3339Nano)); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO dataset_versions(dataset, version, rows, bytes, source, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
		e.Name, v.ID, v.Rows, v.Bytes, v.Source, v.CreatedAt.Format(time.RFC3339Nano)); err != nil {
		return err
	}
	return tx.Commit()
}

// column is a column of an imported file as DuckDB typed it.
type column struct{ name, typ string }

// convert reads src with DuckDB (strict CSV parsing, or Parquet) and writes
// a Parquet snapshot to dst with one thread, so equal input gives equal bytes.
func convert(ctx context.Context, src, source, dst string) ([]column, int64, error) {
	conn, err := duckdb.NewConnector("", nil)
	if err != nil {
		return nil, 0, fmt.Errorf("import: start duckdb: %w", err)
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, `SET threads = 1; SET preserve_insertion_order = true`); err != nil {
		return nil, 0, fmt.Errorf("import: configure duckdb: %w", err)
	}
	reader := "read_parquet(" + literal(src) + ")"
	if strings.EqualFold(filepath.Ext(source), ".csv") {
		// An explicit dialect: with auto-detection DuckDB may pick "no quote"
		// for a file with an unbalanced quote, or read a ragged file as
		// having no rows. The whole file is sampled for types, so an ID
		// ending in X after many numeric ones is typed as text, not
		// refused.
		reader = "read_csv(" + literal(src) + `, header = true, delim = ',', quote = '"', escape = '"', comment = '', skip = 0, strict_mode = true, null_padding = false, sample_size = -1, encoding = 'utf-8')`
	}
	rows, err := db.QueryContext(ctx, "DESCRIBE SELECT * FROM "+reader)
	if err != nil {
		return nil, 0, inputErrorf("%s: malformed: %v", source, cleanDuckDBError(err))
	}
	var cols []column
	for rows.Next() {
		var name, typ string
		var null, key, def, extra sql.NullString
		if err := rows.Scan(&name, &typ, &null, &key, &def, &extra); err != nil {
			rows.Close()
			return nil, 0, fmt.Errorf("import: describe %s: %w", source, err)
		}
		cols = append(cols, column{name, typ})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, 0, inputErrorf("%s: malformed: %v", source, cleanDuckDBError(err))
	}
	var n int64
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM "+reader).Scan(&n); err != nil {
		return nil, 0, inputErrorf("%s: malformed: %v", source, cleanDuckDBError(err))
	}
	if n == 0 {
		return nil, 0, inputErrorf("%s: has no data rows", source)
	}
	if _, err := db.ExecContext(ctx, "COPY (SELECT * FROM "+reader+") TO "+literal(dst)+" (FORMAT parquet, COMPRESSION zstd)"); err != nil {
		return nil, 0, inputErrorf("%s: malformed: %v", source, cleanDuckDBError(err))
	}
	return cols, n, nil
}

// matchLabels pairs every column with its label, in the file's column order.
func matchLabels(cols []column, labels []Field) ([]Field, error) {
	byName := map[string]Field{}
	for _, l := range labels {
		byName[l.Name] = l
	}
	var out []Field
	var unlabelled []string
	for _, c := range cols {
		l, ok := byName[c.name]
		if !ok {
			unlabelled = append(unlabelled, c.name)
			continue
		}
		delete(byName, c.name)
		l.Type = c.typ
		out = append(out, l)
	}
	if len(unlabelled) > 0 {
		return nil, inputErrorf("columns %v have no label in the fields file; add name, sensitivity and identifier for each", unlabelled)
	}
	if len(byName) > 0 {
		var missing []string
		for _, l := range labels {
			if _, ok := byName[l.Name]; ok {
				missing = append(missing, l.Name)
			}
		}
		return nil, inputErrorf("fields file labels %v, which the data file does not have (its columns: %v)", missing, columnNames(cols))
	}
	return out, nil
}

func columnNames(cols []column) []string {
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = c.name
	}
	return out
}

func names(fields []Field) []string {
	out := make([]string, len(fields))
	for i, f := range fields {
		out[i] = f.Name
	}
	return out
}

// literal quotes s as a SQL string literal.
func literal(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// cleanDuckDBError keeps the first line of a DuckDB error, which names the
// problem; the rest is advice about DuckDB options users cannot pass here.
func cleanDuckDBError(err error) string {
	msg := err.Error()
	if strings.Contains(msg, "Error when sniffing file") {
		return "not a well-formed comma-separated UTF-8 file with a header row; check for rows with a different number of fields and for unbalanced quotes"
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
