// Package console is the web console for every role: the catalog for all,
// applications and objections for providers, their own jobs for operators
// and researchers, the review queue for output checkers, and the audit log,
// alerts and a dashboard of charts (inline SVG) for regulators and the
// admin, who see everything read-only. Plain HTML, CSS and JavaScript are
// embedded in the binary, with no build step and no external URL, so it
// works offline. It speaks only to the HTTP API of the server that serves
// it, with the token the user signs in with; the menu and every action
// follow the roles of that token's principal.
package console

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
)

//go:embed assets
var assets embed.FS

// CSP is the Content-Security-Policy of every console response: only the
// console's own scripts, styles and API; no inline code, no framing.
const CSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'"

// contentTypes names the type of each kind of asset, independent of the
// host's MIME tables.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".png":  "image/png",
	".svg":  "image/svg+xml",
}

// Handler serves the console's assets; mount it with the "/console" prefix
// stripped, so that "/" is index.html.
func Handler() http.Handler {
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err)
	}
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", CSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cache-Control", "no-cache")
		ext := path.Ext(r.URL.Path)
		if r.URL.Path == "" || r.URL.Path[len(r.URL.Path)-1] == '/' {
			ext = ".html"
		}
		if ct, ok := contentTypes[ext]; ok {
			h.Set("Content-Type", ct)
		}
		files.ServeHTTP(w, r)
	})
}
