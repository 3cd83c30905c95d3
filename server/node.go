package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/datasandbox/dsbx/audit"
	"github.com/datasandbox/dsbx/datasets"
	"github.com/datasandbox/dsbx/jobs"
	"github.com/datasandbox/dsbx/operators"
	"github.com/datasandbox/dsbx/state"
)

// StepRecorder records a step of a job a node runs in the server's audit
// log (client.Client.RecordJobStep, with the node's token).
type StepRecorder interface {
	RecordJobStep(ctx context.Context, e audit.Event) (audit.Entry, error)
}

// NodeConfig configures a job node.
type NodeConfig struct {
	// Name is the node's principal (role node): it names the node in the
	// leases of the jobs it runs.
	Name string
	// Data is the server's data directory, shared with it: the node reads
	// snapshots and the platform secret there and writes results into the
	// quarantine. It never touches the audit log, which the server holds.
	Data string
	// State is the server's PostgreSQL URL.
	State string
	// Workers is how many jobs the node runs at once (default 2).
	Workers int
	// Server records the node's steps in the audit log.
	Server StepRecorder
}

// Node is a job node (`dsbx worker`): the server's job workers without its
// API, on the server's PostgreSQL state and shared data directory. It
// claims queued jobs under leases, runs them in the sandbox, checks and
// releases or holds their results, and records every step through the
// server (see jobs.Service.RecordFor). It decides with the policy bundle
// the server has in force, following reloads (followedPolicy).
type Node struct {
	db   *state.DB
	jobs *jobs.Service
}

// OpenNode opens a node and starts its workers.
func OpenNode(ctx context.Context, cfg NodeConfig) (*Node, error) {
	if !state.IsURL(cfg.State) {
		return nil, errors.New("node: a job node shares the server's state: give its PostgreSQL URL (--state postgres://… or DSBX_STATE)")
	}
	if cfg.Name == "" || cfg.Server == nil {
		return nil, errors.New("node: no name or server given")
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 2
	}
	secret, err := os.ReadFile(filepath.Join(cfg.Data, SecretFile))
	if err != nil || len(secret) < 32 {
		return nil, fmt.Errorf("node: no platform secret in %s (%v): give the server's data directory, shared with this node, as --data", cfg.Data, err)
	}
	db, err := state.Open(ctx, "", cfg.State)
	if err != nil {
		return nil, err
	}
	policy, err := followPolicy(ctx, db, cfg.Data)
	if err != nil {
		db.Close()
		return nil, err
	}
	log := nodeLog{cfg.Server}
	n := &Node{db: db}
	n.jobs = jobs.New(db, filepath.Join(cfg.Data, "quarantine"), secret,
		datasets.Shared(db, filepath.Join(cfg.Data, "datasets"), log), operators.NewDirectory(db, log), policy, log)
	n.jobs.JoinAsNode(cfg.Name)
	if err := n.jobs.Start(context.WithoutCancel(ctx), cfg.Workers); err != nil {
		db.Close()
		return nil, err
	}
	return n, nil
}

// Drain stops claiming jobs and waits, until ctx ends, for the running ones
// to finish; those still running then are cut off, and run again once their
// leases run out (or at once, when a node of the same name starts).
func (n *Node) Drain(ctx context.Context) { n.jobs.Drain(ctx) }

// Close stops the node's workers and closes its state database.
func (n *Node) Close() error {
	n.jobs.Stop()
	return n.db.Close()
}

// nodeLog is the audit log as a node sees it: it appends through the
// server and reads nothing back.
type nodeLog struct{ server StepRecorder }

func (l nodeLog) Append(ctx context.Context, e audit.Event) (audit.Entry, error) {
	return l.server.RecordJobStep(ctx, e)
}

func (l nodeLog) Entry(seq int64) (audit.Entry, error) {
	return audit.Entry{}, fmt.Errorf("entry %d: a job node does not read the audit log; the server does", seq)
}
