package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/datasandbox/dsbx/client"
	"github.com/datasandbox/dsbx/jobs"
	"github.com/datasandbox/dsbx/operators"
	sqlbox "github.com/datasandbox/dsbx/sandbox/sql"
	"github.com/datasandbox/dsbx/sandbox/wasm"
)

// zeros is an endless body that costs nothing to hold.
type zeros struct{}

func (zeros) Read(b []byte) (int, error) {
	for i := range b {
		b[i] = '0'
	}
	return len(b), nil
}

// serveLocal runs one request through the server's whole handler chain in
// process and returns the recorded answer and its error body.
func serveLocal(t *testing.T, s *Server, r *http.Request) (*httptest.ResponseRecorder, Error) {
	t.Helper()
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, r)
	var e struct {
		Error Error `json:"error"`
	}
	json.Unmarshal(w.Body.Bytes(), &e)
	return w, e.Error
}

// concretePath fills a route's path parameters.
func concretePath(pattern string) (method, path string) {
	method, path, _ = strings.Cut(pattern, " ")
	path = patternParam.ReplaceAllString(path, "1")
	return method, path
}

// TestBodyCapEveryRoute sends every route that takes a body one byte more
// than its cap and expects 413 body_too_large naming the cap, whether or
// not the route's handler reads a body. The caps are 1 MiB but for job
// submission, explain (jobBody) and dataset upload (MaxUpload).
func TestBodyCapEveryRoute(t *testing.T) {
	p := start(t)
	admin := tokenOf(t, p.admin)
	want := map[string]int64{
		"POST /v1/datasets/{name}/versions": MaxUpload,
		"POST /v1/jobs":                     jobBody,
		"POST /v1/policy/explain":           jobBody,
	}
	n := 0
	for _, pattern := range p.srv.Routes() {
		method, path := concretePath(pattern)
		if method != http.MethodPost && method != http.MethodPut && method != http.MethodPatch && method != http.MethodDelete {
			continue
		}
		n++
		limit, ok := want[pattern]
		if !ok {
			limit = 1 << 20
		}
		// Declared too long: refused before a byte is read.
		r := httptest.NewRequest(method, path, io.LimitReader(zeros{}, limit+1))
		r.ContentLength = limit + 1
		r.Header.Set("Authorization", "Bearer "+admin)
		w, e := serveLocal(t, p.srv, r)
		if w.Code != http.StatusRequestEntityTooLarge || e.Code != "body_too_large" || !strings.Contains(e.Message, strconv.FormatInt(limit, 10)) {
			t.Errorf("%s with a %d-byte body: %d %+v, want 413 body_too_large naming %d", pattern, limit+1, w.Code, e, limit)
		}
		// Exactly at the cap: not refused for its size (the body is not
		// JSON, so the route answers something else).
		if limit == 1<<20 {
			r = httptest.NewRequest(method, path, io.LimitReader(zeros{}, limit))
			r.Header.Set("Authorization", "Bearer "+admin)
			if w, e := serveLocal(t, p.srv, r); w.Code == http.StatusRequestEntityTooLarge {
				t.Errorf("%s with a body of exactly %d bytes: %d %+v", pattern, limit, w.Code, e)
			}
		}
	}
	if n < 20 {
		t.Fatalf("only %d routes with a body; the route list changed?", n)
	}
}

// TestBodyCapStreamed: a body of unknown length is cut at the cap, both
// for routes that decode JSON and for handlers that read the body
// themselves.
func TestBodyCapStreamed(t *testing.T) {
	p := start(t)
	body := `{"reason": "` + strings.Repeat("a", 1<<20) + `"}`
	r := httptest.NewRequest(http.MethodPost, "/v1/agreements/1/suspend", io.NopCloser(strings.NewReader(body)))
	r.ContentLength = -1
	r.Header.Set("Authorization", "Bearer "+tokenOf(t, p.admin))
	w, e := serveLocal(t, p.srv, r)
	if w.Code != http.StatusRequestEntityTooLarge || e.Code != "body_too_large" || !strings.Contains(e.Message, "1048576 bytes (1 MiB)") {
		t.Fatalf("streamed oversized body: %d %+v", w.Code, e)
	}

	var read int64
	var readErr error
	h := capBody(100, func(w http.ResponseWriter, r *http.Request) {
		read, readErr = io.Copy(io.Discard, r.Body)
	})
	r = httptest.NewRequest(http.MethodPost, "/", io.NopCloser(io.LimitReader(zeros{}, 1000)))
	r.ContentLength = -1
	h(httptest.NewRecorder(), r)
	var tooBig *http.MaxBytesError
	if !errors.As(readErr, &tooBig) || read > 100 {
		t.Fatalf("a handler reading on its own read %d bytes, err %v; want at most 100 and *http.MaxBytesError", read, readErr)
	}
}

// TestJobCodeSize: SQL over sqlbox.MaxQueryBytes and Wasm over
// wasm.MaxModuleSize are refused with 413 naming the limit, on submit and
// on explain, and nothing is recorded.
func TestJobCodeSize(t *testing.T) {
	p := start(t)
	ctx := context.Background()
	before := p.srv.log.Size()
	long := "SELECT district FROM people WHERE district <> '" + strings.Repeat("x", sqlbox.MaxQueryBytes) + "'"
	for what, call := range map[string]func() error{
		"submit": func() error {
			_, err := p.operator.Submit(ctx, jobs.Request{Dataset: "people", SQL: long, Purpose: purpose})
			return err
		},
		"explain": func() error {
			_, err := p.operator.Explain(ctx, jobs.Request{Dataset: "people", SQL: long, Purpose: purpose})
			return err
		},
	} {
		var ae *client.APIError
		if err := call(); !errors.As(err, &ae) || ae.Status != http.StatusRequestEntityTooLarge || ae.Code != "sql_too_long" || !strings.Contains(ae.Message, "65536 bytes (64 KiB)") {
			t.Errorf("%s of %d bytes of SQL: %v, want 413 sql_too_long naming 65536", what, len(long), err)
		}
	}
	if got := p.srv.log.Size(); got != before {
		t.Errorf("refusals for size recorded %d audit entries; want none (the SQL would be kept)", got-before)
	}
	// At the limit the SQL is analysed (and passes the size check).
	exact := "SELECT district, count(*) FROM people GROUP BY district" + strings.Repeat(" ", sqlbox.MaxQueryBytes-55)
	if len(exact) != sqlbox.MaxQueryBytes {
		t.Fatalf("exact is %d bytes", len(exact))
	}
	if _, err := p.operator.Explain(ctx, jobs.Request{Dataset: "people", SQL: exact, Purpose: purpose}); err != nil {
		t.Errorf("explain of SQL exactly at the limit: %v", err)
	}

	// A module one byte over the limit, in process (85 MiB of base64).
	if testing.Short() {
		return
	}
	body, _ := json.Marshal(jobs.Request{Dataset: "people", Wasm: make([]byte, wasm.MaxModuleSize+1), Purpose: purpose})
	r := httptest.NewRequest(http.MethodPost, "/v1/jobs", bytes.NewReader(body))
	r.Header.Set("Authorization", "Bearer "+tokenOf(t, p.operator))
	if w, e := serveLocal(t, p.srv, r); w.Code != http.StatusRequestEntityTooLarge || e.Code != "module_too_large" || !strings.Contains(e.Message, strconv.Itoa(wasm.MaxModuleSize)) {
		t.Errorf("module of %d bytes: %d %+v, want 413 module_too_large naming the limit", wasm.MaxModuleSize+1, w.Code, e)
	}
}

// TestTooManyOpenJobs: with MaxOpenJobs 2, a principal with two queued or
// running jobs is refused with 429 naming the limit; held and finished
// jobs, and other principals' jobs, do not count.
func TestTooManyOpenJobs(t *testing.T) {
	p := start(t, func(c *Config) { c.MaxOpenJobs = 2 })
	ctx := context.Background()
	insert := func(id int64, operator, state string) {
		t.Helper()
		// Running jobs are never claimed by a worker, so they stay open.
		if _, err := p.srv.db.ExecContext(ctx, `INSERT INTO jobs(`+jobColumnsForTest+`) VALUES (?, ?, 'people', 'v', 'sql', 'SELECT 1', '', ?, ?, '{}', '2026-11-23T10:00:00Z', '2026-11-23T10:00:00Z', 0)`,
			id, operator, purpose, state); err != nil {
			t.Fatal(err)
		}
	}
	insert(900001, "acme", jobs.StateRunning)
	insert(900002, "acme", jobs.StateHeld)
	insert(900003, "acme", jobs.StateReleased)
	insert(900004, "someone-else", jobs.StateRunning)
	insert(900005, "someone-else", jobs.StateRunning)
	if n, err := p.srv.jobs.OpenJobs(ctx, "acme"); err != nil || n != 1 {
		t.Fatalf("OpenJobs(acme) = %d, %v; want 1", n, err)
	}
	q := jobs.Request{Dataset: "people", SQL: "SELECT district, count(*) AS n FROM people GROUP BY district", Purpose: purpose}
	if _, err := p.operator.Submit(ctx, q); err != nil {
		t.Fatalf("submit with one open job under a limit of 2: %v", err)
	}
	insert(900006, "acme", jobs.StateRunning)
	insert(900007, "acme", jobs.StateRunning) // queued ones a worker would claim: see jobs.TestOpenJobs
	// acme now has at least 2 open (its real job may have finished).
	_, err := p.operator.Submit(ctx, q)
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusTooManyRequests || ae.Code != "too_many_open_jobs" || !strings.Contains(ae.Message, "limit is 2") {
		t.Fatalf("submit over the limit: %v, want 429 too_many_open_jobs naming 2", err)
	}
	p.srv.db.ExecContext(ctx, `UPDATE jobs SET state = 'failed' WHERE id IN (900001, 900006, 900007)`)
	if _, err := p.operator.Submit(ctx, q); err != nil {
		t.Fatalf("submit once the open jobs ended: %v", err)
	}
}

const jobColumnsForTest = `id, operator, dataset, version, kind, code, code_sha256, purpose, state, record, created_at, updated_at, agreement_id`

// fakeClock is a clock tests move by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time      { return c.t }
func (c *fakeClock) add(d time.Duration) { c.t = c.t.Add(d) }
func newFakeClock() *fakeClock           { return &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }
func (c *fakeClock) limiter(max int) *limiter {
	return newLimiter(RateLimit{PerSecond: 1, Burst: 2}, max, c.now)
}

func TestLimiterBucket(t *testing.T) {
	c := newFakeClock()
	l := c.limiter(10)
	for i := 0; i < 2; i++ {
		if _, ok := l.take("a"); !ok {
			t.Fatalf("request %d within the burst refused", i+1)
		}
	}
	wait, ok := l.take("a")
	if ok || wait <= 0 || wait > time.Second {
		t.Fatalf("third request at once: ok %v, wait %v; want refused, wait at most 1s", ok, wait)
	}
	if _, ok := l.take("b"); !ok {
		t.Fatal("another key shares a's bucket")
	}
	c.add(time.Second)
	if _, ok := l.take("a"); !ok {
		t.Fatal("a refused after refilling one request")
	}
	if _, ok := l.take("a"); ok {
		t.Fatal("a allowed twice after refilling one request")
	}
}

// TestLimiterBounded: the table never holds more than max keys; new keys
// share the overflow bucket while it is full, and refilled buckets are
// swept out.
func TestLimiterBounded(t *testing.T) {
	c := newFakeClock()
	l := c.limiter(3)
	for i := 0; i < 1000; i++ {
		l.take("k" + strconv.Itoa(i))
		if n := l.size(); n > 3 {
			t.Fatalf("after %d keys the table holds %d, more than 3", i+1, n)
		}
	}
	// The overflow bucket is shared: it is empty now.
	if _, ok := l.take("new"); ok {
		t.Fatal("a new key over a full table got a fresh bucket")
	}
	c.add(3 * time.Second) // every bucket is full again
	if _, ok := l.take("fresh"); !ok {
		t.Fatal("new key refused after the table's buckets refilled")
	}
	if n := l.size(); n != 1 {
		t.Fatalf("after a sweep the table holds %d keys, want 1", n)
	}
	// Idle keys go at the minute's sweep even when the table is not full.
	l.take("x")
	c.add(time.Minute)
	l.take("y")
	if n := l.size(); n != 1 {
		t.Fatalf("after a minute idle the table holds %d keys, want 1", n)
	}
}

// TestRateLimit runs the limiter in the real handler chain: per token,
// per address without a token, and against inventing tokens; 429 carries
// Retry-After and names the limit. The rate is 1/s with bursts of 2.
func TestRateLimit(t *testing.T) {
	p := start(t)
	c := newFakeClock()
	p.srv.limiter = c.limiter(maxBuckets)
	h := securityHeaders(p.srv.rateLimited(sameOrigin(p.srv.routes()))) // as chain builds it
	get := func(path, token, remote string) (*httptest.ResponseRecorder, Error) {
		r := httptest.NewRequest(http.MethodGet, path, nil)
		r.RemoteAddr = remote + ":4711"
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		var e struct {
			Error Error `json:"error"`
		}
		json.Unmarshal(w.Body.Bytes(), &e)
		return w, e.Error
	}
	op, admin := tokenOf(t, p.operator), tokenOf(t, p.admin)
	for i := 0; i < 2; i++ {
		if w, e := get("/v1/whoami", op, "192.0.2.1"); w.Code != http.StatusOK {
			t.Fatalf("request %d of the burst: %d %+v", i+1, w.Code, e)
		}
	}
	w, e := get("/v1/whoami", op, "192.0.2.2") // another address: same token
	if w.Code != http.StatusTooManyRequests || e.Code != "rate_limited" || w.Header().Get("Retry-After") != "1" ||
		!strings.Contains(e.Message, "1 requests per second (bursts of 2)") || !strings.Contains(e.Message, tokenKey(op)) {
		t.Fatalf("third request: %d %q %+v; want 429 rate_limited, Retry-After 1, naming the limit and token", w.Code, w.Header().Get("Retry-After"), e)
	}
	if strings.Contains(w.Body.String(), op) {
		t.Fatal("the refusal shows the token")
	}
	if w.Header().Get("X-Content-Type-Options") != "nosniff" {
		t.Error("429 without the security headers")
	}
	if w, _ := get("/v1/whoami", admin, "192.0.2.1"); w.Code != http.StatusOK {
		t.Fatalf("another token from the same address: %d", w.Code)
	}
	// Without a token: per address.
	for i := 0; i < 2; i++ {
		get("/v1/health", "", "198.51.100.1")
	}
	if w, e := get("/v1/health", "", "198.51.100.1"); w.Code != http.StatusTooManyRequests || !strings.Contains(e.Message, "198.51.100.1") {
		t.Fatalf("third token-less request from one address: %d %+v", w.Code, e)
	}
	if w, _ := get("/v1/health", "", "198.51.100.2"); w.Code != http.StatusOK {
		t.Fatalf("token-less request from another address: %d", w.Code)
	}
	// Invented tokens count against the address too.
	codes := []int{}
	for i := 0; i < 3; i++ {
		w, _ := get("/v1/whoami", "dsbx_invented"+strconv.Itoa(i), "203.0.113.9")
		codes = append(codes, w.Code)
	}
	if codes[0] != http.StatusUnauthorized || codes[1] != http.StatusUnauthorized || codes[2] != http.StatusTooManyRequests {
		t.Fatalf("three invented tokens from one address: %v, want 401 401 429", codes)
	}
	c.add(time.Second)
	if w, _ := get("/v1/whoami", op, "192.0.2.1"); w.Code != http.StatusOK {
		t.Fatalf("after a second: %d", w.Code)
	}
}

// TestTokenKeyIsCredentialID: the limiter's key for a token is its
// credential ID, so the limit is per credential.
func TestTokenKeyIsCredentialID(t *testing.T) {
	p := start(t)
	_, issued, err := p.admin.AddPrincipal(context.Background(), operators.NewPrincipal{Name: "keyed", Roles: []string{operators.RoleResearcher}})
	if err != nil {
		t.Fatal(err)
	}
	if got := tokenKey(issued.Token); got != issued.Credential.ID {
		t.Fatalf("tokenKey = %s, credential ID %s", got, issued.Credential.ID)
	}
}

// TestLimitsOffByDefault: a zero Config has no rate limit and no open-job
// limit (dsbx serve sets the defaults with its flags).
func TestLimitsOffByDefault(t *testing.T) {
	p := start(t)
	if p.srv.limiter != nil || p.srv.cfg.MaxOpenJobs != 0 {
		t.Fatalf("zero Config: limiter %v, MaxOpenJobs %d", p.srv.limiter, p.srv.cfg.MaxOpenJobs)
	}
	p = start(t, func(c *Config) { c.RateLimit = RateLimit{PerSecond: 5} })
	if p.srv.limiter == nil || p.srv.limiter.burst != 10 {
		t.Fatalf("RateLimit 5/s without a burst: %+v, want a burst of 10", p.srv.limiter)
	}
}
