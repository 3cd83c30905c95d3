package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/datasandbox/dsbx/audit"
	"github.com/datasandbox/dsbx/client"
	"github.com/datasandbox/dsbx/datasets"
	"github.com/datasandbox/dsbx/jobs"
	"github.com/datasandbox/dsbx/operators"
	sqlbox "github.com/datasandbox/dsbx/sandbox/sql"
	"github.com/datasandbox/dsbx/sandbox/wasm"
	"github.com/datasandbox/dsbx/sandbox/wasmjob"
)

// The bounded load test: loadOperators operators, each with its own token
// and agreement on one generated dataset, submit DSBX_LOAD_JOBS jobs (default
// loadDefaultJobs) at once over loopback HTTP, a mix of ordinary SQL
// aggregates, a Wasm grouped aggregate and hostile jobs. Every outcome must
// be the one expected of its job type.
const (
	loadOperators   = 20
	loadDefaultJobs = 200
	loadDataset     = "households"
	loadRows        = 4000
	loadRareRegion  = "淳安县" // loadRareRows rows only: a small cell
	loadRareRows    = 3

	// loadWasmTimeout and loadWasmMemory are the limits, in the test's
	// bundle, of Wasm jobs that declare no aggregate output (the loop and
	// the memory bomb), so that they end quickly; every other job keeps
	// the built-in 60 s and 512MB.
	loadWasmTimeout = 4
	loadWasmMemory  = "16MB"

	// loadServerRSS bounds the resident memory of the test process, which
	// is the server (HTTP, admission, audit log, job service; every job
	// runs in a worker process of its own), which no configuration caps.
	// Measured peaks under this load: ~185 MiB with the C groupsum, 420-500
	// MiB with the 13 MB Go one (each submission's module is decoded from
	// base64 JSON and copied to a check worker); the limit leaves twice
	// the worst of those.
	loadServerRSS = 1 << 30
)

var loadRegions = []string{"上城区", "拱墅区", "西湖区", "滨江区", "萧山区", "余杭区", "富阳区", "临平区"}

// Job types, and what each must end as.
const (
	ltSQLPass     = "sql_pass"     // an aggregate over large cells: 202, released
	ltSQLHeld     = "sql_held"     // the largest income of each region: 202, held for review
	ltSQLRowLevel = "sql_rowlevel" // a row-level extract: 202, rejected
	ltSQLFile     = "sql_file"     // read_csv('/etc/passwd'): 400 table_function, nothing stored
	ltSQLField    = "sql_field"    // reads id_number, outside the agreement: 403, denied
	ltWasmAgg     = "wasm_agg"     // groupsum, values the host cannot count: 202, held (wasm_values)
	ltWasmLoop    = "wasm_loop"    // never ends: 202, failed naming the time limit
	ltWasmBomb    = "wasm_membomb" // allocates without bound: 202, failed naming memory
)

// loadMix is a round of 20 job types (see loadType), and the
// hostile Wasm slot alternates between the loop and the memory bomb from
// one round of 20 to the next (see loadType). A round is 13 ordinary
// aggregates, one Wasm aggregate, two held, one row-level extract, one
// file read, one ungranted field and one hostile guest.
var loadMix = []string{
	ltSQLPass, ltWasmAgg, ltSQLPass, ltSQLHeld, ltSQLPass, ltSQLFile, ltSQLPass, ltWasmHostile, ltSQLPass, ltSQLField,
	ltSQLPass, ltSQLRowLevel, ltSQLPass, ltSQLPass, ltSQLPass, ltSQLHeld, ltSQLPass, ltSQLPass, ltSQLPass, ltSQLPass,
}

// ltWasmHostile is loadMix's slot for ltWasmLoop or ltWasmBomb.
const ltWasmHostile = "wasm_hostile"

// loadTypes are the job types, in the report's order.
var loadTypes = []string{ltSQLPass, ltSQLHeld, ltSQLRowLevel, ltSQLFile, ltSQLField, ltWasmAgg, ltWasmLoop, ltWasmBomb}

// loadType is the type of job g, the i-th job of operator k where k is g
// modulo loadOperators: each round of 20 jobs holds loadMix once, and each
// operator's turn in it moves on by 7 slots from one job to the next, so
// that every operator submits a mix.
func loadType(g int) string {
	k, i := g%len(loadMix), g/len(loadMix)
	typ := loadMix[(k+7*i)%len(loadMix)]
	if typ == ltWasmHostile {
		if (g/len(loadMix))%2 == 0 {
			return ltWasmLoop
		}
		return ltWasmBomb
	}
	return typ
}

var loadPassSQL = []string{
	`SELECT region, count(*) AS n, avg(income) AS mean_income FROM households WHERE region <> '` + loadRareRegion + `' GROUP BY region ORDER BY region`,
	`SELECT region, sum(income) AS total FROM households WHERE region <> '` + loadRareRegion + `' GROUP BY region ORDER BY region`,
	`SELECT count(*) AS n, avg(income) AS mean_income FROM households WHERE region <> '` + loadRareRegion + `'`,
}

const (
	loadHeldSQL     = `SELECT region, max(income) AS top FROM households WHERE region <> '` + loadRareRegion + `' GROUP BY region`
	loadRowLevelSQL = `SELECT region, income FROM households`
	loadFileSQL     = `SELECT * FROM read_csv('/etc/passwd')`
	loadFieldSQL    = `SELECT region, count(DISTINCT id_number) AS n FROM households GROUP BY region`
)

// loadOutcome is what became of one job.
type loadOutcome struct {
	typ      string
	operator string
	id       int64 // 0 when refused at submission
	state    string
	status   int // HTTP status of a refusal, 0 otherwise
	code     string
	err      string
	latency  time.Duration // submission to final state
	submit   time.Duration // the submission's HTTP round trip
	end      time.Time     // when the final state was known
	peakRSS  int64         // the worker's, as the job's run report has it
	run      *jobs.RunReport
	problem  string // why the outcome is not the expected one; "" if it is
}

// TestLoad runs the bounded load test. DSBX_LOAD_JOBS scales it.
func TestLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("a load test of a few hundred jobs")
	}
	total := loadDefaultJobs
	if v := os.Getenv("DSBX_LOAD_JOBS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < len(loadMix) {
			t.Fatalf("DSBX_LOAD_JOBS=%q: want a number of jobs, at least %d", v, len(loadMix))
		}
		total = n
	}
	began := time.Now()
	defer func(g time.Duration) { wasmjob.KillGrace = g }(wasmjob.KillGrace)
	wasmjob.KillGrace = 2 * time.Second

	bundle := bundleCopy(t)
	edit(t, bundle, "admission.rego", `"timeout_seconds": 60,`, `"timeout_seconds": load_timeout,`)
	edit(t, bundle, "admission.rego", `"memory": "512MB",`, `"memory": load_memory,`)
	appendRego(t, filepath.Join(bundle, "admission.rego"), fmt.Sprintf(`
# The load test's limits: a Wasm module that declares no aggregate output
# gets little time and memory.
default load_timeout := 60

load_timeout := %d if opaque_module

default load_memory := "512MB"

load_memory := %q if opaque_module

opaque_module if {
	input.job.kind == "wasm"
	not input.job.aggregate
}
`, loadWasmTimeout, loadWasmMemory))
	p := start(t, func(c *Config) { c.Policies = bundle })
	ctx := context.Background()

	guests, guest := loadGuests(t)
	built := time.Since(began)
	ops := loadSetup(t, p)
	// With the Go groupsum, one job before the load: the first submission
	// of a module validates and compiles it into the platform's cache,
	// which takes tens of seconds for 13 MB; the load measures the steady
	// state, where later submissions hit the cache. Small guests compile
	// cold within the load.
	warm := "none"
	warmIDs := map[int64]bool{}
	if strings.HasPrefix(guest, "go") {
		o := loadRun(ops[0], ltWasmAgg, 0, guests)
		if o.problem != "" {
			t.Errorf("warm-up %s job %d: %s", ltWasmAgg, o.id, o.problem)
		}
		warmIDs[o.id] = true
		warm = fmt.Sprintf("%s %s (submission %s)", ltWasmAgg, ms(o.latency), ms(o.submit))
	}
	setupDone := time.Since(began)

	// The load.
	mem := startMemSampler()
	goroutinesBefore := runtime.NumGoroutine()
	outcomes := make([]loadOutcome, total)
	var wg sync.WaitGroup
	loadBegan := time.Now()
	for k := range ops {
		wg.Add(1)
		go func(k int) {
			defer wg.Done()
			for g := k; g < total; g += len(ops) {
				outcomes[g] = loadRun(ops[k], loadType(g), g, guests)
			}
		}(k)
	}
	wg.Wait()
	loadTook := time.Since(loadBegan)
	peak := mem.stop()

	// Every outcome is the one expected of its type.
	byType := map[string][]loadOutcome{}
	states := map[string]int{}
	unexpected := 0
	for _, o := range outcomes {
		byType[o.typ] = append(byType[o.typ], o)
		key := o.state
		if o.id == 0 {
			key = fmt.Sprintf("refused %d %s", o.status, o.code)
		}
		states[key]++
		if o.problem != "" {
			unexpected++
			if unexpected <= 20 {
				t.Errorf("%s job %d of %s: %s", o.typ, o.id, o.operator, o.problem)
			}
		}
	}
	if unexpected > 20 {
		t.Errorf("... and %d more unexpected outcomes", unexpected-20)
	}

	// The report.
	var rep strings.Builder
	fmt.Fprintf(&rep, "load: %d jobs from %d operators over loopback in %s: %.1f jobs/s (%d CPUs, %d workers); setup %s (guests built in %s)\n",
		total, len(ops), loadTook.Round(time.Millisecond), float64(total)/loadTook.Seconds(), runtime.NumCPU(), p.srv.cfg.Workers,
		setupDone.Round(time.Millisecond), built.Round(time.Millisecond))
	fmt.Fprintf(&rep, "  guest: %s; warm-up before the load: %s\n", guest, warm)
	fmt.Fprintf(&rep, "  %-13s %5s %9s %9s %9s %9s  %s\n", "type", "jobs", "p50", "p95", "p99", "max", "outcomes")
	types := loadTypes
	var all []time.Duration
	for _, typ := range types {
		got := byType[typ]
		var ls []time.Duration
		seen := map[string]int{}
		for _, o := range got {
			ls = append(ls, o.latency)
			if o.id == 0 {
				seen[fmt.Sprintf("HTTP %d %s", o.status, o.code)]++
			} else {
				seen[o.state]++
			}
		}
		all = append(all, ls...)
		fmt.Fprintf(&rep, "  %-13s %5d %9s %9s %9s %9s  %v\n", typ, len(got), ms(pct(ls, 50)), ms(pct(ls, 95)), ms(pct(ls, 99)), ms(pct(ls, 100)), seen)
	}
	fmt.Fprintf(&rep, "  %-13s %5d %9s %9s %9s %9s  %v\n", "all", len(all), ms(pct(all, 50)), ms(pct(all, 95)), ms(pct(all, 99)), ms(pct(all, 100)), states)
	fmt.Fprintf(&rep, "  %-13s %11s %11s %12s %12s %11s %11s\n", "type", "submit p50", "submit p99", "worker wall", "worker cpu", "compile", "guest")
	for _, typ := range types {
		var sub []time.Duration
		var wall, cpu, compile, guest []time.Duration
		for _, o := range byType[typ] {
			sub = append(sub, o.submit)
			if o.run != nil {
				wall, cpu = append(wall, time.Duration(o.run.WallMS)*time.Millisecond), append(cpu, time.Duration(o.run.WorkerCPUMS)*time.Millisecond)
				if g := o.run.Guest; g != nil {
					compile, guest = append(compile, time.Duration(g.CompileMS)*time.Millisecond), append(guest, time.Duration(g.GuestMS)*time.Millisecond)
				}
			}
		}
		fmt.Fprintf(&rep, "  %-13s %11s %11s %12s %12s %11s %11s\n", typ, ms(pct(sub, 50)), ms(pct(sub, 99)), ms(pct(wall, 50)), ms(pct(cpu, 50)), ms(pct(compile, 50)), ms(pct(guest, 50)))
	}
	var quarters []string
	for q := 0; q < 4; q++ {
		from, to := loadTook*time.Duration(q)/4, loadTook*time.Duration(q+1)/4
		n := 0
		for _, o := range outcomes {
			if at := o.end.Sub(loadBegan); at > from && at <= to {
				n++
			}
		}
		quarters = append(quarters, fmt.Sprintf("%.1f", float64(n)/(to-from).Seconds()))
	}
	fmt.Fprintf(&rep, "  jobs/s finished in each quarter of the run: %s\n", strings.Join(quarters, " "))
	fmt.Fprintf(&rep, "  memory: server process peak RSS %d MiB (VmHWM %d MiB, limit %d MiB), Go heap peak %d MiB; workers: peak %d at once, %d MiB together, server+workers %d MiB (%d children seen before exec)\n",
		peak.self>>20, peak.hwm>>20, loadServerRSS>>20, peak.heap>>20, peak.children, peak.childSum>>20, peak.total>>20, peak.forks)
	for _, kind := range slices.Sorted(maps.Keys(peak.byKind)) {
		fmt.Fprintf(&rep, "    worker %-10s %4d seen, peak RSS %5d MiB sampled, cap %s\n", kind, peak.seen[kind], peak.byKind[kind]>>20, capText(workerCap(kind)))
	}
	var runPeak = map[string]int64{}
	for _, o := range outcomes {
		runPeak[o.typ] = max(runPeak[o.typ], o.peakRSS)
	}
	fmt.Fprintf(&rep, "    worker peak RSS from the jobs' run reports (ru_maxrss, which counts the server's peak too): %v MiB\n", mibs(runPeak))
	t.Log("\n" + rep.String())

	if os.Getenv("DSBX_LOAD_DEBUG") != "" {
		for _, o := range outcomes {
			g := ""
			if o.run != nil && o.run.Guest != nil {
				g = fmt.Sprintf(" guest %dms compile %dms pages %d", o.run.Guest.GuestMS, o.run.Guest.CompileMS, o.run.Guest.PeakPages)
			}
			t.Logf("%-13s job %4d %-6s %-9s latency %6s submit %6s%s %s", o.typ, o.id, o.operator, o.state, ms(o.latency), ms(o.submit), g, o.err)
		}
	}

	// Memory stayed under the limits.
	if peak.self > loadServerRSS || peak.hwm > loadServerRSS {
		t.Errorf("server process resident memory peaked at %d MiB (VmHWM %d MiB), over the %d MiB limit", peak.self>>20, peak.hwm>>20, loadServerRSS>>20)
	}
	for kind, rss := range peak.byKind {
		if c := workerCap(kind); c > 0 && rss > c {
			t.Errorf("a %s worker reached %d MiB, over its cap of %d MiB", kind, rss>>20, c>>20)
		}
	}
	// The run reports' worker_peak_rss_bytes are not checked: on Linux
	// they are the larger of the worker's peak and the server's (see the
	// report line), not the worker's own.

	// No job is left queued or running, and the server's list agrees with
	// what each operator was told.
	listed, err := p.admin.Jobs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	final := map[int64]string{}
	for _, j := range listed {
		if j.Dataset != loadDataset || warmIDs[j.ID] {
			continue
		}
		final[j.ID] = j.State
		if !jobs.Final(j.State) {
			t.Errorf("job %d of %s is still %s after the load", j.ID, j.Operator, j.State)
		}
	}
	stored := 0
	for _, o := range outcomes {
		if o.id == 0 {
			continue
		}
		stored++
		if final[o.id] != o.state {
			t.Errorf("job %d: its operator saw %s, the server lists %q", o.id, o.state, final[o.id])
		}
	}
	if len(final) != stored {
		t.Errorf("the server lists %d jobs on %s, the operators stored %d", len(final), loadDataset, stored)
	}

	// The audit log verifies against its signed checkpoint, and holds every
	// job's entries.
	verifyBegan := time.Now()
	entries := loadVerifyAudit(t, p)
	bySubject := map[string][]string{}
	refusedBy := map[string]int{}
	submittedBy := map[int64]string{}
	for _, e := range entries {
		if e.Kind == "job.submitted" {
			submittedBy[e.Seq] = e.Principal
		}
		bySubject[e.Subject] = append(bySubject[e.Subject], e.Kind)
		if e.Kind == "job.refused" {
			refusedBy[e.Principal]++
		}
	}
	wantRefused := map[string]int{}
	for _, o := range outcomes {
		if o.id == 0 {
			wantRefused[o.operator]++
			continue
		}
		if submittedBy[o.id] != o.operator {
			t.Errorf("%s job %d: entry %d is not its job.submitted by %s", o.typ, o.id, o.id, o.operator)
		}
		have := bySubject["job/"+itoa(o.id)]
		for _, k := range loadAuditKinds(o) {
			if !slices.Contains(have, k) {
				t.Errorf("%s job %d (%s): no %s entry among %v", o.typ, o.id, o.state, k, have)
			}
		}
	}
	for op, n := range wantRefused {
		if refusedBy[op] != n {
			t.Errorf("%s: %d job.refused entries, want %d", op, refusedBy[op], n)
		}
	}
	t.Logf("audit log of %d entries verified, every job's entries present, in %s", len(entries), time.Since(verifyBegan).Round(time.Millisecond))

	// The server still answers and runs one more job.
	p.healthy(t, "after the load")
	after := loadRun(ops[0], ltSQLPass, 0, guests)
	if after.problem != "" {
		t.Fatalf("a job after the load: %s", after.problem)
	}
	http.DefaultClient.CloseIdleConnections()
	t.Logf("after the load: health ok, one more job %s in %s; goroutines %d before the load, %d after; test took %s",
		after.state, ms(after.latency), goroutinesBefore, runtime.NumGoroutine(), time.Since(began).Round(time.Millisecond))
}

// appendRego appends src to the file at path.
func appendRego(t *testing.T, path, src string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(src); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// loadGuests builds the Wasm guests once: a groupsum example (the SDK's
// grouped aggregate: rows and total income by region), and the loop and
// memory bomb test guests, declared to read region. groupsum is the C
// SDK's (57 KB) where clang-14 and wasi-libc are installed, as make test
// installs them, unless DSBX_LOAD_GUEST=go; otherwise the Go SDK's (13 MB,
// whose first check compiles for tens of seconds on 2 busy cores). It
// returns which groupsum it built.
func loadGuests(t *testing.T) (map[string][]byte, string) {
	t.Helper()
	dir := t.TempDir()
	pkgs := []string{"./sandbox/wasm/testdata/loop", "./sandbox/wasm/testdata/membomb"}
	lang := "c"
	if _, err := exec.LookPath("clang-14"); err != nil || os.Getenv("DSBX_LOAD_GUEST") == "go" {
		lang = "go"
	} else if _, err := os.Stat("/usr/include/wasm32-wasi/stdio.h"); err != nil {
		lang = "go"
	}
	if lang == "go" {
		pkgs = append(pkgs, "./sdk/go/examples/groupsum")
	}
	cmd := exec.Command("go", append([]string{"build", "-trimpath", "-ldflags=-s -w", "-o", dir + string(os.PathSeparator)}, pkgs...)...)
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the guests: %v\n%s", err, out)
	}
	read := func(name string, fields ...string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if len(fields) > 0 {
			if b, err = wasm.DeclareFields(b, fields); err != nil {
				t.Fatal(err)
			}
		}
		return b
	}
	var agg []byte
	if lang == "c" {
		// The C source declares its fields and output itself.
		cmd := exec.Command("clang-14", "--target=wasm32-wasi", "-O2", "-Wl,--strip-debug", "-I", filepath.Join("..", "sdk", "c"),
			"-o", filepath.Join(dir, "groupsum"), filepath.Join("..", "sdk", "c", "examples", "groupsum.c"))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build the C groupsum: %v\n%s", err, out)
		}
		agg = read("groupsum")
	} else {
		var err error
		if agg, err = wasm.DeclareOutput(read("groupsum", "region", "income"), wasm.Output{Kind: wasm.OutputAggregate, GroupBy: []string{"region"}}); err != nil {
			t.Fatal(err)
		}
	}
	return map[string][]byte{
		ltWasmAgg:  agg,
		ltWasmLoop: read("loop", "region"),
		ltWasmBomb: read("membomb", "region"),
	}, fmt.Sprintf("%s groupsum, %d KB", lang, len(agg)>>10)
}

// loadOp is one operator of the load.
type loadOp struct {
	name string
	c    *client.Client
}

// loadSetup creates the households dataset of loadRows rows, owned by the
// platform's agency, and loadOperators operators, each with an agreement
// on its region and income.
func loadSetup(t *testing.T, p *platform) []loadOp {
	t.Helper()
	ctx := context.Background()
	var csv strings.Builder
	csv.WriteString("id_number,region,income\n")
	for i := 0; i < loadRows; i++ {
		region := loadRegions[i%len(loadRegions)]
		if i < loadRareRows {
			region = loadRareRegion
		}
		// Incomes from 3,000 to 32,999, spread so no household dominates
		// a region's total.
		fmt.Fprintf(&csv, "3301%014d,%s,%d\n", i, region, 3000+(i*7919)%30000)
	}
	src := filepath.Join(t.TempDir(), "households.csv")
	if err := os.WriteFile(src, []byte(csv.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	spec := datasets.Spec{Name: loadDataset, Agency: agency, Grade: datasets.GradeGeneral, Open: datasets.OpenConditional, LegalBasis: "load test register",
		Fields: []datasets.Field{
			{Name: "id_number", Sensitivity: "personal-sensitive", Identifier: datasets.IdentifierDirect},
			{Name: "region", Sensitivity: "internal", Identifier: datasets.IdentifierQuasi},
			{Name: "income", Sensitivity: "sensitive", Identifier: datasets.IdentifierNone},
		}}
	if _, err := p.admin.CreateDataset(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if _, err := p.admin.ImportVersion(ctx, loadDataset, datasets.Source{}, src, nil); err != nil {
		t.Fatal(err)
	}
	ops := make([]loadOp, loadOperators)
	for k := range ops {
		name := fmt.Sprintf("op%02d", k+1)
		c := p.add(t, name, "", operators.RoleOperator)
		app, err := c.Apply(ctx, operators.Request{
			Datasets: []operators.DatasetRequest{{Dataset: loadDataset, Fields: []string{"region", "income"}}},
			Purpose:  purpose, ValidUntil: "2027-06-30",
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := p.provider.Approve(ctx, app.ID, operators.Approval{}); err != nil {
			t.Fatal(err)
		}
		ops[k] = loadOp{name: name, c: c}
	}
	return ops
}

// loadRun submits one job of type typ as op, waits for its final state and
// classifies it.
func loadRun(op loadOp, typ string, g int, guests map[string][]byte) loadOutcome {
	o := loadOutcome{typ: typ, operator: op.name}
	req := jobs.Request{Dataset: loadDataset, Purpose: purpose}
	switch typ {
	case ltSQLPass:
		req.SQL = loadPassSQL[(g/len(loadMix))%len(loadPassSQL)]
	case ltSQLHeld:
		req.SQL = loadHeldSQL
	case ltSQLRowLevel:
		req.SQL = loadRowLevelSQL
	case ltSQLFile:
		req.SQL = loadFileSQL
	case ltSQLField:
		req.SQL = loadFieldSQL
	default:
		req.Wasm = guests[typ]
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	t0 := time.Now()
	j, err := op.c.Submit(ctx, req)
	o.submit = time.Since(t0)
	if err == nil && !jobs.Final(j.State) {
		j, err = op.c.Wait(ctx, j.ID)
	}
	o.end = time.Now()
	o.latency = o.end.Sub(t0)
	o.id, o.state = j.ID, j.State
	if j.Run != nil {
		o.peakRSS, o.run = j.Run.WorkerPeakRSS, j.Run
	}
	o.err = j.Error
	var ae *client.APIError
	if err != nil {
		if errors.As(err, &ae) {
			o.status, o.code = ae.Status, ae.Code
		}
		o.err = err.Error()
	}
	o.problem = loadProblem(typ, j, err, ae)
	return o
}

// loadProblem says how an outcome differs from what its type must end as,
// or "" if it does not.
func loadProblem(typ string, j jobs.Job, err error, ae *client.APIError) string {
	if typ == ltSQLFile {
		if ae == nil || ae.Status != http.StatusBadRequest || ae.Code != "table_function" || ae.Message == "" {
			return fmt.Sprintf("got %v (job %d %s), want HTTP 400 table_function with a message", err, j.ID, j.State)
		}
		if strings.Contains(ae.Message, "root:") {
			return "the refusal shows the file: " + ae.Message
		}
		return ""
	}
	if err != nil {
		return fmt.Sprintf("%v (job %d, last state %q)", err, j.ID, j.State)
	}
	want, says := map[string][2]string{
		ltSQLPass:     {jobs.StateReleased, ""},
		ltSQLHeld:     {jobs.StateHeld, ""},
		ltSQLRowLevel: {jobs.StateRejected, ""},
		ltSQLField:    {jobs.StateDenied, "id_number"},
		ltWasmAgg:     {jobs.StateHeld, "wasm_values"},
		ltWasmLoop:    {jobs.StateFailed, "time limit"},
		ltWasmBomb:    {jobs.StateFailed, "memory"},
	}[typ][0], map[string]string{ltSQLField: "id_number", ltWasmAgg: "wasm_values", ltWasmLoop: "time limit", ltWasmBomb: "memory"}[typ]
	if j.State != want {
		return fmt.Sprintf("ended %s (error %q, checks %v, release %v), want %s", j.State, j.Error, loadFindings(j), loadRelease(j), want)
	}
	switch j.State {
	case jobs.StateDenied:
		if j.Decision == nil || !strings.Contains(advReasons(j), says) {
			return fmt.Sprintf("denied without a reason naming %s: %+v", says, j.Decision)
		}
	case jobs.StateFailed:
		if !strings.Contains(j.Error, says) {
			return fmt.Sprintf("failed with %q, want the platform's reason naming %q", j.Error, says)
		}
		if j.Result != nil {
			return "a failed job has a result"
		}
	case jobs.StateHeld:
		if says != "" && !strings.Contains(loadRelease(j), says) {
			return fmt.Sprintf("held for %s, want a reason naming %s", loadRelease(j), says)
		}
	case jobs.StateReleased:
		if j.Result == nil || j.Result.ReleaseSeq == 0 {
			return "released without a release entry"
		}
	}
	return ""
}

func loadFindings(j jobs.Job) string {
	var out []string
	for _, f := range j.Checks {
		if f.Verdict != "pass" {
			out = append(out, fmt.Sprintf("%s=%s", f.Check, f.Verdict))
		}
	}
	return strings.Join(out, ",")
}

func loadRelease(j jobs.Job) string {
	if j.Release == nil {
		return ""
	}
	var out []string
	for _, r := range j.Release.Reasons {
		out = append(out, r.Code)
	}
	return j.Release.Outcome + ":" + strings.Join(out, ",")
}

// loadAuditKinds are the entries about each stored job (subject job/ID)
// it must have, besides its job.submitted entry (at seq ID).
func loadAuditKinds(o loadOutcome) []string {
	switch o.state {
	case jobs.StateDenied:
		return []string{"job.decided"}
	case jobs.StateFailed:
		return []string{"job.decided", "job.started", "job.failed"}
	case jobs.StateReleased:
		return []string{"job.decided", "job.started", "job.ran", "job.checked", "result.released"}
	case jobs.StateHeld:
		return []string{"job.decided", "job.started", "job.ran", "job.held"}
	case jobs.StateRejected:
		return []string{"job.decided", "job.started", "job.ran", "job.rejected"}
	}
	return nil
}

// loadVerifyAudit fetches the log over HTTP as an auditor would, verifies
// it against the signed checkpoint and returns its entries.
func loadVerifyAudit(t *testing.T, p *platform) []audit.Entry {
	t.Helper()
	ctx := context.Background()
	cp, err := p.admin.AuditCheckpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	key, err := p.admin.AuditKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c, err := audit.ParseCheckpoint(cp, key)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := p.admin.AuditRecords(ctx, c.Size)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := audit.Verify(recs, cp, key)
	if err != nil {
		t.Fatalf("the audit log does not verify: %v", err)
	}
	if rep.Size != c.Size {
		t.Fatalf("verified %d entries, the checkpoint says %d", rep.Size, c.Size)
	}
	out := make([]audit.Entry, 0, len(recs))
	for _, r := range recs {
		var e audit.Entry
		if err := json.Unmarshal(r, &e); err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

// workerCap is the resident memory at which the sandbox kills a worker of
// kind under the test's limits (for Wasm, the larger cap, of the jobs with
// the built-in 512MB), or 0 if unknown.
func workerCap(kind string) int64 {
	switch kind {
	case "sql":
		c, _ := sqlbox.HardMemory("512MB")
		return c
	case "wasm":
		mem, _ := sqlbox.MemoryBytes("512MB")
		host, _ := sqlbox.HardMemory("512MB")
		return min(mem/65536, wasm.MaxMemoryPages)*65536 + host
	case "wasm-check":
		return wasmjob.CompileLimits.MaxRSS
	}
	return 0
}

func capText(c int64) string {
	if c == 0 {
		return "none known"
	}
	return fmt.Sprintf("%d MiB", c>>20)
}

// memPeak is what the sampler saw.
type memPeak struct {
	self, hwm, heap int64 // the test process (the server): sampled VmRSS, VmHWM at the end, Go heap in use
	children        int   // most worker processes alive at once
	childSum, total int64 // most resident memory of all workers at once, and with the server
	byKind          map[string]int64
	seen            map[string]int
	forks           int // children seen before they exec'd as workers
}

type memSampler struct {
	done chan struct{}
	out  chan memPeak
}

// startMemSampler samples every 100 ms the resident memory of this process
// and of its child processes (the job workers, found by their parent pid
// in /proc), until stop.
func startMemSampler() *memSampler {
	// Reset VmHWM (the kernel's peak) so that it covers the load only.
	os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
	s := &memSampler{done: make(chan struct{}), out: make(chan memPeak, 1)}
	go func() {
		pk := memPeak{byKind: map[string]int64{}, seen: map[string]int{}}
		pids := map[int]bool{}
		self := os.Getpid()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		n := 0
		for {
			rss, _ := procStatus(self)
			pk.self = max(pk.self, rss)
			if n%5 == 0 {
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				pk.heap = max(pk.heap, int64(ms.HeapInuse))
			}
			n++
			kids := childProcs(self)
			var sum int64
			workers := 0
			for _, pid := range kids {
				kind := workerKindOf(pid)
				if kind == "" {
					// Forked, not yet exec'd as a worker: it still
					// shares the server's memory, which is counted.
					if !pids[pid] {
						pk.forks++
					}
					pids[pid] = true
					continue
				}
				workers++
				crss, _ := procStatus(pid)
				sum += crss
				pk.byKind[kind] = max(pk.byKind[kind], crss)
				if !pids[pid] {
					pids[pid] = true
					pk.seen[kind]++
				}
			}
			pk.children = max(pk.children, workers)
			pk.childSum = max(pk.childSum, sum)
			pk.total = max(pk.total, sum+rss)
			select {
			case <-s.done:
				_, pk.hwm = procStatus(self)
				s.out <- pk
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

func (s *memSampler) stop() memPeak {
	close(s.done)
	return <-s.out
}

// procStatus reads VmRSS and VmHWM of process pid, in bytes.
func procStatus(pid int) (rss, hwm int64) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, 0
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		for _, f := range []struct {
			prefix string
			v      *int64
		}{{"VmRSS:", &rss}, {"VmHWM:", &hwm}} {
			if v, ok := strings.CutPrefix(line, f.prefix); ok {
				kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
				*f.v = kb << 10
			}
		}
	}
	return rss, hwm
}

// childProcs lists the child processes of this process, from the
// children files of its threads (each lists the children that thread
// forked), or by scanning /proc for pid's children where those files are
// missing.
func childProcs(pid int) []int {
	var out []int
	tasks, err := filepath.Glob("/proc/self/task/*/children")
	if err == nil && len(tasks) > 0 {
		for _, f := range tasks {
			b, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			for _, s := range strings.Fields(string(b)) {
				if c, err := strconv.Atoi(s); err == nil {
					out = append(out, c)
				}
			}
		}
		return out
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	for _, e := range ents {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may hold spaces and parentheses.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, child)
		}
	}
	return out
}

// workerKindOf is the sandbox worker kind of process pid (its
// DSBX_SANDBOX_WORKER), "" for a child not (yet) exec'd as a worker,
// whose environment is still the server's.
func workerKindOf(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		return ""
	}
	for _, kv := range bytes.Split(b, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte("DSBX_SANDBOX_WORKER=")); ok {
			kind, _, _ := strings.Cut(string(v), ":")
			return kind
		}
	}
	return ""
}

// pct is the q-th percentile (nearest rank) of ds.
func pct(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(q/100*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.0fms", float64(d)/float64(time.Millisecond))
}

func mibs(m map[string]int64) map[string]int64 {
	out := map[string]int64{}
	for k, v := range m {
		out[k] = v >> 20
	}
	return out
}
