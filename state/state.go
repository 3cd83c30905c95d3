// Package state opens the platform's embedded state database (SQLite) and
// migrates it to the current schema.
//
// The state database holds the catalog, principals, agreements and jobs. It is
// separate from the audit log (which is append-only files) and from the
// sandbox's DuckDB instances, which never see it.
package state

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/pressly/goose/v3"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

//go:embed migrations/*.sql
var migrations embed.FS

// File is the name of the state database inside the data directory.
const File = "state.db"

// Open opens (creating if needed) the state database in dir and applies any
// pending migrations.
func Open(ctx context.Context, dir string) (*sql.DB, error) {
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
	if err := migrate(ctx, db); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

func migrate(ctx context.Context, db *sql.DB) error {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("state: migrations: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db, sub)
	if err != nil {
		return fmt.Errorf("state: migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("state: migrate: %w", err)
	}
	return nil
}
