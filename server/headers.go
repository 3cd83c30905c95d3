package server

import (
	"net/http"
	"strings"
	"time"
)

// chain wraps the routes in what applies to every request, outermost
// first: security headers (so that every refusal carries them too), the
// rate limit, and the cross-origin check.
func (s *Server) chain(mux http.Handler) http.Handler {
	s.limiter = newLimiter(s.cfg.RateLimit, maxBuckets, time.Now)
	return securityHeaders(s.rateLimited(sameOrigin(mux)))
}

// APICSP is the Content-Security-Policy of every response outside the
// console: API answers are data, never documents to run or frame. The
// console sets its own (console.CSP), which also forbids framing.
const APICSP = "default-src 'none'; frame-ancestors 'none'"

// HSTS is the Strict-Transport-Security of responses served over TLS.
const HSTS = "max-age=63072000"

// securityHeaders sets the headers every response carries: no MIME
// sniffing, no framing, no referrer; API answers are never cached (they
// hold tokens, results and audit records), and over TLS browsers are told
// to keep to HTTPS.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		if !strings.HasPrefix(r.URL.Path, "/console/") {
			h.Set("Content-Security-Policy", APICSP)
			h.Set("Cache-Control", "no-store")
		}
		if r.TLS != nil {
			h.Set("Strict-Transport-Security", HSTS)
		}
		next.ServeHTTP(w, r)
	})
}

// sameOrigin refuses state-changing requests (POST, PUT, PATCH, DELETE)
// that a browser marks as cross-site, with 403 "cross_origin".
//
// The console signs in with a bearer token it keeps in sessionStorage and
// sends in the Authorization header (credentials: "omit"); the server sets
// no cookie and accepts no other credential. A page on another site cannot
// read that token nor make the browser attach it, so a forged request
// arrives without a token and is refused as unauthenticated: CSRF is
// structurally impossible. This check is defence in depth, should a
// cookie or another ambient credential ever appear: it uses Sec-Fetch-Site
// (or, from older browsers, Origin against Host), as
// http.CrossOriginProtection does. Requests with neither header, such as
// the CLI's and other non-browser clients', are not browser cross-site
// requests and pass.
func sameOrigin(next http.Handler) http.Handler {
	cop := http.NewCrossOriginProtection()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := cop.Check(r); err != nil {
			writeError(w, http.StatusForbidden, "cross_origin", "refused "+r.Method+" "+r.URL.Path+": "+err.Error()+
				"; state-changing requests are accepted only from the console on this server's own origin or from non-browser clients such as the CLI")
			return
		}
		next.ServeHTTP(w, r)
	})
}
