package operators

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/datasandbox/dsbx/audit"
	"github.com/datasandbox/dsbx/state"
)

func newDirectory(t *testing.T) (*Directory, *audit.Log) {
	t.Helper()
	dir := t.TempDir()
	db, err := state.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	log, err := audit.Open(filepath.Join(dir, "audit"), "test.local/audit")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close() })
	d := NewDirectory(db, log)
	d.SetClock(func() time.Time { return time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC) })
	return d, log
}

func fieldsOf(ctx context.Context, dataset string) ([]string, error) {
	if dataset == "people" {
		return []string{"id_number", "district", "income"}, nil
	}
	return nil, fmt.Errorf("dataset %q: not found", dataset)
}

func TestTokensAuthenticateAndAreStoredHashed(t *testing.T) {
	ctx := context.Background()
	d, _ := newDirectory(t)
	admin, err := d.Bootstrap(ctx)
	if err != nil || !strings.HasPrefix(admin, tokenPrefix) {
		t.Fatalf("bootstrap: %q %v", admin, err)
	}
	if again, err := d.Bootstrap(ctx); err != nil || again != "" {
		t.Fatalf("second bootstrap made another admin token: %q %v", again, err)
	}
	p, tok, err := d.Add(ctx, "admin", "Hangzhou Data Co", KindCompany)
	if err != nil {
		t.Fatal(err)
	}
	got, err := d.Authenticate(ctx, tok)
	if err != nil || got.Name != p.Name || !got.Has(RoleOperator) {
		t.Fatalf("authenticate: %+v %v", got, err)
	}
	for _, bad := range []string{"", "dsbx_00", tok + "x", hashToken(tok)} {
		if _, err := d.Authenticate(ctx, bad); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("Authenticate(%q) = %v, want ErrUnauthenticated", bad, err)
		}
	}
	var n int
	d.db.QueryRowContext(ctx, `SELECT count(*) FROM tokens WHERE hash = ?`, tok).Scan(&n)
	if n != 0 {
		t.Fatal("a token is stored in clear")
	}
}

func TestAddRefusesBadInput(t *testing.T) {
	ctx := context.Background()
	d, log := newDirectory(t)
	if _, _, err := d.Add(ctx, "admin", "acme", KindCompany); err != nil {
		t.Fatal(err)
	}
	size := log.Size()
	for _, tc := range []struct{ name, kind, want string }{
		{"acme", KindCompany, "already exists"},
		{"", KindCompany, "name"},
		{"x; drop", KindCompany, "name"},
		{"root", KindAdmin, "cannot be added"},
		{"lab", "government", "kind"},
	} {
		_, _, err := d.Add(ctx, "admin", tc.name, tc.kind)
		var ie *InputError
		if !errors.As(err, &ie) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Add(%q, %q) = %v, want input error about %q", tc.name, tc.kind, err, tc.want)
		}
	}
	if log.Size() != size {
		t.Errorf("refused adds were audited as changes")
	}
}

func TestGrantChecksTermFieldsAndExpires(t *testing.T) {
	ctx := context.Background()
	d, _ := newDirectory(t)
	d.Add(ctx, "admin", "acme", KindCompany)
	good := Grant{Operator: "acme", Dataset: "people", Fields: []string{"district", "income"}, Purpose: "elderly care planning", ValidUntil: "2027-11-23"}
	a, err := d.Grant(ctx, "admin", good, fieldsOf)
	if err != nil || a.ID == 0 || a.ValidFrom != "2026-11-23" || a.Status != StatusActive {
		t.Fatalf("grant: %+v %v", a, err)
	}
	bad := []struct {
		mod  func(*Grant)
		want string
	}{
		{func(g *Grant) { g.Operator = "nobody" }, "does not exist"},
		{func(g *Grant) { g.Dataset = "cars" }, "not found"},
		{func(g *Grant) { g.Fields = []string{"district", "salary"} }, `no field "salary"`},
		{func(g *Grant) { g.Fields = nil }, "no fields"},
		{func(g *Grant) { g.Purpose = " " }, "purpose"},
		{func(g *Grant) { g.ValidUntil = "2026-11-22" }, "in the past"},
		{func(g *Grant) { g.ValidUntil = "2029-11-24" }, "longer than 3 years"},
		{func(g *Grant) { g.ValidUntil = "next year" }, "not a date"},
	}
	for _, tc := range bad {
		g := good
		tc.mod(&g)
		if _, err := d.Grant(ctx, "admin", g, fieldsOf); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Grant(%+v) = %v, want error about %q", g, err, tc.want)
		}
	}
	list, _ := d.Agreements(ctx, "acme", "people")
	if len(list) != 1 {
		t.Fatalf("agreements after refused grants = %d, want 1", len(list))
	}

	if s := a.StatusAt(time.Date(2027, 11, 23, 23, 59, 0, 0, time.UTC)); s != StatusActive {
		t.Errorf("status on the last day = %s, want active", s)
	}
	d.SetClock(func() time.Time { return time.Date(2027, 11, 24, 0, 0, 1, 0, time.UTC) })
	list, _ = d.Agreements(ctx, "acme", "people")
	if list[0].Status != StatusExpired {
		t.Errorf("status the day after = %s, want expired", list[0].Status)
	}
}
