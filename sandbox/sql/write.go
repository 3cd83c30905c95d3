package sql

import (
	"context"
	"crypto/sha256"
	stdsql "database/sql"
	"database/sql/driver"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"

	duckdb "github.com/duckdb/duckdb-go/v2"
)

// resultView is the name under which the writer database sees the job's Arrow result.
const resultView = "__dsbx_result"

// written is what writeParquet produced.
type written struct {
	rows    int64
	bytes   int64
	sha256  string
	columns []ResultColumn
	cells   []int64
	stats   []CellStats
}

// writeParquet streams the job's Arrow result rr into a Parquet file at out.
//
// arrow-go's Parquet writer needs modules this repository does not carry, so the
// file is written by a second, host-side DuckDB that runs only the fixed COPY below:
// it scans rr through the Arrow C stream interface, behind a reader that enforces the
// row and byte caps and strips the sandbox's appended columns (see layoutOf), and may touch no file but the
// temporary one it writes. The file is then synced, hashed and linked to out; on any
// error no file is left at out.
func writeParquet(ctx context.Context, rr arrowReader, out string, l Limits) (*written, error) {
	f, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("sql: create result file: %w", err)
	}
	tmp := f.Name()
	f.Close()
	defer os.Remove(tmp)

	c, err := newCapped(ctx, rr, l)
	if err != nil {
		return nil, err
	}
	defer c.Release()
	if err := copyToParquet(ctx, c, tmp, l); err != nil {
		if c.err != nil { // the cap or the source failed first: report that, not DuckDB's echo of it
			return nil, c.err
		}
		return nil, err
	}
	if c.err != nil {
		return nil, c.err
	}

	size, sum, err := syncAndHash(tmp)
	if err != nil {
		return nil, err
	}
	if size > l.MaxBytes {
		return nil, fmt.Errorf("%w: result file is %d bytes, more than the limit of %d", ErrLimit, size, l.MaxBytes)
	}
	// Link, not rename: it never replaces a file that appeared at out meanwhile.
	if err := os.Link(tmp, out); err != nil {
		return nil, fmt.Errorf("sql: publish result file: %w", err)
	}
	if err := syncDir(filepath.Dir(out)); err != nil {
		os.Remove(out)
		return nil, err
	}
	res := &written{rows: c.rows, bytes: size, sha256: sum, columns: c.columns}
	if c.layout.cellIdx >= 0 {
		res.cells = append([]int64{}, c.cells...)
	}
	if c.layout.stats() {
		res.stats = append([]CellStats{}, c.stats...)
	}
	return res, nil
}

// copyToParquet runs the writer database: locked down, allowed only path, one COPY.
func copyToParquet(ctx context.Context, c *capped, path string, l Limits) error {
	connector, err := duckdb.NewConnector("", nil)
	if err != nil {
		return fmt.Errorf("sql: open writer database: %w", err)
	}
	db := stdsql.OpenDB(connector)
	defer db.Close()
	db.SetMaxOpenConns(1)
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("sql: connect writer database: %w", err)
	}
	defer conn.Close()
	// One thread keeps the rows in the order the job's query produced them.
	if err := lockdown(ctx, conn, lockSettings{threads: 1, memory: l.Memory, tempDir: "", tempSize: "0 bytes", allowed: []string{path}}); err != nil {
		return err
	}
	return conn.Raw(func(dc any) error {
		dconn, ok := dc.(driver.Conn)
		if !ok {
			return fmt.Errorf("sql: unexpected driver connection %T", dc)
		}
		exec, ok := dc.(driver.ExecerContext)
		if !ok {
			return fmt.Errorf("sql: driver connection %T cannot execute", dc)
		}
		ar, err := duckdb.NewArrowFromConn(dconn)
		if err != nil {
			return fmt.Errorf("sql: writer arrow interface: %w", err)
		}
		release, err := ar.RegisterView(c, resultView)
		if err != nil {
			return fmt.Errorf("sql: register result stream: %w", err)
		}
		defer release()
		stmt := "COPY (SELECT * FROM " + ident(resultView) + ") TO " + literal(path) + " (FORMAT parquet, COMPRESSION zstd, USE_TMP_FILE false)"
		if _, err := exec.ExecContext(ctx, stmt, nil); err != nil {
			return fmt.Errorf("sql: write result: %w", err)
		}
		return nil
	})
}

// syncAndHash fsyncs the file at path and returns its size and hex SHA-256.
func syncAndHash(path string) (int64, string, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return 0, "", fmt.Errorf("sql: open result file: %w", err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return 0, "", fmt.Errorf("sql: sync result file: %w", err)
	}
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return 0, "", fmt.Errorf("sql: hash result file: %w", err)
	}
	if err := f.Close(); err != nil {
		return 0, "", fmt.Errorf("sql: close result file: %w", err)
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}

// syncDir fsyncs a directory so a new entry in it survives a crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sql: open result directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sql: sync result directory: %w", err)
	}
	return nil
}
