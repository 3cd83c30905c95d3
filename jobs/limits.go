package jobs

import (
	"context"
	"fmt"
)

// OpenJobs counts principal's open jobs: those queued or running, which
// still take a place in the queue or a worker. Held jobs wait for people,
// not for the platform, and are not counted.
func (s *Service) OpenJobs(ctx context.Context, principal string) (int, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM jobs WHERE operator = ? AND state IN (?, ?)`,
		principal, StateQueued, StateRunning).Scan(&n); err != nil {
		return 0, fmt.Errorf("count open jobs of %s: %w", principal, err)
	}
	return n, nil
}
