package operators

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

func ptr[T any](v T) *T { return &v }

func TestTokensAreStoredOnlyAsHashes(t *testing.T) {
	e := newEnv(t)
	issued, err := e.d.Issue(e.ctx, "admin", "acme", "batch", ptr(start.Add(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	tokens := []string{issued.Token}
	for _, tok := range e.tokens {
		tokens = append(tokens, tok)
	}
	rows, err := e.d.db.QueryContext(e.ctx, `SELECT * FROM tokens`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	n := 0
	for rows.Next() {
		n++
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		row := map[string]string{}
		for i, c := range cols {
			row[c] = fmt.Sprint(vals[i])
		}
		for c, v := range row {
			for _, tok := range tokens {
				if strings.Contains(v, tok) || strings.Contains(v, strings.TrimPrefix(tok, tokenPrefix)) {
					t.Errorf("column %s of tokens holds a token in clear: %q", c, v)
				}
			}
		}
		if row["id"] != "tok_"+row["hash"][:12] {
			t.Errorf("token id %q is not derived from its hash %q", row["id"], row["hash"])
		}
	}
	if n != len(tokens) {
		t.Fatalf("tokens table has %d rows, want %d", n, len(tokens))
	}
	sum := sha256.Sum256([]byte(issued.Token))
	var got string
	if err := e.d.db.QueryRowContext(e.ctx, `SELECT hash FROM tokens WHERE id = ?`, issued.Credential.ID).Scan(&got); err != nil || got != hex.EncodeToString(sum[:]) {
		t.Errorf("stored hash %q %v, want the SHA-256 of the token", got, err)
	}
	// Listings never carry the token either.
	creds, err := e.d.Credentials(e.ctx, "acme")
	if err != nil || len(creds) != 2 {
		t.Fatalf("Credentials(acme) = %v %v", creds, err)
	}
	b, _ := json.Marshal(creds)
	if strings.Contains(string(b), strings.TrimPrefix(issued.Token, tokenPrefix)) {
		t.Error("Credentials shows a token")
	}
	i := slices.IndexFunc(creds, func(c Credential) bool { return c.ID == issued.Credential.ID })
	if i < 0 || creds[i].Label != "batch" || creds[i].ExpiresAt == nil || !creds[i].ExpiresAt.Equal(start.Add(time.Hour)) || creds[i].Principal != "acme" {
		t.Errorf("listed credentials %+v, want the issued one among them", creds)
	}
	// Unknown tokens, and the stored hash itself, do not authenticate.
	for _, bad := range []string{"", "dsbx_00", issued.Token + "x", hex.EncodeToString(sum[:]), issued.Credential.ID} {
		_, _, err := e.d.Authenticate(e.ctx, bad)
		var ae *AuthError
		if !errors.Is(err, ErrUnauthenticated) || errors.As(err, &ae) {
			t.Errorf("Authenticate(%q) = %v, want plain ErrUnauthenticated", bad, err)
		}
	}
}

func TestIssueRecordsActorAndExpiry(t *testing.T) {
	e := newEnv(t)
	exp := start.Add(90 * 24 * time.Hour)
	issued, err := e.d.Issue(e.ctx, "admin", "acme", " ci runner ", &exp)
	if err != nil {
		t.Fatal(err)
	}
	c := issued.Credential
	if c.Principal != "acme" || c.Label != "ci runner" || !c.CreatedAt.Equal(start) || c.ExpiresAt == nil || !c.ExpiresAt.Equal(exp) || c.RevokedAt != nil {
		t.Errorf("issued credential %+v", c)
	}
	en := e.last(t)
	wantEntry(t, en, "credential.issued", "admin", "principal/acme")
	if d := data(t, en); d["credential"] != c.ID || d["label"] != "ci runner" || d["expires_at"] == nil {
		t.Errorf("credential.issued data = %v", d)
	}
	if strings.Contains(string(en.Data), strings.TrimPrefix(issued.Token, tokenPrefix)) {
		t.Error("the audit log holds the token")
	}
	wantNotFound(t, "issue for nobody", e.refused(t, "issue for nobody", func() error {
		_, err := e.d.Issue(e.ctx, "admin", "nobody", "", nil)
		return err
	}))
}

func TestExpiryIsExactToTheNanosecond(t *testing.T) {
	e := newEnv(t)
	exp := start.Add(12 * time.Hour)
	issued, err := e.d.Issue(e.ctx, "acme", "acme", "short", &exp)
	if err != nil {
		t.Fatal(err)
	}
	e.now = exp.Add(-time.Nanosecond)
	if p, c, err := e.d.Authenticate(e.ctx, issued.Token); err != nil || p.Name != "acme" || c.ID != issued.Credential.ID {
		t.Errorf("one nanosecond before expiry: %+v %v", p, err)
	}
	for _, at := range []time.Time{exp, exp.Add(time.Nanosecond), exp.Add(24 * time.Hour)} {
		e.now = at
		_, c, err := e.d.Authenticate(e.ctx, issued.Token)
		wantErr[*AuthError](t, "at "+at.String(), err, "expired")
		if !errors.Is(err, ErrUnauthenticated) || c.ID != issued.Credential.ID {
			t.Errorf("at %s: %v, credential %q", at, err, c.ID)
		}
	}
	// A token without expiry keeps working.
	e.now = start.AddDate(10, 0, 0)
	if _, _, err := e.d.Authenticate(e.ctx, e.tokens["acme"]); err != nil {
		t.Errorf("token without expiry ten years on: %v", err)
	}
}

func TestRevoke(t *testing.T) {
	e := newEnv(t)
	acme := e.p["acme"]
	laptop, err := e.d.Issue(e.ctx, "acme", "acme", "laptop", nil)
	if err != nil {
		t.Fatal(err)
	}

	// Someone else's token looks like no token to a non-admin.
	for _, who := range []string{"beta", "civil", "reg"} {
		wantNotFound(t, who+" revokes acme's token", e.refused(t, who+" revokes acme's token", func() error {
			_, err := e.d.Revoke(e.ctx, e.p[who], laptop.Credential.ID)
			return err
		}))
	}
	wantNotFound(t, "unknown token", e.refused(t, "unknown token", func() error {
		_, err := e.d.Revoke(e.ctx, acme, "tok_000000000000")
		return err
	}))

	e.now = start.Add(time.Minute)
	c, err := e.d.Revoke(e.ctx, acme, laptop.Credential.ID)
	if err != nil {
		t.Fatal(err)
	}
	if c.RevokedAt == nil || !c.RevokedAt.Equal(e.now) || c.RevokedBy != "acme" {
		t.Errorf("Revoke returned %+v", c)
	}
	en := e.last(t)
	wantEntry(t, en, "credential.revoked", "acme", "principal/acme")
	if d := data(t, en); d["credential"] != laptop.Credential.ID {
		t.Errorf("credential.revoked data = %v", d)
	}
	_, _, err = e.d.Authenticate(e.ctx, laptop.Token)
	wantErr[*AuthError](t, "revoked token", err, "revoked")
	if _, _, err := e.d.Authenticate(e.ctx, e.tokens["acme"]); err != nil {
		t.Errorf("acme's other token after revoking one: %v", err)
	}

	wantErr[*ConflictError](t, "revoke twice", e.refused(t, "revoke twice", func() error {
		_, err := e.d.Revoke(e.ctx, acme, laptop.Credential.ID)
		return err
	}), "already revoked")

	// The admin may revoke anyone's.
	first := e.get(t, "beta")
	creds, _ := e.d.Credentials(e.ctx, first.Name)
	c, err = e.d.Revoke(e.ctx, e.p["admin"], creds[0].ID)
	if err != nil || c.RevokedBy != "admin" {
		t.Fatalf("admin revokes beta's token: %+v %v", c, err)
	}
	wantEntry(t, e.last(t), "credential.revoked", "admin", "principal/beta")
	if _, _, err := e.d.Authenticate(e.ctx, e.tokens["beta"]); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("beta's token after the admin revoked it: %v", err)
	}
}

func TestRotate(t *testing.T) {
	e := newEnv(t)
	acme := e.p["acme"]
	old, err := e.d.Issue(e.ctx, "acme", "acme", "ci", ptr(start.Add(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	wantNotFound(t, "beta rotates acme's token", e.refused(t, "beta rotates acme's token", func() error {
		_, err := e.d.Rotate(e.ctx, e.p["beta"], old.Credential.ID, nil)
		return err
	}))

	e.now = start.Add(time.Minute)
	exp := start.Add(48 * time.Hour)
	size := e.log.Size()
	fresh, err := e.d.Rotate(e.ctx, acme, old.Credential.ID, &exp)
	if err != nil {
		t.Fatal(err)
	}
	if e.log.Size() != size+1 {
		t.Errorf("Rotate appended %d entries, want 1", e.log.Size()-size)
	}
	if fresh.Token == old.Token || fresh.Credential.ID == old.Credential.ID || fresh.Credential.Label != "ci" ||
		fresh.Credential.Principal != "acme" || fresh.Credential.ExpiresAt == nil || !fresh.Credential.ExpiresAt.Equal(exp) {
		t.Errorf("rotated credential %+v", fresh.Credential)
	}
	_, _, err = e.d.Authenticate(e.ctx, old.Token)
	wantErr[*AuthError](t, "old token after rotation", err, "revoked")
	if p, c, err := e.d.Authenticate(e.ctx, fresh.Token); err != nil || p.Name != "acme" || c.Label != "ci" {
		t.Errorf("new token after rotation: %+v %+v %v", p, c, err)
	}
	en := e.last(t)
	wantEntry(t, en, "credential.rotated", "acme", "principal/acme")
	if d := data(t, en); d["revoked"] != old.Credential.ID || d["credential"] != fresh.Credential.ID {
		t.Errorf("credential.rotated data = %v", d)
	}
	creds, _ := e.d.Credentials(e.ctx, "acme")
	for _, c := range creds {
		if c.ID == old.Credential.ID && (c.RevokedAt == nil || c.RevokedBy != "acme") {
			t.Errorf("old credential after rotation: %+v", c)
		}
	}
	wantErr[*ConflictError](t, "rotate a revoked token", e.refused(t, "rotate a revoked token", func() error {
		_, err := e.d.Rotate(e.ctx, acme, old.Credential.ID, nil)
		return err
	}), "already revoked")

	// The admin rotates anyone's; the event names the admin.
	again, err := e.d.Rotate(e.ctx, e.p["admin"], fresh.Credential.ID, nil)
	if err != nil || again.Credential.ExpiresAt != nil || again.Credential.Label != "ci" {
		t.Fatalf("admin rotates acme's token: %+v %v", again, err)
	}
	wantEntry(t, e.last(t), "credential.rotated", "admin", "principal/acme")
}

func TestParseExpiry(t *testing.T) {
	now := start // Monday 2026-11-23 10:00 CST
	for _, tc := range []struct {
		in   string
		want time.Time
	}{
		{"90d", now.Add(90 * 24 * time.Hour)},
		{" 1d ", now.Add(24 * time.Hour)},
		{"12h", now.Add(12 * time.Hour)},
		{"1h30m", now.Add(90 * time.Minute)},
		{"2027-01-31", time.Date(2027, 2, 1, 0, 0, 0, 0, Zone)},   // the end of that day in Zone
		{"2026-11-23", time.Date(2026, 11, 24, 0, 0, 0, 0, Zone)}, // today: until midnight
		{"2027-12-31T18:00:00+08:00", time.Date(2027, 12, 31, 10, 0, 0, 0, time.UTC)},
		{"2027-12-31T18:00:00Z", time.Date(2027, 12, 31, 18, 0, 0, 0, time.UTC)},
	} {
		got, err := ParseExpiry(now, tc.in)
		if err != nil || got == nil || !got.Equal(tc.want) || got.Location() != time.UTC {
			t.Errorf("ParseExpiry(%q) = %v %v, want %v in UTC", tc.in, got, err, tc.want)
		}
	}
	if got, err := ParseExpiry(now, "  "); got != nil || err != nil {
		t.Errorf("ParseExpiry(blank) = %v %v, want never", got, err)
	}
	for _, tc := range []struct{ in, want string }{
		{"0d", "not in the future"},
		{"-1d", "not in the future"},
		{"-2h", "not in the future"},
		{"2026-11-22", "not in the future"},
		{"2026-11-23T10:00:00+08:00", "not in the future"}, // exactly now
		{"2020-01-01T00:00:00Z", "not in the future"},
		{"soon", "not a duration"},
		{"90x", "not a duration"},
		{"d", "not a duration"},
		{"2027-13-01", "not a duration"},
		{"31/12/2027", "not a duration"},
	} {
		got, err := ParseExpiry(now, tc.in)
		if got != nil {
			t.Errorf("ParseExpiry(%q) = %v, want an error", tc.in, got)
		}
		wantErr[*InputError](t, "ParseExpiry("+tc.in+")", err, tc.want)
	}
}
