package operators

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/datasandbox/dsbx/audit"
	"github.com/datasandbox/dsbx/state"
)

// Agreement kinds.
const (
	// KindAuthorizedOperation is authorized operation (授权运营): a licensed
	// company builds data products; the term is at most MaxTerm years.
	KindAuthorizedOperation = "authorized-operation"
	// KindDataUse is a data use agreement (数据利用协议) for research or a
	// single application scenario.
	KindDataUse = "data-use"
)

// MaxTerm is the longest term, in years, of an authorized-operation
// agreement (授权运营期限不超过3年).
const MaxTerm = 3

// Application statuses.
const (
	ApplicationPending   = "pending"
	ApplicationApproved  = "approved"
	ApplicationRefused   = "refused"
	ApplicationWithdrawn = "withdrawn"
)

// Dataset is what the directory needs to know about a catalog entry.
type Dataset struct {
	Name     string
	Agency   string   // the organization that owns it; its providers answer applications
	Open     string   // unconditional, conditional or closed
	Fields   []string // field names
	Versions []string // version IDs
}

// Catalog looks datasets up; it returns an error wrapping ErrNotFound, or
// an *InputError, for an unknown name.
type Catalog interface {
	Dataset(ctx context.Context, name string) (Dataset, error)
}

// DatasetRequest asks for fields of one dataset, at a pinned version or
// (Version "") whatever version is latest when a job runs.
type DatasetRequest struct {
	Dataset string   `json:"dataset"`
	Version string   `json:"version,omitempty"`
	Fields  []string `json:"fields"`
}

// Request is what an operator or researcher applies for.
type Request struct {
	Kind     string           `json:"kind"`
	Datasets []DatasetRequest `json:"datasets"`
	// Purpose names the application scenario (应用场景); jobs name it too.
	Purpose string `json:"purpose"`
	// Scenario describes the scenario and its compliance review.
	Scenario   string `json:"scenario,omitempty"`
	ValidFrom  string `json:"valid_from,omitempty"` // default: approval time
	ValidUntil string `json:"valid_until"`
	// Outputs describes the intended outputs (data products, statistics).
	Outputs string `json:"outputs,omitempty"`
}

// Application is a request for data and its answer.
type Application struct {
	ID        int64  `json:"id"`
	Applicant string `json:"applicant"`
	Provider  string `json:"provider"` // the organization that must answer
	Request
	Status      string     `json:"status"`
	SubmittedAt time.Time  `json:"submitted_at"`
	DueAt       time.Time  `json:"due_at"` // the answer is due before this instant
	Overdue     bool       `json:"overdue"`
	DecidedAt   *time.Time `json:"decided_at,omitempty"`
	DecidedBy   string     `json:"decided_by,omitempty"`
	Reason      string     `json:"reason,omitempty"`
	AgreementID int64      `json:"agreement_id,omitempty"`
}

// Apply records applicant's application after checking it against the
// catalog. Every dataset must belong to one provider organization, which
// must answer within the directory's response days.
func (d *Directory) Apply(ctx context.Context, applicant Principal, r Request, cat Catalog) (Application, error) {
	if !applicant.Requester() {
		return Application{}, forbiddenf("%s holds roles %s; only operators and researchers apply for data", applicant.Name, strings.Join(applicant.Roles, ", "))
	}
	now := d.now()
	r.Kind = strings.TrimSpace(r.Kind)
	if r.Kind == "" {
		r.Kind = KindDataUse
	}
	switch r.Kind {
	case KindDataUse:
	case KindAuthorizedOperation:
		if !applicant.Has(RoleOperator) {
			return Application{}, inputErrorf("authorized operation (授权运营) is for licensed operators; %s is not one — apply for %s", applicant.Name, KindDataUse)
		}
	default:
		return Application{}, inputErrorf("kind %q is not %s or %s", r.Kind, KindAuthorizedOperation, KindDataUse)
	}
	r.Purpose = strings.TrimSpace(r.Purpose)
	if r.Purpose == "" {
		return Application{}, inputErrorf("no purpose given; name the application scenario (应用场景) the data is for")
	}
	if len(r.Datasets) == 0 {
		return Application{}, inputErrorf("no datasets given; ask for at least one dataset and its fields")
	}
	term, err := parseTerm(now, r.ValidFrom, r.ValidUntil)
	if err != nil {
		return Application{}, err
	}
	if err := checkTermLength(r.Kind, term); err != nil {
		return Application{}, err
	}
	provider := ""
	seen := map[string]bool{}
	r.Datasets = slices.Clone(r.Datasets) // normalised below; the caller's slice stays as given
	for i, dr := range r.Datasets {
		ds, err := cat.Dataset(ctx, strings.TrimSpace(dr.Dataset))
		if err != nil {
			return Application{}, err
		}
		if seen[ds.Name] {
			return Application{}, inputErrorf("dataset %s is named twice; list all its fields once", ds.Name)
		}
		seen[ds.Name] = true
		switch {
		case ds.Open == "closed":
			return Application{}, inputErrorf("dataset %s is closed (不予开放) and is not available under any agreement", ds.Name)
		case ds.Agency == "":
			return Application{}, inputErrorf("dataset %s names no agency, so no provider can answer; ask the platform to record its agency", ds.Name)
		case provider != "" && ds.Agency != provider:
			return Application{}, inputErrorf("datasets of %s and %s are in one application; each provider answers its own, so apply separately", provider, ds.Agency)
		}
		provider = ds.Agency
		if dr.Version, err = matchVersion(ds, dr.Version); err != nil {
			return Application{}, err
		}
		if dr.Fields, err = checkFields(ds, dr.Fields); err != nil {
			return Application{}, err
		}
		dr.Dataset = ds.Name
		r.Datasets[i] = dr
	}
	if r.ValidFrom != "" {
		r.ValidFrom = term.From.In(Zone).Format(time.RFC3339)
	}
	r.ValidUntil = term.Until.In(Zone).Format(time.RFC3339)
	a := Application{
		Applicant: applicant.Name, Provider: provider, Request: r, Status: ApplicationPending,
		SubmittedAt: now.UTC(), DueAt: addWorkingDays(now, d.responseDays).UTC(),
	}
	entry, err := d.record(ctx, "apply", audit.Event{
		Kind: "application.submitted", Principal: applicant.Name, Subject: "provider/" + provider,
		Data: map[string]any{"request": r, "due_at": a.DueAt},
	})
	if err != nil {
		return Application{}, err
	}
	a.ID = entry.Seq
	req, _ := json.Marshal(r)
	if _, err := d.db.ExecContext(ctx, `INSERT INTO applications(id, applicant, kind, provider, request, status, submitted_at, due_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		a.ID, a.Applicant, r.Kind, provider, string(req), a.Status, formatTime(a.SubmittedAt), formatTime(a.DueAt)); err != nil {
		return Application{}, fmt.Errorf("apply: %w", err)
	}
	return a, nil
}

func checkTermLength(kind string, t Term) error {
	if kind == KindAuthorizedOperation && t.longerThanYears(MaxTerm) {
		return inputErrorf("term %s is longer than %d years, the most authorized operation (授权运营) may run; end it by %s",
			t.describe(), MaxTerm, t.From.In(Zone).AddDate(MaxTerm, 0, -1).Format(DateLayout))
	}
	return nil
}

// matchVersion resolves a version prefix of ds ("" stays "": the latest).
func matchVersion(ds Dataset, prefix string) (string, error) {
	prefix = strings.TrimSpace(prefix)
	if prefix == "" {
		return "", nil
	}
	var found []string
	for _, v := range ds.Versions {
		if strings.HasPrefix(v, prefix) {
			found = append(found, v)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return "", inputErrorf("dataset %s has no version %s", ds.Name, prefix)
	}
	return "", inputErrorf("version %s of %s is ambiguous; give more digits", prefix, ds.Name)
}

func checkFields(ds Dataset, fields []string) ([]string, error) {
	if len(fields) == 0 {
		return nil, inputErrorf("no fields given for %s; name the fields you need (its fields: %s)", ds.Name, strings.Join(ds.Fields, ", "))
	}
	var out []string
	for _, f := range fields {
		f = strings.TrimSpace(f)
		if !slices.Contains(ds.Fields, f) {
			return nil, inputErrorf("dataset %s has no field %q (its fields: %s)", ds.Name, f, strings.Join(ds.Fields, ", "))
		}
		if slices.Contains(out, f) {
			return nil, inputErrorf("field %s of %s is named twice", f, ds.Name)
		}
		out = append(out, f)
	}
	return out, nil
}

const applicationColumns = `id, applicant, provider, request, status, submitted_at, due_at, decided_at, decided_by, reason, agreement_id`

func (d *Directory) scanApplication(row interface{ Scan(...any) error }) (Application, error) {
	var a Application
	var req, submitted, due string
	var decided sql.NullString
	var agreement sql.NullInt64
	if err := row.Scan(&a.ID, &a.Applicant, &a.Provider, &req, &a.Status, &submitted, &due, &decided, &a.DecidedBy, &a.Reason, &agreement); err != nil {
		return Application{}, err
	}
	if err := json.Unmarshal([]byte(req), &a.Request); err != nil {
		return Application{}, fmt.Errorf("application %d: %w", a.ID, err)
	}
	a.SubmittedAt, a.DueAt = parseTime(submitted), parseTime(due)
	a.DecidedAt = nullTime(decided)
	a.AgreementID = agreement.Int64
	a.Overdue = a.Status == ApplicationPending && !d.now().Before(a.DueAt)
	return a, nil
}

// mayRead reports whether viewer may see application a: its applicant, a
// provider of its organization, an admin or a regulator.
func mayRead(viewer Principal, a Application) bool {
	return a.Applicant == viewer.Name || viewer.Owns(a.Provider) || viewer.Has(RoleAdmin) || viewer.Has(RoleRegulator)
}

// Application returns application id if viewer may see it.
func (d *Directory) Application(ctx context.Context, viewer Principal, id int64) (Application, error) {
	a, err := d.application(ctx, id)
	if err == nil && !mayRead(viewer, a) {
		err = fmt.Errorf("application %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Application{}, err // nothing of an application the viewer may not see
	}
	return a, nil
}

func (d *Directory) application(ctx context.Context, id int64) (Application, error) {
	a, err := d.scanApplication(d.db.QueryRowContext(ctx, `SELECT `+applicationColumns+` FROM applications WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Application{}, fmt.Errorf("application %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Application{}, fmt.Errorf("application %d: %w", id, err)
	}
	return a, nil
}

// ApplicationFilter narrows a listing; zero fields match everything.
type ApplicationFilter struct {
	Status  string
	Overdue bool // only pending applications past their deadline
}

// Applications lists the applications viewer may see, oldest first.
func (d *Directory) Applications(ctx context.Context, viewer Principal, f ApplicationFilter) ([]Application, error) {
	if f.Status != "" && !slices.Contains([]string{ApplicationPending, ApplicationApproved, ApplicationRefused, ApplicationWithdrawn}, f.Status) {
		return nil, inputErrorf("status %q is not one of pending, approved, refused, withdrawn", f.Status)
	}
	rows, err := d.db.QueryContext(ctx, `SELECT `+applicationColumns+` FROM applications WHERE (? = '' OR status = ?) ORDER BY id`, f.Status, f.Status)
	if err != nil {
		return nil, fmt.Errorf("list applications: %w", err)
	}
	defer rows.Close()
	out := []Application{}
	for rows.Next() {
		a, err := d.scanApplication(rows)
		if err != nil {
			return nil, fmt.Errorf("list applications: %w", err)
		}
		if mayRead(viewer, a) && (!f.Overdue || a.Overdue) {
			out = append(out, a)
		}
	}
	return out, rows.Err()
}

// pending returns application id for a decision by actor, who must be a
// provider of its organization: another provider is told it may not, not
// that the application does not exist.
func (d *Directory) pending(ctx context.Context, actor Principal, id int64) (Application, error) {
	a, err := d.application(ctx, id)
	if err != nil {
		return Application{}, err
	}
	if !actor.Owns(a.Provider) {
		return Application{}, forbiddenf("application %d asks for data of %s; only its providers answer it (%s speaks for %q)", id, a.Provider, actor.Name, actor.Organization)
	}
	if a.Status != ApplicationPending {
		return Application{}, conflictf("application %d was already %s", id, a.Status)
	}
	return a, nil
}

// Refuse answers application id with a refusal and its reason.
func (d *Directory) Refuse(ctx context.Context, actor Principal, id int64, reason string) (Application, error) {
	reason = strings.TrimSpace(reason)
	if reason == "" {
		return Application{}, inputErrorf("no reason given; a refusal states its reasons")
	}
	a, err := d.pending(ctx, actor, id)
	if err != nil {
		return Application{}, err
	}
	return d.close(ctx, actor.Name, a, ApplicationRefused, reason, 0, "application.refused", nil)
}

// Withdraw withdraws applicant's pending application id.
func (d *Directory) Withdraw(ctx context.Context, applicant Principal, id int64) (Application, error) {
	a, err := d.Application(ctx, applicant, id)
	if err != nil {
		return Application{}, err
	}
	if a.Applicant != applicant.Name {
		return Application{}, forbiddenf("application %d is %s's; only its applicant withdraws it", id, a.Applicant)
	}
	if a.Status != ApplicationPending {
		return Application{}, conflictf("application %d was already %s", id, a.Status)
	}
	return d.close(ctx, applicant.Name, a, ApplicationWithdrawn, "withdrawn by the applicant", 0, "application.withdrawn", nil)
}

// close records the answer to a and stores it, with then (if set) running
// in the same transaction.
func (d *Directory) close(ctx context.Context, actor string, a Application, status, reason string, agreement int64, kind string, then func(*state.Tx) error) (Application, error) {
	now := d.now().UTC()
	a.Status, a.Reason, a.DecidedBy, a.DecidedAt, a.AgreementID, a.Overdue = status, reason, actor, &now, agreement, false
	data := map[string]any{"application": a.ID, "status": status, "reason": reason, "late": !now.Before(a.DueAt)}
	if agreement != 0 {
		data["agreement"] = agreement
	}
	if _, err := d.record(ctx, fmt.Sprintf("application %d", a.ID), audit.Event{
		Kind: kind, Principal: actor, Subject: fmt.Sprintf("application/%d", a.ID), Data: data,
	}); err != nil {
		return Application{}, err
	}
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return Application{}, fmt.Errorf("application %d: %w", a.ID, err)
	}
	defer tx.Rollback()
	var agreementID any
	if agreement != 0 {
		agreementID = agreement
	}
	if _, err := tx.ExecContext(ctx, `UPDATE applications SET status = ?, reason = ?, decided_by = ?, decided_at = ?, agreement_id = ? WHERE id = ?`,
		status, reason, actor, formatTime(now), agreementID, a.ID); err != nil {
		return Application{}, fmt.Errorf("application %d: %w", a.ID, err)
	}
	if then != nil {
		if err := then(tx); err != nil {
			return Application{}, fmt.Errorf("application %d: %w", a.ID, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return Application{}, fmt.Errorf("application %d: %w", a.ID, err)
	}
	return a, nil
}
