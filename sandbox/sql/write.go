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

// writer is the host-side DuckDB that writes a job's result into a
// temporary file next to the result (see writeParquet). startWriter opens
// and locks it down in the background while the job's own database loads
// and runs: opening a DuckDB costs tens of milliseconds.
type writer struct {
	tmp  string
	done chan struct{} // closed when db and conn are ready, or err is set
	db   *stdsql.DB
	conn *stdsql.Conn
	err  error
}

// startWriter creates the temporary result file for out and starts opening
// the writer database, allowed only that file.
func startWriter(ctx context.Context, out string, l Limits) *writer {
	w := &writer{done: make(chan struct{})}
	f, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".tmp-*")
	if err != nil {
		w.err = fmt.Errorf("sql: create result file: %w", err)
		close(w.done)
		return w
	}
	w.tmp = f.Name()
	f.Close()
	go func() {
		defer close(w.done)
		w.db, w.conn, w.err = openWriter(ctx, w.tmp, l)
	}()
	return w
}

// removeTemporaryResults removes the temporary files writers of out left
// (a worker killed while it ran).
func removeTemporaryResults(out string) {
	files, _ := filepath.Glob(filepath.Join(filepath.Dir(out), "."+filepath.Base(out)+".tmp-*"))
	for _, f := range files {
		os.Remove(f)
	}
}

// close closes the writer database and removes the temporary file.
func (w *writer) close() {
	<-w.done
	if w.conn != nil {
		w.conn.Close()
	}
	if w.db != nil {
		w.db.Close()
	}
	if w.tmp != "" {
		os.Remove(w.tmp)
	}
}

// openWriter opens the writer database: locked down, allowed only path.
func openWriter(ctx context.Context, path string, l Limits) (*stdsql.DB, *stdsql.Conn, error) {
	connector, err := duckdb.NewConnector("", nil)
	if err != nil {
		return nil, nil, fmt.Errorf("sql: open writer database: %w", err)
	}
	db := stdsql.OpenDB(connector)
	db.SetMaxOpenConns(1)
	conn, err := db.Conn(ctx)
	if err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("sql: connect writer database: %w", err)
	}
	// One thread keeps the rows in the order the job's query produced them.
	if err := lockdown(ctx, conn, lockSettings{threads: 1, memory: l.Memory, tempDir: "", tempSize: "0 bytes", allowed: []string{path}}); err != nil {
		conn.Close()
		db.Close()
		return nil, nil, err
	}
	return db, conn, nil
}

// writeParquet streams the job's Arrow result rr into a Parquet file at out
// through w.
//
// arrow-go's Parquet writer needs modules this repository does not carry, so the
// file is written by a second, host-side DuckDB that runs only the fixed COPY below:
// it scans rr through the Arrow C stream interface, behind a reader that enforces the
// row and byte caps and strips the sandbox's appended columns (see layoutOf), and may touch no file but the
// temporary one it writes. The file is then synced, hashed and linked to out; on any
// error no file is left at out.
func writeParquet(ctx context.Context, rr arrowReader, w *writer, out string, l Limits) (*written, error) {
	<-w.done
	if w.err != nil {
		return nil, w.err
	}
	c, err := newCapped(ctx, rr, l)
	if err != nil {
		return nil, err
	}
	defer c.Release()
	if err := copyToParquet(ctx, c, w); err != nil {
		if c.err != nil { // the cap or the source failed first: report that, not DuckDB's echo of it
			return nil, c.err
		}
		return nil, err
	}
	if c.err != nil {
		return nil, c.err
	}

	size, sum, err := syncAndHash(w.tmp)
	if err != nil {
		return nil, err
	}
	if size > l.MaxBytes {
		return nil, fmt.Errorf("%w: result file is %d bytes, more than the limit of %d", ErrLimit, size, l.MaxBytes)
	}
	// Link, not rename: it never replaces a file that appeared at out meanwhile.
	if err := os.Link(w.tmp, out); err != nil {
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

// copyToParquet runs the one COPY on the writer database.
func copyToParquet(ctx context.Context, c *capped, w *writer) error {
	return w.conn.Raw(func(dc any) error {
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
		stmt := "COPY (SELECT * FROM " + ident(resultView) + ") TO " + literal(w.tmp) + " (FORMAT parquet, COMPRESSION zstd, USE_TMP_FILE false)"
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
