package jobs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/datasandbox/dsbx/audit"
	"github.com/datasandbox/dsbx/policies"
)

// What a crash (SIGKILL, power loss) can leave behind, and what Start does
// about it before the workers start:
//
//   - a job left running: requeued (it runs again from a clean directory),
//     unless its result.released entry is already in the log, in which case
//     the release is finished: the job is saved as released with that entry,
//     provided the released file still has the recorded hash;
//   - a submission whose job.submitted and job.decided entries are in the log
//     but whose row was never stored: stored as failed, with the reason;
//   - orphan files in quarantine: the directory of a job that is queued (it
//     has not run) or unknown, the sandbox's temp directories (tmp,
//     tmp-release) and temp files (.NAME.tmp-*) of every job but those
//     another node runs, replay-* directories, and kept Wasm modules no job
//     refers to.
//
// A released, held, rejected, failed or stopped job's directory is kept: it
// holds the quarantined result, the released file or the guest's log.

// logReader is what recovery reads of the audit log beyond AuditLog.
type logReader interface {
	Size() int64
	Records(from, to int64) ([][]byte, error)
}

// abandonedWindow is how many of the log's last records Start looks through
// for submissions a crash cut off before their job was stored: those were
// being written when the process died, so they are among the last records.
const abandonedWindow = 4096

// releasedEntries returns the result.released entries the log holds for
// jobs, by job ID, reading the log once from the first of them (a job's
// entries come after its ID: its job.submitted entry is later than that).
func (s *Service) releasedEntries(jobs []Job) (map[int64]audit.Entry, error) {
	found := map[int64]audit.Entry{}
	lr, ok := s.log.(logReader)
	if !ok || len(jobs) == 0 {
		return found, nil
	}
	wanted := map[string]int64{}
	from := jobs[0].ID
	for _, j := range jobs {
		wanted[j.subject()] = j.ID
		from = min(from, j.ID)
	}
	kind := []byte(`"kind":"result.released"`)
	for size := lr.Size(); from+1 < size; from += 1024 {
		recs, err := lr.Records(from+1, min(from+1+1024, size))
		if err != nil {
			return nil, fmt.Errorf("read the log: %w", err)
		}
		for _, rec := range recs {
			if !bytes.Contains(rec, kind) {
				continue
			}
			var e audit.Entry
			if err := json.Unmarshal(rec, &e); err != nil {
				return nil, fmt.Errorf("read the log: %w", err)
			}
			if id, ok := wanted[e.Subject]; ok && e.Kind == "result.released" {
				found[id] = e
			}
		}
	}
	return found, nil
}

// finishRelease saves j, cut off between its result.released entry e and
// its state, as released. It reports false, changing nothing, if j's record
// or released file does not match e.
func (s *Service) finishRelease(ctx context.Context, j *Job, e audit.Entry) (bool, error) {
	var ev releaseEvent
	if err := json.Unmarshal(e.Data, &ev); err != nil || j.Result == nil || j.Result.Released == nil || ev.SHA256 != j.Result.Released.SHA256 {
		return false, nil
	}
	path, err := s.deliveredPath(*j)
	if err != nil {
		return false, nil
	}
	sum, err := sha256Of(path)
	if err != nil || sum != ev.SHA256 {
		return false, nil
	}
	j.Result.ReleaseSeq = e.Seq
	j.State = StateReleased
	return true, s.save(ctx, j)
}

// failAbandoned stores, as failed, the submissions in the log's last records
// whose job the crash kept from being stored.
func (s *Service) failAbandoned(ctx context.Context) error {
	lr, ok := s.log.(logReader)
	if !ok {
		return nil
	}
	size := lr.Size()
	from := max(size-abandonedWindow, 0)
	recs, err := lr.Records(from, size)
	if err != nil {
		return fmt.Errorf("read the log: %w", err)
	}
	submitted := map[int64]audit.Entry{}
	for _, rec := range recs {
		if !bytes.Contains(rec, []byte(`"kind":"job.`)) {
			continue
		}
		var e audit.Entry
		if err := json.Unmarshal(rec, &e); err != nil {
			return fmt.Errorf("read the log: %w", err)
		}
		switch e.Kind {
		case "job.submitted":
			submitted[e.Seq] = e
		case "job.decided":
			id, err := strconv.ParseInt(strings.TrimPrefix(e.Subject, "job/"), 10, 64)
			sub, ok := submitted[id]
			if err != nil || !ok {
				continue
			}
			if _, err := s.load(ctx, id); !errors.Is(err, ErrNotFound) {
				if err != nil {
					return err
				}
				continue // stored
			}
			if err := s.storeAbandoned(ctx, sub, e); err != nil {
				return err
			}
		}
	}
	return nil
}

// storeAbandoned stores the job of submission sub, decided in dec, as failed.
func (s *Service) storeAbandoned(ctx context.Context, sub, dec audit.Entry) error {
	var data struct {
		Dataset  string    `json:"dataset"`
		Version  string    `json:"version"`
		Kind     string    `json:"kind"`
		Code     string    `json:"code_sha256"`
		Purpose  string    `json:"purpose"`
		SQL      string    `json:"sql"`
		Analysis *Analysis `json:"analysis"`
	}
	var decided struct {
		Decision policies.Decision `json:"decision"`
	}
	if err := json.Unmarshal(sub.Data, &data); err != nil {
		return fmt.Errorf("job %d: read its submission: %w", sub.Seq, err)
	}
	if err := json.Unmarshal(dec.Data, &decided); err != nil {
		return fmt.Errorf("job %d: read its decision: %w", sub.Seq, err)
	}
	now := s.now().UTC()
	j := Job{
		ID: sub.Seq, Operator: sub.Principal, Dataset: data.Dataset, Version: data.Version, Kind: data.Kind,
		SQL: data.SQL, CodeSHA256: data.Code, Purpose: data.Purpose, CreatedAt: sub.Time, UpdatedAt: now,
		Agreement: decided.Decision.AgreementID, State: StateRunning,
		Record: Record{Analysis: data.Analysis, Decision: &decided.Decision},
	}
	if j.Kind == "" {
		j.Kind = KindSQL
	}
	if j.CreatedAt.IsZero() {
		j.CreatedAt = now
	}
	if err := s.insert(ctx, j); err != nil {
		return err
	}
	j.Error = "the server stopped while the job was being submitted, before it was stored; it never ran: submit it again"
	return s.step(ctx, &j, "job.failed", StateFailed, map[string]any{"error": j.Error})
}

// cleanQuarantine removes what Start's comment calls orphan files.
func (s *Service) cleanQuarantine(ctx context.Context) error {
	ents, err := os.ReadDir(s.dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("clean quarantine: %w", err)
	}
	for _, ent := range ents {
		name := ent.Name()
		path := filepath.Join(s.dir, name)
		if strings.HasPrefix(name, "replay-") {
			os.RemoveAll(path)
			continue
		}
		if name == "modules" {
			if err := s.cleanModules(ctx, path); err != nil {
				return err
			}
			continue
		}
		id, err := strconv.ParseInt(name, 10, 64)
		if err != nil || !ent.IsDir() {
			continue
		}
		var state, owner string
		err = s.db.QueryRowContext(ctx, `SELECT state, lease_owner FROM jobs WHERE id = ?`, id).Scan(&state, &owner)
		if errors.Is(err, sql.ErrNoRows) || state == StateQueued {
			os.RemoveAll(path)
			continue
		}
		if err != nil {
			return fmt.Errorf("clean quarantine: %w", err)
		}
		if state == StateRunning && owner != "" && owner != s.node {
			continue // another node runs it now
		}
		os.RemoveAll(filepath.Join(path, "tmp"))
		os.RemoveAll(filepath.Join(path, "tmp-release"))
		temps, _ := filepath.Glob(filepath.Join(path, ".*.tmp-*"))
		for _, t := range temps {
			os.RemoveAll(t)
		}
	}
	return nil
}

// cleanModules removes kept Wasm modules in dir that no job refers to: a
// submission cut off before its job was stored leaves one.
func (s *Service) cleanModules(ctx context.Context, dir string) error {
	mods, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	for _, m := range mods {
		sha, ok := strings.CutSuffix(m.Name(), ".wasm")
		if !ok {
			continue
		}
		var n int
		if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM jobs WHERE code_sha256 = ?`, sha).Scan(&n); err != nil {
			return fmt.Errorf("clean quarantine: %w", err)
		}
		if n == 0 {
			os.Remove(filepath.Join(dir, m.Name()))
		}
	}
	return nil
}

// sha256Of is the hex SHA-256 of the file at path.
func sha256Of(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
