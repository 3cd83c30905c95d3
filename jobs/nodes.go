package jobs

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/datasandbox/dsbx/audit"
	"github.com/datasandbox/dsbx/operators"
)

// NodeEvent is a step of a job as a node records it (RecordFor): an
// audit.Event on the wire, without the credential, which is the node's own.
type NodeEvent struct {
	Kind      string          `json:"kind"`
	Principal string          `json:"principal"`
	Subject   string          `json:"subject"`
	Data      json.RawMessage `json:"data,omitempty"`
}

// nodeKinds are the entries a node records about the jobs it runs.
var nodeKinds = []string{"job.started", "job.ran", "job.checked", "job.held", "job.failed", "job.stopped", "job.requeued", "result.released"}

// RecordFor appends e to the audit log for node, a `dsbx worker` process
// that runs jobs but does not hold the log: it must be one of the entries
// a node records (nodeKinds), about a job running under node's lease. The
// check and the append happen under the state's write lock, so a node
// whose lease ran out (ReclaimExpired takes the lease under the same lock)
// cannot record a step, nor a release, of a job another node now runs.
// This is how the log stays one sequence, in one place, whatever the
// number of nodes.
func (s *Service) RecordFor(ctx context.Context, node string, ne NodeEvent) (audit.Entry, error) {
	e := audit.Event{Kind: ne.Kind, Principal: ne.Principal, Subject: ne.Subject}
	if len(ne.Data) > 0 && string(ne.Data) != "null" {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(ne.Data, &obj); err != nil {
			return audit.Entry{}, &InputError{Code: "bad_event", Msg: "data must be a JSON object"}
		}
		e.Data = ne.Data
	}
	if !slices.Contains(nodeKinds, e.Kind) {
		return audit.Entry{}, &InputError{Code: "bad_event", Msg: fmt.Sprintf("a node records only %s, not %q", strings.Join(nodeKinds, ", "), e.Kind)}
	}
	id, err := strconv.ParseInt(strings.TrimPrefix(e.Subject, "job/"), 10, 64)
	if err != nil || !strings.HasPrefix(e.Subject, "job/") {
		return audit.Entry{}, &InputError{Code: "bad_event", Msg: fmt.Sprintf("subject %q is not job/ID", e.Subject)}
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return audit.Entry{}, err
	}
	defer tx.Rollback()
	var st, owner string
	err = tx.QueryRowContext(ctx, `SELECT state, lease_owner FROM jobs WHERE id = ?`, id).Scan(&st, &owner)
	if errors.Is(err, sql.ErrNoRows) {
		return audit.Entry{}, fmt.Errorf("job %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return audit.Entry{}, err
	}
	if st != StateRunning || owner != node {
		return audit.Entry{}, &operators.ConflictError{Msg: fmt.Sprintf("job %d is %s under the lease of %q, not running under node %s's: %v", id, st, owner, node, ErrLeaseLost)}
	}
	entry, err := s.log.Append(ctx, e)
	if err != nil {
		return audit.Entry{}, err
	}
	return entry, tx.Commit()
}
