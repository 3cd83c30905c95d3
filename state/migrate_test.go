package state

import (
	"context"
	"database/sql"
	"encoding/json"
	"io/fs"
	"path/filepath"
	"testing"

	"github.com/pressly/goose/v3"
)

// TestMigration3KeepsOldAgreements builds a database at schema 2 with an
// agreement, a principal, a token and a job in their old shapes, then opens
// it: the rows must come through 00003 with their meaning intact.
func TestMigration3KeepsOldAgreements(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	raw, err := sql.Open("sqlite", "file:"+filepath.Join(dir, File)+"?_pragma=foreign_keys(ON)")
	if err != nil {
		t.Fatal(err)
	}
	sub, _ := fs.Sub(migrations, "migrations/sqlite")
	p, err := goose.NewProvider(goose.DialectSQLite3, raw, sub)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(ctx, 2); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO principals(name, kind, roles, created_at) VALUES ('acme', 'company', '["operator"]', '2026-01-01T00:00:00Z')`,
		`INSERT INTO tokens(hash, principal, created_at) VALUES ('abcdef0123456789abcdef', 'acme', '2026-01-01T00:00:00Z')`,
		`INSERT INTO datasets(name, agency, grade, open, share, fields, created_at) VALUES ('people', '市民政局', 'general', 'conditional', 'conditional', '[]', '2026-01-01T00:00:00Z')`,
		`INSERT INTO agreements(id, operator, dataset, fields, purpose, valid_from, valid_until, status, created_at) VALUES (7, 'acme', 'people', '["district","income"]', 'housing study', '2026-01-01', '2026-12-31', 'active', '2026-01-01T00:00:00Z')`,
		`INSERT INTO jobs(id, operator, dataset, version, kind, code, code_sha256, purpose, state, record, created_at, updated_at) VALUES (9, 'acme', 'people', 'v', 'sql', 'SELECT 1', 'h', 'housing study', 'released', '{"decision":{"agreement_id":7}}', 'now', 'now')`,
	} {
		if _, err := raw.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	raw.Close()

	db, err := Open(ctx, dir, "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var holder, provider, scope, purposes, from, until, status string
	if err := db.QueryRowContext(ctx, `SELECT holder, provider, scope, purposes, valid_from, valid_until, status FROM agreements WHERE id = 7`).
		Scan(&holder, &provider, &scope, &purposes, &from, &until, &status); err != nil {
		t.Fatal(err)
	}
	var sc []struct {
		Dataset string            `json:"dataset"`
		Fields  map[string]string `json:"fields"`
	}
	if err := json.Unmarshal([]byte(scope), &sc); err != nil {
		t.Fatalf("scope %s: %v", scope, err)
	}
	if holder != "acme" || provider != "市民政局" || len(sc) != 1 || sc[0].Dataset != "people" || sc[0].Fields["district"] != "raw" || sc[0].Fields["income"] != "raw" ||
		purposes != `["housing study"]` || from != "2026-01-01T00:00:00.000000000Z" || until != "2027-01-01T00:00:00.000000000Z" || status != "active" {
		t.Fatalf("migrated agreement: %s %s %s %s %s %s %s", holder, provider, scope, purposes, from, until, status)
	}
	var id string
	if err := db.QueryRowContext(ctx, `SELECT id FROM tokens WHERE principal = 'acme'`).Scan(&id); err != nil || id != "tok_abcdef012345" {
		t.Fatalf("token ID %q %v", id, err)
	}
	var agreement int64
	if err := db.QueryRowContext(ctx, `SELECT agreement_id FROM jobs WHERE id = 9`).Scan(&agreement); err != nil || agreement != 7 {
		t.Fatalf("job's agreement %d %v", agreement, err)
	}
}
