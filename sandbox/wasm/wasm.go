// Package wasm runs WebAssembly jobs in wazero under the guest ABI described
// in ABI.md (version 1): a WASI preview1 command that reads the allowed view
// as an Arrow IPC stream on stdin and writes its result as an Arrow IPC stream
// on stdout. The guest has no filesystem, no network, an empty environment,
// no arguments beyond its name, a fixed wall clock, a monotonic clock and a
// seeded random source whose seed is returned for the audit log.
//
// This package moves bytes; it does not decode Arrow. Callers that decode the
// guest's output must do so under recover() with size caps (see DESIGN.md).
package wasm

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"
)

// ABIVersion is the guest ABI version implemented by this package.
const ABIVersion = 1

// FieldsSection is the name of the custom section in which a module declares
// the dataset fields it reads, as a JSON array of strings.
const FieldsSection = "dsbx.fields"

// OutputSection is the name of the optional custom section in which a
// module declares the kind of result it writes, as a JSON object (Output).
const OutputSection = "dsbx.output"

// WASIModule is the WASI preview 1 host module a guest may import from.
const WASIModule = wasi_snapshot_preview1.ModuleName

// HostModule is the platform's own host module: log and progress.
const HostModule = "dsbx"

// Output kinds a module may declare.
const (
	// OutputRows is a row-level result; the default when a module declares none.
	OutputRows = "rows"
	// OutputAggregate is one row per group: the GroupBy columns carry the
	// group's key values as the guest read them, every other column a value
	// computed over the group's rows. The host counts each group's rows itself.
	OutputAggregate = "aggregate"
)

// Output is what a module declares about its result in the dsbx.output
// section.
type Output struct {
	Kind    string   `json:"kind"`
	GroupBy []string `json:"group_by,omitempty"`
}

// Limits applied by Check and Run.
const (
	MaxModuleSize     = 64 << 20 // bytes of a .wasm module
	MaxFieldsSection  = 1 << 20  // bytes of the dsbx.fields payload
	MaxFields         = 4096
	MaxFieldNameBytes = 1024
	MaxMemoryPages    = 65536 // 4 GiB, the wasm32 maximum

	DefaultMemoryPages = 4096 // 256 MiB
	DefaultTimeout     = time.Minute
	DefaultMaxOutput   = 256 << 20
	DefaultMaxLog      = 64 << 10
)

// FixedWalltime is what the guest's realtime clock always reads
// (2000-01-01T00:00:00Z): wall-clock time is not observable by a job.
var FixedWalltime = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// allowedImports is the import allow-list of ABI v1: functions of
// wasi_snapshot_preview1 only. Functions marked denied are importable
// (the Go wasip1 runtime links them) but always fail with ENOTCAPABLE/EBADF.
var allowedImports = map[string]bool{
	"args_get":            true,
	"args_sizes_get":      true,
	"environ_get":         true,
	"environ_sizes_get":   true,
	"clock_res_get":       true,
	"clock_time_get":      true,
	"fd_read":             true,
	"fd_write":            true,
	"fd_close":            true,
	"fd_fdstat_get":       true,
	"fd_fdstat_set_flags": true,
	"fd_filestat_get":     true,
	"fd_prestat_get":      true, // denied: no preopens
	"fd_prestat_dir_name": true, // denied: no preopens
	"path_open":           true, // denied: no filesystem
	"path_filestat_get":   true, // denied: no filesystem
	// Linked by Go's os package (ReadDir, Mkdir, Remove, ...); always denied.
	"fd_readdir":              true,
	"path_create_directory":   true,
	"path_filestat_set_times": true,
	"path_link":               true,
	"path_readlink":           true,
	"path_remove_directory":   true,
	"path_rename":             true,
	"path_symlink":            true,
	"path_unlink_file":        true,
	// Linked by Go's time package (zoneinfo) and wasi-libc's stdio; always
	// ESPIPE: the only descriptors are the three streams.
	"fd_seek":     true,
	"poll_oneoff": true,
	"proc_exit":   true,
	"random_get":  true,
	"sched_yield": true,
}

// hostImports are the functions of the dsbx host module (ABI v1).
var hostImports = map[string]bool{"log": true, "progress": true}

func allowed(module, name string) bool {
	switch module {
	case WASIModule:
		return allowedImports[name]
	case HostModule:
		return hostImports[name]
	}
	return false
}

// AllowedImports returns the sorted "module.name" of every function a
// module may import.
func AllowedImports() []string {
	out := make([]string, 0, len(allowedImports)+len(hostImports))
	for n := range allowedImports {
		out = append(out, WASIModule+"."+n)
	}
	for n := range hostImports {
		out = append(out, HostModule+"."+n)
	}
	sort.Strings(out)
	return out
}

// Error codes for invalid modules.
const (
	CodeTooLarge        = "too_large"
	CodeMalformed       = "malformed"
	CodeForbiddenImport = "forbidden_import"
	CodeNoStart         = "no_start"
	CodeNoFields        = "fields_missing"
	CodeBadFields       = "fields_malformed"
	CodeBadOutput       = "output_malformed"
	CodeBadSpec         = "bad_spec"
)

// Error reports an invalid module (or job spec); Code is one of the Code*
// constants.
type Error struct {
	Code string
	Msg  string
}

func (e *Error) Error() string { return "wasm: " + e.Code + ": " + e.Msg }

func errorf(code, format string, a ...any) *Error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, a...)}
}

// ErrLimit is matched (errors.Is) by every *LimitError.
var ErrLimit = errors.New("wasm: limit exceeded")

// LimitError reports a job stopped by a resource limit.
type LimitError struct {
	Kind  string // "time", "memory" or "output"
	Limit int64  // nanoseconds, pages or bytes
	Msg   string
}

func (e *LimitError) Error() string        { return "wasm: " + e.Kind + " limit exceeded: " + e.Msg }
func (e *LimitError) Is(target error) bool { return target == ErrLimit }

// ErrGuestFailed is matched (errors.Is) by every *GuestError.
var ErrGuestFailed = errors.New("wasm: guest failed")

// GuestError reports a guest that trapped, panicked or exited non-zero. Its
// output must not be used.
type GuestError struct {
	ExitCode uint32 // meaningful when Trap == ""
	Trap     string // the trap message, when the guest trapped
	LogTail  string // last line(s) of the guest's log
}

func (e *GuestError) Error() string {
	var b strings.Builder
	if e.Trap != "" {
		b.WriteString("wasm: guest trapped: " + e.Trap)
	} else {
		fmt.Fprintf(&b, "wasm: guest exited with code %d", e.ExitCode)
	}
	if e.LogTail != "" {
		b.WriteString(" (log: " + e.LogTail + ")")
	}
	return b.String()
}
func (e *GuestError) Is(target error) bool { return target == ErrGuestFailed }

// Import is one function a module imports.
type Import struct{ Module, Name string }

// Module is a validated module.
type Module struct {
	SHA256  string   // hex digest of the module bytes
	Size    int      // bytes
	Fields  []string // from the dsbx.fields custom section, in declared order
	Output  Output   // from the dsbx.output custom section; Kind OutputRows if absent
	Imports []Import
	bytes   []byte
}

// The process-wide compilation state: how guests are stopped at their
// deadline (see ExitAtDeadline), and the compilation cache every runtime
// shares, one per way of stopping (the compiled code differs: wazero's
// file cache does not tell them apart).
var (
	cacheMu  sync.Mutex
	cache    wazero.CompilationCache
	exitMode *Deadline // set by ExitAtDeadline
)

func sharedCache() wazero.CompilationCache {
	cacheMu.Lock()
	defer cacheMu.Unlock()
	if cache == nil {
		cache = wazero.NewCompilationCache()
	}
	return cache
}

// UseCacheDir makes the process-wide compilation cache keep compiled modules
// in dir as well as in memory, so short-lived worker processes share them.
// Call it before the first Check or Run (and after ExitAtDeadline).
func UseCacheDir(dir string) error {
	cacheMu.Lock()
	defer cacheMu.Unlock()
	if exitMode != nil {
		dir = filepath.Join(dir, "exit-at-deadline")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("wasm: compilation cache: %w", err)
	}
	c, err := wazero.NewCompilationCacheWithDir(dir)
	if err != nil {
		return fmt.Errorf("wasm: compilation cache %s: %w", dir, err)
	}
	cache = c
	return nil
}

// Deadline is how a process that runs guests without deadline checks in
// their compiled code ends them (see ExitAtDeadline).
type Deadline struct {
	// Arm is called as a guest starts, with its time limit and the error a
	// timeout reports: the process must end at that time with that error,
	// unless the returned disarm is called first. A guest in a tight loop
	// cannot be preempted, and a garbage collection waiting to stop the
	// world stops every goroutine: Arm must not rely on a Go timer.
	Arm func(timeout time.Duration, err error) (disarm func())
	// Stop ends the process with a limit's error (the output cap). It is
	// called on the guest's own goroutine, inside a host call.
	Stop func(error)
}

// ExitAtDeadline makes this process compile and run guests without
// wazero's deadline checks in the compiled code (WithCloseOnContextDone),
// which cost about ten times the guest's time on a tight loop: d ends the
// process at the deadline (or at the output cap) instead. It is for a
// process that runs one guest and nothing else, as sandbox/wasmjob's
// workers do: the process ends wherever the guest is, even inside a host
// call, which the checks cannot stop. Call it before the first Check, Run
// or UseCacheDir.
func ExitAtDeadline(d Deadline) {
	cacheMu.Lock()
	defer cacheMu.Unlock()
	exitMode, cache = &d, nil
}

// deadline is the Deadline ExitAtDeadline set, or nil.
func deadline() *Deadline {
	cacheMu.Lock()
	defer cacheMu.Unlock()
	return exitMode
}

func runtimeConfig(pages uint32) wazero.RuntimeConfig {
	return wazero.NewRuntimeConfig(). // compiler engine where supported
						WithCompilationCache(sharedCache()).
						WithCloseOnContextDone(deadline() == nil).
						WithMemoryLimitPages(pages)
}

// Check validates a module: size, wasm structure (compiled with wazero),
// imports only from the allow-list, no imported memories/tables/globals, an
// exported _start, and a well-formed dsbx.fields custom section.
func Check(ctx context.Context, wasmBytes []byte) (*Module, error) {
	m, err := Inspect(wasmBytes)
	if err != nil {
		return nil, err
	}
	r := wazero.NewRuntimeWithConfig(ctx, runtimeConfig(MaxMemoryPages))
	defer r.Close(ctx)
	if _, err := m.compile(ctx, r); err != nil {
		return nil, err
	}
	return m, nil
}

// Inspect is Check without compiling: size, imports and the dsbx custom
// sections, read from the module's bytes. Run compiles (and so completes
// the check); a caller about to Run needs no Check first.
func Inspect(wasmBytes []byte) (*Module, error) {
	if len(wasmBytes) > MaxModuleSize {
		return nil, errorf(CodeTooLarge, "module is %d bytes, limit is %d", len(wasmBytes), MaxModuleSize)
	}
	secs, imps, err := scan(wasmBytes)
	if err != nil {
		return nil, errorf(CodeMalformed, "%v", err)
	}
	for _, im := range imps {
		if im.kind != 0 {
			return nil, errorf(CodeForbiddenImport, "import %q.%q is a %s; only functions from %q and %q may be imported",
				im.module, im.name, kindName(im.kind), WASIModule, HostModule)
		}
		if !allowed(im.module, im.name) {
			return nil, errorf(CodeForbiddenImport, "import %q.%q is not in the ABI v%d allow-list; allowed: %s",
				im.module, im.name, ABIVersion, strings.Join(AllowedImports(), ", "))
		}
	}
	fields, err := parseFields(secs)
	if err != nil {
		return nil, err
	}
	output, err := parseOutput(secs, fields)
	if err != nil {
		return nil, err
	}
	m := &Module{Size: len(wasmBytes), Fields: fields, Output: output, bytes: wasmBytes}
	sum := sha256.Sum256(wasmBytes)
	m.SHA256 = hex.EncodeToString(sum[:])
	return m, nil
}

// compile compiles m in r (a hit in the shared compilation cache once m
// was compiled before) and checks what wazero's decoding finds against
// the ABI: imports (a cross-check of Inspect's own scan), no imported
// memory, and _start. It sets m.Imports.
func (m *Module) compile(ctx context.Context, r wazero.Runtime) (wazero.CompiledModule, error) {
	cm, err := r.CompileModule(ctx, m.bytes)
	if err != nil {
		return nil, errorf(CodeMalformed, "%v", err)
	}
	// cm is not closed: closing it would evict it from the shared compilation cache.
	m.Imports = nil
	for _, f := range cm.ImportedFunctions() {
		mod, name, _ := f.Import()
		if !allowed(mod, name) {
			return nil, errorf(CodeForbiddenImport, "import %q.%q is not in the allow-list", mod, name)
		}
		m.Imports = append(m.Imports, Import{mod, name})
	}
	if len(cm.ImportedMemories()) != 0 {
		return nil, errorf(CodeForbiddenImport, "imported memories are not allowed")
	}
	start, ok := cm.ExportedFunctions()["_start"]
	if !ok {
		return nil, errorf(CodeNoStart, "module does not export _start (ABI v%d guests are WASI preview1 commands)", ABIVersion)
	}
	if len(start.ParamTypes()) != 0 || len(start.ResultTypes()) != 0 {
		return nil, errorf(CodeNoStart, "_start must take no parameters and return nothing")
	}
	return cm, nil
}

func parseFields(secs map[string][][]byte) ([]string, error) {
	payloads := secs[FieldsSection]
	if len(payloads) == 0 {
		return nil, errorf(CodeNoFields, "module has no %q custom section declaring the fields it reads", FieldsSection)
	}
	if len(payloads) > 1 {
		return nil, errorf(CodeBadFields, "module has %d %q sections; exactly one is allowed", len(payloads), FieldsSection)
	}
	p := payloads[0]
	if len(p) > MaxFieldsSection {
		return nil, errorf(CodeBadFields, "%q section is %d bytes, limit is %d", FieldsSection, len(p), MaxFieldsSection)
	}
	var fields []string
	dec := json.NewDecoder(bytes.NewReader(p))
	if err := dec.Decode(&fields); err != nil {
		return nil, errorf(CodeBadFields, "%q must hold a JSON array of strings: %v", FieldsSection, err)
	}
	if dec.More() {
		return nil, errorf(CodeBadFields, "%q has trailing data after the JSON array", FieldsSection)
	}
	if fields == nil {
		return nil, errorf(CodeBadFields, "%q must hold a JSON array, not null", FieldsSection)
	}
	if len(fields) > MaxFields {
		return nil, errorf(CodeBadFields, "%d fields declared, limit is %d", len(fields), MaxFields)
	}
	seen := map[string]bool{}
	for _, f := range fields {
		if f == "" || len(f) > MaxFieldNameBytes {
			return nil, errorf(CodeBadFields, "field name %q is empty or longer than %d bytes", f, MaxFieldNameBytes)
		}
		if seen[f] {
			return nil, errorf(CodeBadFields, "field %q declared twice", f)
		}
		seen[f] = true
	}
	return fields, nil
}

// MaxOutputSection bounds the dsbx.output payload.
const MaxOutputSection = 64 << 10

// parseOutput reads the optional dsbx.output section: a JSON object with a
// kind and, for aggregates, the declared fields that key the groups.
func parseOutput(secs map[string][][]byte, fields []string) (Output, error) {
	payloads := secs[OutputSection]
	switch {
	case len(payloads) == 0:
		return Output{Kind: OutputRows}, nil
	case len(payloads) > 1:
		return Output{}, errorf(CodeBadOutput, "module has %d %q sections; at most one is allowed", len(payloads), OutputSection)
	case len(payloads[0]) > MaxOutputSection:
		return Output{}, errorf(CodeBadOutput, "%q section is %d bytes, limit is %d", OutputSection, len(payloads[0]), MaxOutputSection)
	}
	var o Output
	dec := json.NewDecoder(bytes.NewReader(payloads[0]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&o); err != nil || dec.More() {
		return Output{}, errorf(CodeBadOutput, `%q must hold one JSON object like {"kind":"aggregate","group_by":["region"]}: %v`, OutputSection, err)
	}
	return o, o.validate(fields)
}

func (o Output) validate(fields []string) error {
	switch o.Kind {
	case OutputRows:
		if len(o.GroupBy) > 0 {
			return errorf(CodeBadOutput, "a %q result has no group_by; declare kind %q to group", OutputRows, OutputAggregate)
		}
	case OutputAggregate:
		seen := map[string]bool{}
		for _, g := range o.GroupBy {
			if !slices.Contains(fields, g) {
				return errorf(CodeBadOutput, "group_by names %q, which is not among the declared fields %q", g, fields)
			}
			if seen[g] {
				return errorf(CodeBadOutput, "group_by names %q twice", g)
			}
			seen[g] = true
		}
	default:
		return errorf(CodeBadOutput, "output kind %q is not %q or %q", o.Kind, OutputRows, OutputAggregate)
	}
	return nil
}

// Limits bound one job. Zero values take the Default* constants.
type Limits struct {
	MemoryPages uint32        // 64 KiB pages, at most MaxMemoryPages
	Timeout     time.Duration // wall time from instantiation to exit
	MaxOutput   int64         // bytes the guest may write to stdout
	MaxLog      int64         // bytes of stderr kept in the report; the rest is dropped
}

func (l Limits) withDefaults() Limits {
	if l.MemoryPages == 0 {
		l.MemoryPages = DefaultMemoryPages
	}
	if l.Timeout == 0 {
		l.Timeout = DefaultTimeout
	}
	if l.MaxOutput == 0 {
		l.MaxOutput = DefaultMaxOutput
	}
	if l.MaxLog == 0 {
		l.MaxLog = DefaultMaxLog
	}
	return l
}

// Spec describes one job.
type Spec struct {
	Module []byte    // the .wasm bytes; validated with Check before running
	Input  io.Reader // the allowed view as an Arrow IPC stream (nil: empty)
	Output io.Writer // receives the guest's stdout; discard it if Run fails
	Limits Limits
	// Seed seeds the guest's random_get. 0 means "draw one"; the seed used
	// is always returned in Report.Seed for the audit log.
	Seed int64
	// Progress, if set, receives the guest's dsbx.progress calls as they
	// happen (total 0: unknown).
	Progress func(done, total int64)
}

// Progress is the guest's last dsbx.progress report.
type Progress struct {
	Done  int64 `json:"done"`
	Total int64 `json:"total"`
	Calls int64 `json:"calls"`
}

// Report describes a finished (or failed) job.
type Report struct {
	ModuleSHA256 string
	Fields       []string
	Seed         int64
	ExitCode     uint32
	OutputBytes  int64
	Log          string        // the guest's stderr, at most Limits.MaxLog bytes
	LogDropped   int64         // stderr bytes beyond the cap
	Compile      time.Duration // runtime setup and compilation (cache hit after Check)
	Wall         time.Duration // instantiation to exit
	PeakPages    uint32        // linear memory size at exit (wasm memory never shrinks)
	Denied       []string      // denied filesystem calls the guest attempted (first 16)
	Progress     Progress      // the guest's last dsbx.progress call
}

// Run validates and runs one job in a fresh runtime and instance. On any
// error the bytes already written to Spec.Output are not a result and must be
// discarded; the returned Report is non-nil whenever the module passed Check.
func Run(ctx context.Context, spec Spec) (*Report, error) {
	lim := spec.Limits.withDefaults()
	if lim.MemoryPages > MaxMemoryPages || lim.Timeout < 0 || lim.MaxOutput < 0 || lim.MaxLog < 0 {
		return nil, errorf(CodeBadSpec, "invalid limits %+v", spec.Limits)
	}
	if spec.Output == nil {
		return nil, errorf(CodeBadSpec, "no output writer")
	}
	m, err := Inspect(spec.Module)
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	// Compiled (or loaded from the cache) and checked as Check does, in a
	// runtime at the largest page limit; the runtime that runs the guest
	// then finds the code in memory. Code loaded from wazero's file cache
	// straight into a runtime with a smaller page limit let a guest's
	// memory grow past that limit (TestCachedModuleKeepsThePageLimit).
	checked := wazero.NewRuntimeWithConfig(ctx, runtimeConfig(MaxMemoryPages))
	defer checked.Close(context.Background())
	if _, err := m.compile(ctx, checked); err != nil {
		return nil, err
	}
	r := wazero.NewRuntimeWithConfig(ctx, runtimeConfig(lim.MemoryPages))
	defer r.Close(context.Background())
	cm, err := r.CompileModule(ctx, m.bytes) // in memory now
	if err != nil {
		return nil, errorf(CodeMalformed, "%v", err)
	}
	rep := &Report{ModuleSHA256: m.SHA256, Fields: m.Fields, Seed: spec.Seed}
	if rep.Seed == 0 {
		var b [8]byte
		_, _ = crand.Read(b[:])
		rep.Seed = int64(binary.LittleEndian.Uint64(b[:]) | 1)
	}
	in := spec.Input
	if in == nil {
		in = bytes.NewReader(nil)
	}

	den := &denials{}
	if err := instantiateWASI(ctx, r, den); err != nil {
		return rep, fmt.Errorf("wasm: host module: %w", err)
	}
	logw := &logWriter{max: lim.MaxLog}
	if err := instantiateHost(ctx, r, logw, &rep.Progress, spec.Progress); err != nil {
		return rep, fmt.Errorf("wasm: host module: %w", err)
	}
	rep.Compile = time.Since(t0)

	// The deadline covers instantiation and execution, not compilation.
	jobCtx, cancel := context.WithTimeout(ctx, lim.Timeout)
	defer cancel()
	out := &capWriter{w: spec.Output, max: lim.MaxOutput, onLimit: cancel}
	if d := deadline(); d != nil {
		// Cancelling stops nothing in code without deadline checks: the
		// process ends with the output limit's error.
		out.onLimit = func() { cancel(); d.Stop(outputLimit(lim)) }
	}
	cfg := wazero.NewModuleConfig().
		WithName("guest").
		WithArgs("guest").
		WithStdin(in).
		WithStdout(out).
		WithStderr(logw).
		WithRandSource(seededRand(rep.Seed)).
		WithSysNanotime().
		WithWalltime(func() (int64, int32) { return FixedWalltime.Unix(), 0 }, 1).
		WithNanosleep(func(ns int64) {
			t := time.NewTimer(time.Duration(ns))
			defer t.Stop()
			select {
			case <-t.C:
			case <-jobCtx.Done():
			}
		}).
		WithStartFunctions() // _start is called below so memory can be read afterwards

	if d := deadline(); d != nil {
		// The compiled code does not check the deadline: the process ends.
		defer d.Arm(lim.Timeout, timeLimit(lim))()
	}
	start := time.Now()
	mod, err := r.InstantiateModule(jobCtx, cm, cfg)
	if err == nil {
		_, err = mod.ExportedFunction("_start").Call(jobCtx)
		if mem := mod.Memory(); mem != nil {
			rep.PeakPages = mem.Size() / 65536
		}
	}
	rep.Wall = time.Since(start)
	rep.OutputBytes = out.n
	rep.Log, rep.LogDropped = logw.buf.String(), logw.dropped
	rep.Denied = den.list()
	return rep, classify(err, jobCtx, ctx, out, lim, rep)
}

// timeLimit is the error of a guest still running at its deadline.
func timeLimit(lim Limits) error {
	return &LimitError{Kind: "time", Limit: int64(lim.Timeout), Msg: fmt.Sprintf("guest still running after %v; stopped", lim.Timeout)}
}

// outputLimit is the error of a guest that wrote more than its output cap.
func outputLimit(lim Limits) error {
	return &LimitError{Kind: "output", Limit: lim.MaxOutput,
		Msg: fmt.Sprintf("guest wrote more than %d bytes to stdout; output discarded", lim.MaxOutput)}
}

func classify(err error, jobCtx, parent context.Context, out *capWriter, lim Limits, rep *Report) error {
	if out.exceeded {
		return outputLimit(lim)
	}
	var exit *sys.ExitError
	if errors.As(err, &exit) {
		rep.ExitCode = exit.ExitCode()
		switch exit.ExitCode() {
		case 0:
			return nil
		case sys.ExitCodeDeadlineExceeded:
			return timeLimit(lim)
		case sys.ExitCodeContextCanceled:
			if parent.Err() != nil {
				return fmt.Errorf("wasm: job cancelled: %w", parent.Err())
			}
			return &LimitError{Kind: "time", Limit: int64(lim.Timeout), Msg: "job context cancelled"}
		}
		if memoryExhausted(rep, lim) {
			return memLimit(lim, rep)
		}
		return &GuestError{ExitCode: exit.ExitCode(), LogTail: logTail(rep.Log)}
	}
	if err == nil {
		return nil // _start returned without proc_exit
	}
	if jobCtx.Err() == context.DeadlineExceeded && parent.Err() == nil {
		return timeLimit(lim)
	}
	if memoryExhausted(rep, lim) {
		return memLimit(lim, rep)
	}
	msg := err.Error()
	if i := strings.IndexByte(msg, '\n'); i >= 0 { // drop wazero's stack trace
		msg = msg[:i]
	}
	return &GuestError{Trap: msg, LogTail: logTail(rep.Log)}
}

// memoryExhausted reports whether a failed guest ran out of linear memory:
// its memory reached (nearly) the page limit, or the Go runtime said so.
func memoryExhausted(rep *Report, lim Limits) bool {
	near := uint64(rep.PeakPages)*16 >= uint64(lim.MemoryPages)*15 // within 1/16 of the limit
	return near || strings.Contains(rep.Log, "fatal error: out of memory")
}

func memLimit(lim Limits, rep *Report) error {
	return &LimitError{Kind: "memory", Limit: int64(lim.MemoryPages),
		Msg: fmt.Sprintf("guest ran out of memory at %d of %d pages (64 KiB each)", rep.PeakPages, lim.MemoryPages)}
}

func logTail(s string) string {
	s = strings.TrimSpace(s)
	// Prefer a Go panic / fatal error line; otherwise the last line.
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, "panic: ") || strings.HasPrefix(l, "fatal error: ") {
			return truncate(l, 200)
		}
	}
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return truncate(s, 200)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// seededRand derives the guest's random stream from the job seed.
func seededRand(seed int64) io.Reader {
	var k [32]byte
	binary.LittleEndian.PutUint64(k[:], uint64(seed))
	k = sha256.Sum256(append([]byte("dsbx wasm random_get v1\x00"), k[:8]...))
	return rand.NewChaCha8(k)
}

// capWriter passes at most max bytes; a write that would exceed it is
// refused entirely, the job is cancelled and the run fails.
type capWriter struct {
	w        io.Writer
	max, n   int64
	exceeded bool
	onLimit  func()
}

var errOutputLimit = errors.New("output limit exceeded")

func (c *capWriter) Write(p []byte) (int, error) {
	if c.exceeded || c.n+int64(len(p)) > c.max {
		c.exceeded = true
		c.onLimit()
		return 0, errOutputLimit
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// logWriter keeps the first max bytes and counts the rest.
type logWriter struct {
	buf     bytes.Buffer
	max     int64
	dropped int64
}

func (l *logWriter) Write(p []byte) (int, error) {
	room := l.max - int64(l.buf.Len())
	if room < 0 {
		room = 0
	}
	if int64(len(p)) <= room {
		l.buf.Write(p)
	} else {
		l.buf.Write(p[:room])
		l.dropped += int64(len(p)) - room
	}
	return len(p), nil
}

type denials struct {
	mu    sync.Mutex
	names []string
}

func (d *denials) add(s string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.names) < 16 {
		d.names = append(d.names, s)
	}
}

func (d *denials) list() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.names...)
}

// WASI errno values.
const (
	errnoBadf       = 8
	errnoSpipe      = 70
	errnoNotcapable = 76
)

// instantiateWASI instantiates wasi_snapshot_preview1 with the filesystem
// entry points replaced by stubs that always fail: even if a future change
// configured an FS, a guest could not reach it.
func instantiateWASI(ctx context.Context, r wazero.Runtime, den *denials) error {
	b := r.NewHostModuleBuilder(WASIModule)
	wasi_snapshot_preview1.NewFunctionExporter().ExportFunctions(b)
	i32, i64 := api.ValueTypeI32, api.ValueTypeI64
	deny := func(name string, errno uint64, params ...api.ValueType) {
		b.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, m api.Module, stack []uint64) {
			switch name {
			case "path_open", "path_filestat_get", "path_filestat_set_times":
				den.add(name + pathArg(m, stack[2], stack[3]))
			case "path_create_directory", "path_remove_directory", "path_unlink_file", "path_readlink":
				den.add(name + pathArg(m, stack[1], stack[2]))
			case "fd_prestat_get", "fd_prestat_dir_name", "fd_seek":
			default:
				den.add(name)
			}
			stack[0] = errno
		}), params, []api.ValueType{i32}).Export(name)
	}
	// fd_prestat_get(fd, buf) -> EBADF: there are no preopened directories.
	deny("fd_prestat_get", errnoBadf, i32, i32)
	deny("fd_prestat_dir_name", errnoBadf, i32, i32, i32)
	// fd_seek(fd, offset, whence, newoffset) -> ESPIPE: stdin and stdout are streams.
	deny("fd_seek", errnoSpipe, i32, i64, i32, i32)
	// path_open(fd, dirflags, path, path_len, oflags, rights, rights_inh, fdflags, fd_out)
	deny("path_open", errnoNotcapable, i32, i32, i32, i32, i32, i64, i64, i32, i32)
	// path_filestat_get(fd, flags, path, path_len, buf)
	deny("path_filestat_get", errnoNotcapable, i32, i32, i32, i32, i32)
	// fd_readdir(fd, buf, buf_len, cookie, bufused)
	deny("fd_readdir", errnoNotcapable, i32, i32, i32, i64, i32)
	deny("path_create_directory", errnoNotcapable, i32, i32, i32)
	// path_filestat_set_times(fd, flags, path, path_len, atim, mtim, fst_flags)
	deny("path_filestat_set_times", errnoNotcapable, i32, i32, i32, i32, i64, i64, i32)
	deny("path_link", errnoNotcapable, i32, i32, i32, i32, i32, i32, i32)
	deny("path_readlink", errnoNotcapable, i32, i32, i32, i32, i32, i32)
	deny("path_remove_directory", errnoNotcapable, i32, i32, i32)
	deny("path_rename", errnoNotcapable, i32, i32, i32, i32, i32, i32)
	deny("path_symlink", errnoNotcapable, i32, i32, i32, i32, i32)
	deny("path_unlink_file", errnoNotcapable, i32, i32, i32)
	_, err := b.Instantiate(ctx)
	return err
}

// MaxLogLine bounds one dsbx.log line; longer lines are cut.
const MaxLogLine = 4096

// instantiateHost instantiates the dsbx host module: log(ptr, len) appends
// one line to the job's log, progress(done, total) records the guest's
// progress. Neither returns anything, so neither can leak host state.
func instantiateHost(ctx context.Context, r wazero.Runtime, logw *logWriter, p *Progress, notify func(done, total int64)) error {
	i32, i64 := api.ValueTypeI32, api.ValueTypeI64
	_, err := r.NewHostModuleBuilder(HostModule).
		NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, m api.Module, stack []uint64) {
		ptr, n := uint32(stack[0]), uint32(stack[1])
		cut := n > MaxLogLine
		b, ok := m.Memory().Read(ptr, min(n, MaxLogLine))
		if !ok {
			panic(fmt.Errorf("dsbx.log: %d bytes at %d lie outside the guest's memory", n, ptr))
		}
		line := append(bytes.TrimRight(b, "\n"), '\n')
		if cut {
			line = append(b[:len(b):len(b)], "…\n"...)
		}
		logw.Write(line)
	}), []api.ValueType{i32, i32}, nil).Export("log").
		NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, m api.Module, stack []uint64) {
		p.Done, p.Total = int64(stack[0]), int64(stack[1])
		p.Calls++
		if notify != nil {
			notify(p.Done, p.Total)
		}
	}), []api.ValueType{i64, i64}, nil).Export("progress").
		Instantiate(ctx)
	return err
}

func pathArg(m api.Module, p, l uint64) string {
	ptr, n := uint32(p), uint32(l)
	if n > 256 {
		n = 256
	}
	if b, ok := m.Memory().Read(ptr, n); ok {
		return fmt.Sprintf("(%q)", b)
	}
	return ""
}
