// Package index keeps a queryable index of the audit log in the state
// database, so regulators can filter the record by operator, dataset, time,
// event kind and decision, and follow one job from submission to download.
//
// The index is derived from the log and is brought up to date before every
// query; it holds no more than where each entry sits and what it concerns.
// The entries themselves are always read from the log, so a query returns
// exactly the bytes the Merkle tree commits to.
package index

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/datasandbox/dsbx/audit"
	"github.com/datasandbox/dsbx/state"
)

// Log is the audit log the index reads.
type Log interface {
	Size() int64
	Records(from, to int64) ([][]byte, error)
}

// Index is the audit log's index in a state database (table audit_index).
type Index struct {
	db  *state.DB
	log Log
	mu  sync.Mutex // one catch-up at a time
}

// New returns the index of log kept in db.
func New(db *state.DB, log Log) *Index { return &Index{db: db, log: log} }

// Decisions an entry may record.
const (
	Denied   = "denied"
	Held     = "held"
	Released = "released"
	Rejected = "rejected"
	Failed   = "failed"
	Stopped  = "stopped"
	Refused  = "refused"
)

// Filter selects entries; zero fields select everything.
type Filter struct {
	Operator string    // the job's submitter, or the principal an entry concerns
	Dataset  string    // the dataset an entry concerns
	Kind     string    // an event kind, or a prefix ending in "." (job.)
	Decision string    // one of the decisions above
	Job      int64     // one job's whole history
	From, To time.Time // entries at or after From and before To
	Since    int64     // entries with seq >= Since (a cursor)
	Limit    int       // at most this many (default and maximum MaxLimit)
}

// timeLayout stores times in UTC with a fixed number of digits, so that
// they compare as strings in time order.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

// MaxLimit bounds one query's entries.
const MaxLimit = 1000

// batch is how many entries one catch-up step reads.
const batch = 4096

// Sync indexes the entries appended since the last Sync.
func (x *Index) Sync(ctx context.Context) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	var next int64
	if err := x.db.QueryRowContext(ctx, `SELECT coalesce(max(seq) + 1, 0) FROM audit_index`).Scan(&next); err != nil {
		return fmt.Errorf("audit index: %w", err)
	}
	size := x.log.Size()
	for next < size {
		to := min(next+batch, size)
		recs, err := x.log.Records(next, to)
		if err != nil {
			return fmt.Errorf("audit index: %w", err)
		}
		if err := x.add(ctx, next, recs); err != nil {
			return err
		}
		next = to
	}
	return nil
}

// row is what the index keeps of one entry.
type row struct {
	seq                                           int64
	time, kind, principal, subject, operator, set string
	job                                           int64
	decision                                      string
}

// add indexes records, which start at seq from.
func (x *Index) add(ctx context.Context, from int64, recs [][]byte) error {
	tx, err := x.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("audit index: %w", err)
	}
	defer tx.Rollback()
	jobs := map[int64][2]string{} // job → operator, dataset, for this batch
	for i, rec := range recs {
		var e audit.Entry
		if err := json.Unmarshal(rec, &e); err != nil {
			return fmt.Errorf("audit index: entry %d: %w", from+int64(i), err)
		}
		r, err := describe(ctx, tx, e, jobs)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO audit_index(seq, time, kind, principal, subject, operator, dataset, job, decision) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			r.seq, r.time, r.kind, r.principal, r.subject, r.operator, r.set, r.job, r.decision); err != nil {
			return fmt.Errorf("audit index: entry %d: %w", e.Seq, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("audit index: %w", err)
	}
	return nil
}

// describe works out what entry e concerns. A job's operator and dataset
// come from its submission, which precedes every other entry about it.
func describe(ctx context.Context, tx *state.Tx, e audit.Entry, jobs map[int64][2]string) (row, error) {
	r := row{seq: e.Seq, time: e.Time.UTC().Format(timeLayout), kind: e.Kind, principal: e.Principal, subject: e.Subject, operator: e.Principal}
	var data struct {
		Dataset string `json:"dataset"`
		State   string `json:"state"`
	}
	if len(e.Data) > 0 {
		json.Unmarshal(e.Data, &data) // an entry's data is always an object; fields it lacks stay ""
	}
	kind, name, _ := strings.Cut(e.Subject, "/")
	switch kind {
	case "dataset":
		r.set = name
	case "principal":
		r.operator = name
	case "job":
		id, err := strconv.ParseInt(name, 10, 64)
		if err != nil {
			break
		}
		r.job = id
		known, ok := jobs[id]
		if !ok {
			err := tx.QueryRowContext(ctx, `SELECT operator, dataset FROM audit_index WHERE seq = ?`, id).Scan(&known[0], &known[1])
			if err != nil && err != sql.ErrNoRows {
				return row{}, fmt.Errorf("audit index: entry %d: job %d: %w", e.Seq, id, err)
			}
		}
		r.operator, r.set = known[0], known[1]
	}
	if e.Kind == "job.submitted" {
		r.job, r.set = e.Seq, data.Dataset
		jobs[e.Seq] = [2]string{r.operator, r.set}
	}
	if r.set == "" {
		r.set = data.Dataset
	}
	switch e.Kind {
	case "job.decided":
		if data.State == "denied" {
			r.decision = Denied
		}
	case "job.held":
		r.decision = Held
	case "result.released":
		r.decision = Released
	case "job.rejected", "review.rejected":
		r.decision = Rejected
	case "job.failed":
		r.decision = Failed
	case "job.stopped":
		r.decision = Stopped
	case "job.refused":
		r.decision = Refused
	}
	return r, nil
}

// Query returns the entries f selects, in log order, after indexing what
// was appended since the last query.
func (x *Index) Query(ctx context.Context, f Filter) ([]audit.Entry, error) {
	if err := x.Sync(ctx); err != nil {
		return nil, err
	}
	var where []string
	var args []any
	add := func(cond string, arg any) {
		where = append(where, cond)
		args = append(args, arg)
	}
	if f.Operator != "" {
		add("operator = ?", f.Operator)
	}
	if f.Dataset != "" {
		add("dataset = ?", f.Dataset)
	}
	if f.Kind != "" {
		if strings.HasSuffix(f.Kind, ".") {
			add("substr(kind, 1, ?) = ?", len(f.Kind))
			args = append(args, f.Kind)
		} else {
			add("kind = ?", f.Kind)
		}
	}
	if f.Decision != "" {
		add("decision = ?", f.Decision)
	}
	if f.Job != 0 {
		add("job = ?", f.Job)
	}
	if !f.From.IsZero() {
		add("time >= ?", f.From.UTC().Format(timeLayout))
	}
	if !f.To.IsZero() {
		add("time < ?", f.To.UTC().Format(timeLayout))
	}
	if f.Since > 0 {
		add("seq >= ?", f.Since)
	}
	limit := f.Limit
	if limit <= 0 || limit > MaxLimit {
		limit = MaxLimit
	}
	q := `SELECT seq FROM audit_index`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY seq LIMIT " + strconv.Itoa(limit)
	rows, err := x.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("audit index: query: %w", err)
	}
	var seqs []int64
	for rows.Next() {
		var s int64
		if err := rows.Scan(&s); err != nil {
			rows.Close()
			return nil, fmt.Errorf("audit index: query: %w", err)
		}
		seqs = append(seqs, s)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("audit index: query: %w", err)
	}
	out := make([]audit.Entry, 0, len(seqs))
	for _, s := range seqs {
		recs, err := x.log.Records(s, s+1)
		if err != nil {
			return nil, fmt.Errorf("audit index: entry %d: %w", s, err)
		}
		var e audit.Entry
		if err := json.Unmarshal(recs[0], &e); err != nil {
			return nil, fmt.Errorf("audit index: entry %d: %w", s, err)
		}
		out = append(out, e)
	}
	return out, nil
}
