package state

import (
	"context"
	"testing"
)

func TestOpenMigratesAndReopensSQLite(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := Open(ctx, dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO principals(name, roles, created_at) VALUES ('a', '["admin"]', 'now')`); err != nil {
		t.Fatalf("schema missing: %v", err)
	}
	db.Close()

	db, err = Open(ctx, dir, "")
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
	ctx := context.Background()
	db, err := Open(ctx, t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, err = db.ExecContext(ctx, `INSERT INTO tokens(hash, principal, created_at) VALUES ('h', 'nobody', 'now')`)
	if err == nil {
		t.Fatal("token for a missing principal was accepted; foreign keys are off")
	}
}
