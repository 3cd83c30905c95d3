package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/datasandbox/dsbx/audit"
	"github.com/datasandbox/dsbx/jobs"
	"github.com/datasandbox/dsbx/operators"
	"github.com/datasandbox/dsbx/policies"
)

// BundlesDir is the directory in the data directory that keeps every policy
// bundle the server has run, by hash, so that any recorded decision can be
// explained with the rules that made it.
const BundlesDir = "policies"

// loadPolicies loads the built-in bundle overlaid with the one at path, if
// any; LoadPath checks it against the bundled examples.
func loadPolicies(ctx context.Context, path string) (*policies.Engine, error) {
	if path == "" {
		return policies.Default(ctx)
	}
	return policies.LoadPath(ctx, path)
}

// PolicyError is a bundle refused at reload; the bundle in force stays.
type PolicyError struct{ Err error }

func (e *PolicyError) Error() string { return e.Err.Error() + "; the policies in force are unchanged" }
func (e *PolicyError) Unwrap() error { return e.Err }

// ReloadPolicies reads the configured bundle again and puts it in force if
// it compiles and passes the examples; otherwise the bundle in force stays
// and the error (a *PolicyError) says why. actor is who asked ("" for a
// signal). It returns the hash in force afterwards.
func (s *Server) ReloadPolicies(ctx context.Context, actor string) (string, error) {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	if s.cfg.Policies == "" {
		return "", &PolicyError{errors.New("the server runs the built-in bundle; start it with --policies DIR (or a .tar.gz) to reload policies")}
	}
	e, err := loadPolicies(ctx, s.cfg.Policies)
	if err != nil {
		if _, aerr := s.log.Append(ctx, audit.Event{Kind: "policy.refused", Principal: actor, Subject: "policy",
			Data: map[string]any{"source": s.cfg.Policies, "error": err.Error(), "in_force": s.policy.Engine().BundleHash()}}); aerr != nil {
			return "", aerr
		}
		return "", &PolicyError{err}
	}
	if e.BundleHash() == s.policy.Engine().BundleHash() {
		return e.BundleHash(), nil
	}
	if err := s.keepBundle(ctx, actor, e, "reload"); err != nil {
		return "", err
	}
	s.policy.Swap(e)
	return e.BundleHash(), nil
}

// keepBundle stores e's files under BundlesDir/<hash> and records that it
// is now in force.
func (s *Server) keepBundle(ctx context.Context, actor string, e *policies.Engine, why string) error {
	dir := s.bundleDir(e.BundleHash())
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		tmp := dir + ".tmp"
		os.RemoveAll(tmp)
		if err := os.MkdirAll(tmp, 0o700); err != nil {
			return fmt.Errorf("keep policy bundle: %w", err)
		}
		for name, src := range e.Files() {
			if err := os.WriteFile(filepath.Join(tmp, name), src, 0o444); err != nil {
				return fmt.Errorf("keep policy bundle: %w", err)
			}
		}
		if err := os.Rename(tmp, dir); err != nil {
			return fmt.Errorf("keep policy bundle: %w", err)
		}
	}
	names := make([]string, 0, len(e.Files()))
	for n := range e.Files() {
		names = append(names, n)
	}
	sort.Strings(names)
	source := s.cfg.Policies
	if source == "" {
		source = "built-in"
	}
	_, err := s.log.Append(ctx, audit.Event{Kind: "policy.loaded", Principal: actor, Subject: "policy",
		Data: map[string]any{"bundle": e.BundleHash(), "files": names, "source": source, "why": why}})
	return err
}

func (s *Server) bundleDir(hash string) string {
	return filepath.Join(s.cfg.Data, BundlesDir, strings.TrimPrefix(hash, "sha256:"))
}

// Bundle is a policy bundle as served: its hash and its files.
type Bundle struct {
	Hash    string            `json:"hash"`
	InForce bool              `json:"in_force"`
	Files   map[string]string `json:"files"`
}

func (s *Server) currentBundle(w http.ResponseWriter, r *http.Request, p operators.Principal) {
	s.serveBundle(w, s.policy.Engine().BundleHash())
}

func (s *Server) getBundle(w http.ResponseWriter, r *http.Request, p operators.Principal) {
	s.serveBundle(w, r.PathValue("hash"))
}

// serveBundle answers with the kept bundle hash ("sha256:…" or the hex).
func (s *Server) serveBundle(w http.ResponseWriter, hash string) {
	hex := strings.TrimPrefix(hash, "sha256:")
	if len(hex) != 64 || strings.Trim(hex, "0123456789abcdef") != "" {
		writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("bundle hash %q is not sha256:<64 hex digits>", hash))
		return
	}
	dir := s.bundleDir(hex)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no policy bundle sha256:%s was ever in force here", hex))
		return
	}
	if err != nil {
		writeErr(w, err)
		return
	}
	b := Bundle{Hash: "sha256:" + hex, InForce: "sha256:"+hex == s.policy.Engine().BundleHash(), Files: map[string]string{}}
	for _, en := range entries {
		src, err := os.ReadFile(filepath.Join(dir, en.Name()))
		if err != nil {
			writeErr(w, err)
			return
		}
		b.Files[en.Name()] = string(src)
	}
	writeJSON(w, http.StatusOK, b)
}

func (s *Server) reloadPolicies(w http.ResponseWriter, r *http.Request, p operators.Principal) {
	hash, err := s.ReloadPolicies(r.Context(), p.Name)
	var pe *PolicyError
	if errors.As(err, &pe) {
		writeError(w, http.StatusUnprocessableEntity, "bad_policy", pe.Error())
		return
	}
	reply(w, http.StatusOK, map[string]string{"bundle": hash}, err)
}

// explain answers what admission would decide for a job, without recording
// or running it.
func (s *Server) explain(w http.ResponseWriter, r *http.Request, p operators.Principal) {
	var req jobs.Request
	if !decodeUpTo(w, r, &req, jobBody) || !jobSizeOK(w, req) {
		return
	}
	ex, err := s.jobs.Explain(r.Context(), p, req)
	reply(w, http.StatusOK, ex, err)
}
