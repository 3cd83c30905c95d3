package main

// dsbx-bench -all measures every figure the project states a target for, in
// one run, and prints one table (figure, platform, baseline, value, target,
// met) with the machine's cores and memory, and writes the same as JSON
// (-json PATH). A target not met is reported, never an error.

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/datasandbox/dsbx/audit"
	"github.com/datasandbox/dsbx/audit/audittest"
	"github.com/datasandbox/dsbx/policies"
)

// Machine is what the figures were measured on.
type Machine struct {
	CPUs       int    `json:"cpus"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	MemTotal   int64  `json:"mem_total_bytes"` // /proc/meminfo MemTotal; 0 when unknown
	OS         string `json:"os"`
	Arch       string `json:"arch"`
	Go         string `json:"go"`
}

// Figure is one measured figure.
type Figure struct {
	ID   string `json:"id"`   // stable key, e.g. "sql.group_by.ratio"
	Name string `json:"name"` // what it is, for the table
	// Platform and Baseline describe the two sides measured, with their
	// times where there are two; Baseline is "" when the figure is a value
	// of the platform alone.
	Platform string `json:"platform"`
	Baseline string `json:"baseline,omitempty"`
	// Value is the figure in Unit: a ratio (platform / baseline) or a value.
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
	// Target is the stated target, "" when there is none; Met is nil then.
	Target string `json:"target,omitempty"`
	Met    *bool  `json:"met,omitempty"`
	// Supported is false when the platform cannot run the figure's work at
	// all; Value then measures the baseline alone.
	Supported bool   `json:"supported"`
	Note      string `json:"note,omitempty"`
}

// AllReport is what one -all run measured.
type AllReport struct {
	Machine  Machine   `json:"machine"`
	Started  time.Time `json:"started"`
	Seconds  float64   `json:"seconds"` // the whole run
	Settings Settings  `json:"settings"`
	Figures  []Figure  `json:"figures"`
}

// Settings are the sizes the run used.
type Settings struct {
	Rows           int64   `json:"rows"`
	LookupRows     int64   `json:"lookup_rows"`
	Runs           int     `json:"runs"`
	Orders         int64   `json:"orders"`
	Customers      int64   `json:"customers"`
	Admissions     int     `json:"admissions"`
	AppendWriters  int     `json:"append_writers"`
	AppendSeconds  float64 `json:"append_seconds"`
	VerifyEntries  int64   `json:"verify_entries"`
	SmallClients   int     `json:"small_clients"`
	SmallSeconds   float64 `json:"small_seconds"`
	WasmRows       int64   `json:"wasm_rows"`
	PlatformWorker int     `json:"platform_workers"`
}

// the -all targets.
const (
	targetGroupBy    = 1.10  // group-by platform / bare DuckDB
	targetWasm       = 2.0   // Wasm / native Go in memory
	targetAdmitP99   = 1.0   // ms
	targetAppend     = 20000 // events/s
	targetVerify     = 5.0   // s
	targetSmallP50MS = 20.0  // ms
)

const joinSQL = "SELECT c_mktsegment, count(*) AS n, sum(o_totalprice) AS total FROM orders JOIN customer ON o_custkey = c_custkey GROUP BY c_mktsegment"

// runAll runs every benchmark, prints the table to w and writes the JSON.
func runAll(ctx context.Context, o options, w io.Writer) (*AllReport, error) {
	b := &bench{w: w, start: time.Now()}
	rep := &AllReport{Machine: machine(), Started: b.start.UTC(), Settings: Settings{
		Rows: o.rows, LookupRows: o.lookupRows, Runs: o.runs, Orders: o.scale, Customers: customers(o.scale),
		Admissions: o.admissions, AppendWriters: o.appendWriters, AppendSeconds: o.appendSeconds.Seconds(),
		VerifyEntries: o.verifyEntries, SmallClients: o.smallClients, SmallSeconds: o.smallSeconds.Seconds(),
		WasmRows: o.rows, PlatformWorker: 2,
	}}
	b.say("dsbx-bench -all: %d CPUs (GOMAXPROCS %d), %.1f GB memory; results to %s",
		rep.Machine.CPUs, rep.Machine.GOMAXPROCS, float64(rep.Machine.MemTotal)/(1<<30), o.jsonPath)

	dir, done, err := workDir(o.keep, "dsbx-bench-all-")
	if err != nil {
		return nil, err
	}
	defer done()
	b.dir = dir

	// 1 and 5: SQL jobs against bare DuckDB, then small-job throughput on
	// the same platform.
	b.say("== 1. SQL jobs end to end vs bare DuckDB")
	figs, small, err := b.allSQL(ctx, o)
	if err != nil {
		return nil, err
	}
	rep.Figures = append(rep.Figures, figs...)

	// 2: Wasm.
	b.say("== 2. Wasm column aggregation vs native Go")
	wo := o
	wo.keep = ""
	if o.keep != "" {
		wo.keep = filepath.Join(o.keep, "wasm")
	}
	wr, err := runWasm(ctx, wo, w)
	if err != nil {
		return nil, fmt.Errorf("wasm: %w", err)
	}
	wm, nm := median(wr.Wasm), median(wr.InMemory)
	r := ratio(wm, nm)
	rep.Figures = append(rep.Figures, Figure{ID: "wasm.colsum.ratio", Name: fmt.Sprintf("Wasm column sum, Go guest, %d rows", wr.Rows),
		Platform: "wasm.Run " + ms(wm), Baseline: "native Go in memory " + dur(nm), Value: r, Unit: "×",
		Target: fmt.Sprintf("≤ %.0f×", targetWasm), Met: met(r <= targetWasm), Supported: true,
		Note: fmt.Sprintf("median of %d runs; guest run alone %s (%.1f×); native over IPC %s (Wasm %.1f× that)",
			len(wr.Wasm), dur(median(wr.WasmWall)), ratio(median(wr.WasmWall), nm), dur(median(wr.OverIPC)), ratio(wm, median(wr.OverIPC)))})
	if len(wr.C.Wasm) > 0 {
		cm := median(wr.C.Wasm)
		cr := ratio(cm, nm)
		rep.Figures = append(rep.Figures, Figure{ID: "wasm.colsum_c.ratio", Name: fmt.Sprintf("Wasm column sum, C guest, %d rows", wr.Rows),
			Platform: "wasm.Run " + ms(cm), Baseline: "native Go in memory " + dur(nm), Value: cr, Unit: "×",
			Target: fmt.Sprintf("≤ %.0f×", targetWasm), Met: met(cr <= targetWasm), Supported: true,
			Note: fmt.Sprintf("median of %d runs; guest run alone %s (%.1f×); native over IPC %s (Wasm %.1f× that)",
				len(wr.C.Wasm), dur(median(wr.C.WasmWall)), ratio(median(wr.C.WasmWall), nm), dur(median(wr.OverIPC)), ratio(cm, median(wr.OverIPC)))})
	} else {
		rep.Figures = append(rep.Figures, Figure{ID: "wasm.colsum_c.ratio", Name: "Wasm column sum, C guest", Platform: "not measured: " + wr.C.Skipped, Unit: "×"})
	}

	// 3: admission.
	b.say("== 3. Admission decision latency, %d decisions with the real bundle", o.admissions)
	figs, err = b.allAdmission(ctx, o.admissions)
	if err != nil {
		return nil, err
	}
	rep.Figures = append(rep.Figures, figs...)

	// 4: audit.
	b.say("== 4. Audit log: durable appends from %d writers for %s, then verifying %d entries", o.appendWriters, o.appendSeconds, o.verifyEntries)
	f, err := b.allAppend(ctx, o.appendWriters, o.appendSeconds, filepath.Join(b.dir, "audit"))
	if err != nil {
		return nil, err
	}
	rep.Figures = append(rep.Figures, f)
	f, err = b.allVerify(o.verifyEntries)
	if err != nil {
		return nil, err
	}
	rep.Figures = append(rep.Figures, f)

	// 5 ran with the SQL jobs, on the same platform; listed last.
	rep.Figures = append(rep.Figures, small...)
	rep.Seconds = time.Since(b.start).Seconds()
	b.say("done")
	fmt.Fprintln(w)
	printAll(w, rep)
	if err := writeJSON(o.jsonPath, rep); err != nil {
		return rep, err
	}
	fmt.Fprintf(w, "\nwrote %s\n", o.jsonPath)
	return rep, nil
}

// customers is the customer table's size for -scale orders.
func customers(orders int64) int64 { return max(orders/10, 1) }

func met(ok bool) *bool { return &ok }

// allSQL measures the group-by and the lookup, the join on bare DuckDB,
// and, on the same platform, small-job throughput (returned apart).
func (b *bench) allSQL(ctx context.Context, o options) (figs, small []Figure, err error) {
	files := filepath.Join(b.dir, "files")
	if err := os.MkdirAll(files, 0o700); err != nil {
		return nil, nil, fmt.Errorf("create %s: %w", files, err)
	}
	peopleFile, lookupFile := filepath.Join(files, "people.parquet"), filepath.Join(files, "lookup.parquet")
	if err := b.generate(ctx, peopleFile, o.rows); err != nil {
		return nil, nil, err
	}
	if err := b.generate(ctx, lookupFile, o.lookupRows); err != nil {
		return nil, nil, err
	}
	stop, err := b.startPlatform(ctx)
	if err != nil {
		return nil, nil, err
	}
	defer stop()
	if err := b.setup(ctx, map[string]string{"people": peopleFile, "lookup": lookupFile}); err != nil {
		return nil, nil, err
	}
	queries := []QueryTimes{
		{Name: "group-by", Dataset: "people", Rows: o.rows,
			SQL: "SELECT district, count(*) AS n, avg(income) AS mean FROM people GROUP BY district ORDER BY district"},
		{Name: "lookup", Dataset: "lookup", Rows: o.lookupRows,
			SQL: "SELECT district, count(*) AS n FROM lookup WHERE income > 5000 GROUP BY district"},
	}
	for i := range queries {
		if err := b.measure(ctx, &queries[i], o.runs); err != nil {
			return nil, nil, err
		}
	}
	printReport(b.w, &Report{Queries: queries, Threads: b.threads, Memory: b.memory})
	fmt.Fprintln(b.w)

	g, l := queries[0], queries[1]
	figs = append(figs, Figure{ID: "sql.group_by.ratio", Name: fmt.Sprintf("SQL group-by, %d rows", g.Rows),
		Platform: "job end to end " + ms(median(g.Platform)), Baseline: "bare DuckDB " + ms(median(g.Raw)),
		Value: g.Ratio(), Unit: "×", Target: fmt.Sprintf("≤ %.2f×", targetGroupBy), Met: met(g.Ratio() <= targetGroupBy), Supported: true,
		Note: fmt.Sprintf("median of %d runs; paired %.2f×; sandbox run %s", len(g.Platform), g.PairedRatio(), ms(median(g.Run)))})
	figs = append(figs, Figure{ID: "sql.lookup.ratio", Name: fmt.Sprintf("SQL lookup, %d rows", l.Rows),
		Platform: "job end to end " + ms(median(l.Platform)), Baseline: "bare DuckDB " + ms(median(l.Raw)),
		Value: l.Ratio(), Unit: "×", Supported: true,
		Note: fmt.Sprintf("median of %d runs; paired %.2f×", len(l.Platform), l.PairedRatio())})

	// The join: a job reads one dataset (jobs.Request has one Dataset), so
	// the platform cannot run it; bare DuckDB alone is measured.
	f, err := b.allJoin(ctx, o.scale, o.runs)
	if err != nil {
		return nil, nil, err
	}
	figs = append(figs, f)

	b.say("== 5. Small-job throughput: %d clients submitting the lookup job for %s", o.smallClients, o.smallSeconds)
	small, err = b.allSmall(ctx, &l, o.smallClients, o.smallSeconds)
	if err != nil {
		return nil, nil, err
	}
	return figs, small, nil
}

// allJoin generates orders and customer and times the join on bare DuckDB
// with the jobs' limits.
func (b *bench) allJoin(ctx context.Context, orders int64, runs int) (Figure, error) {
	nc := customers(orders)
	files := filepath.Join(b.dir, "files")
	ordersFile, customerFile := filepath.Join(files, "orders.parquet"), filepath.Join(files, "customer.parquet")
	b.say("join: generating %d orders and %d customers", orders, nc)
	began := time.Now()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		return Figure{}, fmt.Errorf("join: open DuckDB: %w", err)
	}
	gen := []string{
		fmt.Sprintf(`COPY (
	SELECT i AS o_orderkey,
	       (hash(i * 3 + 1) %% %d)::BIGINT AS o_custkey,
	       ((hash(i * 5 + 2) %% 50000000)::DECIMAL(12,2) / 100) AS o_totalprice,
	       DATE '1992-01-01' + (hash(i * 7 + 3) %% 2400)::INTEGER AS o_orderdate
	FROM range(%d) t(i)
) TO %s (FORMAT parquet, COMPRESSION zstd)`, nc, orders, literal(ordersFile)),
		fmt.Sprintf(`COPY (
	SELECT i AS c_custkey,
	       (['AUTOMOBILE', 'BUILDING', 'FURNITURE', 'HOUSEHOLD', 'MACHINERY'])[1 + (hash(i * 11 + 4) %% 5)::INTEGER] AS c_mktsegment,
	       (hash(i * 13 + 5) %% 25)::INTEGER AS c_nationkey
	FROM range(%d) t(i)
) TO %s (FORMAT parquet, COMPRESSION zstd)`, nc, literal(customerFile)),
	}
	for _, q := range gen {
		if _, err := db.ExecContext(ctx, q); err != nil {
			db.Close()
			return Figure{}, fmt.Errorf("join: generate: %w", err)
		}
	}
	db.Close()
	b.say("  generated in %s", time.Since(began).Round(10*time.Millisecond))
	views := map[string]string{"orders": ordersFile, "customer": customerFile}
	if _, _, err := b.rawMulti(ctx, views, joinSQL); err != nil { // warm-up
		return Figure{}, err
	}
	var times []time.Duration
	var rows int64
	for i := range runs {
		n, d, err := b.rawMulti(ctx, views, joinSQL)
		if err != nil {
			return Figure{}, err
		}
		rows = n
		times = append(times, d)
		b.say("  run %d/%d: bare DuckDB %s (%d rows)", i+1, runs, ms(d), n)
	}
	m := median(times)
	return Figure{ID: "sql.join.bare_duckdb_ms", Name: fmt.Sprintf("SQL join, %d orders × %d customers", orders, nc),
		Platform: "not supported: a job reads one dataset", Baseline: "bare DuckDB " + ms(m),
		Value: float64(m) / float64(time.Millisecond), Unit: "ms (bare DuckDB)", Supported: false,
		Note: fmt.Sprintf("%d result rows; median of %d runs; no platform ratio: jobs.Request names one dataset", rows, len(times))}, nil
}

// rawMulti is raw over several Parquet files, each a view, with the jobs'
// limits; it returns the rows read and the time.
func (b *bench) rawMulti(ctx context.Context, views map[string]string, query string) (int64, time.Duration, error) {
	began := time.Now()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		return 0, 0, err
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return 0, 0, err
	}
	defer conn.Close()
	var setup []string
	for name, file := range views {
		setup = append(setup, "CREATE VIEW "+name+" AS SELECT * FROM read_parquet("+literal(file)+")")
	}
	if b.threads > 0 {
		setup = append(setup, fmt.Sprintf("SET threads = %d", b.threads))
	}
	if b.memory != "" {
		setup = append(setup, "SET memory_limit = "+literal(b.memory))
	}
	for _, s := range setup {
		if _, err := conn.ExecContext(ctx, s); err != nil {
			return 0, 0, fmt.Errorf("bare DuckDB: %s: %w", s, err)
		}
	}
	rows, err := conn.QueryContext(ctx, query)
	if err != nil {
		return 0, 0, fmt.Errorf("bare DuckDB: %w", err)
	}
	cols, err := rows.Columns()
	if err != nil {
		rows.Close()
		return 0, 0, err
	}
	vals, ptrs := make([]any, len(cols)), make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	var n int64
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			rows.Close()
			return 0, 0, err
		}
		n++
	}
	err = rows.Err()
	rows.Close()
	if err != nil {
		return 0, 0, err
	}
	conn.Close()
	db.Close()
	return n, time.Since(began), nil
}

// allSmall has clients goroutines each submit q and wait for its release
// (and read the CSV) in a loop for dur, then one client alone for a quarter
// of dur (at least a second): the first gives throughput and latency when
// jobs queue for the CPUs, the second what one job costs when none waits.
func (b *bench) allSmall(ctx context.Context, q *QueryTimes, clients int, dur time.Duration) ([]Figure, error) {
	lat, elapsed, err := b.smallJobs(ctx, q, clients, dur)
	if err != nil {
		return nil, err
	}
	p50, p99 := percentile(lat, 50), percentile(lat, 99)
	perSec := float64(len(lat)) / elapsed.Seconds()
	b.say("  %d jobs in %s: %.1f jobs/s, p50 %s, p99 %s", len(lat), elapsed.Round(10*time.Millisecond), perSec, ms(p50), ms(p99))
	note := fmt.Sprintf("%d jobs by %d clients in %s; latency is submit → released → CSV read", len(lat), clients, elapsed.Round(10*time.Millisecond))
	plat := fmt.Sprintf("%d clients, lookup job", clients)

	alone := max(dur/4, time.Second)
	b.say("   … and one client alone for %s", alone)
	one, oneElapsed, err := b.smallJobs(ctx, q, 1, alone)
	if err != nil {
		return nil, err
	}
	oneP50 := percentile(one, 50)
	b.say("  %d jobs in %s: p50 %s", len(one), oneElapsed.Round(10*time.Millisecond), ms(oneP50))
	return []Figure{
		{ID: "small_jobs.throughput", Name: "Small-job throughput", Platform: plat, Value: perSec, Unit: "jobs/s", Supported: true, Note: note},
		{ID: "small_jobs.p50_ms", Name: "Small-job latency p50", Platform: plat, Value: msf(p50), Unit: "ms",
			Target: fmt.Sprintf("≤ %.0f ms", targetSmallP50MS), Met: met(msf(p50) <= targetSmallP50MS), Supported: true, Note: note},
		{ID: "small_jobs.p99_ms", Name: "Small-job latency p99", Platform: plat, Value: msf(p99), Unit: "ms", Supported: true, Note: note},
		{ID: "small_jobs.alone_p50_ms", Name: "Small-job latency p50, one client", Platform: "1 client, lookup job", Value: msf(oneP50), Unit: "ms", Supported: true,
			Note: fmt.Sprintf("%d jobs in %s, none waiting for another", len(one), oneElapsed.Round(10*time.Millisecond))},
	}, nil
}

// smallJobs has clients goroutines each submit q and wait for its release
// (and read the CSV) in a loop for dur, and returns the latencies, sorted,
// and the time taken.
func (b *bench) smallJobs(ctx context.Context, q *QueryTimes, clients int, dur time.Duration) ([]time.Duration, time.Duration, error) {
	var (
		mu   sync.Mutex
		lat  []time.Duration
		errs []error
		wg   sync.WaitGroup
	)
	began := time.Now()
	deadline := began.Add(dur)
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				mu.Lock()
				n := len(lat)
				mu.Unlock()
				b.say("  … %d jobs released so far", n)
			}
		}
	}()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) && ctx.Err() == nil {
				_, d, err := b.platform(ctx, q)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
					mu.Unlock()
					return
				}
				lat = append(lat, d)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(done)
	elapsed := time.Since(began)
	if len(errs) > 0 {
		return nil, 0, fmt.Errorf("small jobs: %w", errs[0])
	}
	if len(lat) == 0 {
		return nil, 0, fmt.Errorf("small jobs: no job finished in %s", dur)
	}
	slices.Sort(lat)
	return lat, elapsed, nil
}

// percentile is the p-th percentile of sorted s (nearest rank).
func percentile(s []time.Duration, p int) time.Duration {
	i := len(s) * p / 100
	if i >= len(s) {
		i = len(s) - 1
	}
	return s[i]
}

// dur is ms, with microseconds below a millisecond.
func dur(d time.Duration) string {
	if d < time.Millisecond {
		return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond))
	}
	return ms(d)
}

func msf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// admissionInput is a realistic admission fact sheet, as in
// policies/bench_test.go: four fields, three agreements, two of them
// unusable (one revoked, one for another purpose).
func admissionInput() policies.AdmissionInput {
	agreement := func() policies.Agreement {
		return policies.Agreement{ID: 7, Kind: "data-use", Provider: "Hangzhou Civil Affairs",
			Fields:   map[string]string{"district": "raw", "income": "raw", "id_number": "hashed"},
			Purposes: []string{"Elderly care planning"}, Status: "active",
			ValidFrom: "2026-01-01T00:00:00+08:00", ValidUntil: "2027-01-01T00:00:00+08:00"}
	}
	revoked, other := agreement(), agreement()
	revoked.ID, revoked.Status = 3, "revoked"
	other.ID, other.Purposes = 5, []string{"traffic planning"}
	return policies.AdmissionInput{
		Now:       time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC),
		Principal: policies.Principal{Name: "acme", Roles: []string{"operator"}},
		Dataset: policies.Dataset{Name: "population", Version: "abcdef0123456789", Open: "conditional", Grade: "important", Status: "active", VersionStatus: "active", Fields: []policies.Field{
			{Name: "id_number", Sensitivity: "personal-sensitive", Identifier: "direct"},
			{Name: "name", Sensitivity: "personal", Identifier: "direct"},
			{Name: "district", Sensitivity: "internal", Identifier: "quasi"},
			{Name: "income", Sensitivity: "sensitive", Identifier: "none"},
		}},
		Agreements: []policies.Agreement{revoked, other, agreement()},
		Job: policies.Job{Kind: "sql", Purpose: "elderly care planning ", Fields: []string{"district", "income"}, Aggregate: true,
			Outputs: []policies.Output{{Name: "district", Fields: []string{"district"}}, {Name: "mean", Fields: []string{"income"}, Aggregated: true}}},
	}
}

// allAdmission times n admission decisions.
func (b *bench) allAdmission(ctx context.Context, n int) ([]Figure, error) {
	began := time.Now()
	e, err := policies.Default(ctx)
	if err != nil {
		return nil, fmt.Errorf("admission: load the policy bundle: %w", err)
	}
	b.say("  bundle compiled in %s", time.Since(began).Round(time.Millisecond))
	in := admissionInput()
	if d, err := e.Admit(ctx, in); err != nil || !d.Allow {
		return nil, fmt.Errorf("admission: the benchmark input is not admitted: %+v %v", d, err)
	}
	lat := make([]time.Duration, 0, n)
	for range n {
		t := time.Now()
		if _, err := e.Admit(ctx, in); err != nil {
			return nil, fmt.Errorf("admission: %w", err)
		}
		lat = append(lat, time.Since(t))
	}
	slices.Sort(lat)
	p50, p99 := percentile(lat, 50), percentile(lat, 99)
	b.say("  %d decisions: p50 %s, p99 %s", n, ms(p50), ms(p99))
	note := fmt.Sprintf("%d decisions, Engine.Admit, 4 fields, 3 agreements (2 unusable)", n)
	return []Figure{
		{ID: "admission.p50_ms", Name: "Admission decision p50", Platform: "policies.Default bundle", Value: msf(p50), Unit: "ms", Supported: true, Note: note},
		{ID: "admission.p99_ms", Name: "Admission decision p99", Platform: "policies.Default bundle", Value: msf(p99), Unit: "ms",
			Target: fmt.Sprintf("≤ %.0f ms", targetAdmitP99), Met: met(msf(p99) <= targetAdmitP99), Supported: true, Note: note},
	}, nil
}

// benchEvent is the event the append benchmark writes (as audit's own
// benchmarks do).
var benchEvent = audit.Event{
	Kind:      "job.submitted",
	Principal: "operator/7",
	Subject:   "job/42",
	Data:      map[string]any{"dataset": "population@v3", "purpose": "statistics"},
}

const benchOrigin = "datasandbox.bench/audit"

// allAppend appends from writers goroutines to a fresh durable log for
// about dur.
func (b *bench) allAppend(ctx context.Context, writers int, dur time.Duration, dir string) (Figure, error) {
	l, err := audit.Open(dir, benchOrigin)
	if err != nil {
		return Figure{}, err
	}
	defer l.Close()
	// The earlier figures leave hundreds of MB of files for the kernel to
	// write back, and an fsync may wait for them: flush them first.
	syscall.Sync()
	var n atomic.Int64
	var firstErr atomic.Pointer[error]
	var wg sync.WaitGroup
	began := time.Now()
	deadline := began.Add(dur)
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) && ctx.Err() == nil {
				if _, err := l.Append(ctx, benchEvent); err != nil {
					firstErr.CompareAndSwap(nil, &err)
					return
				}
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(began)
	if p := firstErr.Load(); p != nil {
		return Figure{}, fmt.Errorf("audit append: %w", *p)
	}
	perSec := float64(n.Load()) / elapsed.Seconds()
	b.say("  %d durable appends in %s: %.0f events/s", n.Load(), elapsed.Round(10*time.Millisecond), perSec)
	return Figure{ID: "audit.append.events_per_s", Name: fmt.Sprintf("Audit durable appends, %d writers", writers),
		Platform: "audit.Log.Append (fsynced)", Value: perSec, Unit: "events/s",
		Target: fmt.Sprintf("≥ %d events/s", targetAppend), Met: met(perSec >= targetAppend), Supported: true,
		Note: fmt.Sprintf("%d events in %s", n.Load(), elapsed.Round(10*time.Millisecond))}, nil
}

// allVerify builds n records in memory as Append stores them, signs a
// checkpoint over them and times audit.Verify.
func (b *bench) allVerify(n int64) (Figure, error) {
	began := time.Now()
	start := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	records, root, err := audittest.Records(n, func(i int64) audit.Entry {
		return audit.Entry{
			Time:      start.Add(time.Duration(i) * time.Millisecond),
			Kind:      "job.submitted",
			Principal: "operator/7",
			Subject:   "job/" + strconv.FormatInt(i, 10),
			Data:      json.RawMessage(`{"dataset":"population@v3","rows":` + strconv.FormatInt(i, 10) + `}`),
		}
	})
	if err != nil {
		return Figure{}, fmt.Errorf("audit verify: build records: %w", err)
	}
	cp, vkey, err := audittest.SignCheckpoint(audit.Checkpoint{Origin: benchOrigin, Size: n, Root: root})
	if err != nil {
		return Figure{}, fmt.Errorf("audit verify: sign: %w", err)
	}
	b.say("  built %d records in memory in %s; verifying", n, time.Since(began).Round(10*time.Millisecond))
	runtime.GC()
	t := time.Now()
	r, err := audit.Verify(records, cp, vkey)
	d := time.Since(t)
	if err != nil {
		return Figure{}, fmt.Errorf("audit verify: %w", err)
	}
	if r.Size != n {
		return Figure{}, fmt.Errorf("audit verify: verified %d entries, want %d", r.Size, n)
	}
	b.say("  verified %d entries in %s", n, ms(d))
	return Figure{ID: "audit.verify.seconds", Name: fmt.Sprintf("Audit verification, %d entries", n),
		Platform: "audit.Verify (offline)", Value: d.Seconds(), Unit: "s",
		Target: fmt.Sprintf("≤ %.0f s", targetVerify), Met: met(d.Seconds() <= targetVerify), Supported: true,
		Note: "records built in memory as Append stores them, signed checkpoint"}, nil
}

// machine describes this machine.
func machine() Machine {
	return Machine{CPUs: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), MemTotal: memTotal(),
		OS: runtime.GOOS, Arch: runtime.GOARCH, Go: runtime.Version()}
}

// memTotal is /proc/meminfo's MemTotal in bytes, or 0.
func memTotal() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) >= 2 && fs[0] == "MemTotal:" {
			kb, err := strconv.ParseInt(fs[1], 10, 64)
			if err != nil {
				return 0
			}
			return kb * 1024
		}
	}
	return 0
}

// printAll writes the summary table.
func printAll(w io.Writer, rep *AllReport) {
	m := rep.Machine
	mem := "unknown"
	if m.MemTotal > 0 {
		mem = fmt.Sprintf("%.1f GB", float64(m.MemTotal)/(1<<30))
	}
	fmt.Fprintf(w, "dsbx-bench -all: %d CPUs (GOMAXPROCS %d), %s memory, %s/%s, %s; whole run %.0f s\n\n",
		m.CPUs, m.GOMAXPROCS, mem, m.OS, m.Arch, m.Go, rep.Seconds)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "figure\tplatform\tbaseline\tratio or value\ttarget\tmet")
	for _, f := range rep.Figures {
		base := f.Baseline
		if base == "" {
			base = "—"
		}
		target, verdict := f.Target, "—"
		if target == "" {
			target = "—"
		}
		if f.Met != nil {
			verdict = "not met"
			if *f.Met {
				verdict = "met"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", f.Name, f.Platform, base, value(f), target, verdict)
	}
	tw.Flush()
	fmt.Fprintln(w)
	for _, f := range rep.Figures {
		if f.Note != "" {
			fmt.Fprintf(w, "%s: %s\n", f.Name, f.Note)
		}
	}
}

// value formats a figure's value with its unit.
func value(f Figure) string {
	if !f.Supported && f.Value == 0 {
		return "—"
	}
	switch f.Unit {
	case "×":
		return fmt.Sprintf("%.2f×", f.Value)
	case "events/s", "jobs/s":
		if f.Value >= 100 {
			return fmt.Sprintf("%.0f %s", f.Value, f.Unit)
		}
		return fmt.Sprintf("%.1f %s", f.Value, f.Unit)
	case "s":
		return fmt.Sprintf("%.2f s", f.Value)
	default:
		if f.Value < 10 {
			return fmt.Sprintf("%.3f %s", f.Value, f.Unit)
		}
		return fmt.Sprintf("%.1f %s", f.Value, f.Unit)
	}
}

// writeJSON writes rep to path, creating its directory.
func writeJSON(path string, rep *AllReport) error {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("-json %s: %w", path, err)
		}
	}
	data, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("-json %s: %w", path, err)
	}
	return nil
}
