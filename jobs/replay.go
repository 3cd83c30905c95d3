package jobs

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/datasandbox/dsbx/audit"
	"github.com/datasandbox/dsbx/disclosure"
	"github.com/datasandbox/dsbx/operators"
	"github.com/datasandbox/dsbx/release"
)

// Replay is the outcome of re-running a job from its record.
type Replay struct {
	Job int64 `json:"job"`
	// ResultSHA256 is the hash the re-run's result has; ResultMatches says
	// whether it is the recorded one.
	ResultSHA256  string `json:"result_sha256"`
	ResultMatches bool   `json:"result_matches"`
	// ReleasedSHA256 is the hash of the re-run's result after the recorded
	// remedies and the agreement's noise, when the job released (or would
	// release) a file other than its result.
	ReleasedSHA256  string `json:"released_sha256,omitempty"`
	ReleasedMatches bool   `json:"released_matches"`
	Seq             int64  `json:"audit_seq"` // the audit entry recording the replay
}

// Replay re-runs job id from what the record pins (the dataset version,
// the code by its hash, the decision's fields, forms and limits, a Wasm
// guest's seed) in a scratch directory, and confirms that the result, and
// the released file derived from it by the recorded remedies, hash as
// recorded. Only the admin and regulators replay; nothing of the re-run is
// kept but the audit entry that records it.
func (s *Service) Replay(ctx context.Context, p operators.Principal, id int64) (Replay, error) {
	if !p.Has(operators.RoleAdmin) && !p.Has(operators.RoleRegulator) {
		return Replay{}, &operators.ForbiddenError{Msg: "only the admin and regulators replay jobs"}
	}
	j, err := s.load(ctx, id)
	if err != nil {
		return Replay{}, err
	}
	if j.Result == nil || j.Run == nil {
		return Replay{}, &operators.ConflictError{Msg: fmt.Sprintf("job %d is %s and produced no result; there is nothing to replay", id, j.State)}
	}
	entry, version, err := s.catalog.Resolve(ctx, j.Dataset+"@"+j.Version)
	if err != nil {
		return Replay{}, fmt.Errorf("job %d: %w", id, err)
	}
	if _, err := os.Stat(s.catalog.SnapshotPath(entry.Name, version)); err != nil {
		return Replay{}, &operators.ConflictError{Msg: fmt.Sprintf("version %.12s of %s is %s and its snapshot is gone; job %d cannot be replayed", version.ID, entry.Name, version.Status, id)}
	}
	a, err := s.agreementOf(ctx, j)
	if err != nil {
		return Replay{}, err
	}
	dir, err := os.MkdirTemp(s.dir, fmt.Sprintf("replay-%d-", id))
	if err != nil {
		return Replay{}, err
	}
	defer os.RemoveAll(dir)
	var seed int64
	if j.Run.Guest != nil {
		seed = j.Run.Guest.Seed
	}
	out := filepath.Join(dir, resultFile)
	report, err := s.sandbox(ctx, &j, entry, version, dir, out, seed)
	if err != nil {
		return Replay{}, fmt.Errorf("job %d: replay: %w", id, err)
	}
	r := Replay{Job: id, ResultSHA256: report.SHA256, ResultMatches: report.SHA256 == j.Result.SHA256}
	if f := j.Result.Released; f != nil && f.Name == releasedFile {
		tbl, dt, _, err := s.resultTable(ctx, &j, out, report, a)
		if err != nil {
			return Replay{}, err
		}
		for i, row := range disclosure.Apply(dt, disclosure.Report{Changes: j.Remedies}).Rows {
			tbl.Rows[i] = row.Values
		}
		temp := filepath.Join(dir, "tmp-release")
		rep, err := release.Write(ctx, tbl, filepath.Join(dir, releasedFile), limitsOf(&j, temp))
		tbl.Release()
		if err != nil {
			return Replay{}, fmt.Errorf("job %d: replay: %w", id, err)
		}
		r.ReleasedSHA256, r.ReleasedMatches = rep.SHA256, rep.SHA256 == f.SHA256
	} else {
		r.ReleasedMatches = r.ResultMatches
	}
	e, err := s.log.Append(ctx, audit.Event{Kind: "audit.replayed", Principal: p.Name, Subject: j.subject(), Data: r})
	if err != nil {
		return Replay{}, fmt.Errorf("job %d: record replay: %w", id, err)
	}
	r.Seq = e.Seq
	return r, nil
}
