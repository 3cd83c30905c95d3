package server

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/datasandbox/dsbx/jobs"
	"github.com/datasandbox/dsbx/operators"
	sqlbox "github.com/datasandbox/dsbx/sandbox/sql"
	"github.com/datasandbox/dsbx/sandbox/wasm"
)

// Defaults of the limits 'dsbx serve' applies; a zero server.Config turns
// the open-jobs and rate limits off (tests, benchmarks, the demo).
const (
	// DefaultMaxOpenJobs is how many queued or running jobs one principal
	// may have at once.
	DefaultMaxOpenJobs = 20
	// DefaultRateLimit is the steady rate, in requests per second, each
	// token (or each remote address without one) may send.
	DefaultRateLimit = 20
	// DefaultRateBurst is how many requests above the steady rate a token
	// may send at once.
	DefaultRateBurst = 40
)

// MaxJSONBody bounds the JSON body of every route but job submission,
// explain and dataset upload, which have their own caps (jobBody,
// MaxUpload).
const MaxJSONBody = 1 << 20

// bodyLimits are the routes whose body may be larger than MaxJSONBody.
var bodyLimits = map[string]int64{
	"POST /v1/datasets/{name}/versions": MaxUpload,
	"POST /v1/jobs":                     jobBody,
	"POST /v1/policy/explain":           jobBody,
}

// bodyLimit is the most a request to route pattern may send.
func bodyLimit(pattern string) int64 {
	if n, ok := bodyLimits[pattern]; ok {
		return n
	}
	return MaxJSONBody
}

// capBody bounds the body of every request h receives to limit bytes, so
// that no handler, whether or not it decodes with decodeUpTo, reads more.
// Handlers may bound it further.
func capBody(limit int64, h func(http.ResponseWriter, *http.Request)) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody {
			if r.ContentLength > limit {
				writeError(w, http.StatusRequestEntityTooLarge, "body_too_large", bodyTooLarge(limit))
				return
			}
			r.Body = http.MaxBytesReader(w, r.Body, limit)
		}
		h(w, r)
	}
}

// bodyTooLarge names the body limit and how to stay under it.
func bodyTooLarge(limit int64) string {
	return fmt.Sprintf("request body is larger than %d bytes (%s), the limit for this endpoint; send less (large data goes through dataset upload, code through job submission)", limit, size(limit))
}

// size writes n bytes for people.
func size(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// jobSizeOK refuses, with 413, a job whose SQL or Wasm module is larger
// than the sandbox accepts, before anything is analysed or recorded (a
// refused job's SQL is otherwise kept in the audit log).
func jobSizeOK(w http.ResponseWriter, req jobs.Request) bool {
	if n := len(req.SQL); n > sqlbox.MaxQueryBytes {
		writeError(w, http.StatusRequestEntityTooLarge, "sql_too_long", fmt.Sprintf("the SQL is %d bytes; the limit is %d bytes (%s): shorten the query (move long literal lists into a dataset) or split it into several jobs", n, sqlbox.MaxQueryBytes, size(sqlbox.MaxQueryBytes)))
		return false
	}
	if n := len(req.Wasm); n > wasm.MaxModuleSize {
		writeError(w, http.StatusRequestEntityTooLarge, "module_too_large", fmt.Sprintf("the Wasm module is %d bytes; the limit is %d bytes (%s): build it optimised for size and strip debug sections (wasm-opt -Os --strip-debug)", n, wasm.MaxModuleSize, size(wasm.MaxModuleSize)))
		return false
	}
	return true
}

// openJobsGate refuses, with 429, a submission by p when p already has
// Config.MaxOpenJobs queued or running jobs. Otherwise it returns a
// function to call once the submission is recorded: submissions by one
// principal are serialised between the count and the insert, so that
// concurrent ones cannot together pass the limit.
func (s *Server) openJobsGate(w http.ResponseWriter, r *http.Request, p operators.Principal) (done func(), ok bool) {
	max := s.cfg.MaxOpenJobs
	if max <= 0 {
		return func() {}, true
	}
	mu := s.submitLock(p.Name)
	mu.Lock()
	n, err := s.jobs.OpenJobs(r.Context(), p.Name)
	if err != nil {
		mu.Unlock()
		writeErr(w, err)
		return nil, false
	}
	if n >= max {
		mu.Unlock()
		writeError(w, http.StatusTooManyRequests, "too_many_open_jobs", fmt.Sprintf("%s has %d open (queued or running) jobs; the limit is %d per principal: wait for some to finish ('dsbx job wait ID') before submitting more", p.Name, n, max))
		return nil, false
	}
	return mu.Unlock, true
}

// submitLock is principal's submission lock; there is one per principal
// who submitted since start, a number the principals table bounds.
func (s *Server) submitLock(principal string) *sync.Mutex {
	mu, _ := s.submitLocks.LoadOrStore(principal, &sync.Mutex{})
	return mu.(*sync.Mutex)
}

// RateLimit configures the per-token request rate.
type RateLimit struct {
	// PerSecond is the steady rate of requests per second per token, and
	// per remote address for requests without a valid token; 0 turns rate
	// limiting off.
	PerSecond float64
	// Burst is how many requests may come at once (default 2×PerSecond,
	// at least 1).
	Burst int
}

// maxBuckets bounds the limiter's table of keys.
const maxBuckets = 10000

// limiter is a table of token buckets, one per key. It holds at most max
// buckets: a bucket that is full again is the same as a new one and is
// dropped when the table is swept (once a minute, and when it is full).
// When the table is full of buckets still in use, new keys share one
// overflow bucket until some refill.
type limiter struct {
	rate     rate.Limit
	burst    int
	max      int
	now      func() time.Time
	mu       sync.Mutex
	buckets  map[string]*rate.Limiter
	overflow *rate.Limiter
	swept    time.Time
}

func newLimiter(rl RateLimit, max int, now func() time.Time) *limiter {
	if rl.PerSecond <= 0 {
		return nil
	}
	burst := rl.Burst
	if burst <= 0 {
		burst = max1(int(math.Ceil(2 * rl.PerSecond)))
	}
	l := &limiter{rate: rate.Limit(rl.PerSecond), burst: burst, max: max, now: now, buckets: map[string]*rate.Limiter{}}
	l.overflow = rate.NewLimiter(l.rate, l.burst)
	l.swept = now()
	return l
}

func max1(n int) int {
	if n < 1 {
		return 1
	}
	return n
}

// take takes one request from key's bucket; when it is empty it returns
// how long until it holds one again.
func (l *limiter) take(key string) (wait time.Duration, ok bool) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.bucket(key, now)
	res := b.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return d, false
	}
	return 0, true
}

func (l *limiter) bucket(key string, now time.Time) *rate.Limiter {
	if b, ok := l.buckets[key]; ok {
		return b
	}
	if now.Sub(l.swept) >= time.Minute || (len(l.buckets) >= l.max && now.Sub(l.swept) >= time.Second) {
		l.sweep(now)
	}
	if len(l.buckets) >= l.max {
		return l.overflow
	}
	b := rate.NewLimiter(l.rate, l.burst)
	l.buckets[key] = b
	return b
}

// sweep drops the buckets that are full again.
func (l *limiter) sweep(now time.Time) {
	for k, b := range l.buckets {
		if b.TokensAt(now) >= float64(l.burst) {
			delete(l.buckets, k)
		}
	}
	l.swept = now
}

func (l *limiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// tokenKey is the rate-limit key of a bearer token: its credential ID
// ("tok_" and 12 hex digits of its SHA-256, as operators issues them),
// computed without a lookup so that the limit applies before any work.
func tokenKey(token string) string {
	h := sha256.Sum256([]byte(token))
	return "tok_" + hex.EncodeToString(h[:])[:12]
}

// remoteIP is the address a request came from, without the port.
func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// rateLimited wraps next with the per-token rate limit: requests bearing a
// token are counted against that token's credential ID, others against
// their remote address. Requests whose token turns out unknown or refused
// are counted against their address as well (see limitFailedAuth), so
// that inventing tokens buys no extra requests.
func (s *Server) rateLimited(next http.Handler) http.Handler {
	if s.limiter == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key, who := "ip:"+remoteIP(r), "requests without a token from "+remoteIP(r)
		if token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && token != "" {
			key = tokenKey(token)
			who = "token " + key
		}
		if wait, ok := s.limiter.take(key); !ok {
			s.tooManyRequests(w, wait, who)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// limitFailedAuth counts a request whose token was unknown or refused
// against its remote address, answering 429 and false when that address
// is over the limit.
func (s *Server) limitFailedAuth(w http.ResponseWriter, r *http.Request) bool {
	if s.limiter == nil {
		return true
	}
	if wait, ok := s.limiter.take("ip:" + remoteIP(r)); !ok {
		s.tooManyRequests(w, wait, "requests with unknown or refused tokens from "+remoteIP(r))
		return false
	}
	return true
}

func (s *Server) tooManyRequests(w http.ResponseWriter, wait time.Duration, who string) {
	secs := max(1, int(math.Ceil(wait.Seconds())))
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	writeError(w, http.StatusTooManyRequests, "rate_limited", fmt.Sprintf("%s exceeded the rate limit of %g requests per second (bursts of %d); retry after %ds and keep under %g per second",
		who, float64(s.limiter.rate), s.limiter.burst, secs, float64(s.limiter.rate)))
}
