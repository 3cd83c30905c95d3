// Package datasets is the public data catalog (目录): entries with their
// grade, open and share attributes and per-field labels, and the immutable,
// content-addressed snapshots (Parquet) that jobs pin.
package datasets

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/datasandbox/dsbx/audit"
	"github.com/datasandbox/dsbx/state"
)

// Open attributes (开放属性).
const (
	OpenUnconditional = "unconditional"
	OpenConditional   = "conditional"
	OpenClosed        = "closed"
)

// Share attributes (共享属性).
const (
	ShareUnconditional = "unconditional"
	ShareConditional   = "conditional"
	ShareNone          = "none"
)

// Grades (分级) under the national rules.
const (
	GradeCore      = "core"
	GradeImportant = "important"
	GradeGeneral   = "general"
)

// Field sensitivities, from least to most protected.
var Sensitivities = []string{"public", "internal", "sensitive", "personal", "personal-sensitive"}

// Identifier roles of a field.
const (
	IdentifierDirect = "direct"
	IdentifierQuasi  = "quasi"
	IdentifierNone   = "none"
)

// Dataset states. A suspended dataset (an objection was upheld) serves no
// new job and releases no result until it is reinstated.
const (
	StatusActive    = "active"
	StatusSuspended = "suspended"
)

// Version states. A sealed version (封存) serves no new job but is kept for
// audit re-runs; a destroyed one (销毁) has had its files removed and only its
// hash and history remain.
const (
	VersionActive    = "active"
	VersionSealed    = "sealed"
	VersionDestroyed = "destroyed"
)

// Entry is one catalog entry (目录条目).
type Entry struct {
	Name        string   `json:"name"`
	Title       string   `json:"title,omitempty"`
	Description string   `json:"description,omitempty"`
	Agency      string   `json:"agency,omitempty"`
	Grade       string   `json:"grade"`
	Open        string   `json:"open"`
	Share       string   `json:"share"`
	Frequency   string   `json:"update_frequency,omitempty"`
	LegalBasis  string   `json:"legal_basis,omitempty"`
	Tags        []string `json:"tags"`
	// Keys are the fields that together identify a row; imports report
	// duplicates.
	Keys   []string `json:"keys"`
	Fields []Field  `json:"fields"`
	// Status is active or suspended; SuspendedFields lists single fields
	// suspended by upheld objections while the dataset stays active.
	Status          string    `json:"status"`
	SuspendedFields []string  `json:"suspended_fields"`
	CreatedBy       string    `json:"created_by,omitempty"`
	CreatedAt       time.Time `json:"created_at"`
	Versions        []Version `json:"versions,omitempty"`
}

// Field is the catalog's label for one column.
type Field struct {
	Name string `json:"name" yaml:"name"`
	// Column is the field's header in source files when it differs from
	// Name, for example a Chinese header such as 所属区县.
	Column string `json:"column,omitempty" yaml:"column"`
	// Type is the column's DuckDB type. Given in a spec it overrides type
	// inference; after the first import it is the schema every later
	// version must fit.
	Type        string `json:"type" yaml:"type"`
	Description string `json:"description,omitempty" yaml:"description"`
	Sensitivity string `json:"sensitivity" yaml:"sensitivity"`
	Identifier  string `json:"identifier" yaml:"identifier"`
	// FreeText marks a field of free text (notes, complaints, addresses as
	// written): never released, whatever its form.
	FreeText bool `json:"free_text,omitempty" yaml:"free_text"`
}

// Version is one immutable snapshot of a dataset, named by the SHA-256 of its
// Parquet file.
type Version struct {
	ID       string `json:"id"`
	Rows     int64  `json:"rows"`
	Bytes    int64  `json:"bytes"`
	Source   string `json:"source"`
	Format   string `json:"format"`
	Encoding string `json:"encoding,omitempty"`
	Importer string `json:"importer"`
	// Status is active, sealed or destroyed, set at StatusAt for
	// StatusReason.
	Status       string        `json:"status"`
	StatusReason string        `json:"status_reason,omitempty"`
	StatusAt     *time.Time    `json:"status_at,omitempty"`
	Stats        []ColumnStats `json:"stats"`
	Quality      Quality       `json:"quality"`
	CreatedAt    time.Time     `json:"created_at"`
}

// Serves reports whether new jobs may run on v.
func (v Version) Serves() bool { return v.Status == VersionActive }

// Field returns the field named name.
func (e *Entry) Field(name string) (Field, bool) {
	for _, f := range e.Fields {
		if f.Name == name {
			return f, true
		}
	}
	return Field{}, false
}

// FieldNames returns the entry's field names in catalog order.
func (e *Entry) FieldNames() []string {
	names := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		names[i] = f.Name
	}
	return names
}

// Recorder appends an event to the audit log; the change it describes must
// not take effect unless it returns nil.
type Recorder interface {
	Append(ctx context.Context, e audit.Event) (audit.Entry, error)
}

// Catalog stores entries in the state database and snapshots under a
// directory.
type Catalog struct {
	db  *state.DB
	dir string // snapshots live in dir/<name>/<version>.parquet
	log Recorder
	now func() time.Time
	// mu serialises the end of imports, from the check for an existing
	// version to storing the new one.
	mu sync.Mutex
}

// NewCatalog returns a catalog over db that keeps snapshots in dir and
// records every change in log.
// Imports that were interrupted (the process died) leave files in the
// staging directory, and, if cut off between moving the snapshot into place
// and storing its version, a snapshot no version names (its
// dataset.imported entry stays in the log, the version is not in the
// catalog: import the file again); NewCatalog removes both.
func NewCatalog(db *state.DB, dir string, log Recorder) *Catalog {
	c := Shared(db, dir, log)
	os.RemoveAll(c.staging())
	c.removeOrphanSnapshots()
	return c
}

// Shared returns the catalog kept in db and dir for a process that shares
// them with the server that owns them (a job node): unlike NewCatalog, it
// leaves the server's imports in progress and its snapshots as they are.
func Shared(db *state.DB, dir string, log Recorder) *Catalog {
	return &Catalog{db: db, dir: dir, log: log, now: time.Now}
}

// removeOrphanSnapshots removes snapshot files that no version row names.
func (c *Catalog) removeOrphanSnapshots() {
	files, _ := filepath.Glob(filepath.Join(c.dir, "*", "*.parquet"))
	for _, f := range files {
		name, id := filepath.Base(filepath.Dir(f)), strings.TrimSuffix(filepath.Base(f), ".parquet")
		var n int
		err := c.db.QueryRowContext(context.Background(), `SELECT count(*) FROM dataset_versions WHERE dataset = ? AND version = ?`, name, id).Scan(&n)
		if err == nil && n == 0 {
			os.Remove(f)
		}
	}
	// Views of versions that are gone or destroyed.
	dirs, _ := filepath.Glob(filepath.Join(c.dir, "*", "*.views"))
	for _, d := range dirs {
		name, id := filepath.Base(filepath.Dir(d)), strings.TrimSuffix(filepath.Base(d), ".views")
		var n int
		err := c.db.QueryRowContext(context.Background(), `SELECT count(*) FROM dataset_versions WHERE dataset = ? AND version = ? AND status <> ?`, name, id, VersionDestroyed).Scan(&n)
		if err == nil && n == 0 {
			os.RemoveAll(d)
		}
	}
}

// ErrNotFound reports an unknown dataset or version.
var ErrNotFound = errors.New("not found")

// InputError is a problem with what the caller supplied; the server answers it
// with HTTP 400.
type InputError struct{ Msg string }

func (e *InputError) Error() string { return e.Msg }

func inputErrorf(format string, args ...any) error {
	return &InputError{Msg: fmt.Sprintf(format, args...)}
}

const entryColumns = `name, title, description, agency, grade, open, share, frequency, legal_basis, tags, keys, fields, status, suspended_fields, created_by, created_at`

const versionColumns = `version, rows, bytes, source, format, encoding, importer, status, status_reason, status_at, stats, quality, created_at`

// List returns every entry with its versions, ordered by name.
func (c *Catalog) List(ctx context.Context) ([]Entry, error) {
	rows, err := c.db.QueryContext(ctx, `SELECT `+entryColumns+` FROM datasets ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list datasets: %w", err)
	}
	var out []Entry
	for rows.Next() {
		e, err := scanEntry(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("list datasets: %w", err)
		}
		out = append(out, e)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list datasets: %w", err)
	}
	for i := range out {
		if out[i].Versions, err = c.versions(ctx, out[i].Name); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Get returns the entry named name with its versions, newest first.
func (c *Catalog) Get(ctx context.Context, name string) (Entry, error) {
	e, err := scanEntry(c.db.QueryRowContext(ctx, `SELECT `+entryColumns+` FROM datasets WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return Entry{}, fmt.Errorf("dataset %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return Entry{}, fmt.Errorf("dataset %q: %w", name, err)
	}
	if e.Versions, err = c.versions(ctx, name); err != nil {
		return Entry{}, err
	}
	return e, nil
}

func (c *Catalog) versions(ctx context.Context, name string) ([]Version, error) {
	rows, err := c.db.QueryContext(ctx, `SELECT `+versionColumns+` FROM dataset_versions WHERE dataset = ? ORDER BY created_at DESC, rowid DESC`, name)
	if err != nil {
		return nil, fmt.Errorf("dataset %q versions: %w", name, err)
	}
	defer rows.Close()
	var out []Version
	for rows.Next() {
		v, err := scanVersion(rows)
		if err != nil {
			return nil, fmt.Errorf("dataset %q versions: %w", name, err)
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// Resolve returns the entry and the version that ref names: "NAME" for the
// newest active version, "NAME@PREFIX" for the version whose ID starts with
// PREFIX, whatever its state (admission decides whether it may serve).
func (c *Catalog) Resolve(ctx context.Context, ref string) (Entry, Version, error) {
	name, want, pinned := strings.Cut(ref, "@")
	e, err := c.Get(ctx, name)
	if err != nil {
		return Entry{}, Version{}, err
	}
	if len(e.Versions) == 0 {
		return Entry{}, Version{}, fmt.Errorf("dataset %q has no version yet; import one: %w", name, ErrNotFound)
	}
	if !pinned {
		for _, v := range e.Versions {
			if v.Serves() {
				return e, v, nil
			}
		}
		latest := e.Versions[0]
		return Entry{}, Version{}, fmt.Errorf("dataset %q has no active version (the latest, %.12s, is %s): %w", name, latest.ID, latest.Status, ErrNotFound)
	}
	var match []Version
	for _, v := range e.Versions {
		if want != "" && strings.HasPrefix(v.ID, want) {
			match = append(match, v)
		}
	}
	switch len(match) {
	case 0:
		return Entry{}, Version{}, fmt.Errorf("dataset %q has no version %q: %w", name, want, ErrNotFound)
	case 1:
		return e, match[0], nil
	default:
		return Entry{}, Version{}, inputErrorf("dataset %q: version prefix %q is ambiguous; give more characters", name, want)
	}
}

// SnapshotPath returns the Parquet file of version v of dataset name.
func (c *Catalog) SnapshotPath(name string, v Version) string {
	return filepath.Join(c.dir, name, v.ID+".parquet")
}

// ViewDir is the directory where jobs keep the allowed views they build
// from version v of dataset name (see sandbox/sql); they are derived from
// the snapshot and go with it.
func (c *Catalog) ViewDir(name string, v Version) string {
	return filepath.Join(c.dir, name, v.ID+".views")
}

type scanner interface{ Scan(dest ...any) error }

func scanEntry(s scanner) (Entry, error) {
	var e Entry
	var tags, keys, fields, suspended, created string
	if err := s.Scan(&e.Name, &e.Title, &e.Description, &e.Agency, &e.Grade, &e.Open, &e.Share, &e.Frequency,
		&e.LegalBasis, &tags, &keys, &fields, &e.Status, &suspended, &e.CreatedBy, &created); err != nil {
		return Entry{}, err
	}
	for _, j := range []struct {
		src string
		dst any
	}{{tags, &e.Tags}, {keys, &e.Keys}, {fields, &e.Fields}, {suspended, &e.SuspendedFields}} {
		if err := json.Unmarshal([]byte(j.src), j.dst); err != nil {
			return Entry{}, fmt.Errorf("entry %s: %w", e.Name, err)
		}
	}
	e.CreatedAt, _ = time.Parse(time.RFC3339Nano, created)
	return e, nil
}

func scanVersion(s scanner) (Version, error) {
	var v Version
	var statusAt, stats, quality, created string
	if err := s.Scan(&v.ID, &v.Rows, &v.Bytes, &v.Source, &v.Format, &v.Encoding, &v.Importer,
		&v.Status, &v.StatusReason, &statusAt, &stats, &quality, &created); err != nil {
		return Version{}, err
	}
	if err := json.Unmarshal([]byte(stats), &v.Stats); err != nil {
		return Version{}, fmt.Errorf("version %s stats: %w", v.ID, err)
	}
	if err := json.Unmarshal([]byte(quality), &v.Quality); err != nil {
		return Version{}, fmt.Errorf("version %s quality: %w", v.ID, err)
	}
	if t, err := time.Parse(time.RFC3339Nano, statusAt); err == nil {
		v.StatusAt = &t
	}
	v.CreatedAt, _ = time.Parse(time.RFC3339Nano, created)
	return v, nil
}

func ensureDir(dir string) error {
	return os.MkdirAll(dir, 0o700)
}

func marshal(v any) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}

// Redacted returns e as those who may not see the data itself see it:
// column extremes only for public fields, no examples of bad values.
func (e Entry) Redacted() Entry {
	public := map[string]bool{}
	for _, f := range e.Fields {
		if f.Sensitivity == "public" && f.Identifier == IdentifierNone {
			public[f.Name] = true
		}
	}
	e.Versions = slices.Clone(e.Versions)
	for i := range e.Versions {
		e.Versions[i] = e.Versions[i].redacted(public)
	}
	return e
}

// redacted drops the extremes of every column not in keep and the examples
// of bad values.
func (v Version) redacted(keep map[string]bool) Version {
	v.Stats = slices.Clone(v.Stats)
	for i := range v.Stats {
		if !keep[v.Stats[i].Name] {
			v.Stats[i].Min, v.Stats[i].Max = "", ""
		}
	}
	v.Quality.Violations = slices.Clone(v.Quality.Violations)
	for i := range v.Quality.Violations {
		v.Quality.Violations[i].Examples = nil
	}
	return v
}
