package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/datasandbox/dsbx/audit"
	"github.com/datasandbox/dsbx/datasets"
	"github.com/datasandbox/dsbx/disclosure"
	"github.com/datasandbox/dsbx/failpoint"
	"github.com/datasandbox/dsbx/operators"
	"github.com/datasandbox/dsbx/policies"
	"github.com/datasandbox/dsbx/privacy"
	sqlbox "github.com/datasandbox/dsbx/sandbox/sql"
)

// Start returns jobs that were running when the service last stopped to the
// queue and starts workers that run queued jobs, oldest first, until Stop;
// with no workers, job nodes run the queue (see lease.go).
// The queue is the jobs table itself, so nothing queued is lost on a crash.
//
// Jobs running under another node's lease are that node's: Start leaves
// them alone, and queues them again only once their lease runs out (see
// lease.go).
func (s *Service) Start(ctx context.Context, workers int) error {
	ctx, s.stop = context.WithCancel(ctx)
	rows, err := s.db.QueryContext(ctx, `SELECT id, lease_owner FROM jobs WHERE (state = ? AND lease_owner IN ('', ?)) OR state = ? ORDER BY id`, StateRunning, s.node, StateHeld)
	if err != nil {
		return fmt.Errorf("resume jobs: %w", err)
	}
	var interrupted []int64
	owners := map[int64]string{}
	for rows.Next() {
		var id int64
		var owner string
		if err := rows.Scan(&id, &owner); err != nil {
			rows.Close()
			return fmt.Errorf("resume jobs: %w", err)
		}
		interrupted = append(interrupted, id)
		owners[id] = owner
	}
	rows.Close()
	var cut []Job
	for _, id := range interrupted {
		j, err := s.load(ctx, id)
		if err != nil {
			return err
		}
		j.lease = owners[id]
		cut = append(cut, j)
	}
	released, err := s.releasedEntries(cut)
	if err != nil {
		return fmt.Errorf("resume jobs: %w", err)
	}
	for _, j := range cut {
		// Cut off after its release was recorded (when it ran, or when a
		// reviewer approved it held): finish the release, never release
		// it again.
		if e, ok := released[j.ID]; ok {
			if done, err := s.finishRelease(ctx, &j, e); err != nil || done {
				if err != nil {
					return err
				}
				continue
			}
		}
		if j.State == StateHeld {
			continue // waits for its review
		}
		if err := s.step(ctx, &j, "job.requeued", StateQueued, map[string]any{"reason": "interrupted by a restart; runs again from the start"}); err != nil {
			return err
		}
	}
	if !s.joined { // the server's: nodes share its directory
		if err := s.failAbandoned(ctx); err != nil {
			return err
		}
		if err := s.cleanQuarantine(ctx); err != nil {
			return err
		}
	}
	if err := s.ReclaimExpired(ctx); err != nil {
		return fmt.Errorf("reclaim expired job leases: %w", err)
	}
	sqlbox.KeepSpareWorkers(workers)
	for range workers {
		s.wg.Add(1)
		go s.work(ctx)
	}
	s.background.Add(1)
	go s.holdLeases(ctx)
	if workers > 0 {
		s.background.Go(func() { s.db.Listen(ctx, queuedChannel, s.wakeWorkers) })
	}
	s.background.Go(func() { s.db.Listen(ctx, changedChannel, s.notify) })
	s.wakeWorkers()
	return nil
}

// Stop stops the workers and waits for them; a job cut off stays running and
// is queued again by the next Start.
func (s *Service) Stop() {
	if s.stop != nil {
		s.stop()
	}
	s.wg.Wait()
	s.background.Wait()
	sqlbox.KeepSpareWorkers(0)
}

// Drain shuts the service down gently: from now on Submit refuses jobs with
// ErrShuttingDown and workers claim no queued job, and Drain waits for the
// jobs running to finish until ctx ends. Those still running then are cut
// off as by Stop: they stay running and the next Start queues them again
// (a restart loses no job; it runs again from the start). Queued jobs stay
// queued.
func (s *Service) Drain(ctx context.Context) {
	s.draining.Store(true)
	s.drainOnce.Do(func() { close(s.drained) })
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.Stop()
	}
}

// wakeWorkers tells idle workers that a job may be waiting.
func (s *Service) wakeWorkers() {
	select {
	case s.wake <- struct{}{}:
	default: // a wake-up is already pending
	}
}

func (s *Service) work(ctx context.Context) {
	defer s.wg.Done()
	for {
		if s.draining.Load() {
			return
		}
		j, ok, err := s.claim(ctx)
		if err != nil && ctx.Err() == nil {
			slog.Error("claim job", "id", j.ID, "err", err)
			s.letGo(ctx, j)
		}
		if !ok {
			select {
			case <-ctx.Done():
				return
			case <-s.drained:
				return
			case <-s.wake:
				continue
			case <-s.pollTick():
				continue // another node may have queued one
			}
		}
		s.wakeWorkers() // another worker may take the next one
		if err := s.execute(ctx, j); err != nil && ctx.Err() == nil {
			slog.Error("job", "id", j.ID, "err", err)
			s.letGo(ctx, j)
		}
	}
}

// claim moves a queued job to running under this node's lease (see
// takeLease), recording the start. It is fair between operators: it takes
// the oldest queued job of the operator with the fewest jobs running, so one
// operator's heavy or many jobs do not hold the workers while others wait.
func (s *Service) claim(ctx context.Context) (Job, bool, error) {
	s.claimMu.Lock()
	defer s.claimMu.Unlock()
	id, ok, err := s.takeLease(ctx)
	if err != nil || !ok {
		return Job{}, false, err
	}
	j, err := s.load(ctx, id)
	if err != nil {
		return Job{ID: id, lease: s.node}, false, err
	}
	j.lease = s.node
	if err := s.step(ctx, &j, "job.started", StateRunning, nil); err != nil {
		return j, false, err
	}
	return j, true, nil
}

// execute takes a claimed job through run, checks and release or hold. A
// job whose dataset, version or fields were withdrawn while it waited is
// stopped instead.
func (s *Service) execute(ctx context.Context, j Job) error {
	entry, version, err := s.catalog.Resolve(ctx, j.Dataset+"@"+j.Version)
	if err != nil {
		j.Error = err.Error()
		return s.step(ctx, &j, "job.failed", StateFailed, map[string]any{"error": j.Error})
	}
	if why := withdrawn(entry, version, j.Analysis.Fields); why != "" {
		j.Error = why
		return s.step(ctx, &j, "job.stopped", StateStopped, map[string]any{"reason": why})
	}
	a, err := s.agreementOf(ctx, j)
	if err != nil {
		j.Error = err.Error()
		return s.step(ctx, &j, "job.failed", StateFailed, map[string]any{"error": j.Error})
	}
	if why := lapsed(a, s.now()); why != "" {
		j.Error = why
		return s.step(ctx, &j, "job.stopped", StateStopped, map[string]any{"reason": why})
	}
	report, err := s.run(ctx, &j, entry, version)
	if err != nil {
		if ctx.Err() != nil {
			return err // shutting down: resumed on the next start
		}
		j.Error = err.Error()
		return s.step(ctx, &j, "job.failed", StateFailed, map[string]any{"error": j.Error, "run": j.Run})
	}
	failpoint.Hit(failpoint.ResultWritten)
	rs := report.Resources
	var guest *GuestRun
	if j.Run != nil {
		guest = j.Run.Guest
	}
	j.Run = &RunReport{Rows: report.Rows, Bytes: report.Bytes, WallMS: report.Wall.Milliseconds(),
		RowsScanned: rs.RowsScanned, PeakMemory: rs.PeakMemory, CPUMS: rs.CPU.Milliseconds(), QueryMS: rs.Query.Milliseconds(),
		WorkerPeakRSS: report.Process.PeakRSS, WorkerCPUMS: report.Process.CPU.Milliseconds(), Guest: guest}
	j.Result = &Result{SHA256: report.SHA256, Rows: report.Rows, Bytes: report.Bytes}
	for _, c := range report.Columns {
		j.Result.Columns = append(j.Result.Columns, c.Name)
	}
	if err := s.step(ctx, &j, "job.ran", StateRunning, map[string]any{"run": j.Run, "result": j.Result}); err != nil {
		return err
	}
	return s.check(ctx, &j, report)
}

// step records event kind for j, on its submitter's account, then moves j
// to state and saves it.
func (s *Service) step(ctx context.Context, j *Job, kind, state string, data any) error {
	return s.stepAs(ctx, j, j.Operator, kind, state, data)
}

// stepAs is step for an event principal caused.
func (s *Service) stepAs(ctx context.Context, j *Job, principal, kind, state string, data any) error {
	if data == nil {
		data = map[string]any{"state": state}
	}
	if _, err := s.appendAs(ctx, j, principal, kind, data); err != nil {
		return err
	}
	j.State = state
	return s.save(ctx, j)
}

// appendAs records event kind about j, caused by principal.
func (s *Service) appendAs(ctx context.Context, j *Job, principal, kind string, data any) (audit.Entry, error) {
	e, err := s.log.Append(ctx, audit.Event{Kind: kind, Principal: principal, Subject: j.subject(), Data: data})
	if err != nil {
		return audit.Entry{}, fmt.Errorf("job %d: record %s: %w", j.ID, kind, err)
	}
	return e, nil
}

func (s *Service) resultPath(id int64) string {
	return filepath.Join(s.dir, fmt.Sprint(id), "result.parquet")
}

// run executes j in its sandbox (SQL or Wasm), in a worker process of its
// own, over the fields and forms its decision allowed, writing the result
// into quarantine.
func (s *Service) run(ctx context.Context, j *Job, entry datasets.Entry, version datasets.Version) (*sqlbox.Report, error) {
	jobDir := filepath.Join(s.dir, fmt.Sprint(j.ID))
	// A job resumed after a crash starts from a clean directory.
	if err := os.RemoveAll(jobDir); err != nil {
		return nil, err
	}
	return s.sandbox(ctx, j, entry, version, jobDir, s.resultPath(j.ID), 0)
}

// sandbox runs j's code over version of entry in a worker process of its
// own, with dir as its working directory and out as its result; seed seeds
// a Wasm guest (0 draws one).
func (s *Service) sandbox(ctx context.Context, j *Job, entry datasets.Entry, version datasets.Version, dir, out string, seed int64) (*sqlbox.Report, error) {
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o700); err != nil {
		return nil, err
	}
	defer os.RemoveAll(filepath.Join(dir, "tmp"))

	d := j.Decision
	limits := limitsOf(j, filepath.Join(dir, "tmp"))
	if j.Kind == KindWasm {
		return s.runWasm(ctx, j, entry, version, dir, out, seed, limits)
	}
	table := sqlbox.Table{Name: entry.Name, Parquet: s.catalog.SnapshotPath(entry.Name, version), HashKey: s.hashKey(j.Agreement)}
	for _, f := range entry.FieldNames() { // catalog order, so the view is stable
		if form, ok := d.Fields[f]; ok {
			table.Columns = append(table.Columns, sqlbox.Column{Name: f, Form: form})
		}
	}
	a, err := s.agreementOf(ctx, *j)
	if err != nil {
		return nil, err
	}
	query := j.Analysis.Executed
	switch c := a.Outputs.Privacy; {
	case c != nil:
		// Differential privacy: each person's rows and values are bounded
		// before the job sees them; populations are not needed.
		table.Bound = &sqlbox.Bounding{PersonKey: c.PersonKey, MaxRows: c.MaxContributions, Clamp: c.Bounds}
		query = j.Analysis.CellSQL
	case j.Analysis.MembersSQL != "" && version.Rows <= MaxMembershipRows:
		query = j.Analysis.MembersSQL
	case j.Analysis.Aggregate:
		query = j.Analysis.CellSQL
	}
	spec := sqlbox.Spec{Query: query, Tables: []sqlbox.Table{table}, Limits: limits, Out: out, Views: s.catalog.ViewDir(entry.Name, version)}
	return sqlbox.RunIsolated(ctx, spec)
}

// limitsOf bounds the sandbox work done for j, with temp as its temp
// directory.
func limitsOf(j *Job, temp string) sqlbox.Limits {
	d := j.Decision.Limits
	return sqlbox.Limits{
		Memory: d.Memory, Threads: d.Threads, Timeout: time.Duration(d.TimeoutSeconds) * time.Second,
		MaxRows: d.MaxRows, MaxBytes: d.MaxBytes, TempDir: temp,
	}
}

// check runs the disclosure checks and remedies on j's quarantined result,
// writes the file that would be released, and decides its release.
func (s *Service) check(ctx context.Context, j *Job, report *sqlbox.Report) error {
	entry, version, err := s.catalog.Resolve(ctx, j.Dataset+"@"+j.Version)
	if err != nil {
		return err
	}
	a, err := s.agreementOf(ctx, *j)
	if err != nil {
		return err
	}
	params, err := s.policy.ReleaseParams(ctx, s.releaseInput(j, entry, version, a))
	if err != nil {
		return fmt.Errorf("job %d: %w", j.ID, err)
	}
	as, err := s.assess(ctx, j, report, entry, a, params)
	if err != nil {
		return err
	}
	defer as.table.Release()
	j.Checks, j.Remedies, j.ResultKind = as.report.Findings, as.report.Changes, string(as.report.Kind)
	failpoint.Hit(failpoint.Check)
	if as.report.Verdict != disclosure.Fail {
		temp := filepath.Join(s.dir, fmt.Sprint(j.ID), "tmp-release")
		os.RemoveAll(temp)
		defer os.RemoveAll(temp)
		if j.Result.Released, err = s.publish(ctx, j, as, limitsOf(j, temp)); err != nil {
			return err
		}
		if !as.noised && j.Analysis.Aggregate {
			if err := s.keepLedgerCells(j.ID, ledgerCells(as, report.CellCounts)); err != nil {
				return err
			}
		}
	}
	decision, err := s.decideRelease(ctx, j)
	if err != nil {
		return err
	}
	return s.settle(ctx, j, decision, "job.checked", map[string]any{"checks": j.Checks, "remedies": j.Remedies, "release": decision})
}

// outputsOf is what policy and the checks take j's output columns to be.
func (s *Service) outputsOf(j *Job) []Output {
	if j.Kind == KindWasm {
		return wasmColumns(j.Analysis, j.Result.Columns)
	}
	return j.Analysis.Outputs
}

// releaseInput is what the release policy sees of j's result as the
// catalog and agreement a stand now.
func (s *Service) releaseInput(j *Job, entry datasets.Entry, version datasets.Version, a operators.Agreement) policies.ReleaseInput {
	in := policies.ReleaseInput{
		Now:       s.now().UTC(),
		Agreement: agreementFacts(a, j.Dataset, policies.Usage{}, privacy.Spend{}),
		Dataset:   datasetFacts(entry, version),
		Job: policies.Job{Kind: j.Kind, Purpose: j.Purpose, CodeHash: j.CodeSHA256, Tables: j.Analysis.Tables,
			Fields: j.Analysis.Fields, Functions: j.Analysis.Functions, Aggregate: j.Analysis.Aggregate,
			AgreementID: j.Agreement, Outputs: policyOutputs(s.outputsOf(j))},
		Result: policies.Result{Rows: j.Result.Rows, Bytes: j.Result.Bytes, SHA256: j.Result.SHA256, Columns: j.Result.Columns},
		Checks: policyChecks(j.Checks),
		Review: policies.Review{Approvals: j.Review.approvals()},
	}
	if j.Review != nil {
		in.Review.Justification = j.Review.Justification
	}
	return in
}

// decideRelease asks the release policy about j's result as the catalog,
// the agreement and its review stand now.
func (s *Service) decideRelease(ctx context.Context, j *Job) (policies.ReleaseDecision, error) {
	entry, version, err := s.catalog.Resolve(ctx, j.Dataset+"@"+j.Version)
	if err != nil {
		return policies.ReleaseDecision{}, err
	}
	a, err := s.agreementOf(ctx, *j)
	if err != nil {
		return policies.ReleaseDecision{}, err
	}
	d, err := s.policy.Release(ctx, s.releaseInput(j, entry, version, a))
	if err != nil {
		return policies.ReleaseDecision{}, fmt.Errorf("job %d: %w", j.ID, err)
	}
	return d, nil
}

// settle carries out a release decision on j: released, held for review or
// rejected. kind, if not "", is the event that records the decision when j
// is released (a review records its own).
func (s *Service) settle(ctx context.Context, j *Job, d policies.ReleaseDecision, kind string, data any) error {
	j.Release = &d
	switch d.Outcome {
	case policies.OutcomeRelease:
	case policies.OutcomeReject:
		j.Error = "the result failed disclosure checks that no review can waive: " + reasons(d)
		return s.step(ctx, j, "job.rejected", StateRejected, map[string]any{"checks": j.Checks, "release": d})
	default:
		if j.Review == nil {
			j.Review = &Review{}
		}
		j.Review.Required = d.Reviewers
		if j.State == StateHeld { // still held after a review: record it, no new state
			return s.save(ctx, j)
		}
		return s.step(ctx, j, "job.held", StateHeld, map[string]any{"checks": j.Checks, "release": d})
	}
	if kind != "" {
		if err := s.step(ctx, j, kind, j.State, data); err != nil {
			return err
		}
	}
	file := j.Result.Released
	if file == nil {
		return fmt.Errorf("job %d: released without a file to release", j.ID)
	}
	passed := make([]string, 0, len(j.Checks))
	for _, c := range j.Checks {
		passed = append(passed, c.Check)
	}
	sort.Strings(passed)
	// The cells go into the differencing ledger before they are released:
	// a crash between the two leaves a cell recorded, never one released
	// unrecorded.
	if err := s.ledger(ctx, j); err != nil {
		return err
	}
	failpoint.Hit(failpoint.Release)
	rel, err := s.log.Append(ctx, audit.Event{
		Kind: "result.released", Principal: j.Operator, Subject: j.subject(),
		Data: releaseEvent{Job: j.ID, SHA256: file.SHA256, Rows: file.Rows, Bytes: file.Bytes,
			Files: []ReleasedFile{*file}, Quarantined: j.Result.SHA256,
			Checks: passed, Report: j.Checks, Remedies: j.Remedies, Bundle: d.Bundle, Reviewers: j.Review.approvals()},
	})
	if err != nil {
		return fmt.Errorf("job %d: record release: %w", j.ID, err)
	}
	failpoint.Hit(failpoint.Released)
	j.Result.ReleaseSeq = rel.Seq
	j.State = StateReleased
	return s.save(ctx, j)
}

// reasons joins a decision's reasons for a person to read.
func reasons(d policies.ReleaseDecision) string {
	var msgs []string
	for _, r := range d.Reasons {
		msgs = append(msgs, r.Message)
	}
	return strings.Join(msgs, "; ")
}

// releaseEvent is the data of a result.released audit entry: everything
// that was released and on whose word.
type releaseEvent struct {
	Job    int64  `json:"job"`
	SHA256 string `json:"sha256"`
	Rows   int64  `json:"rows"`
	Bytes  int64  `json:"bytes"`
	// Files are the released files with their hashes.
	Files []ReleasedFile `json:"files"`
	// Quarantined is the hash of the result as the job wrote it, before
	// remedies and noise.
	Quarantined string   `json:"quarantined_sha256"`
	Checks      []string `json:"checks_passed"`
	// Report is the disclosure checks' findings, and Remedies every value
	// they changed.
	Report    []disclosure.Finding `json:"report"`
	Remedies  []disclosure.Change  `json:"remedies"`
	Bundle    string               `json:"policy_bundle"`
	Reviewers []string             `json:"reviewers"`
}

// ReleasedFile is one released file.
type ReleasedFile struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
	Rows   int64  `json:"rows"`
	Bytes  int64  `json:"bytes"`
}

// withdrawn says why a job using fields of version v of entry e may no
// longer run, or returns "" if it may.
func withdrawn(e datasets.Entry, v datasets.Version, fields []string) string {
	if why := objected(e, fields); why != "" {
		return why
	}
	if !v.Serves() {
		return fmt.Sprintf("version %.12s of %s was %s", v.ID, e.Name, v.Status)
	}
	return ""
}

// objected says why a job using fields of e may no longer run or deliver
// after an upheld objection, or returns "" if none applies.
func objected(e datasets.Entry, fields []string) string {
	if e.Status == datasets.StatusSuspended {
		return fmt.Sprintf("dataset %s was suspended after an objection was upheld", e.Name)
	}
	for _, f := range fields {
		if slices.Contains(e.SuspendedFields, f) {
			return fmt.Sprintf("field %s of %s was suspended after an objection was upheld", f, e.Name)
		}
	}
	return ""
}
