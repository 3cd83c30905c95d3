package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/datasandbox/dsbx/audit"
	"github.com/datasandbox/dsbx/operators"
)

// rule says which roles may call a route; ownership of the thing acted on
// is checked by the handler or the domain package.
type rule struct {
	name  string
	roles []string // nil: any signed-in principal
}

func (r rule) allow(p operators.Principal) bool {
	if p.Has(operators.RoleNode) {
		// A job node may call only the routes made for nodes.
		return slices.Contains(r.roles, operators.RoleNode)
	}
	if r.roles == nil {
		return true
	}
	for _, role := range r.roles {
		if p.Has(role) {
			return true
		}
	}
	return false
}

func roles(name string, rs ...string) rule { return rule{name: name, roles: rs} }

var (
	anyone = rule{name: "any signed-in principal but a job node"}
	// signedIn is anyone, job nodes included.
	signedIn   = roles("any signed-in principal", operators.Roles...)
	nodes      = roles("job nodes (dsbx worker)", operators.RoleNode)
	admins     = roles("the admin", operators.RoleAdmin)
	requesters = roles("operators and researchers", operators.RoleOperator, operators.RoleResearcher)
	providers  = roles("providers", operators.RoleProvider)
	stewards   = roles("the admin and the dataset's providers", operators.RoleAdmin, operators.RoleProvider)
	overseers  = roles("the admin and regulators", operators.RoleAdmin, operators.RoleRegulator)
	reviewers  = roles("output checkers", operators.RoleReviewer)
	// inspectors read what stays in quarantine: output checkers, regulators
	// and the admin.
	inspectors = roles("output checkers, regulators and the admin", operators.RoleReviewer, operators.RoleRegulator, operators.RoleAdmin)
	// actors are every role that changes something: everyone but a
	// regulator, who only reads.
	actors = roles("principals other than regulators", operators.RoleAdmin, operators.RoleProvider, operators.RoleOperator, operators.RoleResearcher, operators.RoleReviewer)
	// overseersAndStewards see what happened to a dataset after an objection.
	overseersAndStewards = roles("the admin, regulators and the dataset's providers", operators.RoleAdmin, operators.RoleRegulator, operators.RoleProvider)
)

type handler func(w http.ResponseWriter, r *http.Request, p operators.Principal)

// statusWriter lets a handler report that it refused the caller for lack of
// role or ownership.
type statusWriter struct {
	http.ResponseWriter
	forbidden string // why the handler refused the caller, if it did
}

// Flush lets streaming handlers flush through the wrapper.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap gives http.ResponseController the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// auth resolves the bearer token to a principal, checks the route's rule
// and runs h with the token's ID in the context, so that every audit event
// the request causes names the credential. Refusals of known tokens and of
// signed-in principals are recorded as access.denied.
func (s *Server) auth(who rule, h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || token == "" {
			writeError(w, http.StatusUnauthorized, "unauthenticated", "no token: send 'Authorization: Bearer <token>' (the CLI reads --token or DSBX_TOKEN)")
			return
		}
		p, cred, err := s.directory.Authenticate(r.Context(), token)
		var refused *operators.AuthError
		switch {
		case errors.As(err, &refused):
			if !s.limitFailedAuth(w, r) {
				return
			}
			s.denied(audit.WithCredential(r.Context(), cred.ID), r, cred.Principal, http.StatusUnauthorized, refused.Error())
			writeError(w, http.StatusUnauthorized, "unauthenticated", refused.Error()+"; ask for a new token")
			return
		case errors.Is(err, operators.ErrUnauthenticated):
			if !s.limitFailedAuth(w, r) {
				return
			}
			writeError(w, http.StatusUnauthorized, "unauthenticated", "the token is unknown")
			return
		case err != nil:
			writeErr(w, err)
			return
		}
		ctx := audit.WithCredential(r.Context(), cred.ID)
		r = r.WithContext(ctx)
		s.signedIn(ctx, r, p.Name, cred.ID)
		if !who.allow(p) {
			msg := fmt.Sprintf("%s (%s) may not %s %s; it is for %s", p.Name, strings.Join(p.Roles, ", "), r.Method, r.URL.Path, who.name)
			s.denied(ctx, r, p.Name, http.StatusForbidden, msg)
			writeError(w, http.StatusForbidden, "forbidden", msg)
			return
		}
		sw := &statusWriter{ResponseWriter: w}
		h(sw, r, p)
		if sw.forbidden != "" {
			s.denied(ctx, r, p.Name, http.StatusForbidden, sw.forbidden)
		}
	}
}

// SessionGap is how long a credential goes unused before its next use is
// recorded as a new sign-in.
const SessionGap = time.Hour

// signedIn records principal signing in with credential id: its first use
// since the server started, or since SessionGap without use.
func (s *Server) signedIn(ctx context.Context, r *http.Request, principal, id string) {
	now := s.now()
	s.sessionsMu.Lock()
	last, seen := s.sessions[id]
	s.sessions[id] = now
	s.sessionsMu.Unlock()
	if seen && now.Sub(last) < SessionGap {
		return
	}
	if _, err := s.log.Append(context.WithoutCancel(ctx), audit.Event{
		Kind: "principal.signed_in", Principal: principal, Subject: "principal/" + principal,
		Data: map[string]any{"credential": id, "remote": r.RemoteAddr},
	}); err != nil {
		slog.Error("record principal.signed_in", "err", err)
	}
}

// denied records a refused request.
func (s *Server) denied(ctx context.Context, r *http.Request, principal string, status int, why string) {
	if _, err := s.log.Append(context.WithoutCancel(ctx), audit.Event{
		Kind: "access.denied", Principal: principal, Subject: "route/" + r.Method + " " + r.URL.Path,
		Data: map[string]any{"status": status, "reason": why},
	}); err != nil {
		slog.Error("record access.denied", "err", err)
	}
}

// manages checks that p may manage dataset name: the admin, or a provider of
// the agency named on it.
func (s *Server) manages(ctx context.Context, p operators.Principal, name string) error {
	if p.Has(operators.RoleAdmin) {
		return nil
	}
	e, err := s.catalog.Get(ctx, name)
	if err != nil {
		return err
	}
	if !p.Owns(e.Agency) {
		return &operators.ForbiddenError{Msg: fmt.Sprintf("dataset %s belongs to %q; %s speaks for %q", name, e.Agency, p.Name, p.Organization)}
	}
	return nil
}

// stewarded wraps h so that it runs only for principals who manage the
// dataset named in the path.
func (s *Server) stewarded(h handler) handler {
	return func(w http.ResponseWriter, r *http.Request, p operators.Principal) {
		if err := s.manages(r.Context(), p, r.PathValue("name")); err != nil {
			writeErr(w, err)
			return
		}
		h(w, r, p)
	}
}
