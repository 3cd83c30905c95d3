package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/datasandbox/dsbx/jobs"
	"github.com/datasandbox/dsbx/operators"
	"github.com/datasandbox/dsbx/server"
	"github.com/datasandbox/dsbx/state"
)

func workerCmd(g *globals) *cobra.Command {
	var cfg server.NodeConfig
	var grace time.Duration
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "Run jobs for a server, as one of several nodes sharing its PostgreSQL state and data directory",
		Long: `A job node claims queued jobs from the server's PostgreSQL state under leases, runs them in
the sandbox, checks and releases or holds their results in the shared data directory, and
records every step in the server's audit log through the server (--server, with a token of a
principal holding the role node). A node that dies leaves its jobs to be queued again once
their leases run out, once; a node whose lease ran out can record nothing more about the job.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if jobs.LeaseTime < time.Second {
				return fmt.Errorf("--lease %s is too short: a node extends its leases every third of it; give at least 1s", jobs.LeaseTime)
			}
			ctx := cmd.Context()
			c := g.client()
			me, err := c.Whoami(ctx)
			if err != nil {
				return fmt.Errorf("worker: ask the server at %s who this token is: %w", g.server, err)
			}
			if !slices.Contains(me.Roles, operators.RoleNode) {
				return fmt.Errorf("worker: the token is %s's (%v), not a job node's; add a principal with the role node and give its token", me.Name, me.Roles)
			}
			cfg.Name, cfg.Server = me.Name, c
			node, err := server.OpenNode(ctx, cfg)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "dsbx worker %s running %d jobs at a time for %s (state %s, data %s)\n", cfg.Name, max(cfg.Workers, 1), g.server, state.Redact(cfg.State), cfg.Data)
			<-ctx.Done()
			dctx, cancel := context.WithTimeout(context.Background(), grace)
			defer cancel()
			node.Drain(dctx)
			return node.Close()
		},
	}
	cmd.Flags().StringVar(&cfg.State, "state", os.Getenv("DSBX_STATE"), "the server's PostgreSQL URL (postgres://USER:PASSWORD@HOST:PORT/DATABASE); default $DSBX_STATE")
	cmd.Flags().StringVar(&cfg.Data, "data", "dsbx-data", "the server's data directory, shared with this node (snapshots, quarantine, platform secret)")
	cmd.Flags().IntVar(&cfg.Workers, "workers", 2, "jobs that run at once on this node")
	cmd.Flags().DurationVar(&jobs.LeaseTime, "lease", jobs.LeaseTime, "how long a job this node claimed stays its own without the node extending the lease: after a crash, the job runs elsewhere once it passes")
	cmd.Flags().DurationVar(&grace, "grace", 30*time.Second, "on SIGTERM or SIGINT: how long running jobs may finish before they are cut off (they run again once their leases run out)")
	return cmd
}
