package datasets

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/datasandbox/dsbx/audit"
)

// Objection states.
const (
	ObjectionOpen      = "open"
	ObjectionUpheld    = "upheld"
	ObjectionDismissed = "dismissed"
)

// Objection (异议) is a citizen's or firm's claim that opened data infringes
// privacy or trade secrets. Upheld, it suspends the dataset, or one field of
// it, until the dataset is reinstated.
type Objection struct {
	ID        int64      `json:"id"`
	Dataset   string     `json:"dataset"`
	Field     string     `json:"field,omitempty"` // empty: the whole dataset
	Reason    string     `json:"reason"`
	Filer     string     `json:"filer"`
	FiledAt   time.Time  `json:"filed_at"`
	Status    string     `json:"status"`
	Decider   string     `json:"decider,omitempty"`
	Decision  string     `json:"decision,omitempty"`
	DecidedAt *time.Time `json:"decided_at,omitempty"`
}

// Object files an objection by filer against dataset, or against one field
// of it when field is not empty.
func (c *Catalog) Object(ctx context.Context, filer, dataset, field, reason string) (Objection, error) {
	reason = strings.TrimSpace(reason)
	if reason == "" {
		return Objection{}, inputErrorf("an objection needs a reason: which privacy or trade secret does %s infringe, and how?", dataset)
	}
	e, err := c.Get(ctx, dataset)
	if err != nil {
		return Objection{}, err
	}
	if field != "" {
		if _, ok := e.Field(field); !ok {
			return Objection{}, inputErrorf("dataset %s has no field %q (fields: %v)", dataset, field, e.FieldNames())
		}
	}
	o := Objection{Dataset: dataset, Field: field, Reason: reason, Filer: filer, FiledAt: c.now().UTC(), Status: ObjectionOpen}
	entry, err := c.log.Append(ctx, audit.Event{Kind: "dataset.objection_filed", Principal: filer, Subject: "dataset/" + dataset, Data: o})
	if err != nil {
		return Objection{}, fmt.Errorf("object to %s: %w", dataset, err)
	}
	// The objection's number is its audit entry's, like a job's.
	o.ID = entry.Seq
	if _, err := c.db.ExecContext(ctx, `INSERT INTO objections(id, dataset, field, reason, filer, filed_at, status) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		o.ID, o.Dataset, o.Field, o.Reason, o.Filer, o.FiledAt.Format(time.RFC3339Nano), o.Status); err != nil {
		return Objection{}, fmt.Errorf("object to %s: %w", dataset, err)
	}
	return o, nil
}

const objectionColumns = `id, dataset, field, reason, filer, filed_at, status, decider, decision, decided_at`

// Objections lists objections, newest first, optionally only those on
// dataset and in status.
func (c *Catalog) Objections(ctx context.Context, dataset, status string) ([]Objection, error) {
	rows, err := c.db.QueryContext(ctx, `SELECT `+objectionColumns+` FROM objections WHERE (? = '' OR dataset = ?) AND (? = '' OR status = ?) ORDER BY id DESC`,
		dataset, dataset, status, status)
	if err != nil {
		return nil, fmt.Errorf("list objections: %w", err)
	}
	defer rows.Close()
	var out []Objection
	for rows.Next() {
		o, err := scanObjection(rows)
		if err != nil {
			return nil, fmt.Errorf("list objections: %w", err)
		}
		out = append(out, o)
	}
	return out, rows.Err()
}

// Objection returns objection id.
func (c *Catalog) Objection(ctx context.Context, id int64) (Objection, error) {
	o, err := scanObjection(c.db.QueryRowContext(ctx, `SELECT `+objectionColumns+` FROM objections WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Objection{}, fmt.Errorf("objection %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Objection{}, fmt.Errorf("objection %d: %w", id, err)
	}
	return o, nil
}

func scanObjection(s scanner) (Objection, error) {
	var o Objection
	var filed, decided string
	if err := s.Scan(&o.ID, &o.Dataset, &o.Field, &o.Reason, &o.Filer, &filed, &o.Status, &o.Decider, &o.Decision, &decided); err != nil {
		return Objection{}, err
	}
	o.FiledAt, _ = time.Parse(time.RFC3339Nano, filed)
	if t, err := time.Parse(time.RFC3339Nano, decided); err == nil {
		o.DecidedAt = &t
	}
	return o, nil
}

// Decide upholds or dismisses open objection id with the decider's reason.
// Upholding suspends the dataset, or the objected field, at once; it returns
// the entry as it now stands.
func (c *Catalog) Decide(ctx context.Context, decider string, id int64, uphold bool, reason string) (Objection, Entry, error) {
	reason = strings.TrimSpace(reason)
	if reason == "" {
		return Objection{}, Entry{}, inputErrorf("give the reason for the decision on objection %d; the objector and the regulator read it", id)
	}
	o, err := c.Objection(ctx, id)
	if err != nil {
		return Objection{}, Entry{}, err
	}
	if o.Status != ObjectionOpen {
		return Objection{}, Entry{}, inputErrorf("objection %d was already %s by %s", id, o.Status, o.Decider)
	}
	e, err := c.Get(ctx, o.Dataset)
	if err != nil {
		return Objection{}, Entry{}, err
	}
	now := c.now().UTC()
	o.Status, o.Decider, o.Decision, o.DecidedAt = ObjectionDismissed, decider, reason, &now
	if uphold {
		o.Status = ObjectionUpheld
		if o.Field == "" {
			e.Status = StatusSuspended
		} else if !slices.Contains(e.SuspendedFields, o.Field) {
			e.SuspendedFields = append(e.SuspendedFields, o.Field)
		}
	}
	if _, err := c.log.Append(ctx, audit.Event{
		Kind: "dataset.objection_" + o.Status, Principal: decider, Subject: "dataset/" + o.Dataset,
		Data: map[string]any{"objection": o, "status": e.Status, "suspended_fields": e.SuspendedFields},
	}); err != nil {
		return Objection{}, Entry{}, fmt.Errorf("decide objection %d: %w", id, err)
	}
	if err := c.setObjection(ctx, o, e); err != nil {
		return Objection{}, Entry{}, fmt.Errorf("decide objection %d: %w", id, err)
	}
	return o, e, nil
}

func (c *Catalog) setObjection(ctx context.Context, o Objection, e Entry) error {
	suspended, err := marshal(e.SuspendedFields)
	if err != nil {
		return err
	}
	tx, err := c.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `UPDATE objections SET status = ?, decider = ?, decision = ?, decided_at = ? WHERE id = ?`,
		o.Status, o.Decider, o.Decision, o.DecidedAt.Format(time.RFC3339Nano), o.ID); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE datasets SET status = ?, suspended_fields = ? WHERE name = ?`, e.Status, suspended, e.Name); err != nil {
		return err
	}
	return tx.Commit()
}

// Reinstate lifts the suspension of dataset, or of one field of it, after
// the cause was remedied; actor's reason goes on record.
func (c *Catalog) Reinstate(ctx context.Context, actor, dataset, field, reason string) (Entry, error) {
	reason = strings.TrimSpace(reason)
	if reason == "" {
		return Entry{}, inputErrorf("give the reason %s may serve again (how was the objection remedied?)", dataset)
	}
	e, err := c.Get(ctx, dataset)
	if err != nil {
		return Entry{}, err
	}
	switch {
	case field == "" && e.Status != StatusSuspended:
		return Entry{}, inputErrorf("dataset %s is not suspended", dataset)
	case field != "" && !slices.Contains(e.SuspendedFields, field):
		return Entry{}, inputErrorf("field %s of %s is not suspended (suspended fields: %v)", field, dataset, e.SuspendedFields)
	case field == "":
		e.Status = StatusActive
	default:
		e.SuspendedFields = slices.DeleteFunc(e.SuspendedFields, func(f string) bool { return f == field })
	}
	if _, err := c.log.Append(ctx, audit.Event{
		Kind: "dataset.reinstated", Principal: actor, Subject: "dataset/" + dataset,
		Data: map[string]any{"dataset": dataset, "field": field, "reason": reason, "status": e.Status, "suspended_fields": e.SuspendedFields},
	}); err != nil {
		return Entry{}, fmt.Errorf("reinstate %s: %w", dataset, err)
	}
	suspended, err := marshal(e.SuspendedFields)
	if err != nil {
		return Entry{}, err
	}
	if _, err := c.db.ExecContext(ctx, `UPDATE datasets SET status = ?, suspended_fields = ? WHERE name = ?`, e.Status, suspended, dataset); err != nil {
		return Entry{}, fmt.Errorf("reinstate %s: %w", dataset, err)
	}
	return e, nil
}
