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
	"strings"
	"time"

	"github.com/datasandbox/dsbx/audit"
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

// Entry is one catalog entry.
type Entry struct {
	Name        string    `json:"name"`
	Title       string    `json:"title,omitempty"`
	Description string    `json:"description,omitempty"`
	Agency      string    `json:"agency,omitempty"`
	Grade       string    `json:"grade"`
	Open        string    `json:"open"`
	Share       string    `json:"share"`
	Frequency   string    `json:"update_frequency,omitempty"`
	Fields      []Field   `json:"fields"`
	CreatedAt   time.Time `json:"created_at"`
	Versions    []Version `json:"versions,omitempty"`
}

// Field is the catalog's label for one column.
type Field struct {
	Name        string `json:"name" yaml:"name"`
	Type        string `json:"type" yaml:"type"`
	Description string `json:"description,omitempty" yaml:"description"`
	Sensitivity string `json:"sensitivity" yaml:"sensitivity"`
	Identifier  string `json:"identifier" yaml:"identifier"`
}

// Version is one immutable snapshot of a dataset, named by the SHA-256 of its
// Parquet file.
type Version struct {
	ID        string    `json:"id"`
	Rows      int64     `json:"rows"`
	Bytes     int64     `json:"bytes"`
	Source    string    `json:"source"`
	CreatedAt time.Time `json:"created_at"`
}

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
	db  *sql.DB
	dir string // snapshots live in dir/<name>/<version>.parquet
	log Recorder
	now func() time.Time
}

// NewCatalog returns a catalog over db that keeps snapshots in dir and
// records every change in log.
func NewCatalog(db *sql.DB, dir string, log Recorder) *Catalog {
	return &Catalog{db: db, dir: dir, log: log, now: time.Now}
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

// List returns every entry, without versions, ordered by name.
func (c *Catalog) List(ctx context.Context) ([]Entry, error) {
	rows, err := c.db.QueryContext(ctx, `SELECT name, title, description, agency, grade, open, share, frequency, fields, created_at FROM datasets ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list datasets: %w", err)
	}
	defer rows.Close()
	var out []Entry
	for rows.Next() {
		e, err := scanEntry(rows)
		if err != nil {
			return nil, fmt.Errorf("list datasets: %w", err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// Get returns the entry named name with its versions, newest first.
func (c *Catalog) Get(ctx context.Context, name string) (Entry, error) {
	row := c.db.QueryRowContext(ctx, `SELECT name, title, description, agency, grade, open, share, frequency, fields, created_at FROM datasets WHERE name = ?`, name)
	e, err := scanEntry(row)
	if errors.Is(err, sql.ErrNoRows) {
		return Entry{}, fmt.Errorf("dataset %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return Entry{}, fmt.Errorf("dataset %q: %w", name, err)
	}
	rows, err := c.db.QueryContext(ctx, `SELECT version, rows, bytes, source, created_at FROM dataset_versions WHERE dataset = ? ORDER BY created_at DESC, rowid DESC`, name)
	if err != nil {
		return Entry{}, fmt.Errorf("dataset %q versions: %w", name, err)
	}
	defer rows.Close()
	for rows.Next() {
		var v Version
		var created string
		if err := rows.Scan(&v.ID, &v.Rows, &v.Bytes, &v.Source, &created); err != nil {
			return Entry{}, fmt.Errorf("dataset %q versions: %w", name, err)
		}
		v.CreatedAt, _ = time.Parse(time.RFC3339Nano, created)
		e.Versions = append(e.Versions, v)
	}
	return e, rows.Err()
}

// Resolve returns the entry and the version that ref names: "NAME" for the
// newest version, "NAME@PREFIX" for the version whose ID starts with PREFIX.
func (c *Catalog) Resolve(ctx context.Context, ref string) (Entry, Version, error) {
	name, want, pinned := strings.Cut(ref, "@")
	e, err := c.Get(ctx, name)
	if err != nil {
		return Entry{}, Version{}, err
	}
	if len(e.Versions) == 0 {
		return Entry{}, Version{}, fmt.Errorf("dataset %q has no version: %w", name, ErrNotFound)
	}
	if !pinned {
		return e, e.Versions[0], nil
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

type scanner interface{ Scan(dest ...any) error }

func scanEntry(s scanner) (Entry, error) {
	var e Entry
	var fields, created string
	if err := s.Scan(&e.Name, &e.Title, &e.Description, &e.Agency, &e.Grade, &e.Open, &e.Share, &e.Frequency, &fields, &created); err != nil {
		return Entry{}, err
	}
	if err := json.Unmarshal([]byte(fields), &e.Fields); err != nil {
		return Entry{}, fmt.Errorf("fields of %s: %w", e.Name, err)
	}
	e.CreatedAt, _ = time.Parse(time.RFC3339Nano, created)
	return e, nil
}

func ensureDir(dir string) error {
	return os.MkdirAll(dir, 0o700)
}

func marshal(v any) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}
