package operators

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/datasandbox/dsbx/audit"
)

// Credential is a token's public record; the token itself is stored only as
// its SHA-256.
type Credential struct {
	ID        string     `json:"id"` // tok_ and 12 hex digits of the token's hash
	Principal string     `json:"principal"`
	Label     string     `json:"label,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
	RevokedBy string     `json:"revoked_by,omitempty"`
}

// Issued is a new token with its record; the token is shown only once.
type Issued struct {
	Credential Credential `json:"credential"`
	Token      string     `json:"token"`
}

const tokenPrefix = "dsbx_"

func newCredential(principal, label string, now time.Time, expires *time.Time) (string, Credential) {
	b := make([]byte, 32)
	rand.Read(b)
	token := tokenPrefix + hex.EncodeToString(b)
	return token, Credential{
		ID: "tok_" + hashToken(token)[:12], Principal: principal, Label: label,
		CreatedAt: now.UTC(), ExpiresAt: expires,
	}
}

func hashToken(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func insertCredential(ctx context.Context, db execer, c Credential, hash string) error {
	var expires any
	if c.ExpiresAt != nil {
		expires = formatTime(*c.ExpiresAt)
	}
	_, err := db.ExecContext(ctx, `INSERT INTO tokens(hash, id, principal, label, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)`,
		hash, c.ID, c.Principal, c.Label, formatTime(c.CreatedAt), expires)
	return err
}

// ParseExpiry reads when a new token expires: "" for never, a duration in
// days or hours ("90d", "12h"), a date (the end of that day in Zone) or an
// RFC 3339 time.
func ParseExpiry(now time.Time, s string) (*time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	var t time.Time
	if n, err := strconv.Atoi(strings.TrimSuffix(s, "d")); err == nil && strings.HasSuffix(s, "d") {
		t = now.Add(time.Duration(n) * 24 * time.Hour)
	} else if dur, err := time.ParseDuration(s); err == nil {
		t = now.Add(dur)
	} else if t, err = parseEnd("expires", s); err != nil {
		return nil, inputErrorf("expires %q is not a duration like 90d or 12h, a date like 2027-12-31 or a time like 2027-12-31T18:00:00+08:00", s)
	}
	if !t.After(now) {
		return nil, inputErrorf("expires %q is not in the future", s)
	}
	t = t.UTC()
	return &t, nil
}

// Issue gives principal a new token with the given label and expiry (nil:
// never).
func (d *Directory) Issue(ctx context.Context, actor, principal, label string, expires *time.Time) (Issued, error) {
	p, err := d.Get(ctx, principal)
	if err != nil {
		return Issued{}, err
	}
	if p.DisabledAt != nil {
		return Issued{}, conflictf("%s is disabled (%s); enable it before issuing a token", principal, p.DisabledReason)
	}
	token, cred := newCredential(principal, strings.TrimSpace(label), d.now(), expires)
	if _, err := d.record(ctx, "issue token", audit.Event{
		Kind: "credential.issued", Principal: actor, Subject: "principal/" + principal,
		Data: map[string]any{"credential": cred.ID, "label": cred.Label, "expires_at": cred.ExpiresAt},
	}); err != nil {
		return Issued{}, err
	}
	if err := insertCredential(ctx, d.db, cred, hashToken(token)); err != nil {
		return Issued{}, fmt.Errorf("issue token for %s: %w", principal, err)
	}
	return Issued{Credential: cred, Token: token}, nil
}

const credentialColumns = `id, principal, label, created_at, expires_at, revoked_at, revoked_by`

func scanCredential(row interface{ Scan(...any) error }) (Credential, error) {
	var c Credential
	var created string
	var expires, revoked sql.NullString
	if err := row.Scan(&c.ID, &c.Principal, &c.Label, &created, &expires, &revoked, &c.RevokedBy); err != nil {
		return Credential{}, err
	}
	c.CreatedAt = parseTime(created)
	c.ExpiresAt = nullTime(expires)
	c.RevokedAt = nullTime(revoked)
	return c, nil
}

// Credentials lists principal's tokens (never the tokens themselves),
// oldest first.
func (d *Directory) Credentials(ctx context.Context, principal string) ([]Credential, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT `+credentialColumns+` FROM tokens WHERE principal = ? ORDER BY created_at, id`, principal)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	defer rows.Close()
	out := []Credential{}
	for rows.Next() {
		c, err := scanCredential(rows)
		if err != nil {
			return nil, fmt.Errorf("list tokens: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// credential returns token id if actor may manage it: its own, or any as
// admin. Others' tokens are reported as not found.
func (d *Directory) credential(ctx context.Context, actor Principal, id string) (Credential, error) {
	c, err := scanCredential(d.db.QueryRowContext(ctx, `SELECT `+credentialColumns+` FROM tokens WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) || (err == nil && c.Principal != actor.Name && !actor.Has(RoleAdmin)) {
		return Credential{}, fmt.Errorf("token %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Credential{}, fmt.Errorf("token %s: %w", id, err)
	}
	if c.RevokedAt != nil {
		return Credential{}, conflictf("token %s was already revoked at %s", id, c.RevokedAt.In(Zone).Format(time.RFC3339))
	}
	return c, nil
}

// Revoke revokes token id at once; actor may revoke its own tokens, an
// admin anyone's.
func (d *Directory) Revoke(ctx context.Context, actor Principal, id string) (Credential, error) {
	c, err := d.credential(ctx, actor, id)
	if err != nil {
		return Credential{}, err
	}
	now := d.now()
	if _, err := d.record(ctx, "revoke token", audit.Event{
		Kind: "credential.revoked", Principal: actor.Name, Subject: "principal/" + c.Principal, Data: map[string]any{"credential": id},
	}); err != nil {
		return Credential{}, err
	}
	if _, err := d.db.ExecContext(ctx, `UPDATE tokens SET revoked_at = ?, revoked_by = ? WHERE id = ?`, formatTime(now), actor.Name, id); err != nil {
		return Credential{}, fmt.Errorf("revoke token %s: %w", id, err)
	}
	t := now.UTC()
	c.RevokedAt, c.RevokedBy = &t, actor.Name
	return c, nil
}

// Rotate replaces token id with a new one (same label; expiry as given) and
// revokes the old one, in one step.
func (d *Directory) Rotate(ctx context.Context, actor Principal, id string, expires *time.Time) (Issued, error) {
	old, err := d.credential(ctx, actor, id)
	if err != nil {
		return Issued{}, err
	}
	now := d.now()
	token, cred := newCredential(old.Principal, old.Label, now, expires)
	if _, err := d.record(ctx, "rotate token", audit.Event{
		Kind: "credential.rotated", Principal: actor.Name, Subject: "principal/" + old.Principal,
		Data: map[string]any{"revoked": id, "credential": cred.ID, "expires_at": cred.ExpiresAt},
	}); err != nil {
		return Issued{}, err
	}
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return Issued{}, fmt.Errorf("rotate token %s: %w", id, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `UPDATE tokens SET revoked_at = ?, revoked_by = ? WHERE id = ?`, formatTime(now), actor.Name, id); err != nil {
		return Issued{}, fmt.Errorf("rotate token %s: %w", id, err)
	}
	if err := insertCredential(ctx, tx, cred, hashToken(token)); err != nil {
		return Issued{}, fmt.Errorf("rotate token %s: %w", id, err)
	}
	if err := tx.Commit(); err != nil {
		return Issued{}, fmt.Errorf("rotate token %s: %w", id, err)
	}
	return Issued{Credential: cred, Token: token}, nil
}

// AuthError explains why a known token was refused; it wraps
// ErrUnauthenticated.
type AuthError struct {
	Credential Credential
	Why        string
}

func (e *AuthError) Error() string { return fmt.Sprintf("token %s %s", e.Credential.ID, e.Why) }
func (e *AuthError) Unwrap() error { return ErrUnauthenticated }

// Authenticate returns the principal holding token and the token's record.
// Unknown tokens fail with ErrUnauthenticated; revoked or expired tokens,
// and tokens of disabled principals, with an *AuthError.
func (d *Directory) Authenticate(ctx context.Context, token string) (Principal, Credential, error) {
	if token == "" {
		return Principal{}, Credential{}, ErrUnauthenticated
	}
	// The token is looked up by its SHA-256. Whatever the lookup's timing
	// reveals concerns the hash of the presented token, not the token:
	// learning that a guess's hash shares a prefix with a stored hash does
	// not help build a token whose hash matches more of it (that would take
	// a preimage), so the index lookup leaks nothing useful. The stored hash
	// is compared once more in constant time all the same, so that the
	// decision never rests on a variable-time comparison.
	presented := hashToken(token)
	var stored string
	c, err := scanCredential(withHash{d.db.QueryRowContext(ctx, `SELECT hash, `+credentialColumns+` FROM tokens WHERE hash = ?`, presented), &stored})
	if errors.Is(err, sql.ErrNoRows) {
		return Principal{}, Credential{}, ErrUnauthenticated
	}
	if err != nil {
		return Principal{}, Credential{}, fmt.Errorf("authenticate: %w", err)
	}
	if subtle.ConstantTimeCompare([]byte(stored), []byte(presented)) != 1 {
		return Principal{}, Credential{}, ErrUnauthenticated
	}
	p, err := d.Get(ctx, c.Principal)
	if err != nil {
		return Principal{}, c, err
	}
	now := d.now()
	switch {
	case p.DisabledAt != nil:
		return Principal{}, c, &AuthError{c, fmt.Sprintf("belongs to %s, which is disabled: %s", p.Name, p.DisabledReason)}
	case c.RevokedAt != nil:
		return Principal{}, c, &AuthError{c, "was revoked at " + c.RevokedAt.In(Zone).Format(time.RFC3339)}
	case c.ExpiresAt != nil && !now.Before(*c.ExpiresAt):
		return Principal{}, c, &AuthError{c, "expired at " + c.ExpiresAt.In(Zone).Format(time.RFC3339)}
	}
	return p, c, nil
}

// withHash scans a row of the hash column followed by credentialColumns.
type withHash struct {
	row  interface{ Scan(...any) error }
	hash *string
}

func (w withHash) Scan(dest ...any) error { return w.row.Scan(append([]any{w.hash}, dest...)...) }
