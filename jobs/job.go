// Package jobs drives a job through its lifecycle: submit → admit → run →
// check → release, persisted in the state database and recorded in the audit
// log before each step takes effect.
package jobs

import (
	"time"

	sqlbox "github.com/datasandbox/dsbx/sandbox/sql"
	"github.com/datasandbox/dsbx/sandbox/wasm"

	"github.com/datasandbox/dsbx/disclosure"
	"github.com/datasandbox/dsbx/policies"
)

// Job states.
const (
	StateDenied   = "denied"   // admission policy refused it
	StateQueued   = "queued"   // admitted, waiting for a worker
	StateRunning  = "running"  // executing in the sandbox
	StateHeld     = "held"     // result in quarantine, waiting for output checkers (or for a withdrawal to be lifted)
	StateRejected = "rejected" // result failed checks no review can waive, or an output checker rejected it; never released
	StateReleased = "released" // result passed checks and may be fetched
	StateFailed   = "failed"   // execution failed; nothing was produced
	StateStopped  = "stopped"  // queued, then stopped before running: its dataset, field, version or agreement was withdrawn
)

// Job kinds.
const (
	KindSQL  = "sql"  // one SELECT, analysed before it runs
	KindWasm = "wasm" // a WebAssembly module under guest ABI v1 (sandbox/wasm/ABI.md)
)

// Final reports whether a job in state needs no more work from the
// platform: it is over, or held until a person acts.
func Final(state string) bool {
	switch state {
	case StateDenied, StateHeld, StateRejected, StateReleased, StateFailed, StateStopped:
		return true
	}
	return false
}

// Job is one submitted job and everything recorded about it.
type Job struct {
	// lease is the node whose lease this copy of a running job was loaded
	// under (see lease.go): its saves then hold only while the node still
	// owns the job. "" for a job no node runs.
	lease string

	// ID is the sequence number of the audit entry that recorded the
	// submission, so it is unique, never reused and points into the log.
	ID         int64  `json:"id"`
	Operator   string `json:"operator"`
	Dataset    string `json:"dataset"`
	Version    string `json:"version"`
	Kind       string `json:"kind"`
	SQL        string `json:"sql"`
	CodeSHA256 string `json:"code_sha256"`
	Purpose    string `json:"purpose"`
	// Agreement is the agreement the job was admitted under (0 if denied).
	Agreement int64     `json:"agreement_id"`
	State     string    `json:"state"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	Record
}

// Record is what the lifecycle learns about a job, stage by stage.
type Record struct {
	Analysis *Analysis          `json:"analysis,omitempty"`
	Decision *policies.Decision `json:"decision,omitempty"`
	Run      *RunReport         `json:"run,omitempty"`
	// Checks are the disclosure checks' findings on the result, of the
	// kind ResultKind; Remedies every value they changed before release.
	Checks     []disclosure.Finding      `json:"checks,omitempty"`
	ResultKind string                    `json:"result_kind,omitempty"`
	Remedies   []disclosure.Change       `json:"remedies,omitempty"`
	Release    *policies.ReleaseDecision `json:"release,omitempty"`
	Result     *Result                   `json:"result,omitempty"`
	Review     *Review                   `json:"review,omitempty"`
	Error      string                    `json:"error,omitempty"`
	// Downloads counts completed deliveries of a released result.
	Downloads int `json:"downloads"`
}

// Analysis is what the SQL analysis found, or what a Wasm module declared,
// as the job record keeps it.
type Analysis struct {
	Tables    []string `json:"tables"`
	Fields    []string `json:"fields"`
	Functions []string `json:"functions"`
	Aggregate bool     `json:"aggregate"`
	// Executed is the statement as DuckDB re-serialized it; it is what runs.
	Executed string `json:"executed"`
	// CellSQL is Executed with a per-cell record count added, for aggregates,
	// and the contributions to each sum or mean (Magnitudes).
	CellSQL    string             `json:"cell_sql,omitempty"`
	Magnitudes []sqlbox.Magnitude `json:"magnitudes,omitempty"`
	// MembersSQL is CellSQL with the snapshot rows behind each cell, when
	// the query reads the table directly (for the differencing check).
	MembersSQL string   `json:"members_sql,omitempty"`
	Outputs    []Output `json:"outputs"`
	// Module describes a Wasm job's module.
	Module *Module `json:"module,omitempty"`
}

// Module is what a Wasm job's module declared.
type Module struct {
	SHA256  string      `json:"sha256"`
	Bytes   int         `json:"bytes"`
	Output  wasm.Output `json:"output"`
	Imports int         `json:"imports"`
}

// Output is one output column and the fields it derives from.
type Output struct {
	Name       string   `json:"name"`
	Fields     []string `json:"fields"`
	Aggregated bool     `json:"aggregated"`
	// Aggregates names the aggregate functions in the column's expression.
	Aggregates []string `json:"aggregates,omitempty"`
	// Bare is true when the column is exactly one aggregate call over one
	// field or * of a plain query (sqlbox.Analysis.Plain).
	Bare bool `json:"bare,omitempty"`
}

// RunReport is the sandbox's account of an execution.
type RunReport struct {
	Rows   int64 `json:"rows"`
	Bytes  int64 `json:"bytes"`
	WallMS int64 `json:"wall_ms"` // loading the view, running, writing the result
	// What the query itself used, as DuckDB's profiler measured it.
	RowsScanned int64 `json:"rows_scanned"`
	PeakMemory  int64 `json:"peak_memory_bytes"`
	CPUMS       int64 `json:"cpu_ms"`
	QueryMS     int64 `json:"query_ms"`
	// What the job's worker process used, as the operating system counted it.
	WorkerPeakRSS int64 `json:"worker_peak_rss_bytes"`
	WorkerCPUMS   int64 `json:"worker_cpu_ms"`
	// Guest is a Wasm job's account of its guest.
	Guest *GuestRun `json:"guest,omitempty"`
}

// GuestRun is what the host saw of a Wasm guest. The guest's log is not
// here: code that read the data wrote it, so it stays in quarantine with
// the result (guest.log), for reviewers, never sent to the submitter.
type GuestRun struct {
	Seed         int64         `json:"seed"` // seeds random_get; a re-run with it reproduces the result
	InputRows    int64         `json:"input_rows"`
	InputBatches int           `json:"input_batches"`
	OutputBytes  int64         `json:"output_bytes"`
	PeakPages    uint32        `json:"peak_memory_pages"`
	GuestMS      int64         `json:"guest_ms"`
	CompileMS    int64         `json:"compile_ms"`
	LogBytes     int64         `json:"log_bytes"`
	DeniedCalls  int           `json:"denied_calls"`
	Progress     wasm.Progress `json:"progress"`
}

// Result is the quarantined output.
type Result struct {
	SHA256  string   `json:"sha256"`
	Rows    int64    `json:"rows"`
	Bytes   int64    `json:"bytes"`
	Columns []string `json:"columns"`
	// Released is the file released, or to be released once approved:
	// the result itself, or it after remedies and noise.
	Released *ReleasedFile `json:"released,omitempty"`
	// ReleaseSeq is the audit entry that released it; 0 while held.
	ReleaseSeq int64 `json:"release_seq,omitempty"`
}

// Request is a job submission.
type Request struct {
	// Dataset is NAME or NAME@VERSION-PREFIX.
	Dataset string `json:"dataset"`
	// SQL or Wasm, exactly one: the query, or the module's bytes (base64 in JSON).
	SQL     string `json:"sql,omitempty"`
	Wasm    []byte `json:"wasm,omitempty"`
	Purpose string `json:"purpose"`
	// Agreement, if set, is the agreement to run under; otherwise the
	// policy picks the oldest usable one for the purpose.
	Agreement int64 `json:"agreement,omitempty"`
}
