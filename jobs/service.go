package jobs

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/datasandbox/dsbx/audit"
	"github.com/datasandbox/dsbx/datasets"
	"github.com/datasandbox/dsbx/failpoint"
	"github.com/datasandbox/dsbx/operators"
	"github.com/datasandbox/dsbx/policies"
	"github.com/datasandbox/dsbx/privacy"
	sqlbox "github.com/datasandbox/dsbx/sandbox/sql"
	"github.com/datasandbox/dsbx/sandbox/wasm"
	"github.com/datasandbox/dsbx/sandbox/wasmjob"
	"github.com/datasandbox/dsbx/state"
)

// Catalog resolves dataset references to pinned versions.
type Catalog interface {
	Get(ctx context.Context, name string) (datasets.Entry, error)
	Resolve(ctx context.Context, ref string) (datasets.Entry, datasets.Version, error)
	SnapshotPath(name string, v datasets.Version) string
	ViewDir(name string, v datasets.Version) string
}

// Agreements finds the agreements jobs run under.
type Agreements interface {
	// Applicable lists holder's agreements covering dataset, any status.
	Applicable(ctx context.Context, holder, dataset string) ([]operators.Agreement, error)
	// Agreement returns agreement id as it stands now.
	Agreement(ctx context.Context, id int64) (operators.Agreement, error)
	// Private lists the agreements with differential privacy, holder's
	// only unless holder is "".
	Private(ctx context.Context, holder string) ([]operators.Agreement, error)
}

// Policy decides whether a job runs and whether its result leaves.
type Policy interface {
	Admit(ctx context.Context, in policies.AdmissionInput) (policies.Decision, error)
	Release(ctx context.Context, in policies.ReleaseInput) (policies.ReleaseDecision, error)
	// ReleaseParams sets the disclosure checks' parameters for a result.
	ReleaseParams(ctx context.Context, in policies.ReleaseInput) (policies.Params, error)
}

// AuditLog is the tamper-evident log every step is recorded in.
type AuditLog interface {
	Append(ctx context.Context, e audit.Event) (audit.Entry, error)
	Entry(seq int64) (audit.Entry, error)
}

// Service runs the job lifecycle.
type Service struct {
	db         *state.DB
	dir        string // quarantine: dir/<id>/result.parquet
	secret     []byte // derives the per-agreement keys of hashed fields
	catalog    Catalog
	agreements Agreements
	policy     Policy
	log        AuditLog
	now        func() time.Time

	clockSet bool          // SetClock was called: leases go by now, not the database's clock
	node     string        // names this node in job leases (lease.go)
	joined   bool          // a job node of another process's platform (JoinAsNode)
	poll     time.Duration // how often idle workers and long polls look again for other nodes' changes, in case a notification was missed; 0 with the embedded database, which no other node shares

	wake    chan struct{}
	claimMu sync.Mutex
	// reviewMu serialises reviews and justifications, so two output
	// checkers approving at once cannot both miss the other.
	reviewMu sync.Mutex
	// budgetMu serialises the spending of privacy budgets.
	budgetMu sync.Mutex

	changedMu sync.Mutex
	changed   chan struct{}  // closed, and replaced, whenever a job changes state
	wg        sync.WaitGroup // the workers, which Drain waits for
	// background are the lease keeper and the notification listeners,
	// which run until Stop.
	background sync.WaitGroup
	stop       context.CancelFunc

	draining  atomic.Bool   // set by Drain: no submissions, no claims
	drainOnce sync.Once     // closes drained
	drained   chan struct{} // closed by Drain, to stop idle workers
}

// New returns a service that keeps quarantined results under dir. secret
// (at least 32 bytes, kept by the platform) derives each agreement's key for
// hashed fields.
func New(db *state.DB, dir string, secret []byte, catalog Catalog, agreements Agreements, policy Policy, log AuditLog) *Service {
	s := &Service{
		db: db, dir: dir, secret: secret, catalog: catalog, agreements: agreements, policy: policy, log: log,
		now: time.Now, node: "local", wake: make(chan struct{}, 1), changed: make(chan struct{}), drained: make(chan struct{}),
	}
	if db.Dialect() == state.PostgreSQL {
		s.poll = time.Second
	}
	return s
}

// pollTick fires after s.poll, or never when there is no other node to
// look for.
func (s *Service) pollTick() <-chan time.Time {
	if s.poll == 0 {
		return nil
	}
	return time.After(s.poll)
}

// notify wakes everyone waiting in Await.
func (s *Service) notify() {
	s.changedMu.Lock()
	close(s.changed)
	s.changed = make(chan struct{})
	s.changedMu.Unlock()
}

func (s *Service) changes() <-chan struct{} {
	s.changedMu.Lock()
	defer s.changedMu.Unlock()
	return s.changed
}

// Await returns job id, as Get does, once it is in a final state or when
// wait has passed or ctx ends, whichever comes first: a long poll.
func (s *Service) Await(ctx context.Context, p operators.Principal, id int64, wait time.Duration) (Job, error) {
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		ch := s.changes() // before reading, so no change is missed
		j, err := s.Get(ctx, p, id)
		if err != nil || Final(j.State) {
			return j, err
		}
		select {
		case <-ch:
		case <-s.pollTick(): // another node may have changed it
		case <-timer.C:
			return j, nil
		case <-ctx.Done():
			return j, nil
		}
	}
}

// SetClock replaces the service's clock; tests use it to move time.
func (s *Service) SetClock(now func() time.Time) { s.now, s.clockSet = now, true }

// ErrNotFound reports an unknown job, or one the caller may not see.
var ErrNotFound = errors.New("not found")

// ErrShuttingDown refuses a submission while the service drains (see
// Drain); the server answers it with HTTP 503.
var ErrShuttingDown = errors.New("the server is shutting down and admits no jobs; submit again once it is back")

// InputError is a refused submission; the server answers it with HTTP 400.
type InputError struct {
	Code string
	Msg  string
}

func (e *InputError) Error() string { return e.Msg }

// admission is a request analysed and decided, not yet recorded.
type admission struct {
	entry    datasets.Entry
	version  datasets.Version
	code     string // hex SHA-256 of the SQL or the module
	analysis *Analysis
	input    policies.AdmissionInput
	decision policies.Decision
	now      time.Time
}

// refusal is code the platform will not run: SQL the analysis refuses, or a
// module that fails its check. It is recorded as an attempt.
type refusal struct{ code, msg string }

func (r *refusal) Error() string { return r.msg }

// admit resolves, analyses and decides req for p. A malformed request is an
// *InputError; code the analysis or module check refuses is a *refusal.
func (s *Service) admit(ctx context.Context, p operators.Principal, req Request) (*admission, error) {
	req.Dataset = strings.TrimSpace(req.Dataset)
	req.Purpose = strings.TrimSpace(req.Purpose)
	switch {
	case req.Dataset == "":
		return nil, &InputError{Code: "missing_dataset", Msg: "no dataset given; name it as NAME or NAME@VERSION"}
	case strings.TrimSpace(req.SQL) == "" && len(req.Wasm) == 0:
		return nil, &InputError{Code: "missing_code", Msg: "no SQL and no Wasm module given; a job is one of them"}
	case req.SQL != "" && len(req.Wasm) > 0:
		return nil, &InputError{Code: "two_codes", Msg: "both SQL and a Wasm module given; submit them as two jobs"}
	case req.Purpose == "":
		return nil, &InputError{Code: "missing_purpose", Msg: "no purpose given; it must match the purpose of one of your agreements"}
	}
	a := &admission{now: s.now().UTC()}
	var err error
	a.entry, a.version, err = s.catalog.Resolve(ctx, req.Dataset)
	if err != nil {
		if errors.Is(err, datasets.ErrNotFound) {
			return nil, &InputError{Code: "unknown_dataset", Msg: err.Error()}
		}
		var ie *datasets.InputError
		if errors.As(err, &ie) {
			return nil, &InputError{Code: "bad_dataset", Msg: ie.Msg}
		}
		return nil, err
	}
	kind := KindSQL
	if len(req.Wasm) > 0 {
		kind = KindWasm
		codeHash := sha256.Sum256(req.Wasm)
		a.code = hex.EncodeToString(codeHash[:])
		a.analysis, err = declared(ctx, req.Wasm, a.entry, s.wasmCache())
	} else {
		codeHash := sha256.Sum256([]byte(req.SQL))
		a.code = hex.EncodeToString(codeHash[:])
		a.analysis, err = analysed(ctx, req.SQL, a.entry)
	}
	if err != nil {
		var r *refusal
		if errors.As(err, &r) {
			return a, err
		}
		return nil, err
	}
	agreements, err := s.candidates(ctx, a.now, p.Name, a.entry.Name)
	if err != nil {
		return nil, err
	}
	a.input = admissionInput(a.now, p, a.entry, a.version, agreements, req, kind, a.code, a.analysis)
	if a.decision, err = s.policy.Admit(ctx, a.input); err != nil {
		return nil, err
	}
	return a, nil
}

// analysed is the SQL analysis of query over entry's fields.
func analysed(ctx context.Context, query string, entry datasets.Entry) (*Analysis, error) {
	an, err := sqlbox.Analyze(ctx, query, map[string][]string{entry.Name: entry.FieldNames()})
	if err != nil {
		var qe *sqlbox.Error
		if errors.As(err, &qe) {
			return nil, &refusal{code: qe.Code, msg: qe.Message}
		}
		return nil, fmt.Errorf("analyse job: %w", err)
	}
	a := &Analysis{
		Tables: an.Tables, Fields: an.Fields[entry.Name], Functions: an.Functions,
		Aggregate: an.Aggregate, Executed: an.SQL, CellSQL: an.CellSQL, MembersSQL: an.MembersSQL,
		Magnitudes: an.Magnitudes,
	}
	for _, o := range an.Outputs {
		a.Outputs = append(a.Outputs, Output{Name: o.Name, Fields: o.Fields, Aggregated: o.Aggregated,
			Aggregates: o.Aggregates, Bare: o.Bare && an.Plain})
	}
	if a.Fields == nil {
		a.Fields = []string{}
	}
	return a, nil
}

// declared is what a Wasm module says it reads and writes, checked the way
// the platform will run it. Its outputs are not known before it runs, so
// policy sees the worst case: a group key carries its field; every other
// column may carry every declared field, aggregated only in an aggregate.
func declared(ctx context.Context, module []byte, entry datasets.Entry, cacheDir string) (*Analysis, error) {
	m, err := wasmjob.Check(ctx, module, cacheDir) // compiled in a worker of its own, ready for the run
	if err != nil {
		var we *wasm.Error
		if errors.As(err, &we) {
			return nil, &refusal{code: "wasm_" + we.Code, msg: we.Error()}
		}
		return nil, fmt.Errorf("check module: %w", err)
	}
	names := entry.FieldNames()
	for _, f := range m.Fields {
		if !slices.Contains(names, f) {
			return nil, &refusal{code: "unknown_field", msg: fmt.Sprintf("the module declares field %s, which %s does not have; its fields are %s", f, entry.Name, strings.Join(names, ", "))}
		}
	}
	agg := m.Output.Kind == wasm.OutputAggregate
	a := &Analysis{
		Tables: []string{entry.Name}, Fields: append([]string{}, m.Fields...), Functions: []string{}, Aggregate: agg,
		Module: &Module{SHA256: m.SHA256, Bytes: m.Size, Output: m.Output, Imports: len(m.Imports)},
	}
	for _, g := range m.Output.GroupBy {
		a.Outputs = append(a.Outputs, Output{Name: g, Fields: []string{g}})
	}
	a.Outputs = append(a.Outputs, Output{Name: "*", Fields: a.Fields, Aggregated: agg})
	return a, nil
}

// Explanation is what admission would decide for a request, without
// recording or running anything: a dry run.
type Explanation struct {
	Analysis *Analysis               `json:"analysis"`
	Input    policies.AdmissionInput `json:"input"`
	Decision policies.Decision       `json:"decision"`
}

// Explain analyses and decides req for p as Submit would, and stops there.
func (s *Service) Explain(ctx context.Context, p operators.Principal, req Request) (Explanation, error) {
	a, err := s.admit(ctx, p, req)
	var r *refusal
	if errors.As(err, &r) {
		return Explanation{}, &InputError{Code: r.code, Msg: r.msg}
	}
	if err != nil {
		return Explanation{}, err
	}
	return Explanation{Analysis: a.analysis, Input: a.input, Decision: a.decision}, nil
}

// Submit analyses, admits and records a job for principal p. A job the policy
// denies is stored in state denied with the policy's reasons; a malformed
// request or SQL is refused with an *InputError and nothing is stored (SQL
// the analysis refuses is recorded as an attempt).
func (s *Service) Submit(ctx context.Context, p operators.Principal, req Request) (Job, error) {
	if s.draining.Load() {
		return Job{}, ErrShuttingDown
	}
	a, err := s.admit(ctx, p, req)
	var r *refusal
	if errors.As(err, &r) {
		// Refusals are recorded too: regulators want to see attempts.
		data := map[string]any{"code_sha256": a.code, "reason": r.code, "message": r.msg}
		if req.SQL != "" {
			data["sql"] = req.SQL
		} else {
			data["kind"], data["module_bytes"] = KindWasm, len(req.Wasm)
		}
		if _, aerr := s.log.Append(ctx, audit.Event{
			Kind: "job.refused", Principal: p.Name, Subject: "dataset/" + a.entry.Name, Data: data,
		}); aerr != nil {
			return Job{}, fmt.Errorf("record refusal: %w", aerr)
		}
		return Job{}, &InputError{Code: r.code, Msg: r.msg}
	}
	if err != nil {
		return Job{}, err
	}
	entry, version, code, analysis, decision, now := a.entry, a.version, a.code, a.analysis, a.decision, a.now
	req.Purpose = strings.TrimSpace(req.Purpose)
	var spend *privacy.Spend // a DP job's share of its operator's budget
	if decision.Allow {
		ag, err := s.agreements.Agreement(ctx, decision.AgreementID)
		if err != nil {
			return Job{}, err
		}
		if c := ag.Outputs.Privacy; c != nil {
			s.budgetMu.Lock()
			defer s.budgetMu.Unlock()
			sp, err := s.charge(ctx, p.Name, entry.Name, c)
			var ex *privacy.ExhaustedError
			switch {
			case errors.As(err, &ex): // another job took the last of it since the policy looked
				decision.Allow = false
				decision.Reasons = append(decision.Reasons, policies.Reason{Code: "privacy_budget_exhausted", Message: err.Error()})
			case err != nil:
				return Job{}, err
			default:
				spend = &sp
			}
		}
	}
	failpoint.Hit(failpoint.Admitted)
	kind := a.input.Job.Kind
	data := map[string]any{
		"dataset": entry.Name, "version": version.ID, "kind": kind,
		"code_sha256": code, "purpose": req.Purpose, "analysis": analysis,
	}
	if kind == KindSQL {
		data["sql"] = req.SQL
	} else if err := s.keepModule(code, req.Wasm); err != nil {
		return Job{}, err
	}
	submitted, err := s.log.Append(ctx, audit.Event{
		Kind: "job.submitted", Principal: p.Name, Subject: "dataset/" + entry.Name, Data: data,
	})
	if err != nil {
		return Job{}, fmt.Errorf("record submission: %w", err)
	}
	job := Job{
		ID: submitted.Seq, Operator: p.Name, Dataset: entry.Name, Version: version.ID, Kind: kind,
		SQL: req.SQL, CodeSHA256: code, Purpose: req.Purpose, CreatedAt: now, UpdatedAt: now,
		Agreement: decision.AgreementID, Record: Record{Analysis: analysis, Decision: &decision},
	}
	job.State = StateDenied
	if decision.Allow {
		job.State = StateQueued
	}
	decided := map[string]any{"state": job.State, "decision": decision}
	if spend != nil {
		decided["privacy_spend"] = spend
	}
	if _, err := s.log.Append(ctx, audit.Event{
		Kind: "job.decided", Principal: p.Name, Subject: job.subject(), Data: decided,
	}); err != nil {
		return Job{}, fmt.Errorf("record decision: %w", err)
	}
	failpoint.Hit(failpoint.Decided)
	if err := s.insert(ctx, job); err != nil {
		return Job{}, err
	}
	if spend != nil {
		if err := s.recordSpend(ctx, job, *spend); err != nil {
			return Job{}, err
		}
	}
	if job.State == StateQueued {
		s.wakeWorkers()
	}
	failpoint.Hit(failpoint.Submitted)
	return job, nil
}

func admissionInput(now time.Time, p operators.Principal, e datasets.Entry, v datasets.Version, agreements []policies.Agreement, req Request, kind, code string, an *Analysis) policies.AdmissionInput {
	return policies.AdmissionInput{
		Now:       now,
		Principal: policies.Principal{Name: p.Name, Roles: p.Roles, Organization: p.Organization},
		Dataset:   datasetFacts(e, v),
		Job: policies.Job{
			Kind: kind, Purpose: req.Purpose, CodeHash: code, Tables: an.Tables,
			Fields: an.Fields, Functions: an.Functions, Aggregate: an.Aggregate, AgreementID: req.Agreement,
			Outputs: policyOutputs(an.Outputs),
		},
		Agreements: agreements,
	}
}

func policyOutputs(outs []Output) []policies.Output {
	ps := make([]policies.Output, 0, len(outs))
	for _, o := range outs {
		ps = append(ps, policies.Output{Name: o.Name, Fields: o.Fields, Aggregated: o.Aggregated, Aggregates: o.Aggregates, Bare: o.Bare})
	}
	return ps
}

// datasetFacts is what policies learn about version v of entry e.
func datasetFacts(e datasets.Entry, v datasets.Version) policies.Dataset {
	d := policies.Dataset{
		Name: e.Name, Version: v.ID, Open: e.Open, Grade: e.Grade,
		Status: e.Status, SuspendedFields: e.SuspendedFields, VersionStatus: v.Status,
	}
	for _, f := range e.Fields {
		d.Fields = append(d.Fields, policies.Field{Name: f.Name, Type: f.Type, Sensitivity: f.Sensitivity, Identifier: f.Identifier})
	}
	return d
}

func (j *Job) subject() string { return fmt.Sprintf("job/%d", j.ID) }

// Get returns job id if p may see its record: its submitter, the admin,
// regulators, reviewers, and the providers of its dataset. Only the
// submitter ever receives its result.
func (s *Service) Get(ctx context.Context, p operators.Principal, id int64) (Job, error) {
	j, err := s.load(ctx, id)
	if err != nil {
		return Job{}, err
	}
	if !s.canSee(ctx, p, j.Dataset, j.Operator) {
		return Job{}, fmt.Errorf("job %d: %w", id, ErrNotFound)
	}
	return j, nil
}

func (s *Service) canSee(ctx context.Context, p operators.Principal, dataset, operator string) bool {
	if operator == p.Name || p.Has(operators.RoleAdmin) || p.Has(operators.RoleRegulator) || p.Has(operators.RoleReviewer) {
		return true
	}
	if !p.Has(operators.RoleProvider) {
		return false
	}
	e, err := s.catalog.Get(ctx, dataset)
	return err == nil && p.Owns(e.Agency)
}

// List returns the jobs p may see, newest first.
func (s *Service) List(ctx context.Context, p operators.Principal) ([]Job, error) {
	all, err := s.query(ctx, `ORDER BY id DESC`)
	if err != nil {
		return nil, err
	}
	out := []Job{}
	seen := map[string]bool{} // dataset → p may see its jobs
	for _, j := range all {
		may, ok := seen[j.Dataset]
		if j.Operator != p.Name && !ok {
			may = s.canSee(ctx, p, j.Dataset, "")
			seen[j.Dataset] = may
		}
		if j.Operator == p.Name || may {
			out = append(out, j)
		}
	}
	return out, nil
}

const jobColumns = `id, operator, dataset, version, kind, code, code_sha256, purpose, state, record, created_at, updated_at, agreement_id`

func (s *Service) load(ctx context.Context, id int64) (Job, error) {
	j, err := scanJob(s.db.QueryRowContext(ctx, `SELECT `+jobColumns+` FROM jobs WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Job{}, fmt.Errorf("job %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Job{}, fmt.Errorf("job %d: %w", id, err)
	}
	return j, nil
}

type scanner interface{ Scan(dest ...any) error }

func scanJob(row scanner) (Job, error) {
	var j Job
	var record, created, updated string
	if err := row.Scan(&j.ID, &j.Operator, &j.Dataset, &j.Version, &j.Kind, &j.SQL, &j.CodeSHA256, &j.Purpose, &j.State, &record, &created, &updated, &j.Agreement); err != nil {
		return Job{}, err
	}
	if err := json.Unmarshal([]byte(record), &j.Record); err != nil {
		return Job{}, fmt.Errorf("job %d record: %w", j.ID, err)
	}
	j.CreatedAt, _ = time.Parse(time.RFC3339Nano, created)
	j.UpdatedAt, _ = time.Parse(time.RFC3339Nano, updated)
	return j, nil
}

func (s *Service) insert(ctx context.Context, j Job) error {
	record, err := json.Marshal(j.Record)
	if err != nil {
		return fmt.Errorf("store job %d: %w", j.ID, err)
	}
	_, err = s.db.ExecContext(ctx, `INSERT INTO jobs(`+jobColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		j.ID, j.Operator, j.Dataset, j.Version, j.Kind, j.SQL, j.CodeSHA256, j.Purpose, j.State, string(record),
		j.CreatedAt.Format(time.RFC3339Nano), j.UpdatedAt.Format(time.RFC3339Nano), j.Agreement)
	if err != nil {
		return fmt.Errorf("store job %d: %w", j.ID, err)
	}
	s.tellNodes(ctx, j.State)
	return nil
}

// The channels on which the nodes sharing a state database hear of each
// other's changes (state.DB.Notify): a queued job wakes idle workers, so
// they claim it at once; any change wakes the server's long polls (Await),
// so a client hears of a job a node finished at once.
const (
	queuedChannel  = "dsbx_jobs_queued"
	changedChannel = "dsbx_jobs_changed"
)

// tellNodes tells the other nodes a job changed to state.
func (s *Service) tellNodes(ctx context.Context, state string) {
	channels := []string{changedChannel}
	if state == StateQueued {
		channels = append(channels, queuedChannel)
	}
	for _, c := range channels {
		if err := s.db.Notify(ctx, c); err != nil {
			slog.Warn("tell the other nodes a job changed", "channel", c, "err", err) // they look again within s.poll anyway
		}
	}
}

// save writes j's state and record.
func (s *Service) save(ctx context.Context, j *Job) error {
	j.UpdatedAt = s.now().UTC()
	record, err := json.Marshal(j.Record)
	if err != nil {
		return fmt.Errorf("store job %d: %w", j.ID, err)
	}
	updated := j.UpdatedAt.Format(time.RFC3339Nano)
	if j.lease == "" {
		if _, err := s.db.ExecContext(ctx, `UPDATE jobs SET state = ?, record = ?, updated_at = ? WHERE id = ?`,
			j.State, string(record), updated, j.ID); err != nil {
			return fmt.Errorf("store job %d: %w", j.ID, err)
		}
		s.notify()
		s.tellNodes(ctx, j.State)
		return nil
	}
	// A job this node runs: saved only while the lease is still this
	// node's, and let go of once the job no longer runs.
	owner := j.lease
	if j.State != StateRunning {
		owner = ""
	}
	res, err := s.db.ExecContext(ctx, `UPDATE jobs SET state = ?, record = ?, updated_at = ?, lease_owner = ? WHERE id = ? AND lease_owner = ?`,
		j.State, string(record), updated, owner, j.ID, j.lease)
	if err != nil {
		return fmt.Errorf("store job %d: %w", j.ID, err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return fmt.Errorf("store job %d: %w", j.ID, ErrLeaseLost)
	}
	j.lease = owner
	s.notify()
	s.tellNodes(ctx, j.State)
	return nil
}

// StopWithdrawn stops the queued jobs on dataset that may no longer run
// because the dataset, a field they use or their version was withdrawn;
// actor is who withdrew it. It returns the stopped jobs. Workers check the
// same before running a job, so this only makes the stop immediate.
func (s *Service) StopWithdrawn(ctx context.Context, actor, dataset string) ([]Job, error) {
	s.claimMu.Lock() // no worker claims a job while we look at the queue
	defer s.claimMu.Unlock()
	queued, err := s.query(ctx, `WHERE dataset = ? AND state = ? ORDER BY id`, dataset, StateQueued)
	if err != nil {
		return nil, err
	}
	var stopped []Job
	for _, j := range queued {
		entry, version, err := s.catalog.Resolve(ctx, j.Dataset+"@"+j.Version)
		if err != nil {
			return stopped, err
		}
		why := withdrawn(entry, version, j.Analysis.Fields)
		if why == "" {
			continue
		}
		j.Error = why
		if err := s.step(ctx, &j, "job.stopped", StateStopped, map[string]any{"reason": why, "by": actor}); err != nil {
			return stopped, err
		}
		stopped = append(stopped, j)
	}
	return stopped, nil
}

// Released lists the jobs whose results were released from dataset and that
// used field (any field when field is empty), oldest first: what a regulator
// reviews after an objection is upheld.
func (s *Service) Released(ctx context.Context, dataset, field string) ([]Job, error) {
	all, err := s.query(ctx, `WHERE dataset = ? AND state = ? ORDER BY id`, dataset, StateReleased)
	if err != nil {
		return nil, err
	}
	out := []Job{}
	for _, j := range all {
		if field == "" || (j.Analysis != nil && slices.Contains(j.Analysis.Fields, field)) {
			out = append(out, j)
		}
	}
	return out, nil
}

func (s *Service) query(ctx context.Context, where string, args ...any) ([]Job, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+jobColumns+` FROM jobs `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	defer rows.Close()
	var out []Job
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, fmt.Errorf("list jobs: %w", err)
		}
		out = append(out, j)
	}
	return out, rows.Err()
}
