package jobs

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"time"

	"github.com/datasandbox/dsbx/operators"
	"github.com/datasandbox/dsbx/policies"
	"github.com/datasandbox/dsbx/privacy"
)

// candidates returns holder's agreements covering dataset as policy facts,
// with their usage so far.
func (s *Service) candidates(ctx context.Context, now time.Time, holder, dataset string) ([]policies.Agreement, error) {
	list, err := s.agreements.Applicable(ctx, holder, dataset)
	if err != nil {
		return nil, err
	}
	sp, _, err := s.spent(ctx, holder, dataset)
	if err != nil {
		return nil, err
	}
	out := []policies.Agreement{}
	for _, a := range list {
		u, err := s.usage(ctx, now, a.ID)
		if err != nil {
			return nil, err
		}
		out = append(out, agreementFacts(a, dataset, u, sp))
	}
	return out, nil
}

// usage counts the jobs admitted under agreement id, in total and since
// midnight in the platform's zone.
func (s *Service) usage(ctx context.Context, now time.Time, id int64) (policies.Usage, error) {
	day := now.In(operators.Zone)
	midnight := time.Date(day.Year(), day.Month(), day.Day(), 0, 0, 0, 0, operators.Zone).UTC()
	var u policies.Usage
	since := s.db.Instant("created_at") + " >= " + s.db.Instant("?")
	err := s.db.QueryRowContext(ctx, `SELECT count(*), coalesce(sum(CASE WHEN `+since+` THEN 1 ELSE 0 END), 0) FROM jobs WHERE agreement_id = ? AND state != ?`,
		midnight.Format(time.RFC3339Nano), id, StateDenied).Scan(&u.Jobs, &u.JobsToday)
	if err != nil {
		return policies.Usage{}, fmt.Errorf("usage of agreement %d: %w", id, err)
	}
	return u, nil
}

// agreementFacts is what policies learn about agreement a, seen from
// dataset, with its usage and the privacy budget spent on the dataset.
func agreementFacts(a operators.Agreement, dataset string, u policies.Usage, sp privacy.Spend) policies.Agreement {
	scope, _ := a.Covering(dataset)
	fields := scope.Fields
	if fields == nil {
		fields = map[string]string{}
	}
	return policies.Agreement{
		ID: a.ID, Kind: a.Kind, Provider: a.Provider, Version: scope.Version, Fields: fields,
		Purposes: a.Purposes, Usage: u,
		Outputs: policies.OutputRules{AggregatesOnly: a.Outputs.AggregatesOnly, MinCellCount: a.Outputs.MinCellCount,
			RowLevel: a.Outputs.RowLevel, RoundBase: a.Outputs.RoundBase, TopCode: a.Outputs.TopCode, BottomCode: a.Outputs.BottomCode,
			Privacy: privacyFacts(a.Outputs.Privacy, sp)},
		Quotas:    policies.Quotas{MaxJobs: a.Quotas.MaxJobs, JobsPerDay: a.Quotas.JobsPerDay},
		ValidFrom: a.From.In(operators.Zone).Format(time.RFC3339Nano), ValidUntil: a.Until.In(operators.Zone).Format(time.RFC3339Nano),
		Status: a.Status,
	}
}

// lapsed says why a job under agreement a may no longer run or deliver at
// now, or returns "" if it may.
func lapsed(a operators.Agreement, now time.Time) string {
	switch st := a.StatusAt(now); st {
	case operators.StatusActive:
		return ""
	case operators.StatusExpired:
		return fmt.Sprintf("agreement %d ended at %s", a.ID, a.Until.In(operators.Zone).Format(time.RFC3339))
	default:
		why := fmt.Sprintf("agreement %d was %s", a.ID, st)
		if a.StatusReason != "" {
			why += ": " + a.StatusReason
		}
		return why
	}
}

// agreementOf returns the agreement job j runs under, as it stands now.
func (s *Service) agreementOf(ctx context.Context, j Job) (operators.Agreement, error) {
	a, err := s.agreements.Agreement(ctx, j.Agreement)
	if err != nil {
		return operators.Agreement{}, fmt.Errorf("job %d: %w", j.ID, err)
	}
	return a, nil
}

// StopUnderAgreement stops the queued jobs admitted under agreement id,
// after it was suspended, revoked or expired; actor is who changed it ("" for
// the platform). Workers check the same before running a job and the release
// policy holds results of jobs already running, so this makes the stop
// immediate.
func (s *Service) StopUnderAgreement(ctx context.Context, actor string, id int64, why string) ([]Job, error) {
	return s.stopQueued(ctx, actor, why, `agreement_id = ?`, id)
}

// StopHolder stops the queued jobs of principal name, after it was disabled.
func (s *Service) StopHolder(ctx context.Context, actor, name, why string) ([]Job, error) {
	return s.stopQueued(ctx, actor, why, `operator = ?`, name)
}

func (s *Service) stopQueued(ctx context.Context, actor, why, where string, arg any) ([]Job, error) {
	s.claimMu.Lock() // no worker claims a job while we look at the queue
	defer s.claimMu.Unlock()
	queued, err := s.query(ctx, `WHERE `+where+` AND state = ? ORDER BY id`, arg, StateQueued)
	if err != nil {
		return nil, err
	}
	stopped := []Job{}
	for _, j := range queued {
		j.Error = why
		if err := s.step(ctx, &j, "job.stopped", StateStopped, map[string]any{"reason": why, "by": actor}); err != nil {
			return stopped, err
		}
		stopped = append(stopped, j)
	}
	return stopped, nil
}

// hashKey is agreement id's key for hashed fields: HMAC-SHA256 of the
// platform secret over the agreement, so two agreements' hashes of the
// same value differ and cannot be linked.
func (s *Service) hashKey(id int64) []byte {
	m := hmac.New(sha256.New, s.secret)
	fmt.Fprintf(m, "dsbx hashed-field key for agreement %d", id)
	return m.Sum(nil)
}
