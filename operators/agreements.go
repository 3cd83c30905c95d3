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
)

// Agreement statuses.
const (
	StatusActive    = "active"
	StatusSuspended = "suspended"
	StatusRevoked   = "revoked"
	StatusExpired   = "expired"
)

// MaxTerm is the longest term of an authorized-operation agreement (授权运营
// 期限不超过3年).
const MaxTerm = 3

// DateLayout is how agreement dates are written.
const DateLayout = "2006-01-02"

// Agreement is a data use agreement: one operator, one dataset, the fields
// it covers, the purpose, and its term (both dates inclusive).
type Agreement struct {
	ID         int64     `json:"id"`
	Operator   string    `json:"operator"`
	Dataset    string    `json:"dataset"`
	Fields     []string  `json:"fields"`
	Purpose    string    `json:"purpose"`
	ValidFrom  string    `json:"valid_from"`
	ValidUntil string    `json:"valid_until"`
	Status     string    `json:"status"`
	CreatedAt  time.Time `json:"created_at"`
}

// StatusAt returns the agreement's status at t: a stored status other than
// active wins; an active agreement is expired after its last day.
func (a Agreement) StatusAt(t time.Time) string {
	if a.Status != StatusActive {
		return a.Status
	}
	until, err := time.Parse(DateLayout, a.ValidUntil)
	if err != nil || !t.Before(until.AddDate(0, 0, 1)) {
		return StatusExpired
	}
	return StatusActive
}

// Grant is a request to create an agreement.
type Grant struct {
	Operator   string   `json:"operator"`
	Dataset    string   `json:"dataset"`
	Fields     []string `json:"fields"`
	Purpose    string   `json:"purpose"`
	ValidFrom  string   `json:"valid_from,omitempty"` // default: today
	ValidUntil string   `json:"valid_until"`
}

// DatasetFields reports the field names of a dataset, or an error if it is
// unknown; the directory uses it to check grants.
type DatasetFields func(ctx context.Context, dataset string) ([]string, error)

// Grant creates an agreement after checking operator, dataset, fields and
// term; actor is the principal granting it.
func (d *Directory) Grant(ctx context.Context, actor string, g Grant, fieldsOf DatasetFields) (Agreement, error) {
	p, err := d.Get(ctx, g.Operator)
	if errors.Is(err, ErrNotFound) {
		return Agreement{}, inputErrorf("operator %q does not exist; add it with 'dsbx operator add'", g.Operator)
	}
	if err != nil {
		return Agreement{}, err
	}
	if !p.Has(RoleOperator) && !p.Has(RoleResearcher) {
		return Agreement{}, inputErrorf("%q is a %s, not an operator or researcher", g.Operator, p.Kind)
	}
	all, err := fieldsOf(ctx, g.Dataset)
	if err != nil {
		return Agreement{}, err
	}
	if len(g.Fields) == 0 {
		return Agreement{}, inputErrorf("no fields given; name the fields of %s the agreement covers", g.Dataset)
	}
	seen := map[string]bool{}
	for _, f := range g.Fields {
		if !slices.Contains(all, f) {
			return Agreement{}, inputErrorf("dataset %s has no field %q (its fields: %s)", g.Dataset, f, strings.Join(all, ", "))
		}
		if seen[f] {
			return Agreement{}, inputErrorf("field %q is named twice", f)
		}
		seen[f] = true
	}
	g.Purpose = strings.TrimSpace(g.Purpose)
	if g.Purpose == "" {
		return Agreement{}, inputErrorf("no purpose given; an agreement names the purpose (scenario) the data may be used for")
	}
	today := d.now().UTC().Truncate(24 * time.Hour)
	from := today
	if g.ValidFrom != "" {
		if from, err = time.Parse(DateLayout, g.ValidFrom); err != nil {
			return Agreement{}, inputErrorf("valid_from %q is not a date like 2027-12-31", g.ValidFrom)
		}
	}
	until, err := time.Parse(DateLayout, g.ValidUntil)
	if err != nil {
		return Agreement{}, inputErrorf("until %q is not a date like 2027-12-31", g.ValidUntil)
	}
	if until.Before(today) {
		return Agreement{}, inputErrorf("until %s is in the past", g.ValidUntil)
	}
	if until.Before(from) {
		return Agreement{}, inputErrorf("until %s is before valid_from %s", g.ValidUntil, from.Format(DateLayout))
	}
	if until.After(from.AddDate(MaxTerm, 0, 0)) {
		return Agreement{}, inputErrorf("term %s to %s is longer than %d years, the maximum for authorized operation", from.Format(DateLayout), g.ValidUntil, MaxTerm)
	}
	a := Agreement{
		Operator: g.Operator, Dataset: g.Dataset, Fields: g.Fields, Purpose: g.Purpose,
		ValidFrom: from.Format(DateLayout), ValidUntil: until.Format(DateLayout),
		Status: StatusActive, CreatedAt: d.now().UTC(),
	}
	if _, err := d.log.Append(ctx, audit.Event{
		Kind: "agreement.granted", Principal: actor, Subject: "operator/" + g.Operator, Data: a,
	}); err != nil {
		return Agreement{}, fmt.Errorf("grant: %w", err)
	}
	fields, _ := json.Marshal(a.Fields)
	res, err := d.db.ExecContext(ctx, `INSERT INTO agreements(operator, dataset, fields, purpose, valid_from, valid_until, status, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		a.Operator, a.Dataset, string(fields), a.Purpose, a.ValidFrom, a.ValidUntil, a.Status, a.CreatedAt.Format(time.RFC3339Nano))
	if err != nil {
		return Agreement{}, fmt.Errorf("grant: %w", err)
	}
	a.ID, _ = res.LastInsertId()
	return a, nil
}

// Agreements returns the agreements of operator (all operators if ""), on
// dataset (all if ""), ordered by ID, with status evaluated now.
func (d *Directory) Agreements(ctx context.Context, operator, dataset string) ([]Agreement, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT id, operator, dataset, fields, purpose, valid_from, valid_until, status, created_at FROM agreements
		WHERE (? = '' OR operator = ?) AND (? = '' OR dataset = ?) ORDER BY id`, operator, operator, dataset, dataset)
	if err != nil {
		return nil, fmt.Errorf("agreements: %w", err)
	}
	defer rows.Close()
	now := d.now()
	var out []Agreement
	for rows.Next() {
		a, err := scanAgreement(rows)
		if err != nil {
			return nil, fmt.Errorf("agreements: %w", err)
		}
		a.Status = a.StatusAt(now)
		out = append(out, a)
	}
	return out, rows.Err()
}

func scanAgreement(rows *sql.Rows) (Agreement, error) {
	var a Agreement
	var fields, created string
	if err := rows.Scan(&a.ID, &a.Operator, &a.Dataset, &fields, &a.Purpose, &a.ValidFrom, &a.ValidUntil, &a.Status, &created); err != nil {
		return Agreement{}, err
	}
	if err := json.Unmarshal([]byte(fields), &a.Fields); err != nil {
		return Agreement{}, err
	}
	a.CreatedAt, _ = time.Parse(time.RFC3339Nano, created)
	return a, nil
}
