package jobs

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Several nodes may run the jobs of one state database (PostgreSQL): the
// server and `dsbx worker` processes. A node claims a queued job by taking
// its lease (lease_owner, lease_until) in the same write transaction that
// moves it to running, and extends the leases of the jobs it runs every
// LeaseTime/3. A job whose lease runs out (its node died or lost the
// database) is queued again by whichever node notices first, once: a job
// whose lease ran out on its second attempt fails instead. A node that lost
// a job's lease cannot save the job any more (its saves name the owner), so
// only the new owner settles it. A node that cannot record or save a step
// of its job (the server or the database did not answer) ends the lease at
// once (letGo) rather than holding a job it cannot finish.
//
// The claim is a transaction under the state's write lock rather than a
// SELECT … FOR UPDATE SKIP LOCKED: the same code claims on SQLite and on
// PostgreSQL, and the claim's fairness (the oldest job of the operator with
// the fewest jobs running) needs every node's running jobs counted
// consistently, which skipping locked rows would not give.

// LeaseTime is how long a claimed job stays its node's without the node
// extending it.
var LeaseTime = 30 * time.Second

// MaxAttempts is how many times a job is claimed at most: a job whose node
// was lost that often fails.
const MaxAttempts = 2

// ErrLeaseLost reports that another node took over a job this node was
// running, after its lease ran out.
var ErrLeaseLost = errors.New("this node's lease on the job ran out and the job was queued again")

// leaseStamp is how lease times are stored: fixed width UTC, so that the
// text sorts in time order in both state databases.
const leaseStamp = "2006-01-02T15:04:05.000000000Z"

// leaseNow is the time leases are set and checked by: the database's clock,
// which all nodes share whatever their own clocks say, or the service's
// clock when a test set it (SetClock).
func (s *Service) leaseNow(ctx context.Context) time.Time {
	if s.clockSet {
		return s.now()
	}
	t, err := s.db.Now(ctx)
	if err != nil {
		return s.now() // the statement that follows fails the same way
	}
	return t
}

func (s *Service) leaseUntil(ctx context.Context) string {
	return s.leaseNow(ctx).Add(LeaseTime).UTC().Format(leaseStamp)
}

// JoinAsNode makes this service a job node of a platform whose server
// holds the audit log and the data directory: name names it in the leases
// of the jobs it claims (the server's own service is "local"), and Start
// leaves to the server what only the owner of the directory may do
// (finishing cut-off submissions from the log, cleaning the quarantine,
// where the server replays and releases). Give every node its own name; a
// node restarted under the same name queues its cut-off jobs again at once
// instead of waiting for their leases to run out.
func (s *Service) JoinAsNode(name string) { s.node, s.joined = name, true }

// takeLease claims the next queued job for this node: it moves the job to
// running under a new lease in one write transaction, so no other node can
// claim it too. It reports false when no job is queued.
func (s *Service) takeLease(ctx context.Context) (int64, bool, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, false, err
	}
	defer tx.Rollback()
	var id int64
	err = tx.QueryRowContext(ctx, `SELECT id FROM jobs q WHERE state = ?
		ORDER BY (SELECT count(*) FROM jobs r WHERE r.state = ? AND r.operator = q.operator), id LIMIT 1`,
		StateQueued, StateRunning).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, tx.Commit()
	}
	if err != nil {
		return 0, false, err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE jobs SET state = ?, lease_owner = ?, lease_until = ?, attempts = attempts + 1 WHERE id = ?`,
		StateRunning, s.node, s.leaseUntil(ctx), id); err != nil {
		return 0, false, err
	}
	return id, true, tx.Commit()
}

// holdLeases extends the leases of the jobs this node runs until ctx ends.
func (s *Service) holdLeases(ctx context.Context) {
	defer s.background.Done()
	t := time.NewTicker(LeaseTime / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := s.db.ExecContext(ctx, `UPDATE jobs SET lease_until = ? WHERE lease_owner = ? AND state = ? AND lease_until != ''`,
			s.leaseUntil(ctx), s.node, StateRunning); err != nil && ctx.Err() == nil {
			slog.Error("extend job leases", "node", s.node, "err", err)
		}
		if err := s.ReclaimExpired(ctx); err != nil && ctx.Err() == nil {
			slog.Error("reclaim expired job leases", "node", s.node, "err", err)
		}
	}
}

// letGo gives up j, claimed by this node, after a step of it could not be
// recorded or saved (the server or the database did not answer): its lease
// ends now, so that the next look for expired leases, on any node, queues
// it again or fails it, rather than leaving it running under a lease this
// node would go on extending.
func (s *Service) letGo(ctx context.Context, j Job) {
	if j.ID == 0 || j.lease == "" {
		return
	}
	if _, err := s.db.ExecContext(ctx, `UPDATE jobs SET lease_until = '' WHERE id = ? AND lease_owner = ? AND state = ?`, j.ID, j.lease, StateRunning); err != nil {
		slog.Error("give up job", "id", j.ID, "err", err) // its lease runs out by itself then
	}
}

// ReclaimExpired queues again each running job whose lease ran out, or
// fails it when that was its last attempt, recording either; it runs on
// every node every LeaseTime/3, and once more at start.
func (s *Service) ReclaimExpired(ctx context.Context) error {
	now := s.leaseNow(ctx).UTC().Format(leaseStamp)
	type lost struct {
		id       int64
		owner    string
		attempts int
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `SELECT id, lease_owner, attempts FROM jobs WHERE state = ? AND lease_owner != '' AND lease_until < ? ORDER BY id`, StateRunning, now)
	if err != nil {
		return err
	}
	var expired []lost
	for rows.Next() {
		var l lost
		if err := rows.Scan(&l.id, &l.owner, &l.attempts); err != nil {
			rows.Close()
			return err
		}
		expired = append(expired, l)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if len(expired) == 0 {
		return tx.Commit()
	}
	// Taken over by this node, under the write lock: the owner's saves
	// fail from now on, and no other node reclaims the job too.
	for _, l := range expired {
		if _, err := tx.ExecContext(ctx, `UPDATE jobs SET lease_owner = ?, lease_until = ? WHERE id = ?`, s.node, s.leaseUntil(ctx), l.id); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	for _, l := range expired {
		j, err := s.load(ctx, l.id)
		if err != nil {
			return err
		}
		j.lease = s.node
		reason := fmt.Sprintf("node %s stopped extending its lease on the job (it died or lost the state database)", l.owner)
		if l.attempts >= MaxAttempts {
			j.Error = fmt.Sprintf("%s on attempt %d of %d; the job is not tried again", reason, l.attempts, MaxAttempts)
			err = s.step(ctx, &j, "job.failed", StateFailed, map[string]any{"error": j.Error})
		} else {
			err = s.step(ctx, &j, "job.requeued", StateQueued, map[string]any{"reason": reason + "; runs again from the start"})
		}
		if err != nil {
			return fmt.Errorf("reclaim job %d: %w", l.id, err)
		}
	}
	s.wakeWorkers()
	return nil
}
