package jobs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/apache/arrow-go/v18/arrow/csv"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/datasandbox/dsbx/audit"
	"github.com/datasandbox/dsbx/operators"
)

// Delivery formats.
const (
	FormatCSV     = "csv"
	FormatParquet = "parquet"
	FormatArrow   = "arrow" // Arrow IPC stream
)

// NotReleasedError refuses the delivery of a result that was not released.
type NotReleasedError struct {
	ID    int64
	State string
	Why   string
}

func (e *NotReleasedError) Error() string {
	msg := fmt.Sprintf("job %d is %s; only released results can be fetched", e.ID, e.State)
	if e.Why != "" {
		msg += ": " + e.Why
	}
	return msg
}

// WithdrawnError refuses the delivery of a released result whose dataset,
// or a field it used, was suspended after release, or whose agreement is no
// longer in force.
type WithdrawnError struct {
	ID  int64
	Why string
}

func (e *WithdrawnError) Error() string {
	return fmt.Sprintf("job %d's result is withheld: %s; the regulator sees it among the results released before", e.ID, e.Why)
}

// ErrIntegrity reports a quarantined result that no longer matches its
// release record; it is never delivered.
var ErrIntegrity = errors.New("result does not match its release record")

// Deliver writes the released result of job id to w in format, for its
// submitter only. Before the first byte it checks that the audit log holds
// the release event naming this result's hash, that the file still has that
// hash, and records the download.
func (s *Service) Deliver(ctx context.Context, p operators.Principal, id int64, format string, w io.Writer) error {
	if err := checkFormat(format); err != nil {
		return err
	}
	j, err := s.load(ctx, id)
	if err != nil {
		return err
	}
	if j.Operator != p.Name {
		// Only the submitter receives data; admins and regulators see the
		// record, never the result.
		return fmt.Errorf("job %d: %w", id, ErrNotFound)
	}
	if j.State != StateReleased || j.Result == nil || j.Result.ReleaseSeq == 0 {
		return &NotReleasedError{ID: id, State: j.State, Why: why(j)}
	}
	if err := s.checkRelease(j); err != nil {
		return err
	}
	entry, _, err := s.catalog.Resolve(ctx, j.Dataset+"@"+j.Version)
	if err != nil {
		return fmt.Errorf("job %d: %w", id, err)
	}
	if why := objected(entry, j.Analysis.Fields); why != "" {
		return &WithdrawnError{ID: id, Why: why}
	}
	a, err := s.agreementOf(ctx, j)
	if err != nil {
		return err
	}
	if why := lapsed(a, s.now()); why != "" {
		return &WithdrawnError{ID: id, Why: why}
	}
	if err := s.serve(ctx, p, j, "result.downloaded", format, w); err != nil {
		return err
	}
	if err := s.countDelivery(ctx, id); err != nil {
		return fmt.Errorf("job %d: count delivery: %w", id, err)
	}
	return nil
}

// countDelivery adds one to job id's downloads, in a transaction of its
// own: concurrent deliveries must not overwrite each other's count, and
// only the count changes.
func (s *Service) countDelivery(ctx context.Context, id int64) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var text string
	if err := tx.QueryRowContext(ctx, `SELECT record FROM jobs WHERE id = ?`, id).Scan(&text); err != nil {
		return err
	}
	var record map[string]json.RawMessage
	if err := json.Unmarshal([]byte(text), &record); err != nil {
		return fmt.Errorf("read record: %w", err)
	}
	var n int
	if d, ok := record["downloads"]; ok {
		if err := json.Unmarshal(d, &n); err != nil {
			return fmt.Errorf("read downloads: %w", err)
		}
	}
	record["downloads"] = json.RawMessage(strconv.Itoa(n + 1))
	b, err := json.Marshal(record)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE jobs SET record = ?, updated_at = ? WHERE id = ?`, string(b), s.now().UTC().Format(time.RFC3339Nano), id); err != nil {
		return err
	}
	return tx.Commit()
}

// Inspect writes the file held job id would release, after remedies, to w
// in format, for an output checker deciding on it. The inspection is
// recorded like a download; the submitter receives nothing until release.
func (s *Service) Inspect(ctx context.Context, p operators.Principal, id int64, format string, w io.Writer) error {
	if !p.Has(operators.RoleReviewer) {
		return &operators.ForbiddenError{Msg: "only output checkers (role reviewer) inspect held results"}
	}
	if err := checkFormat(format); err != nil {
		return err
	}
	j, err := s.load(ctx, id)
	if err != nil {
		return err
	}
	if j.State != StateHeld || j.Result == nil || j.Result.Released == nil {
		return &operators.ConflictError{Msg: fmt.Sprintf("job %d is %s; only held results with a file to release are inspected", id, j.State)}
	}
	if j.Operator == p.Name {
		return &operators.ForbiddenError{Msg: fmt.Sprintf("job %d is %s's own; another output checker inspects it", id, p.Name)}
	}
	return s.serve(ctx, p, j, "review.inspected", format, w)
}

// serve writes j's file to release to w in format, after checking it still
// has its recorded hash and recording event kind for p.
func (s *Service) serve(ctx context.Context, p operators.Principal, j Job, kind, format string, w io.Writer) error {
	path, err := s.deliveredPath(j)
	if err != nil {
		return fmt.Errorf("job %d: %v: %w", j.ID, err, ErrIntegrity)
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("job %d: open result: %w", j.ID, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("job %d: hash result: %w", j.ID, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != j.Result.Released.SHA256 {
		return fmt.Errorf("job %d: file hash %s, recorded %s: %w", j.ID, got, j.Result.Released.SHA256, ErrIntegrity)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if _, err := s.log.Append(ctx, audit.Event{
		Kind: kind, Principal: p.Name, Subject: j.subject(),
		Data: map[string]any{"sha256": j.Result.Released.SHA256, "file": j.Result.Released.Name, "format": format},
	}); err != nil {
		return fmt.Errorf("job %d: record %s: %w", j.ID, kind, err)
	}
	if err := convert(f, format, w); err != nil {
		return fmt.Errorf("job %d: write %s: %w", j.ID, format, err)
	}
	return nil
}

func checkFormat(format string) error {
	switch format {
	case FormatCSV, FormatParquet, FormatArrow:
		return nil
	}
	return &InputError{Code: "bad_format", Msg: fmt.Sprintf("format %q is not one of csv, parquet, arrow", format)}
}

// checkRelease confirms that the audit entry j points to releases exactly
// this job's result.
func (s *Service) checkRelease(j Job) error {
	e, err := s.log.Entry(j.Result.ReleaseSeq)
	if err != nil {
		return fmt.Errorf("job %d: release entry %d: %v: %w", j.ID, j.Result.ReleaseSeq, err, ErrIntegrity)
	}
	var rel releaseEvent
	if e.Kind != "result.released" || e.Subject != j.subject() || json.Unmarshal(e.Data, &rel) != nil ||
		rel.Job != j.ID || j.Result.Released == nil || rel.SHA256 != j.Result.Released.SHA256 {
		return fmt.Errorf("job %d: audit entry %d is not the release of this result: %w", j.ID, j.Result.ReleaseSeq, ErrIntegrity)
	}
	return nil
}

func why(j Job) string {
	if j.Error != "" {
		return j.Error
	}
	var msg string
	reasons := []string{}
	if j.Release != nil {
		for _, r := range j.Release.Reasons {
			reasons = append(reasons, r.Message)
		}
	} else if j.Decision != nil {
		for _, r := range j.Decision.Reasons {
			reasons = append(reasons, r.Message)
		}
	}
	for i, r := range reasons {
		if i > 0 {
			msg += "; "
		}
		msg += r
	}
	return msg
}

// convert copies a Parquet result to w in format.
func convert(f *os.File, format string, w io.Writer) error {
	if format == FormatParquet {
		_, err := io.Copy(w, f)
		return err
	}
	pf, err := file.NewParquetReader(f)
	if err != nil {
		return err
	}
	defer pf.Close()
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: 64 * 1024}, memory.DefaultAllocator)
	if err != nil {
		return err
	}
	rr, err := fr.GetRecordReader(context.Background(), nil, nil)
	if err != nil {
		return err
	}
	defer rr.Release()
	switch format {
	case FormatCSV:
		cw := csv.NewWriter(w, rr.Schema(), csv.WithHeader(true), csv.WithNullWriter(""))
		for rr.Next() {
			if err := cw.Write(rr.RecordBatch()); err != nil {
				return err
			}
		}
		if err := rr.Err(); err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		return cw.Flush()
	case FormatArrow:
		iw := ipc.NewWriter(w, ipc.WithSchema(rr.Schema()))
		for rr.Next() {
			if err := iw.Write(rr.RecordBatch()); err != nil {
				return err
			}
		}
		if err := rr.Err(); err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		return iw.Close()
	}
	return nil
}
