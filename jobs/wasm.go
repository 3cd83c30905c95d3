package jobs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/datasandbox/dsbx/datasets"
	"github.com/datasandbox/dsbx/operators"
	sqlbox "github.com/datasandbox/dsbx/sandbox/sql"
	"github.com/datasandbox/dsbx/sandbox/wasm"
	"github.com/datasandbox/dsbx/sandbox/wasmjob"
)

// modulePath is where a submitted module is kept, by content: the exact
// bytes that ran, for replay and for regulators.
func (s *Service) modulePath(sha string) string {
	return filepath.Join(s.dir, "modules", sha+".wasm")
}

// wasmCache is where modules are compiled at submission, for the workers
// that run them.
func (s *Service) wasmCache() string { return filepath.Join(s.dir, "wasm-cache") }

// keepModule stores module under its hash, durably, before the submission
// is recorded.
func (s *Service) keepModule(sha string, module []byte) error {
	path := s.modulePath(sha)
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("keep module: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".module-*")
	if err != nil {
		return fmt.Errorf("keep module: %w", err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(module); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("keep module: %w", err)
	}
	return nil
}

// runWasm executes Wasm job j in a worker process over the declared fields
// in the forms its decision allowed, writing the result into quarantine and
// the guest's log beside it.
func (s *Service) runWasm(ctx context.Context, j *Job, entry datasets.Entry, version datasets.Version, jobDir, out string, seed int64, limits sqlbox.Limits) (*sqlbox.Report, error) {
	module, err := os.ReadFile(s.modulePath(j.CodeSHA256))
	if err != nil {
		return nil, fmt.Errorf("job %d: module: %w", j.ID, err)
	}
	table := sqlbox.Table{Name: entry.Name, Parquet: s.catalog.SnapshotPath(entry.Name, version), HashKey: s.hashKey(j.Agreement)}
	for _, f := range j.Analysis.Fields { // declared order: the guest's schema
		table.Columns = append(table.Columns, sqlbox.Column{Name: f, Form: j.Decision.Fields[f]})
	}
	mem, err := sqlbox.MemoryBytes(limits.Memory)
	if err != nil {
		return nil, err
	}
	pages := uint32(min(mem/65536, wasm.MaxMemoryPages)) // the agreement's memory, in 64 KiB pages
	rep, err := wasmjob.RunIsolated(ctx, wasmjob.Spec{
		Module: module, Table: table, Out: out, CacheDir: s.wasmCache(), Seed: seed,
		Limits: wasmjob.Limits{
			MemoryPages: pages, Timeout: limits.Timeout, Memory: limits.Memory, Threads: limits.Threads,
			MaxRows: limits.MaxRows, MaxBytes: limits.MaxBytes, TempDir: limits.TempDir,
		},
	})
	if rep != nil && rep.Guest != nil {
		g := rep.Guest
		j.Run = &RunReport{Guest: &GuestRun{
			Seed: g.Seed, InputRows: rep.InputRows, InputBatches: rep.InputBatches, OutputBytes: g.OutputBytes,
			PeakPages: g.PeakPages, GuestMS: g.Wall.Milliseconds(), CompileMS: g.Compile.Milliseconds(),
			LogBytes: int64(len(g.Log)) + g.LogDropped, DeniedCalls: len(g.Denied), Progress: g.Progress,
		}}
		s.keepGuestLog(jobDir, g)
	}
	if err != nil {
		return nil, publicError(err)
	}
	return &rep.Report, nil
}

// keepGuestLog writes the guest's log and denied calls into quarantine. It
// is data the guest chose to write after reading the view, so it goes where
// results go, not to the submitter.
func (s *Service) keepGuestLog(jobDir string, g *wasm.Report) {
	var b strings.Builder
	b.WriteString(g.Log)
	if g.LogDropped > 0 {
		fmt.Fprintf(&b, "\n[%d more bytes dropped]\n", g.LogDropped)
	}
	for _, d := range g.Denied {
		b.WriteString("[denied] " + d + "\n")
	}
	_ = os.WriteFile(filepath.Join(jobDir, "guest.log"), []byte(b.String()), 0o600)
}

// publicError is what the submitter learns of a failed Wasm job. The
// platform's own reasons (limits, a refused result, a trap wazero names)
// are kept; what the guest wrote (its panic message, log lines) is not,
// since it may carry data: it stays in quarantine as guest.log.
func publicError(err error) error {
	var ge *wasm.GuestError
	if errors.As(err, &ge) {
		if ge.Trap != "" {
			return fmt.Errorf("the guest trapped (%s); its log is kept in quarantine for reviewers, so debug on dummy data with dsbx run --local", ge.Trap)
		}
		return fmt.Errorf("the guest exited with code %d; its log is kept in quarantine for reviewers, so debug on dummy data with dsbx run --local", ge.ExitCode)
	}
	return err
}

// wasmColumns says, for the disclosure checks, what each column of a Wasm
// result derives from: a group key its field, every other column every
// declared field, aggregated only in an aggregate.
func wasmColumns(a *Analysis, columns []string) []Output {
	out := make([]Output, 0, len(columns))
	keys := map[string]bool{}
	agg := a.Module != nil && a.Module.Output.Kind == wasm.OutputAggregate
	if agg {
		for _, g := range a.Module.Output.GroupBy {
			keys[g] = true
		}
	}
	for _, c := range columns {
		if keys[c] {
			out = append(out, Output{Name: c, Fields: []string{c}})
			continue
		}
		out = append(out, Output{Name: c, Fields: a.Fields, Aggregated: agg})
	}
	return out
}

// GuestLog returns what Wasm job id's guest wrote to its log, for output
// checkers and regulators; the submitter never sees it (it was written
// after reading the data). Each reading is recorded.
func (s *Service) GuestLog(ctx context.Context, p operators.Principal, id int64) ([]byte, error) {
	if !p.Has(operators.RoleReviewer) && !p.Has(operators.RoleRegulator) && !p.Has(operators.RoleAdmin) {
		return nil, &operators.ForbiddenError{Msg: "only output checkers, regulators and the admin read a guest's log"}
	}
	j, err := s.load(ctx, id)
	if err != nil {
		return nil, err
	}
	if j.Kind != KindWasm {
		return nil, &operators.ConflictError{Msg: fmt.Sprintf("job %d is a %s job; only WebAssembly jobs have a guest log", id, j.Kind)}
	}
	if j.Operator == p.Name {
		return nil, &operators.ForbiddenError{Msg: fmt.Sprintf("job %d is %s's own", id, p.Name)}
	}
	b, err := os.ReadFile(filepath.Join(s.dir, fmt.Sprint(id), "guest.log"))
	if os.IsNotExist(err) {
		b, err = nil, nil // the guest never ran, or wrote nothing
	}
	if err != nil {
		return nil, fmt.Errorf("job %d: guest log: %w", id, err)
	}
	if _, err := s.appendAs(ctx, &j, p.Name, "review.guest_log_read", map[string]any{"bytes": len(b)}); err != nil {
		return nil, err
	}
	return b, nil
}
