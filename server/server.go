// Package server serves the platform's HTTP JSON API over the catalog, the
// directory of operators and agreements, the job lifecycle and the audit log.
package server

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/datasandbox/dsbx/audit"
	"github.com/datasandbox/dsbx/audit/alerts"
	"github.com/datasandbox/dsbx/audit/index"
	"github.com/datasandbox/dsbx/datasets"
	"github.com/datasandbox/dsbx/jobs"
	"github.com/datasandbox/dsbx/operators"
	"github.com/datasandbox/dsbx/policies"
	"github.com/datasandbox/dsbx/state"
)

// Config says where the server keeps its data and how it runs jobs.
type Config struct {
	// Data is the data directory: state database, audit log, snapshots,
	// quarantine and the admin token.
	Data string
	// State, if set, is the URL of a PostgreSQL database (postgres://…) to
	// keep the state in instead of the embedded database in Data.
	State string
	// Policies, if set, is a directory or a .tar.gz holding the Rego bundle
	// to use instead of the built-in one; ReloadPolicies reads it again.
	Policies string
	// Workers is how many jobs this server runs at once (default 2);
	// negative: none, job nodes (dsbx worker) run them all.
	Workers int
	// Origin names the audit log in its checkpoints.
	Origin string
	// Now, if set, replaces the clock (tests).
	Now func() time.Time
	// ResponseDays is how many working days providers have to answer an
	// application (default operators.ResponseDays).
	ResponseDays int
	// SweepEvery is how often expired agreements are recorded and their
	// queued jobs stopped (default 30s). Admission refuses them from the
	// exact instant regardless.
	SweepEvery time.Duration
	// AgreedHours, if set, are the hours [from, to) of the day (China
	// Standard Time) jobs are expected; a submission outside them raises an
	// alert.
	AgreedHours *[2]int
	// MaxOpenJobs is how many queued or running jobs one principal may
	// have; a submission beyond it is refused with 429. 0: no limit
	// ('dsbx serve' defaults to DefaultMaxOpenJobs).
	MaxOpenJobs int
	// RateLimit bounds the requests per token (and per remote address
	// without a valid token); zero: no limit ('dsbx serve' defaults to
	// DefaultRateLimit, DefaultRateBurst).
	RateLimit RateLimit
	// TLS, if set, makes Serve answer HTTPS (see LoadTLS).
	TLS *tls.Config
	// Grace is how long Serve, once its ctx is done, lets running jobs
	// finish (default 30s): submissions are refused with 503
	// shutting_down meanwhile, other requests are still answered. Jobs
	// still running after it are cut off and queued again at the next
	// start.
	Grace time.Duration
}

// AdminTokenFile is the file in the data directory that holds the admin
// token written on first start.
const AdminTokenFile = "admin.token"

// SecretFile is the file in the data directory that holds the platform
// secret (32 random bytes, 0600) from which each agreement's key for hashed
// fields is derived. Losing it changes every hash; keep it with backups of
// the state database.
const SecretFile = "hash.secret"

// loadSecret reads the platform secret at path, creating it on first start.
func loadSecret(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		b = make([]byte, 32)
		rand.Read(b)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			return nil, fmt.Errorf("server: write %s: %w", path, err)
		}
		return b, nil
	}
	if err != nil {
		return nil, fmt.Errorf("server: read %s: %w", path, err)
	}
	if len(b) < 32 {
		return nil, fmt.Errorf("server: %s holds %d bytes, not a 32-byte secret; restore it from backup (hashed fields depend on it)", path, len(b))
	}
	return b, nil
}

// Server is a running platform: its stores, its job workers and its HTTP
// handler.
type Server struct {
	cfg       Config
	db        *state.DB
	log       *audit.Log
	index     *index.Index // the log's index, for regulators' queries
	monitor   *alerts.Monitor
	catalog   *datasets.Catalog
	directory *operators.Directory
	jobs      *jobs.Service
	policy    *policies.Live
	reloadMu  sync.Mutex // one reload at a time
	handler   http.Handler
	stopSweep context.CancelFunc
	swept     chan struct{}

	patterns []string // the API's routes, for its description

	sessionsMu sync.Mutex
	sessions   map[string]time.Time // credential ID → last use, for sign-in records

	limiter     *limiter // per-token request rate; nil: none
	submitLocks sync.Map // principal → *sync.Mutex, for MaxOpenJobs
}

// Open opens (creating on first start) the platform in cfg.Data and starts
// its job workers.
func Open(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Data == "" {
		return nil, errors.New("server: no data directory given")
	}
	if cfg.Workers == 0 {
		cfg.Workers = 2
	}
	cfg.Workers = max(cfg.Workers, 0)
	if cfg.SweepEvery <= 0 {
		cfg.SweepEvery = 30 * time.Second
	}
	if cfg.Grace <= 0 {
		cfg.Grace = 30 * time.Second
	}
	if cfg.Origin == "" {
		cfg.Origin = "datasandbox.local/audit"
	}
	if err := os.MkdirAll(cfg.Data, 0o700); err != nil {
		return nil, fmt.Errorf("server: data directory: %w", err)
	}
	// Uploads a crash cut off (see receive) are never used again.
	os.RemoveAll(filepath.Join(cfg.Data, "tmp"))
	policy, err := loadPolicies(ctx, cfg.Policies)
	if err != nil {
		return nil, err
	}
	var opts []audit.Option
	if cfg.Now != nil {
		opts = append(opts, audit.WithClock(cfg.Now))
	}
	log, err := audit.Open(filepath.Join(cfg.Data, "audit"), cfg.Origin, opts...)
	if err != nil {
		return nil, err
	}
	db, err := state.Open(ctx, cfg.Data, cfg.State)
	if err != nil {
		log.Close()
		return nil, err
	}
	s := &Server{
		cfg: cfg, db: db, log: log, index: index.New(db, log), policy: policies.NewLive(policy), sessions: map[string]time.Time{},
		catalog:   datasets.NewCatalog(db, filepath.Join(cfg.Data, "datasets"), log),
		directory: operators.NewDirectory(db, log),
	}
	secret, err := loadSecret(filepath.Join(cfg.Data, SecretFile))
	if err != nil {
		s.Close()
		return nil, err
	}
	s.jobs = jobs.New(db, filepath.Join(cfg.Data, "quarantine"), secret, s.catalog, s.directory, s.policy, log)
	if cfg.Now != nil {
		s.directory.SetClock(cfg.Now)
		s.jobs.SetClock(cfg.Now)
	}
	if cfg.ResponseDays > 0 {
		s.directory.SetResponseDays(cfg.ResponseDays)
	}
	if err := s.bootstrap(ctx); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.keepBundle(ctx, "", policy, "start"); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.jobs.Start(context.WithoutCancel(ctx), cfg.Workers); err != nil {
		s.Close()
		return nil, err
	}
	s.monitor = alerts.New(s.index, log, alerts.Rules{Hours: cfg.AgreedHours})
	if err := s.sweep(ctx); err != nil {
		s.Close()
		return nil, err
	}
	sweepCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	s.stopSweep, s.swept = stop, make(chan struct{})
	go s.sweepEvery(sweepCtx, cfg.SweepEvery)
	s.handler = s.chain(s.routes())
	return s, nil
}

// now is the server's clock.
func (s *Server) now() time.Time {
	if s.cfg.Now != nil {
		return s.cfg.Now()
	}
	return time.Now()
}

// sweep records the expiry of agreements whose term has ended and stops
// their queued jobs.
func (s *Server) sweep(ctx context.Context) error {
	if _, err := s.monitor.Scan(ctx); err != nil {
		return fmt.Errorf("scan for alerts: %w", err)
	}
	// A checkpoint is published with every sweep the log grew in.
	if _, err := s.log.Publish(); err != nil {
		return fmt.Errorf("publish a checkpoint: %w", err)
	}
	expired, err := s.directory.ExpireDue(ctx)
	if err != nil {
		return fmt.Errorf("expire agreements: %w", err)
	}
	for _, a := range expired {
		if _, err := s.jobs.StopUnderAgreement(ctx, "", a.ID, a.StatusReason); err != nil {
			return fmt.Errorf("stop jobs of expired agreement %d: %w", a.ID, err)
		}
	}
	return nil
}

func (s *Server) sweepEvery(ctx context.Context, every time.Duration) {
	defer close(s.swept)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.sweep(ctx); err != nil && ctx.Err() == nil {
				slog.Error("sweep", "err", err)
			}
		}
	}
}

// bootstrap creates the admin on first start and writes its token.
func (s *Server) bootstrap(ctx context.Context) error {
	token, err := s.directory.Bootstrap(ctx)
	if err != nil || token == "" {
		return err
	}
	path := filepath.Join(s.cfg.Data, AdminTokenFile)
	if err := os.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
		return fmt.Errorf("server: write %s: %w", path, err)
	}
	return nil
}

// Handler returns the HTTP API.
func (s *Server) Handler() http.Handler { return s.handler }

// Close stops the job workers and closes the stores.
func (s *Server) Close() error {
	if s.stopSweep != nil {
		s.stopSweep()
		<-s.swept
	}
	if s.jobs != nil {
		s.jobs.Stop()
	}
	var errs []error
	if s.db != nil {
		errs = append(errs, s.db.Close())
	}
	if s.log != nil {
		errs = append(errs, s.log.Close())
	}
	return errors.Join(errs...)
}

// Serve answers HTTP (HTTPS if Config.TLS is set) on l until ctx is done, then shuts down gracefully.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	hs := &http.Server{Handler: s.handler, ReadHeaderTimeout: 10 * time.Second, BaseContext: func(net.Listener) context.Context {
		// Requests outlive ctx: they are answered while the jobs drain.
		return context.WithoutCancel(ctx)
	}}
	errc := make(chan error, 1)
	if s.cfg.TLS != nil {
		hs.TLSConfig = s.cfg.TLS.Clone()
		go func() { errc <- hs.ServeTLS(l, "", "") }()
	} else {
		go func() { errc <- hs.Serve(l) }()
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		// Drain first, still answering requests: submissions get 503
		// shutting_down, running jobs get the grace period to finish.
		grace, cancelGrace := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.Grace)
		s.jobs.Drain(grace)
		cancelGrace()
		shut, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := hs.Shutdown(shut); err != nil {
			slog.Warn("shutdown", "err", err)
		}
		return nil
	}
}
