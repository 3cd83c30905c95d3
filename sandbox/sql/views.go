package sql

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	stdsql "database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"
)

// MaxViews is how many built views a view directory keeps; building one
// more removes the least recently used.
const MaxViews = 8

// A built view is a job's tables (exactly the allowed columns, each in its
// form, bounded as asked) written once into a DuckDB database file, which
// later jobs with the same tables open read-only as their own database
// instead of copying the columns again: a 10M-row copy costs a second, a
// read-only open a few milliseconds, and DuckDB scans its own storage at
// least as fast as Parquet. The file holds nothing the job could not
// already read. Each job opens a private copy of it (read-only, locked
// down like any other database): DuckDB lets SQL write the file of a
// database it opened (COPY … TO it with USE_TMP_FILE false) and its WAL,
// so a shared file could be changed for the next job. The copy is removed
// when the job ends.
//
// The view's name is a SHA-256 over everything that decides its content:
// each snapshot's path, size and modification time, table names, columns
// and forms, the hash key and the bounding. A view is written under a
// temporary name and renamed into place, so a reader sees a whole view or
// none.

// viewName is the file name of spec's built view.
func viewName(spec Spec) (string, error) {
	type table struct {
		Table
		Size  int64
		MTime time.Time
	}
	var ts []table
	for _, t := range spec.Tables {
		st, err := os.Stat(t.Parquet)
		if err != nil {
			return "", fmt.Errorf("sql: snapshot of %s: %w", t.Name, err)
		}
		ts = append(ts, table{Table: t, Size: st.Size(), MTime: st.ModTime().UTC()})
	}
	b, err := json.Marshal(ts) // HashKey is marshalled too: only its hash is written
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(append([]byte("dsbx view v1\x00"), b...))
	return hex.EncodeToString(sum[:]) + ".duckdb", nil
}

// openView returns the built view of spec's tables in spec.Views, building
// it first if it is missing, and whether it was built now.
func openView(ctx context.Context, spec Spec) (path string, built bool, err error) {
	name, err := viewName(spec)
	if err != nil {
		return "", false, err
	}
	path = filepath.Join(spec.Views, name)
	now := time.Now()
	if err := os.Chtimes(path, now, now); err == nil { // used: the newest to evict
		return path, false, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", false, fmt.Errorf("sql: view %s: %w", name, err)
	}
	if err := buildView(ctx, spec, path); err != nil {
		return "", false, err
	}
	pruneViews(spec.Views, path)
	return path, true, nil
}

// buildView writes spec's tables into a new DuckDB file at path.
func buildView(ctx context.Context, spec Spec, path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("sql: view directory: %w", err)
	}
	tmp := path + ".tmp-" + rand.Text()
	defer os.Remove(tmp)
	defer os.Remove(tmp + ".wal")
	connector, err := duckdb.NewConnector("", nil)
	if err != nil {
		return fmt.Errorf("sql: build view: %w", err)
	}
	db := stdsql.OpenDB(connector)
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("sql: build view: %w", err)
	}
	defer conn.Close()
	// The build runs before the job's own database is opened, under the
	// job's memory and thread limits.
	for _, stmt := range []string{
		"SET threads = " + fmt.Sprint(spec.Limits.Threads),
		"SET memory_limit = " + literal(spec.Limits.Memory),
		"SET temp_directory = " + literal(spec.Limits.TempDir),
		"ATTACH " + literal(tmp) + " AS view",
	} {
		if _, err := conn.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("sql: build view: %w", err)
		}
	}
	for _, t := range spec.Tables {
		sel, err := selectView(ctx, conn, t)
		if err != nil {
			return fmt.Errorf("sql: build view of %s: %w", t.Name, err)
		}
		if _, err := conn.ExecContext(ctx, "CREATE TABLE view.main."+ident(t.Name)+" AS "+sel); err != nil {
			return fmt.Errorf("sql: build view of %s: %w", t.Name, err)
		}
	}
	if _, err := conn.ExecContext(ctx, "DETACH view"); err != nil {
		return fmt.Errorf("sql: build view: %w", err)
	}
	if err := syncFile(tmp); err != nil {
		return fmt.Errorf("sql: build view: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("sql: build view: %w", err)
	}
	return nil
}

// syncFile flushes the file at path to disk.
func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// pruneViews removes the least recently used built views in dir beyond
// MaxViews, never keep, and temporary files left by builds that died. A
// view removed while a job reads it stays readable to that job.
func pruneViews(dir, keep string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	type view struct {
		path string
		used time.Time
	}
	var views []view
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		info, err := e.Info()
		if err != nil {
			continue
		}
		if strings.Contains(e.Name(), ".tmp-") {
			if time.Since(info.ModTime()) > time.Hour { // a build that died; a live one touches its file
				os.Remove(p)
			}
			continue
		}
		if p != keep && strings.HasSuffix(e.Name(), ".duckdb") {
			views = append(views, view{p, info.ModTime()})
		}
	}
	sort.Slice(views, func(i, j int) bool { return views[i].used.After(views[j].used) })
	for _, v := range views[min(len(views), MaxViews-1):] {
		os.Remove(v.path)
	}
}

// privateView is where a job writing out opens its copy of a built view.
func privateView(out string) string { return out + ".view.duckdb" }

// removePrivateView removes a job's copy of a view and any WAL the job made
// next to it.
func removePrivateView(private string) {
	files, _ := filepath.Glob(private + "*")
	for _, f := range files {
		os.Remove(f)
	}
}

// copyFile copies src to a new file dst.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil { // copy_file_range on Linux
		out.Close()
		return err
	}
	return out.Close()
}
