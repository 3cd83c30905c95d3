package server

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/datasandbox/dsbx/audit"
	"github.com/datasandbox/dsbx/jobs"
	"github.com/datasandbox/dsbx/operators"
	"github.com/datasandbox/dsbx/policies"
	"github.com/datasandbox/dsbx/state"
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
	if _, err := s.log.Append(ctx, audit.Event{Kind: "policy.loaded", Principal: actor, Subject: "policy",
		Data: map[string]any{"bundle": e.BundleHash(), "files": names, "source": source, "why": why}}); err != nil {
		return err
	}
	// Job nodes follow it (followedPolicy).
	if _, err := s.db.ExecContext(ctx, `INSERT INTO settings(name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value`,
		policyBundleSetting, e.BundleHash()); err != nil {
		return fmt.Errorf("record the policy bundle in force: %w", err)
	}
	return nil
}

// policyBundleSetting names the setting holding the hash of the bundle in
// force, which the server keeps under BundlesDir in the data directory.
const policyBundleSetting = "policy_bundle"

// followedPolicy is, on a job node, the bundle the server has in force:
// before each decision it reads which bundle that is and, when it changed,
// loads the server's kept copy from the shared data directory, so that a
// reload on the server reaches every node with the next decision.
type followedPolicy struct {
	*policies.Live
	db  *state.DB
	dir string // the data directory's BundlesDir
	mu  sync.Mutex
}

// followPolicy returns the bundle the server sharing db and data has in
// force, followed.
func followPolicy(ctx context.Context, db *state.DB, data string) (*followedPolicy, error) {
	p := &followedPolicy{db: db, dir: filepath.Join(data, BundlesDir)}
	if err := p.follow(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

// follow puts in force the bundle the server has, if it is not already.
func (p *followedPolicy) follow(ctx context.Context) error {
	var hash string
	err := p.db.QueryRowContext(ctx, `SELECT value FROM settings WHERE name = ?`, policyBundleSetting).Scan(&hash)
	if errors.Is(err, sql.ErrNoRows) {
		return errors.New("policies: the server has not recorded its policy bundle; start the server (this version) before the nodes")
	}
	if err != nil {
		return fmt.Errorf("policies: read the bundle in force: %w", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.Live != nil && p.Engine().BundleHash() == hash {
		return nil
	}
	dir := filepath.Join(p.dir, strings.TrimPrefix(hash, "sha256:"))
	e, err := policies.Load(ctx, os.DirFS(dir))
	if err != nil {
		return fmt.Errorf("policies: load the server's bundle %s from %s: %w", hash, dir, err)
	}
	if e.BundleHash() != hash {
		return fmt.Errorf("policies: the files in %s hash to %s, not %s as the server recorded; the kept bundle was altered", dir, e.BundleHash(), hash)
	}
	if p.Live == nil {
		p.Live = policies.NewLive(e)
	} else {
		p.Swap(e)
	}
	return nil
}

// Admit decides admission with the server's bundle.
func (p *followedPolicy) Admit(ctx context.Context, in policies.AdmissionInput) (policies.Decision, error) {
	if err := p.follow(ctx); err != nil {
		return policies.Decision{}, err
	}
	return p.Live.Admit(ctx, in)
}

// Release decides release with the server's bundle.
func (p *followedPolicy) Release(ctx context.Context, in policies.ReleaseInput) (policies.ReleaseDecision, error) {
	if err := p.follow(ctx); err != nil {
		return policies.ReleaseDecision{}, err
	}
	return p.Live.Release(ctx, in)
}

// ReleaseParams sets the checks' parameters with the server's bundle.
func (p *followedPolicy) ReleaseParams(ctx context.Context, in policies.ReleaseInput) (policies.Params, error) {
	if err := p.follow(ctx); err != nil {
		return policies.Params{}, err
	}
	return p.Live.ReleaseParams(ctx, in)
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
