// Package state opens the platform's state database and migrates it to the
// current schema: the embedded SQLite file in the data directory by default,
// or a PostgreSQL database shared by several nodes.
//
// The state database holds the catalog, principals, agreements and jobs. It is
// separate from the audit log (which is append-only files) and from the
// sandbox's DuckDB instances, which never see it.
//
// Both speak the same SQL: the packages that use the state write their
// queries once, with ? placeholders, in the subset the two share; DB turns
// the placeholders into PostgreSQL's $1, $2, … Write transactions are
// serialized on both (see DB.BeginTx), so code written against SQLite's one
// writer holds on PostgreSQL too.
package state

import (
	"context"
	"crypto/rand"
	"database/sql"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	"github.com/pressly/goose/v3"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

//go:embed migrations/sqlite/*.sql migrations/postgres/*.sql
var migrations embed.FS

// File is the name of the embedded state database inside the data directory.
const File = "state.db"

// Dialect is the database behind a DB.
type Dialect string

const (
	SQLite     Dialect = "sqlite"     // the embedded default, one file in the data directory
	PostgreSQL Dialect = "postgresql" // a server shared by several nodes
)

// writeLock is the PostgreSQL advisory lock every write transaction holds
// until it ends ("dsbx" and 1).
const writeLock = 0x6473627801

// DB is an open state database. Its methods are database/sql's, taking
// queries with ? placeholders whatever the dialect.
type DB struct {
	db      *sql.DB
	dialect Dialect
	rebound sync.Map // query → the same with $n placeholders (PostgreSQL)
}

// IsURL reports whether s names a PostgreSQL database (postgres:// or
// postgresql://) rather than a directory.
func IsURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// Open opens the state database and applies any pending migrations: the
// PostgreSQL database at url when url is given, else the embedded SQLite
// file in dir, created if needed.
func Open(ctx context.Context, dir, url string) (*DB, error) {
	if url != "" {
		return openPostgres(ctx, url)
	}
	path := filepath.Join(dir, File)
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=foreign_keys(ON)&_pragma=busy_timeout(5000)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("state: open %s: %w", path, err)
	}
	// SQLite allows one writer; a single connection keeps transactions simple
	// and ordered.
	db.SetMaxOpenConns(1)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("state: open %s: %w", path, err)
	}
	s := &DB{db: db, dialect: SQLite}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// openPostgres opens the PostgreSQL database at u.
func openPostgres(ctx context.Context, u string) (*DB, error) {
	if !IsURL(u) {
		return nil, fmt.Errorf("state: %q is not a PostgreSQL URL; give postgres://USER@HOST:PORT/DATABASE, or no URL for the embedded database", u)
	}
	name := Redact(u)
	db, err := sql.Open("pgx", u)
	if err != nil {
		return nil, fmt.Errorf("state: open %s: %w", name, err)
	}
	// Keep the connections open: database/sql keeps 2 idle by default and
	// closes the rest after use, and each new PostgreSQL connection forks a
	// backend (measured: a third of the CPU under load went to it).
	db.SetMaxOpenConns(16)
	db.SetMaxIdleConns(16)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("state: connect to %s: %w; check that the server runs and the URL's user, password and database are right", name, err)
	}
	s := &DB{db: db, dialect: PostgreSQL}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// Redact returns the URL u with its password, if any, replaced by "xxxxx",
// for messages and logs.
func Redact(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "the PostgreSQL URL (unparseable)"
	}
	return p.Redacted()
}

func (s *DB) migrate(ctx context.Context) error {
	dir, dialect := "migrations/sqlite", goose.DialectSQLite3
	if s.dialect == PostgreSQL {
		dir, dialect = "migrations/postgres", goose.DialectPostgres
	}
	sub, err := fs.Sub(migrations, dir)
	if err != nil {
		return fmt.Errorf("state: migrations: %w", err)
	}
	p, err := goose.NewProvider(dialect, s.db, sub)
	if err != nil {
		return fmt.Errorf("state: migrations: %w", err)
	}
	if s.dialect == PostgreSQL {
		// Nodes starting together migrate one at a time.
		conn, err := s.db.Conn(ctx)
		if err != nil {
			return fmt.Errorf("state: migrate: %w", err)
		}
		defer conn.Close()
		if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, writeLock); err != nil {
			return fmt.Errorf("state: migrate: lock: %w", err)
		}
		defer conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, writeLock)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("state: migrate: %w", err)
	}
	return nil
}

// Instant returns SQL that turns expr, an RFC 3339 time as the state
// stores times (or a ? placeholder for one), into a value that compares in
// time order: RFC 3339 text does not, when zones or fractions of a second
// differ. It is the one expression the dialects spell differently.
func (s *DB) Instant(expr string) string {
	if s.dialect == PostgreSQL {
		return "CAST(" + expr + " AS timestamptz)"
	}
	return "julianday(" + expr + ")"
}

// Now returns the database's clock, which every node sharing it reads
// alike: PostgreSQL's now() (the transaction's start, outside of one the
// statement's); SQLite's is this machine's.
func (s *DB) Now(ctx context.Context) (time.Time, error) {
	if s.dialect != PostgreSQL {
		return time.Now(), nil
	}
	var t time.Time
	if err := s.db.QueryRowContext(ctx, `SELECT now()`).Scan(&t); err != nil {
		return time.Time{}, fmt.Errorf("state: read the database's clock: %w", err)
	}
	return t, nil
}

// Dialect reports which database this is.
func (s *DB) Dialect() Dialect { return s.dialect }

// Close closes the database.
func (s *DB) Close() error { return s.db.Close() }

// PingContext checks that the database answers.
func (s *DB) PingContext(ctx context.Context) error { return s.db.PingContext(ctx) }

// ExecContext runs a statement that returns no rows.
func (s *DB) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return s.db.ExecContext(ctx, s.bind(query), args...)
}

// QueryContext runs a query that returns rows.
func (s *DB) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return s.db.QueryContext(ctx, s.bind(query), args...)
}

// QueryRowContext runs a query that returns at most one row.
func (s *DB) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	return s.db.QueryRowContext(ctx, s.bind(query), args...)
}

// BeginTx starts a transaction that writes: on SQLite it takes the one
// write lock (BEGIN IMMEDIATE), on PostgreSQL an advisory lock every write
// transaction of every node takes, so that transactions which read and
// then write (the next ID, a budget, a quota) never interleave.
func (s *DB) BeginTx(ctx context.Context, opts *sql.TxOptions) (*Tx, error) {
	tx, err := s.db.BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	if s.dialect == PostgreSQL {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, writeLock); err != nil {
			tx.Rollback()
			return nil, fmt.Errorf("state: take the write lock: %w", err)
		}
	}
	return &Tx{tx: tx, db: s}, nil
}

// Tx is a transaction begun by DB.BeginTx.
type Tx struct {
	tx *sql.Tx
	db *DB
}

// ExecContext runs a statement that returns no rows.
func (t *Tx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return t.tx.ExecContext(ctx, t.db.bind(query), args...)
}

// QueryContext runs a query that returns rows.
func (t *Tx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return t.tx.QueryContext(ctx, t.db.bind(query), args...)
}

// QueryRowContext runs a query that returns at most one row.
func (t *Tx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	return t.tx.QueryRowContext(ctx, t.db.bind(query), args...)
}

// Commit commits the transaction.
func (t *Tx) Commit() error { return t.tx.Commit() }

// Rollback aborts the transaction.
func (t *Tx) Rollback() error { return t.tx.Rollback() }

// bind returns query in the database's placeholder style.
func (s *DB) bind(query string) string {
	if s.dialect != PostgreSQL {
		return query
	}
	if q, ok := s.rebound.Load(query); ok {
		return q.(string)
	}
	q := numberPlaceholders(query)
	s.rebound.Store(query, q)
	return q
}

// numberPlaceholders replaces each ? outside quotes and comments with $1,
// $2, … in order.
func numberPlaceholders(query string) string {
	var b strings.Builder
	b.Grow(len(query) + 16)
	n := 0
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case c == '\'' || c == '"':
			j := i + 1
			for j < len(query) {
				if query[j] == c {
					if j+1 < len(query) && query[j+1] == c { // doubled quote
						j += 2
						continue
					}
					break
				}
				j++
			}
			b.WriteString(query[i:min(j+1, len(query))])
			i = j
		case c == '-' && i+1 < len(query) && query[i+1] == '-':
			j := strings.IndexByte(query[i:], '\n')
			if j < 0 {
				j = len(query) - i
			}
			b.WriteString(query[i : i+j])
			i += j - 1
		case c == '?':
			n++
			fmt.Fprintf(&b, "$%d", n)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// Notify tells every node listening on channel (Listen) that something
// changed; on SQLite, where one process holds the database, it does
// nothing.
func (s *DB) Notify(ctx context.Context, channel string) error {
	if s.dialect != PostgreSQL {
		return nil
	}
	_, err := s.db.ExecContext(ctx, `SELECT pg_notify($1, '')`, channel)
	return err
}

// Listen calls f whenever a node notifies channel (Notify), until ctx ends,
// holding one connection of the pool; on SQLite it returns at once. A lost
// connection is opened again after a second, and f is called then too, in
// case a notification was missed meanwhile.
func (s *DB) Listen(ctx context.Context, channel string, f func()) {
	if s.dialect != PostgreSQL {
		return
	}
	for ctx.Err() == nil {
		err := s.listenOnce(ctx, channel, f)
		if ctx.Err() != nil {
			return
		}
		slog.Warn("state: listen for notifications", "channel", channel, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
		f()
	}
}

func (s *DB) listenOnce(ctx context.Context, channel string, f func()) error {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		c, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("unexpected driver connection %T", dc)
		}
		pc := c.Conn()
		if _, err := pc.Exec(ctx, `LISTEN `+pgx.Identifier{channel}.Sanitize()); err != nil {
			return err
		}
		defer pc.Exec(context.WithoutCancel(ctx), `UNLISTEN `+pgx.Identifier{channel}.Sanitize())
		for {
			if _, err := pc.WaitForNotification(ctx); err != nil {
				return err
			}
			f()
		}
	})
}

// CreateDatabase creates a new, empty database named prefix and a random
// suffix on the PostgreSQL server at admin (a URL of any database there,
// as a user allowed to create databases), for tests and benchmarks. It
// returns the new database's URL and a func that drops it.
func CreateDatabase(ctx context.Context, admin, prefix string) (string, func() error, error) {
	u, err := url.Parse(admin)
	if err != nil || !IsURL(admin) {
		return "", nil, fmt.Errorf("state: %q is not a postgres:// URL", admin)
	}
	b := make([]byte, 6)
	rand.Read(b)
	name := prefix + hex.EncodeToString(b)
	db, err := sql.Open("pgx", admin)
	if err != nil {
		return "", nil, err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `CREATE DATABASE `+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", nil, fmt.Errorf("state: create database %s on %s: %w", name, u.Redacted(), err)
	}
	u.Path = "/" + name
	drop := func() error {
		db, err := sql.Open("pgx", admin)
		if err != nil {
			return err
		}
		defer db.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := db.ExecContext(ctx, `DROP DATABASE IF EXISTS `+pgx.Identifier{name}.Sanitize()+` WITH (FORCE)`); err != nil {
			return fmt.Errorf("state: drop database %s: %w", name, err)
		}
		return nil
	}
	return u.String(), drop, nil
}
