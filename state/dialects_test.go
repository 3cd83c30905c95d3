package state_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/datasandbox/dsbx/state"
	"github.com/datasandbox/dsbx/state/statetest"
)

// These run against the database the test run asks for (statetest), so
// against both dialects in `make test`.

func TestSchemaAndReopen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := state.Open(ctx, dir, statetest.URL(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO principals(name, roles, created_at) VALUES (?, ?, ?)`, "a", `["admin"]`, "now"); err != nil {
		t.Fatalf("schema missing: %v", err)
	}
	// agreement_history has a column named by, a keyword in both.
	if _, err := db.ExecContext(ctx, `INSERT INTO agreements(id, holder, kind, provider, scope, purposes, outputs, quotas, valid_from, valid_until, status, created_at, created_by)
		VALUES (1, 'a', 'data-use', 'p', '[]', '[]', '{}', '{}', 'f', 'u', 'active', 'now', 'a')`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO agreement_history(agreement, audit_seq, status, reason, "by", at) VALUES (?, ?, ?, ?, ?, ?)`, 1, 2, "active", "granted", "a", "now"); err != nil {
		t.Fatalf("agreement history: %v", err)
	}
	db.Close()

	db, err = state.Open(ctx, dir, statetest.URL(t, dir))
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM principals`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("after reopen: n=%d err=%v, want the row kept", n, err)
	}
}

func TestForeignKeysEnforced(t *testing.T) {
	db := statetest.Open(t, t.TempDir())
	_, err := db.ExecContext(context.Background(), `INSERT INTO tokens(hash, principal, created_at) VALUES ('h', 'nobody', 'now')`)
	if err == nil {
		t.Fatal("token for a missing principal was accepted; foreign keys are off")
	}
}

// TestTextOrdersByBytes: names sort as bytes in both, so lists come out in
// the same order whichever database holds them.
func TestTextOrdersByBytes(t *testing.T) {
	ctx := context.Background()
	db := statetest.Open(t, t.TempDir())
	names := []string{"b", "B", "a", "_x", "Z", "市", "é"}
	for _, n := range names {
		if _, err := db.ExecContext(ctx, `INSERT INTO principals(name, roles, created_at) VALUES (?, '[]', 'now')`, n); err != nil {
			t.Fatal(err)
		}
	}
	rows, err := db.QueryContext(ctx, `SELECT name FROM principals ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var n string
		rows.Scan(&n)
		got = append(got, n)
	}
	if want := "B Z _x a b é 市"; strings.Join(got, " ") != want {
		t.Fatalf("order %q, want %q", strings.Join(got, " "), want)
	}
}

// TestInstantComparesTimes: RFC 3339 text in different zones and with
// different fractions compares in time order through Instant.
func TestInstantComparesTimes(t *testing.T) {
	ctx := context.Background()
	db := statetest.Open(t, t.TempDir())
	for _, c := range []struct {
		a, b  string
		later bool
	}{
		{"2026-12-07T10:00:00.5Z", "2026-12-07T10:00:00Z", true},       // as text, "." < "Z"
		{"2026-12-07T17:00:00+08:00", "2026-12-07T10:00:00.1Z", false}, // 09:00 UTC
		{"2026-12-08T01:00:00+08:00", "2026-12-07T16:59:59Z", true},
	} {
		var later bool
		if err := db.QueryRowContext(ctx, `SELECT `+db.Instant("?")+` > `+db.Instant("?"), c.a, c.b).Scan(&later); err != nil {
			t.Fatalf("%s > %s: %v", c.a, c.b, err)
		}
		if later != c.later {
			t.Errorf("%s > %s = %v, want %v", c.a, c.b, later, c.later)
		}
	}
}

// TestWriteTransactionsAreSerialized: transactions on two handles (two
// nodes) that each read the largest ID and insert the next never collide,
// because every write transaction holds the one write lock.
func TestWriteTransactionsAreSerialized(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a := statetest.Open(t, dir)
	b, err := state.Open(ctx, dir, statetest.URL(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := a.ExecContext(ctx, `INSERT INTO principals(name, roles, created_at) VALUES ('op', '[]', 'now')`); err != nil {
		t.Fatal(err)
	}
	const each = 20
	var wg sync.WaitGroup
	errs := make(chan error, 4*each)
	for w := range 4 {
		db := a
		if w%2 == 1 {
			db = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				errs <- nextApplication(ctx, db)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	var n, top int64
	if err := a.QueryRowContext(ctx, `SELECT count(*), max(id) FROM applications`).Scan(&n, &top); err != nil {
		t.Fatal(err)
	}
	if n != 4*each || top != 4*each {
		t.Fatalf("%d applications, largest ID %d; want %d and %d", n, top, 4*each, 4*each)
	}
}

// nextApplication inserts an application numbered one past the largest.
func nextApplication(ctx context.Context, db *state.DB) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var id int64
	if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(id), 0) + 1 FROM applications`).Scan(&id); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO applications(id, applicant, kind, provider, request, status, submitted_at, due_at) VALUES (?, 'op', 'data-use', 'p', '{}', 'pending', 'now', 'later')`, id); err != nil {
		return fmt.Errorf("insert application %d: %w", id, err)
	}
	return tx.Commit()
}

func TestBadURL(t *testing.T) {
	ctx := context.Background()
	for _, u := range []string{"mysql://x", "postgres://nobody:secret@127.0.0.1:1/db?connect_timeout=2"} {
		_, err := state.Open(ctx, t.TempDir(), u)
		if err == nil {
			t.Fatalf("%s opened", u)
		}
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("the error shows the password: %v", err)
		}
	}
}

// TestNotifyReachesListeners: on PostgreSQL a notification from one handle
// (node) wakes a listener on another; on SQLite, with one process, both are
// no-ops.
func TestNotifyReachesListeners(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir := t.TempDir()
	a := statetest.Open(t, dir)
	if a.Dialect() != state.PostgreSQL {
		a.Listen(ctx, "c", func() { t.Error("a listener on SQLite was called") }) // returns at once
		if err := a.Notify(ctx, "c"); err != nil {
			t.Fatal(err)
		}
		return
	}
	b, err := state.Open(ctx, dir, statetest.URL(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	heard := make(chan struct{}, 16)
	go a.Listen(ctx, "dsbx_test", func() { heard <- struct{}{} })
	deadline := time.After(10 * time.Second)
	for {
		// Notify until heard: the listener may not be listening yet.
		if err := b.Notify(ctx, "dsbx_test"); err != nil {
			t.Fatal(err)
		}
		select {
		case <-heard:
			return
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			t.Fatal("no notification heard within 10s")
		}
	}
}

func TestCreateDatabaseRefusesBadURLs(t *testing.T) {
	for _, u := range []string{"", "/tmp/x", "mysql://h/db", "postgres://nobody:secret@127.0.0.1:1/db?connect_timeout=2"} {
		_, _, err := state.CreateDatabase(context.Background(), u, "dsbx_x_")
		if err == nil {
			t.Fatalf("%q: created", u)
		}
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("the error shows the password: %v", err)
		}
	}
}

func TestNowIsTheDatabasesClock(t *testing.T) {
	db := statetest.Open(t, t.TempDir())
	now, err := db.Now(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(now); d > time.Minute || d < -time.Minute {
		t.Fatalf("the database's clock says %s, this machine's %s", now, time.Now())
	}
}
