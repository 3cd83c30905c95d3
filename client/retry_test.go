package client

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/datasandbox/dsbx/jobs"
)

// TestRetryRateLimited: a 429 with Retry-After is waited out and the
// request, body included, sent again; without Retry-After (too many open
// jobs) it is the caller's error at once.
func TestRetryRateLimited(t *testing.T) {
	var calls atomic.Int32
	var mu sync.Mutex
	var bodies []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, string(b))
		mu.Unlock()
		n := calls.Add(1)
		switch {
		case r.URL.Path == "/v1/thing" && n == 1:
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			io.WriteString(w, `{"error": {"code": "rate_limited", "message": "slow down"}}`)
		case r.URL.Path == "/v1/jobs":
			w.WriteHeader(http.StatusTooManyRequests)
			io.WriteString(w, `{"error": {"code": "too_many_open_jobs", "message": "wait"}}`)
		default:
			io.WriteString(w, `{"id": 1}`)
		}
	}))
	defer srv.Close()
	c := New(srv.URL, "t")
	var out map[string]any
	if _, err := c.call(context.Background(), http.MethodPost, "/v1/thing", map[string]string{"reason": "why"}, &out); err != nil {
		t.Fatalf("after one rate-limited answer: %v", err)
	}
	mu.Lock()
	got := append([]string(nil), bodies...)
	mu.Unlock()
	if calls.Load() != 2 || got[0] != got[1] || got[0] == "" {
		t.Fatalf("%d calls, bodies %q; want the same request twice", calls.Load(), got)
	}
	calls.Store(0)
	_, err := c.Submit(context.Background(), jobs.Request{SQL: "SELECT 1"})
	var ae *APIError
	if !errors.As(err, &ae) || ae.Code != "too_many_open_jobs" || calls.Load() != 1 {
		t.Fatalf("429 without Retry-After: %v after %d calls; want the error at once", err, calls.Load())
	}
}
