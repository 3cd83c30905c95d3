package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/datasandbox/dsbx/client"
	"github.com/datasandbox/dsbx/jobs"
	"github.com/datasandbox/dsbx/server/console"
	"github.com/datasandbox/dsbx/state"
)

// TestSecurityHeaders: every response, API or console, success or
// refusal, carries the security headers; API answers are not cached and
// have a CSP forbidding framing, console pages keep the console's CSP.
// Plain HTTP has no HSTS (TestTLS checks it over HTTPS).
func TestSecurityHeaders(t *testing.T) {
	p := start(t)
	for _, c := range []struct {
		path, token string
		console     bool
	}{
		{"/v1/health", "", false},
		{"/v1/whoami", tokenOf(t, p.operator), false},
		{"/v1/whoami", "", false},                         // 401
		{"/v1/principals", tokenOf(t, p.operator), false}, // 403
		{"/v1/nowhere", "", false},                        // 404
		{"/console/", "", true},
		{"/console/app.js", "", true},
	} {
		req, _ := http.NewRequest(http.MethodGet, p.base+c.path, nil)
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		h := resp.Header
		want := map[string]string{"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"}
		if c.console {
			want["Content-Security-Policy"] = console.CSP
			want["Cache-Control"] = "no-cache"
		} else {
			want["Content-Security-Policy"] = APICSP
			want["Cache-Control"] = "no-store"
		}
		for k, v := range want {
			if got := h.Get(k); got != v {
				t.Errorf("GET %s (%d): %s = %q, want %q", c.path, resp.StatusCode, k, got, v)
			}
		}
		if !strings.Contains(h.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
			t.Errorf("GET %s: CSP %q allows framing", c.path, h.Get("Content-Security-Policy"))
		}
		if h.Get("Strict-Transport-Security") != "" {
			t.Errorf("GET %s over plain HTTP sets HSTS", c.path)
		}
	}
}

// TestCrossOrigin: a state-changing request a browser marks as cross-site
// is refused with 403 cross_origin and changes nothing; same-origin
// browser requests and requests without Origin or Sec-Fetch-Site (the
// CLI's) pass, and reads are never refused.
func TestCrossOrigin(t *testing.T) {
	p := start(t)
	op := tokenOf(t, p.operator)
	ctx := context.Background()
	count := func() int {
		list, err := p.operator.Tokens(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		return len(list)
	}
	issue := func(method, path string, headers map[string]string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, p.base+path, strings.NewReader(`{"label": "x"}`))
		req.Header.Set("Authorization", "Bearer "+op)
		for k, v := range headers {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	n := count()
	for _, h := range []map[string]string{
		{"Sec-Fetch-Site": "cross-site"},
		{"Sec-Fetch-Site": "same-site"},
		{"Origin": "https://evil.example"},
		{"Origin": "null"},
	} {
		status, body := issue(http.MethodPost, "/v1/tokens", h)
		if status != http.StatusForbidden || !strings.Contains(body, `"cross_origin"`) {
			t.Errorf("POST /v1/tokens with %v: %d %s, want 403 cross_origin", h, status, body)
		}
	}
	if status, body := issue(http.MethodPut, "/v1/principals/acme/roles", map[string]string{"Sec-Fetch-Site": "cross-site"}); status != http.StatusForbidden || !strings.Contains(body, `"cross_origin"`) {
		t.Errorf("cross-site PUT: %d %s", status, body)
	}
	if got := count(); got != n {
		t.Fatalf("cross-site requests issued %d tokens", got-n)
	}
	for _, h := range []map[string]string{
		nil, // the CLI
		{"Sec-Fetch-Site": "same-origin", "Origin": p.base},
		{"Origin": p.base},
		{"Sec-Fetch-Site": "none"},
	} {
		if status, body := issue(http.MethodPost, "/v1/tokens", h); status != http.StatusCreated {
			t.Errorf("POST /v1/tokens with %v: %d %s, want 201", h, status, body)
		}
	}
	if status, body := issue(http.MethodGet, "/v1/tokens", map[string]string{"Sec-Fetch-Site": "cross-site"}); status != http.StatusOK {
		t.Errorf("cross-site GET: %d %s, want 200", status, body)
	}
}

// TestTokensNeverLogged runs requests of every kind of authentication
// outcome with known tokens and checks that no token, nor its full hash,
// appears in the server's log output or in any file of the data directory
// (audit log, state database, ...) other than the admin token file.
func TestTokensNeverLogged(t *testing.T) {
	var logs bytes.Buffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	t.Cleanup(func() { slog.SetDefault(prev) })

	p := start(t, func(c *Config) { c.RateLimit = RateLimit{PerSecond: 1000} })
	ctx := context.Background()
	op := tokenOf(t, p.operator)
	secrets := []string{op}

	// A second token, issued, used, then revoked and used again.
	issued, err := p.operator.IssueToken(ctx, "", "laptop", "")
	if err != nil {
		t.Fatal(err)
	}
	secrets = append(secrets, issued.Token)
	second := client.New(p.base, issued.Token)
	if _, err := second.Jobs(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := p.operator.RevokeToken(ctx, issued.Credential.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := second.Jobs(ctx); err == nil {
		t.Fatal("revoked token accepted")
	}
	// Rotation gives a third.
	list, _ := p.operator.Tokens(ctx, "acme")
	var first string
	for _, c := range list {
		if c.RevokedAt == nil {
			first = c.ID
		}
	}
	rotated, err := p.operator.RotateToken(ctx, first, "")
	if err != nil {
		t.Fatal(err)
	}
	secrets = append(secrets, rotated.Token)
	third := client.New(p.base, rotated.Token)
	third.Submit(ctx, jobs.Request{Dataset: "people", SQL: "SELECT district, count(*) AS n FROM people GROUP BY district", Purpose: purpose})
	third.Submit(ctx, jobs.Request{Dataset: "people", SQL: "SELECT * FROM nowhere", Purpose: purpose}) // refused, recorded
	p.call(t, http.MethodPost, "/v1/principals", rotated.Token, nil)                                   // forbidden: access.denied
	p.call(t, http.MethodGet, "/v1/whoami", op, nil)                                                   // the old, rotated-out token
	p.call(t, http.MethodGet, "/v1/whoami", "dsbx_0123456789abcdef-unknown", nil)
	secrets = append(secrets, "dsbx_0123456789abcdef-unknown")
	p.call(t, http.MethodGet, "/v1/jobs/notanumber", rotated.Token, nil)

	p.srv.log.Publish()
	var haystack []string
	haystack = append(haystack, "slog output\x00"+logs.String())
	filepath.WalkDir(p.data, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == AdminTokenFile {
			return nil
		}
		b, err := os.ReadFile(path)
		if err == nil {
			haystack = append(haystack, path+"\x00"+string(b))
		}
		return nil
	})
	if len(haystack) < 3 {
		t.Fatalf("only %d files read", len(haystack))
	}
	audited := false
	for _, h := range haystack {
		if strings.Contains(h, issued.Credential.ID) {
			audited = true // the ID is there, as it should be
		}
		for _, s := range secrets {
			sum := sha256.Sum256([]byte(s))
			if strings.Contains(h, s) {
				where, _, _ := strings.Cut(h, "\x00")
				t.Errorf("token %s… appears in %s", s[:10], where)
			}
			if strings.Contains(h, hex.EncodeToString(sum[:])) && !strings.HasPrefix(filepath.Base(strings.SplitN(h, "\x00", 2)[0]), state.File) {
				where, _, _ := strings.Cut(h, "\x00")
				t.Errorf("the full hash of token %s… appears in %s", s[:10], where)
			}
		}
	}
	if !audited {
		t.Error("the audit log does not name the credential ID; did the test read it?")
	}
}
