package operators

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/datasandbox/dsbx/state"

	"github.com/datasandbox/dsbx/audit"
	"github.com/datasandbox/dsbx/privacy"
)

// Agreement statuses.
const (
	StatusActive    = "active"
	StatusSuspended = "suspended"
	StatusRevoked   = "revoked"
	StatusExpired   = "expired"
)

// Field forms: how a job sees a field.
const (
	FormRaw         = "raw"
	FormMasked      = "masked"
	FormHashed      = "hashed"
	FormGeneralised = "generalised"
)

// Forms lists every field form.
var Forms = []string{FormRaw, FormMasked, FormHashed, FormGeneralised}

// Scope is one dataset an agreement covers: a pinned version or (Version
// "") the latest, and each covered field with the form it is seen in.
type Scope struct {
	Dataset string            `json:"dataset"`
	Version string            `json:"version,omitempty"`
	Fields  map[string]string `json:"fields"`
}

// OutputRules bound what may leave under an agreement.
type OutputRules struct {
	// AggregatesOnly admits only jobs whose every output is an aggregate.
	AggregatesOnly bool `json:"aggregates_only"`
	// MinCellCount raises the platform's minimum count per released cell
	// (0: the platform's own).
	MinCellCount int64 `json:"min_cell_count"`
	// RowLevel allows row-level extracts, of non-personal fields only.
	RowLevel bool `json:"row_level,omitempty"`
	// RoundBase, above 1, rounds released counts to a multiple of it.
	RoundBase int64 `json:"round_base,omitempty"`
	// TopCode and BottomCode clamp a field's released values (row-level
	// extracts and statistics) from above and below.
	TopCode    map[string]float64 `json:"top_code,omitempty"`
	BottomCode map[string]float64 `json:"bottom_code,omitempty"`
	// Privacy, if set, releases counts and sums with differential privacy
	// under a per-operator-per-dataset budget.
	Privacy *privacy.Config `json:"privacy,omitempty"`
}

// Quotas bound how many jobs run under an agreement; 0 is unlimited.
type Quotas struct {
	MaxJobs    int64 `json:"max_jobs"`
	JobsPerDay int64 `json:"jobs_per_day"`
}

// Change is one status change in an agreement's history.
type Change struct {
	Status   string    `json:"status"`
	Reason   string    `json:"reason"`
	By       string    `json:"by"`
	At       time.Time `json:"at"`
	AuditSeq int64     `json:"audit_seq"`
}

// Agreement is a data use or authorized-operation agreement: who, which
// datasets and fields in which form, for which purposes, with which output
// rules and quotas, and for how long.
type Agreement struct {
	ID            int64       `json:"id"`
	ApplicationID int64       `json:"application_id,omitempty"`
	Holder        string      `json:"holder"`
	Kind          string      `json:"kind"`
	Provider      string      `json:"provider"`
	Scope         []Scope     `json:"scope"`
	Purposes      []string    `json:"purposes"`
	Outputs       OutputRules `json:"outputs"`
	Quotas        Quotas      `json:"quotas"`
	Term
	Status       string    `json:"status"`
	StatusReason string    `json:"status_reason,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
	CreatedBy    string    `json:"created_by"`
	History      []Change  `json:"history"`

	stored string // the status as stored, before the term is taken into account
}

// StatusAt returns the agreement's status at t: revoked and expired stay
// so; an active or suspended agreement is expired from the end of its term on.
func (a Agreement) StatusAt(t time.Time) string {
	if (a.Status == StatusActive || a.Status == StatusSuspended) && !t.Before(a.Until) {
		return StatusExpired
	}
	return a.Status
}

// Covering returns the scope of dataset, or false if a does not cover it.
func (a Agreement) Covering(dataset string) (Scope, bool) {
	for _, s := range a.Scope {
		if s.Dataset == dataset {
			return s, true
		}
	}
	return Scope{}, false
}

// Approval is a provider's answer granting an application, possibly
// narrower than asked.
type Approval struct {
	// Fields maps dataset → field → form: exactly what is granted. Unset,
	// every requested field of every requested dataset is granted raw; set,
	// a requested dataset it does not name is not granted. Fields not
	// requested cannot be granted.
	Fields map[string]map[string]string `json:"fields,omitempty"`
	// ValidFrom and ValidUntil may shorten the requested term, never extend it.
	ValidFrom  string      `json:"valid_from,omitempty"`
	ValidUntil string      `json:"valid_until,omitempty"`
	Outputs    OutputRules `json:"outputs"`
	Quotas     Quotas      `json:"quotas"`
	Note       string      `json:"note,omitempty"`
}

// Approve grants application id as approval says and creates the agreement.
// actor must be a provider of the organization that owns the data.
func (d *Directory) Approve(ctx context.Context, actor Principal, id int64, ap Approval) (Application, Agreement, error) {
	app, err := d.pending(ctx, actor, id)
	if err != nil {
		return Application{}, Agreement{}, err
	}
	now := d.now()
	asked, err := parseTerm(now, app.ValidFrom, app.ValidUntil)
	if err != nil {
		return Application{}, Agreement{}, inputErrorf("the requested term no longer holds (%v); refuse the application, the applicant may apply again", err)
	}
	term := asked
	if ap.ValidFrom != "" {
		if term.From, err = parseStart("valid_from", ap.ValidFrom); err != nil {
			return Application{}, Agreement{}, err
		}
	}
	if ap.ValidUntil != "" {
		if term.Until, err = parseEnd("valid_until", ap.ValidUntil); err != nil {
			return Application{}, Agreement{}, err
		}
	}
	switch {
	case term.From.Before(asked.From):
		return Application{}, Agreement{}, inputErrorf("valid_from %s is before the requested start %s; an approval may narrow the term, not extend it", term.From.In(Zone).Format(time.RFC3339), asked.From.In(Zone).Format(time.RFC3339))
	case term.Until.After(asked.Until):
		return Application{}, Agreement{}, inputErrorf("valid_until %s is after the requested end %s; an approval may narrow the term, not extend it", term.Until.In(Zone).Format(time.RFC3339), asked.Until.In(Zone).Format(time.RFC3339))
	case !term.Until.After(term.From) || !term.Until.After(now):
		return Application{}, Agreement{}, inputErrorf("the approved term %s is empty or already over", term.describe())
	}
	if err := checkTermLength(app.Kind, term); err != nil {
		return Application{}, Agreement{}, err
	}
	scope, err := narrowScope(app.Datasets, ap.Fields)
	if err != nil {
		return Application{}, Agreement{}, err
	}
	if ap.Outputs.MinCellCount < 0 || ap.Outputs.RoundBase < 0 || ap.Quotas.MaxJobs < 0 || ap.Quotas.JobsPerDay < 0 {
		return Application{}, Agreement{}, inputErrorf("min_cell_count, round_base and quotas are counts: 0 or more")
	}
	if dp := ap.Outputs.Privacy; dp != nil {
		if err := dp.Validate(); err != nil {
			return Application{}, Agreement{}, inputErrorf("differential privacy: %v", err)
		}
	}
	a := Agreement{
		ApplicationID: app.ID, Holder: app.Applicant, Kind: app.Kind, Provider: app.Provider,
		Scope: scope, Purposes: []string{app.Purpose}, Outputs: ap.Outputs, Quotas: ap.Quotas,
		Term: term, Status: StatusActive, CreatedAt: now.UTC(), CreatedBy: actor.Name,
	}
	granted := fmt.Sprintf("granted on application %d", id)
	if note := strings.TrimSpace(ap.Note); note != "" {
		granted += ": " + note
	}
	entry, err := d.record(ctx, fmt.Sprintf("approve application %d", id), audit.Event{
		Kind: "agreement.granted", Principal: actor.Name, Subject: "principal/" + a.Holder, Data: a,
	})
	if err != nil {
		return Application{}, Agreement{}, err
	}
	a.ID = entry.Seq
	a.History = []Change{{Status: StatusActive, Reason: granted, By: actor.Name, At: a.CreatedAt, AuditSeq: entry.Seq}}
	app, err = d.close(ctx, actor.Name, app, ApplicationApproved, strings.TrimSpace(ap.Note), a.ID, "application.approved", func(tx *state.Tx) error {
		return insertAgreement(ctx, tx, a)
	})
	if err != nil {
		return Application{}, Agreement{}, err
	}
	return app, a, nil
}

// narrowScope builds an agreement's scope from the requested datasets and
// the provider's choice of fields and forms.
func narrowScope(asked []DatasetRequest, chosen map[string]map[string]string) ([]Scope, error) {
	for ds := range chosen {
		if !slices.ContainsFunc(asked, func(r DatasetRequest) bool { return r.Dataset == ds }) {
			return nil, inputErrorf("dataset %s was not asked for; an approval may narrow the request, not extend it", ds)
		}
	}
	var scope []Scope
	for _, r := range asked {
		s := Scope{Dataset: r.Dataset, Version: r.Version, Fields: map[string]string{}}
		fields := chosen[r.Dataset]
		if chosen == nil {
			for _, f := range r.Fields {
				s.Fields[f] = FormRaw
			}
		}
		for f, form := range fields {
			if !slices.Contains(r.Fields, f) {
				return nil, inputErrorf("field %s of %s was not asked for (asked: %s); an approval may narrow the request, not extend it", f, r.Dataset, strings.Join(r.Fields, ", "))
			}
			if !slices.Contains(Forms, form) {
				return nil, inputErrorf("form %q of %s.%s is not one of %s", form, r.Dataset, f, strings.Join(Forms, ", "))
			}
			s.Fields[f] = form
		}
		if len(s.Fields) > 0 {
			scope = append(scope, s)
		}
	}
	if len(scope) == 0 {
		return nil, inputErrorf("the approval grants no field; refuse the application instead")
	}
	return scope, nil
}

func insertAgreement(ctx context.Context, tx *state.Tx, a Agreement) error {
	scope, _ := json.Marshal(a.Scope)
	purposes, _ := json.Marshal(a.Purposes)
	outputs, _ := json.Marshal(a.Outputs)
	quotas, _ := json.Marshal(a.Quotas)
	if _, err := tx.ExecContext(ctx, `INSERT INTO agreements(id, application_id, holder, kind, provider, scope, purposes, outputs, quotas, valid_from, valid_until, status, status_reason, created_at, created_by)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		a.ID, a.ApplicationID, a.Holder, a.Kind, a.Provider, string(scope), string(purposes), string(outputs), string(quotas),
		formatTime(a.From), formatTime(a.Until), a.Status, a.StatusReason, formatTime(a.CreatedAt), a.CreatedBy); err != nil {
		return fmt.Errorf("store agreement: %w", err)
	}
	for _, c := range a.History {
		if err := insertChange(ctx, tx, a.ID, c); err != nil {
			return err
		}
	}
	return nil
}

func insertChange(ctx context.Context, db execer, id int64, c Change) error {
	_, err := db.ExecContext(ctx, `INSERT INTO agreement_history(agreement, audit_seq, status, reason, by, at) VALUES (?, ?, ?, ?, ?, ?)`,
		id, c.AuditSeq, c.Status, c.Reason, c.By, formatTime(c.At))
	if err != nil {
		return fmt.Errorf("store agreement %d history: %w", id, err)
	}
	return nil
}

const agreementColumns = `id, application_id, holder, kind, provider, scope, purposes, outputs, quotas, valid_from, valid_until, status, status_reason, created_at, created_by`

func scanAgreement(row interface{ Scan(...any) error }) (Agreement, error) {
	var a Agreement
	var scope, purposes, outputs, quotas, from, until, created string
	if err := row.Scan(&a.ID, &a.ApplicationID, &a.Holder, &a.Kind, &a.Provider, &scope, &purposes, &outputs, &quotas,
		&from, &until, &a.Status, &a.StatusReason, &created, &a.CreatedBy); err != nil {
		return Agreement{}, err
	}
	for _, j := range []struct {
		src string
		dst any
	}{{scope, &a.Scope}, {purposes, &a.Purposes}, {outputs, &a.Outputs}, {quotas, &a.Quotas}} {
		if err := json.Unmarshal([]byte(j.src), j.dst); err != nil {
			return Agreement{}, fmt.Errorf("agreement %d: %w", a.ID, err)
		}
	}
	a.From, a.Until, a.CreatedAt = parseTime(from), parseTime(until), parseTime(created)
	return a, nil
}

// agreements loads the agreements matching where, with their history and
// their status evaluated now.
func (d *Directory) agreements(ctx context.Context, where string, args ...any) ([]Agreement, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT `+agreementColumns+` FROM agreements `+where+` ORDER BY id`, args...)
	if err != nil {
		return nil, fmt.Errorf("agreements: %w", err)
	}
	var out []Agreement
	for rows.Next() {
		a, err := scanAgreement(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("agreements: %w", err)
		}
		out = append(out, a)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("agreements: %w", err)
	}
	now := d.now()
	for i := range out {
		out[i].stored = out[i].Status
		out[i].Status = out[i].StatusAt(now)
		if out[i].History, err = d.history(ctx, out[i].ID); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (d *Directory) history(ctx context.Context, id int64) ([]Change, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT audit_seq, status, reason, by, at FROM agreement_history WHERE agreement = ? ORDER BY audit_seq`, id)
	if err != nil {
		return nil, fmt.Errorf("agreement %d history: %w", id, err)
	}
	defer rows.Close()
	out := []Change{}
	for rows.Next() {
		var c Change
		var at string
		if err := rows.Scan(&c.AuditSeq, &c.Status, &c.Reason, &c.By, &at); err != nil {
			return nil, fmt.Errorf("agreement %d history: %w", id, err)
		}
		c.At = parseTime(at)
		out = append(out, c)
	}
	return out, rows.Err()
}

// Agreement returns agreement id as it stands now, whoever asks; callers
// that serve it to a principal check MayRead.
func (d *Directory) Agreement(ctx context.Context, id int64) (Agreement, error) {
	list, err := d.agreements(ctx, `WHERE id = ?`, id)
	if err != nil {
		return Agreement{}, err
	}
	if len(list) == 0 {
		return Agreement{}, fmt.Errorf("agreement %d: %w", id, ErrNotFound)
	}
	return list[0], nil
}

// MayRead reports whether viewer may see agreement a: its holder, a
// provider of its organization, an admin or a regulator.
func (a Agreement) MayRead(viewer Principal) bool {
	return a.Holder == viewer.Name || viewer.Owns(a.Provider) || viewer.Has(RoleAdmin) || viewer.Has(RoleRegulator)
}

// AgreementFilter narrows a listing; zero fields match everything.
type AgreementFilter struct {
	Holder  string
	Dataset string
	Status  string
}

// Agreements lists the agreements viewer may see that match f, by ID.
func (d *Directory) Agreements(ctx context.Context, viewer Principal, f AgreementFilter) ([]Agreement, error) {
	if f.Status != "" && !slices.Contains([]string{StatusActive, StatusSuspended, StatusRevoked, StatusExpired}, f.Status) {
		return nil, inputErrorf("status %q is not one of active, suspended, revoked, expired", f.Status)
	}
	all, err := d.agreements(ctx, `WHERE (? = '' OR holder = ?)`, f.Holder, f.Holder)
	if err != nil {
		return nil, err
	}
	out := []Agreement{}
	for _, a := range all {
		if _, ok := a.Covering(f.Dataset); (f.Dataset == "" || ok) && (f.Status == "" || a.Status == f.Status) && a.MayRead(viewer) {
			out = append(out, a)
		}
	}
	return out, nil
}

// Applicable returns holder's agreements covering dataset, whatever their
// status: admission policy decides which one, if any, a job may run under.
func (d *Directory) Applicable(ctx context.Context, holder, dataset string) ([]Agreement, error) {
	all, err := d.agreements(ctx, `WHERE holder = ?`, holder)
	if err != nil {
		return nil, err
	}
	var out []Agreement
	for _, a := range all {
		if _, ok := a.Covering(dataset); ok {
			out = append(out, a)
		}
	}
	return out, nil
}

// Private lists the agreements that release with differential privacy,
// holder's only unless holder is "".
func (d *Directory) Private(ctx context.Context, holder string) ([]Agreement, error) {
	where, args := ``, []any{}
	if holder != "" {
		where, args = `WHERE holder = ?`, append(args, holder)
	}
	all, err := d.agreements(ctx, where, args...)
	if err != nil {
		return nil, err
	}
	var out []Agreement
	for _, a := range all {
		if a.Outputs.Privacy != nil {
			out = append(out, a)
		}
	}
	return out, nil
}

// SetStatus suspends, resumes (status active) or revokes agreement id with
// a reason. actor must be an admin or a provider of the agreement's
// organization. Revoked and expired agreements change no more.
func (d *Directory) SetStatus(ctx context.Context, actor Principal, id int64, status, reason string) (Agreement, error) {
	a, err := d.Agreement(ctx, id)
	if err != nil {
		return Agreement{}, err
	}
	if !actor.Has(RoleAdmin) && !actor.Owns(a.Provider) {
		return Agreement{}, forbiddenf("agreement %d is on data of %s; only its providers or the admin change it", id, a.Provider)
	}
	reason = strings.TrimSpace(reason)
	if reason == "" {
		return Agreement{}, inputErrorf("no reason given; say why agreement %d is %s", id, status)
	}
	allowed := map[string][]string{
		StatusActive:    {StatusSuspended, StatusRevoked},
		StatusSuspended: {StatusActive, StatusRevoked},
	}
	if !slices.Contains(allowed[a.Status], status) {
		if !slices.Contains([]string{StatusActive, StatusSuspended, StatusRevoked}, status) {
			return Agreement{}, inputErrorf("status %q is not one of active (resume), suspended, revoked", status)
		}
		return Agreement{}, conflictf("agreement %d is %s and cannot become %s", id, a.Status, status)
	}
	return d.changeStatus(ctx, actor.Name, a, status, reason)
}

func (d *Directory) changeStatus(ctx context.Context, actor string, a Agreement, status, reason string) (Agreement, error) {
	kind := map[string]string{StatusActive: "agreement.resumed", StatusSuspended: "agreement.suspended", StatusRevoked: "agreement.revoked", StatusExpired: "agreement.expired"}[status]
	entry, err := d.record(ctx, fmt.Sprintf("agreement %d", a.ID), audit.Event{
		Kind: kind, Principal: actor, Subject: fmt.Sprintf("agreement/%d", a.ID),
		Data: map[string]any{"agreement": a.ID, "holder": a.Holder, "from": a.stored, "to": status, "reason": reason},
	})
	if err != nil {
		return Agreement{}, err
	}
	c := Change{Status: status, Reason: reason, By: actor, At: d.now().UTC(), AuditSeq: entry.Seq}
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return Agreement{}, fmt.Errorf("agreement %d: %w", a.ID, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `UPDATE agreements SET status = ?, status_reason = ? WHERE id = ?`, status, reason, a.ID); err != nil {
		return Agreement{}, fmt.Errorf("agreement %d: %w", a.ID, err)
	}
	if err := insertChange(ctx, tx, a.ID, c); err != nil {
		return Agreement{}, err
	}
	if err := tx.Commit(); err != nil {
		return Agreement{}, fmt.Errorf("agreement %d: %w", a.ID, err)
	}
	a.Status, a.stored, a.StatusReason, a.History = status, status, reason, append(a.History, c)
	return a, nil
}

// ExpireDue records the expiry of every agreement whose term has ended but
// whose stored status is still active, and returns them. Admission already
// treats them as expired from the exact instant; this makes the expiry an
// event in the log and lets the caller stop their queued jobs.
func (d *Directory) ExpireDue(ctx context.Context) ([]Agreement, error) {
	now := d.now()
	due, err := d.agreements(ctx, `WHERE status IN (?, ?) AND valid_until <= ?`, StatusActive, StatusSuspended, formatTime(now))
	if err != nil {
		return nil, err
	}
	sort.SliceStable(due, func(i, j int) bool { return due[i].Until.Before(due[j].Until) }) // ties stay in ID order
	var out []Agreement
	for _, a := range due {
		changed, err := d.changeStatus(ctx, "", a, StatusExpired, "the term ended at "+a.Until.In(Zone).Format(time.RFC3339))
		if err != nil {
			return out, err
		}
		out = append(out, changed)
	}
	return out, nil
}
