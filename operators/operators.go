// Package operators holds who may use the platform and under which
// agreement: principals with their roles and tokens, and data use agreements
// (数据利用协议) naming dataset, fields, purpose and term.
package operators

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/datasandbox/dsbx/audit"
)

// Principal kinds.
const (
	KindAdmin      = "admin"
	KindCompany    = "company"    // a licensed operating company (授权运营单位)
	KindResearcher = "researcher" // a research user of conditionally open data
)

// Roles a principal may hold.
const (
	RoleAdmin      = "admin"
	RoleOperator   = "operator"
	RoleResearcher = "researcher"
)

// Principal is a user of the platform.
type Principal struct {
	Name      string    `json:"name"`
	Kind      string    `json:"kind"`
	Roles     []string  `json:"roles"`
	CreatedAt time.Time `json:"created_at"`
}

// Has reports whether p holds role.
func (p Principal) Has(role string) bool { return slices.Contains(p.Roles, role) }

// Recorder appends an event to the audit log; the change it describes must
// not take effect unless it returns nil.
type Recorder interface {
	Append(ctx context.Context, e audit.Event) (audit.Entry, error)
}

// Directory stores principals, tokens and agreements.
type Directory struct {
	db  *sql.DB
	log Recorder
	now func() time.Time
}

// NewDirectory returns a directory over db that records changes in log.
func NewDirectory(db *sql.DB, log Recorder) *Directory {
	return &Directory{db: db, log: log, now: time.Now}
}

// SetClock replaces the directory's clock; tests use it to move time.
func (d *Directory) SetClock(now func() time.Time) { d.now = now }

// ErrNotFound reports an unknown principal or agreement.
var ErrNotFound = errors.New("not found")

// ErrUnauthenticated reports a missing, unknown or revoked token.
var ErrUnauthenticated = errors.New("unknown or revoked token")

// InputError is a problem with what the caller supplied.
type InputError struct{ Msg string }

func (e *InputError) Error() string { return e.Msg }

func inputErrorf(format string, args ...any) error {
	return &InputError{Msg: fmt.Sprintf(format, args...)}
}

var nameRE = regexp.MustCompile(`^[\p{L}\p{N}][\p{L}\p{N} ._-]{0,99}$`)

func rolesFor(kind string) ([]string, error) {
	switch kind {
	case KindAdmin:
		return []string{RoleAdmin}, nil
	case KindCompany:
		return []string{RoleOperator}, nil
	case KindResearcher:
		return []string{RoleResearcher}, nil
	}
	return nil, inputErrorf("kind %q is not one of company, researcher", kind)
}

// Add creates a principal of the given kind and returns it with its first
// token, which is shown only now and stored only as a hash.
func (d *Directory) Add(ctx context.Context, actor, name, kind string) (Principal, string, error) {
	if kind == KindAdmin {
		return Principal{}, "", inputErrorf("kind %q cannot be added; the platform has one admin, created on first start", kind)
	}
	return d.add(ctx, actor, name, kind)
}

func (d *Directory) add(ctx context.Context, actor, name, kind string) (Principal, string, error) {
	name = strings.TrimSpace(name)
	if !nameRE.MatchString(name) {
		return Principal{}, "", inputErrorf("name %q: use 1 to 100 letters, digits, spaces, '.', '_' or '-', starting with a letter or digit", name)
	}
	roles, err := rolesFor(kind)
	if err != nil {
		return Principal{}, "", err
	}
	if _, err := d.Get(ctx, name); err == nil {
		return Principal{}, "", inputErrorf("principal %q already exists", name)
	} else if !errors.Is(err, ErrNotFound) {
		return Principal{}, "", err
	}
	p := Principal{Name: name, Kind: kind, Roles: roles, CreatedAt: d.now().UTC()}
	token, hash := newToken()
	if _, err := d.log.Append(ctx, audit.Event{
		Kind: "principal.added", Principal: actor, Subject: "principal/" + name,
		Data: map[string]any{"kind": kind, "roles": roles, "token_sha256": hash},
	}); err != nil {
		return Principal{}, "", fmt.Errorf("add %s: %w", name, err)
	}
	roleJSON, _ := json.Marshal(roles)
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return Principal{}, "", fmt.Errorf("add %s: %w", name, err)
	}
	defer tx.Rollback()
	created := p.CreatedAt.Format(time.RFC3339Nano)
	if _, err := tx.ExecContext(ctx, `INSERT INTO principals(name, kind, roles, created_at) VALUES (?, ?, ?, ?)`, name, kind, string(roleJSON), created); err != nil {
		return Principal{}, "", fmt.Errorf("add %s: %w", name, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO tokens(hash, principal, created_at) VALUES (?, ?, ?)`, hash, name, created); err != nil {
		return Principal{}, "", fmt.Errorf("add %s: %w", name, err)
	}
	if err := tx.Commit(); err != nil {
		return Principal{}, "", fmt.Errorf("add %s: %w", name, err)
	}
	return p, token, nil
}

// Get returns the principal named name.
func (d *Directory) Get(ctx context.Context, name string) (Principal, error) {
	var p Principal
	var roles, created string
	err := d.db.QueryRowContext(ctx, `SELECT name, kind, roles, created_at FROM principals WHERE name = ?`, name).Scan(&p.Name, &p.Kind, &roles, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return Principal{}, fmt.Errorf("principal %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return Principal{}, fmt.Errorf("principal %q: %w", name, err)
	}
	if err := json.Unmarshal([]byte(roles), &p.Roles); err != nil {
		return Principal{}, fmt.Errorf("principal %q roles: %w", name, err)
	}
	p.CreatedAt, _ = time.Parse(time.RFC3339Nano, created)
	return p, nil
}

// List returns every principal, ordered by name.
func (d *Directory) List(ctx context.Context) ([]Principal, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT name FROM principals ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list principals: %w", err)
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return nil, err
		}
		names = append(names, n)
	}
	rows.Close()
	out := make([]Principal, 0, len(names))
	for _, n := range names {
		p, err := d.Get(ctx, n)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// Authenticate returns the principal holding token.
func (d *Directory) Authenticate(ctx context.Context, token string) (Principal, error) {
	if token == "" {
		return Principal{}, ErrUnauthenticated
	}
	var name string
	err := d.db.QueryRowContext(ctx, `SELECT principal FROM tokens WHERE hash = ? AND revoked_at IS NULL`, hashToken(token)).Scan(&name)
	if errors.Is(err, sql.ErrNoRows) {
		return Principal{}, ErrUnauthenticated
	}
	if err != nil {
		return Principal{}, fmt.Errorf("authenticate: %w", err)
	}
	return d.Get(ctx, name)
}

// Bootstrap creates the admin principal if there is none and returns its
// token; it returns "" when an admin already exists.
func (d *Directory) Bootstrap(ctx context.Context) (string, error) {
	var n int
	if err := d.db.QueryRowContext(ctx, `SELECT count(*) FROM principals WHERE kind = ?`, KindAdmin).Scan(&n); err != nil {
		return "", fmt.Errorf("bootstrap: %w", err)
	}
	if n > 0 {
		return "", nil
	}
	_, token, err := d.add(ctx, "", "admin", KindAdmin)
	return token, err
}

const tokenPrefix = "dsbx_"

func newToken() (token, hash string) {
	b := make([]byte, 32)
	rand.Read(b)
	token = tokenPrefix + hex.EncodeToString(b)
	return token, hashToken(token)
}

func hashToken(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}
