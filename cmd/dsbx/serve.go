package main

import (
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/datasandbox/dsbx/jobs"
	"github.com/datasandbox/dsbx/operators"
	"github.com/datasandbox/dsbx/server"
	"github.com/datasandbox/dsbx/state"
)

func serveCmd() *cobra.Command {
	var cfg server.Config
	var addr, hours, tlsCert, tlsKey string
	var workers int
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the platform: HTTP API, job workers, audit log",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if hours != "" {
				h, err := parseHours(hours)
				if err != nil {
					return err
				}
				cfg.AgreedHours = &h
			}
			if cfg.MaxOpenJobs < 0 || cfg.RateLimit.PerSecond < 0 || cfg.RateLimit.Burst < 0 {
				return fmt.Errorf("--max-open-jobs, --rate-limit and --rate-burst cannot be negative (0 turns the limit off)")
			}
			if jobs.LeaseTime < time.Second {
				return fmt.Errorf("--lease %s is too short: a node extends its leases every third of it; give at least 1s", jobs.LeaseTime)
			}
			if workers < 0 {
				return fmt.Errorf("--workers cannot be negative (0: this server runs no jobs)")
			}
			cfg.Workers = workers
			if workers == 0 {
				cfg.Workers = -1 // none: server.Config takes 0 as the default
			}
			tlsConfig, err := server.LoadTLS(tlsCert, tlsKey)
			if err != nil {
				return err
			}
			cfg.TLS = tlsConfig
			srv, err := server.Open(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			defer srv.Close()
			l, err := net.Listen("tcp", addr)
			if err != nil {
				return fmt.Errorf("listen on %s: %w (use --addr to pick another address)", addr, err)
			}
			scheme := "http"
			if cfg.TLS != nil {
				scheme = "https"
			}
			where := "data " + cfg.Data
			if cfg.State != "" {
				where += ", state " + state.Redact(cfg.State)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "dsbx serving %s://%s (%s; admin token in %s)\n", scheme, l.Addr(), where, filepath.Join(cfg.Data, server.AdminTokenFile))
			// SIGHUP reloads the policies, as 'dsbx policy reload' does.
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			go func() {
				for range hup {
					hash, err := srv.ReloadPolicies(cmd.Context(), "")
					if err != nil {
						fmt.Fprintln(cmd.ErrOrStderr(), "dsbx: reload policies:", err)
						continue
					}
					fmt.Fprintln(cmd.ErrOrStderr(), "dsbx: policies in force:", hash)
				}
			}()
			return srv.Serve(cmd.Context(), l)
		},
	}
	cmd.Flags().StringVar(&cfg.Data, "data", "dsbx-data", "data directory (state, audit log, snapshots, quarantine)")
	cmd.Flags().StringVar(&cfg.State, "state", os.Getenv("DSBX_STATE"), "PostgreSQL URL (postgres://USER:PASSWORD@HOST:PORT/DATABASE) to keep the state in instead of the embedded database in --data, for several nodes; default $DSBX_STATE, which keeps a password out of the process list")
	cmd.Flags().StringVar(&addr, "addr", "127.0.0.1:8686", "address to listen on")
	cmd.Flags().StringVar(&cfg.Policies, "policies", "", "directory or .tar.gz of .rego files overlaying the built-in bundle (same name replaces, new name adds); reloaded on SIGHUP or 'dsbx policy reload'")
	cmd.Flags().IntVar(&workers, "workers", 2, "jobs this server runs at once (0: none; job nodes, dsbx worker, run them)")
	cmd.Flags().DurationVar(&jobs.LeaseTime, "lease", jobs.LeaseTime, "how long a job this server claimed stays its own without the server extending the lease; with job nodes, a job cut off here runs on a node once it passes")
	cmd.Flags().DurationVar(&cfg.Grace, "grace", 30*time.Second, "on SIGTERM or SIGINT: how long running jobs may finish (submissions are refused meanwhile) before they are cut off and queued again for the next start; then the audit log is flushed and dsbx exits 0")
	cmd.Flags().StringVar(&hours, "agreed-hours", "", "hours FROM-TO (China Standard Time, e.g. 8-20) jobs are expected; a submission outside them raises an alert")
	cmd.Flags().IntVar(&cfg.MaxOpenJobs, "max-open-jobs", server.DefaultMaxOpenJobs, "queued or running jobs one principal may have; more are refused with 429 (0: no limit)")
	cmd.Flags().Float64Var(&cfg.RateLimit.PerSecond, "rate-limit", server.DefaultRateLimit, "requests per second per token (and per remote address without one); more are refused with 429 and Retry-After (0: no limit)")
	cmd.Flags().IntVar(&cfg.RateLimit.Burst, "rate-burst", server.DefaultRateBurst, "requests a token may send at once above --rate-limit")
	cmd.Flags().StringVar(&tlsCert, "tls-cert", "", "PEM certificate (chain) to serve HTTPS with, TLS 1.2 or later; needs --tls-key")
	cmd.Flags().StringVar(&tlsKey, "tls-key", "", "PEM private key of --tls-cert")
	cmd.Flags().IntVar(&cfg.ResponseDays, "response-days", operators.ResponseDays, "working days providers have to answer an application")
	return cmd
}

// parseHours reads --agreed-hours FROM-TO.
func parseHours(s string) ([2]int, error) {
	from, to, ok := strings.Cut(s, "-")
	a, err1 := strconv.Atoi(strings.TrimSpace(from))
	b, err2 := strconv.Atoi(strings.TrimSpace(to))
	if !ok || err1 != nil || err2 != nil || a < 0 || b > 24 || a >= b {
		return [2]int{}, fmt.Errorf("--agreed-hours %q is not FROM-TO with 0 <= FROM < TO <= 24, e.g. 8-20", s)
	}
	return [2]int{a, b}, nil
}
