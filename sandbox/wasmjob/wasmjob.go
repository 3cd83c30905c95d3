// Package wasmjob runs one WebAssembly job on the host side. The allowed
// view of a dataset (the module's declared fields, each in its form) streams
// into the guest as Arrow IPC; the guest's Arrow IPC result is decoded under
// recover() with caps and checked against what the module declared; the host
// then writes it into quarantine, for an aggregate joining each result row
// to its own count of that group's rows, which the disclosure checks use.
package wasmjob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"

	sqlbox "github.com/datasandbox/dsbx/sandbox/sql"
	"github.com/datasandbox/dsbx/sandbox/wasm"
)

// Spec is one Wasm job.
type Spec struct {
	Module []byte
	// Table is the dataset view: Columns are exactly the module's declared
	// fields, in declared order, each in the form the decision allowed.
	Table  sqlbox.Table
	Limits Limits
	// Seed seeds the guest's randomness; 0 draws one (Report.Guest.Seed).
	Seed int64
	// Out is where the result's Parquet file goes (absolute; must not exist).
	Out string
	// CacheDir, if set, keeps compiled modules between worker processes.
	CacheDir string `json:",omitempty"`
}

// Limits bound one Wasm job; all but MemoryPages must be set.
type Limits struct {
	MemoryPages uint32        // guest linear memory, 64 KiB pages (0: wasm.DefaultMemoryPages)
	Timeout     time.Duration // the guest's wall time
	Memory      string        // DuckDB memory_limit of the host's view and result databases
	Threads     int           // DuckDB threads for counting groups
	MaxRows     int64         // result rows
	MaxBytes    int64         // result bytes: the guest's output stream, its Arrow buffers and the Parquet file
	TempDir     string        // the job's own empty temp directory
}

// Report describes a finished Wasm job.
type Report struct {
	sqlbox.Report
	// Guest is the wasm runtime's report: module hash, seed, log, progress,
	// memory, denied calls. It is set whenever the module passed its check,
	// also when the job failed.
	Guest        *wasm.Report
	Output       wasm.Output // what the module declared
	InputRows    int64       // rows streamed to the guest
	InputBatches int
}

// Result problems, reported as *OutputError.
const (
	CodeUndecodable = "output_undecodable" // not a valid Arrow IPC stream, or over the caps
	CodeBadColumn   = "output_bad_column"  // a reserved, duplicate or empty name, or a type results cannot have
	CodeBadGroup    = "output_bad_group"   // a declared group_by column missing or of another type than the view's
)

// OutputError reports a guest result the host refuses; nothing is written.
type OutputError struct {
	Code string
	Msg  string
}

func (e *OutputError) Error() string { return "wasm job: result refused: " + e.Msg }

// guestView is the name under which the result database sees the guest's output.
const guestView = "__dsbx_guest"

// outputSlack is what the guest's IPC stream may take beyond MaxBytes:
// message headers and padding.
const outputSlack = 1 << 20

// Run runs spec in this process; see RunIsolated for a worker process of
// its own. On any error no file is left at spec.Out; the Report is returned
// whenever the module passed its check, for the audit log.
func Run(ctx context.Context, spec Spec) (*Report, error) {
	start := time.Now()
	if err := spec.validate(); err != nil {
		return nil, err
	}
	m, err := wasm.Inspect(spec.Module) // wasm.Run below completes the check
	if err != nil {
		return nil, err
	}
	var names []string
	for _, c := range spec.Table.Columns {
		names = append(names, c.Name)
	}
	if !slices.Equal(names, m.Fields) {
		return nil, fmt.Errorf("wasm job: the view's columns %q are not the module's declared fields %q", names, m.Fields)
	}
	rep := &Report{Output: m.Output}

	// Stream the view into the guest through a pipe; the view is computed as
	// the guest reads, one batch resident at a time.
	pr, pw := io.Pipe()
	var (
		wg         sync.WaitGroup
		viewErr    error
		viewSchema *arrow.Schema
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		viewErr = sqlbox.View(ctx, spec.Table, spec.Limits.Memory, func(rr array.RecordReader) error {
			viewSchema = rr.Schema()
			w := ipc.NewWriter(pw, ipc.WithSchema(rr.Schema()))
			for rr.Next() {
				b := rr.RecordBatch()
				if err := w.Write(b); err != nil {
					return err
				}
				rep.InputRows += b.NumRows()
				rep.InputBatches++
			}
			return w.Close()
		})
		pw.CloseWithError(viewErr)
	}()
	var out capBuffer
	out.max = spec.Limits.MaxBytes + outputSlack
	guest, runErr := wasm.Run(ctx, wasm.Spec{
		Module: spec.Module, Input: pr, Output: &out, Seed: spec.Seed,
		Limits: wasm.Limits{MemoryPages: spec.Limits.MemoryPages, Timeout: spec.Limits.Timeout, MaxOutput: out.max},
	})
	pr.CloseWithError(errGuestDone) // a guest that stopped reading early unblocks the view
	wg.Wait()
	rep.Guest = guest
	if viewErr != nil && !errors.Is(viewErr, errGuestDone) {
		// The host's side failed first: the guest saw a truncated input, and
		// even a guest that exited 0 on it has no result.
		return rep, fmt.Errorf("wasm job: streaming the view failed: %w", viewErr)
	}
	if runErr != nil {
		return rep, runErr
	}
	if viewSchema == nil {
		return rep, errors.New("wasm job: the view produced no schema")
	}

	recs, schema, err := decode(out.buf, spec.Limits)
	if err != nil {
		return rep, err
	}
	defer func() {
		for _, r := range recs {
			r.Release()
		}
	}()
	if err := checkColumns(schema); err != nil {
		return rep, err
	}
	query, counted, err := derivation(schema, viewSchema, spec.Table, m.Output)
	if err != nil {
		return rep, err
	}
	in, err := array.NewRecordReader(schema, recs)
	if err != nil {
		return rep, &OutputError{Code: CodeUndecodable, Msg: err.Error()}
	}
	defer in.Release()
	res, err := sqlbox.Derive(ctx, sqlbox.Spec{
		Query:  query,
		Tables: []sqlbox.Table{counted},
		Limits: sqlbox.Limits{
			Memory: spec.Limits.Memory, Threads: 1, Timeout: spec.Limits.Timeout,
			MaxRows: spec.Limits.MaxRows, MaxBytes: spec.Limits.MaxBytes, TempDir: spec.Limits.TempDir,
		},
		Out: spec.Out,
	}, map[string]array.RecordReader{guestView: in})
	if err != nil {
		return rep, err
	}
	rep.Report = *res
	rep.Wall = time.Since(start)
	return rep, nil
}

// errGuestDone ends the view's stream once the guest has exited.
var errGuestDone = errors.New("the guest exited")

func (s Spec) validate() error {
	l := s.Limits
	switch {
	case len(s.Module) == 0:
		return errors.New("wasm job: no module")
	case l.Timeout <= 0 || l.Memory == "" || l.Threads <= 0 || l.MaxRows <= 0 || l.MaxBytes <= 0 || l.TempDir == "":
		return fmt.Errorf("wasm job: incomplete limits %+v", l)
	case s.Out == "":
		return errors.New("wasm job: no output path")
	}
	return nil
}

// derivation returns the host's query that turns the guest's output into
// the result, and the table it reads: for an aggregate, the group_by columns
// of the view, whose rows it counts per result row; otherwise no column.
func derivation(out, view *arrow.Schema, t sqlbox.Table, decl wasm.Output) (string, sqlbox.Table, error) {
	counted := sqlbox.Table{Name: t.Name, Parquet: t.Parquet, HashKey: t.HashKey}
	if decl.Kind != wasm.OutputAggregate {
		return "SELECT * FROM " + guestView, counted, nil
	}
	var on []string
	for _, g := range decl.GroupBy {
		oi := out.FieldIndices(g)
		vi := view.FieldIndices(g)
		if len(oi) != 1 {
			return "", counted, &OutputError{Code: CodeBadGroup, Msg: fmt.Sprintf("the module groups by %s, but its result has no column %s", g, g)}
		}
		if len(vi) != 1 {
			return "", counted, fmt.Errorf("wasm job: the view has no column %s", g)
		}
		if ot, vt := out.Field(oi[0]).Type, view.Field(vi[0]).Type; !arrow.TypeEqual(ot, vt) {
			return "", counted, &OutputError{Code: CodeBadGroup, Msg: fmt.Sprintf("group_by column %s has type %s in the result, but the guest received it as %s; keys must be returned as read", g, ot, vt)}
		}
		for _, c := range t.Columns {
			if c.Name == g {
				counted.Columns = append(counted.Columns, c)
			}
		}
		on = append(on, "g."+ident(g)+" IS NOT DISTINCT FROM c."+ident(g))
	}
	cells := sqlbox.CellCountColumn
	ord := "__dsbx_ord"
	numbered := "(SELECT *, row_number() OVER () AS " + ord + " FROM " + guestView + ") g"
	if len(decl.GroupBy) == 0 {
		return "SELECT g.* EXCLUDE (" + ord + "), (SELECT count(*) FROM " + ident(t.Name) + ") AS " + cells +
			" FROM " + numbered + " ORDER BY g." + ord, counted, nil
	}
	keys := make([]string, len(decl.GroupBy))
	for i, g := range decl.GroupBy {
		keys[i] = ident(g)
	}
	return "SELECT g.* EXCLUDE (" + ord + "), coalesce(c.__dsbx_n, 0) AS " + cells +
		" FROM " + numbered +
		" LEFT JOIN (SELECT " + strings.Join(keys, ", ") + ", count(*) AS __dsbx_n FROM " + ident(t.Name) + " GROUP BY ALL) c" +
		" ON " + strings.Join(on, " AND ") + " ORDER BY g." + ord, counted, nil
}

func ident(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// capBuffer keeps the guest's output up to max bytes; wasm.Run stops the
// guest before it would write more.
type capBuffer struct {
	buf []byte
	max int64
}

func (c *capBuffer) Write(p []byte) (int, error) {
	if int64(len(c.buf)+len(p)) > c.max {
		return 0, errors.New("output over its cap")
	}
	c.buf = append(c.buf, p...)
	return len(p), nil
}
