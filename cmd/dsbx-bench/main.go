// Command dsbx-bench measures what the platform costs on top of DuckDB: it
// times a job end to end (submit, admission, sandbox run, output checks,
// release, CSV delivery) against raw DuckDB running the same query over the
// same Parquet snapshot, side by side in one run, for a large group-by and
// for a small lookup. The machine may be shared and noisy, so the two are
// alternated and the ratio of the two times is the figure to read, not the
// absolute times.
//
//	go run -tags duckdb_arrow ./cmd/dsbx-bench [-rows 10000000] [-lookup-rows 1000] [-runs 5] [-keep DIR]
//
// The platform runs in-process exactly as `dsbx serve` runs it (server.Open
// and Serve on a loopback port) and is driven through the Go client, so the
// end-to-end time includes HTTP, the client's polling and the CSV download.
//
// With -wasm it instead measures a WebAssembly job against native Go: the
// sdk/go/examples/colsum guest (built from the repository with the Go
// toolchain, for GOOS=wasip1) summing an int64 column under wasm.Run, next
// to native Go summing the same arrays in memory and decoding the same Arrow
// IPC stream (see wasm.go):
//
//	go run -tags duckdb_arrow ./cmd/dsbx-bench -wasm [-rows 10000000] [-runs 5] [-repo DIR]
//
// With -all it measures every figure the project states a target for in
// one run (see all.go): the two SQL queries against bare DuckDB and a join
// of two generated tables (on bare DuckDB only: a job reads one dataset),
// the Wasm column sum against native Go, admission decision latency with
// the real policy bundle, durable audit appends from concurrent writers and
// offline verification of a large log, and small-job throughput and latency
// from concurrent clients. It prints one table (figure, platform, baseline,
// ratio or value, target, met or not met) with the machine's cores and
// memory and writes the same as JSON; a target not met never fails the run:
//
//	go run -tags duckdb_arrow ./cmd/dsbx-bench -all [-json bench/results.json] [-rows 10000000] [-scale 1000000]
//	    [-admissions 10000] [-append-writers 32] [-append-seconds 3] [-verify-entries 1000000]
//	    [-small-clients 8] [-small-seconds 20]
package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"

	"github.com/datasandbox/dsbx/client"
	"github.com/datasandbox/dsbx/datasets"
	"github.com/datasandbox/dsbx/disclosure"
	"github.com/datasandbox/dsbx/jobs"
	"github.com/datasandbox/dsbx/operators"
	"github.com/datasandbox/dsbx/server"
	"github.com/datasandbox/dsbx/state"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if _, err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "dsbx-bench:", err)
		os.Exit(1)
	}
}

// options are the command's flags.
type options struct {
	rows       int64
	lookupRows int64
	runs       int
	keep       string
	wasm       bool   // the Wasm benchmark instead (wasm.go)
	repo       string // repository root for -wasm; default found from the working directory
	cpuProfile string // write a CPU profile of this process (the platform, not its workers) here

	// -all (all.go)
	all           bool
	jsonPath      string
	scale         int64 // orders of the join; customers are a tenth
	admissions    int
	appendWriters int
	appendSeconds time.Duration
	verifyEntries int64
	smallClients  int
	smallSeconds  time.Duration
	nodes         []int  // -nodes: node counts to measure throughput with
	state         string // -state: PostgreSQL server for -nodes
}

// minRows keeps every district cell of both queries above the platform's
// minimum cell count (10), so the jobs are released, not held.
const minRows = 200

func parseFlags(args []string, out io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("dsbx-bench", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Int64Var(&o.rows, "rows", 10_000_000, "rows of the people register the group-by query scans")
	fs.Int64Var(&o.lookupRows, "lookup-rows", 1000, "rows of the lookup register the lookup query scans")
	fs.IntVar(&o.runs, "runs", 5, "timed runs of each query on each side (after one untimed warm-up)")
	fs.StringVar(&o.keep, "keep", "", "directory to use and keep (generated files and the platform's data directory); default a temporary directory, removed at the end")
	fs.BoolVar(&o.wasm, "wasm", false, "instead, time a Wasm job (the colsum guest under wasm.Run) summing an int64 column of -rows rows against native Go")
	fs.StringVar(&o.repo, "repo", "", "with -wasm: the repository root to build the guest from; default the directory above the working directory holding its go.mod")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of this process (the server and the bare engines; job workers are processes of their own) to this file, for go tool pprof")
	fs.BoolVar(&o.all, "all", false, "instead, measure every figure with a target in one run (SQL, join, Wasm, admission, audit, small jobs), print one table and write it as JSON to -json")
	fs.StringVar(&o.jsonPath, "json", filepath.Join("bench", "results.json"), "with -all: the JSON file to write (its directory is created)")
	fs.Int64Var(&o.scale, "scale", 1_000_000, "with -all: orders of the generated join (customers are a tenth)")
	fs.IntVar(&o.admissions, "admissions", 10_000, "with -all: admission decisions to time")
	fs.IntVar(&o.appendWriters, "append-writers", 32, "with -all: concurrent audit writers")
	appendSeconds := fs.Float64("append-seconds", 3, "with -all: seconds of concurrent durable audit appends")
	fs.Int64Var(&o.verifyEntries, "verify-entries", 1_000_000, "with -all: audit entries to verify")
	fs.IntVar(&o.smallClients, "small-clients", 8, "with -all: concurrent clients submitting the small (lookup) job")
	smallSeconds := fs.Float64("small-seconds", 20, "with -all: seconds the small-job clients run")
	nodes := fs.String("nodes", "", "instead, measure small-job throughput with these numbers of job nodes, e.g. 1,2,3 (needs -state)")
	fs.StringVar(&o.state, "state", os.Getenv("DSBX_STATE"), "with -nodes: a PostgreSQL server's URL (postgres://…); a database is created on it and dropped after (default $DSBX_STATE)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: dsbx-bench [-rows N] [-lookup-rows N] [-runs N] [-keep DIR]")
		fmt.Fprintln(fs.Output(), "       dsbx-bench -wasm [-rows N] [-runs N] [-keep DIR] [-repo DIR]")
		fmt.Fprintln(fs.Output(), "       dsbx-bench -nodes 1,2,3 -state postgres://… [-small-clients N] [-small-seconds S]")
		fmt.Fprintln(fs.Output(), "       dsbx-bench -all [-json FILE] [-rows N] [-scale N] [-admissions N] [-append-seconds S] [-verify-entries N] [-small-seconds S] ...")
		fmt.Fprintln(fs.Output(), "Times platform jobs end to end against raw DuckDB on the same query and snapshot,")
		fmt.Fprintln(fs.Output(), "or, with -wasm, a Wasm job against native Go on the same column sum,")
		fmt.Fprintln(fs.Output(), "or, with -all, every figure with a target, as a table and JSON.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q; all settings are flags (-h lists them)", fs.Args())
	}
	if o.rows < minRows || o.lookupRows < minRows {
		return o, fmt.Errorf("-rows and -lookup-rows must be at least %d, so that every district has enough records for the output check to release the result", minRows)
	}
	if o.runs < 1 {
		return o, fmt.Errorf("-runs must be at least 1")
	}
	if *nodes != "" {
		for _, f := range strings.Split(*nodes, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				return o, fmt.Errorf("-nodes %q: give node counts of at least 1, separated by commas, e.g. 1,2,3", *nodes)
			}
			o.nodes = append(o.nodes, n)
		}
		if !state.IsURL(o.state) {
			return o, fmt.Errorf("-nodes needs -state postgres://… (or DSBX_STATE): job nodes share a PostgreSQL state")
		}
		if o.all || o.wasm {
			return o, fmt.Errorf("-nodes is a run of its own; leave out -all and -wasm")
		}
	}
	o.appendSeconds = time.Duration(*appendSeconds * float64(time.Second))
	o.smallSeconds = time.Duration(*smallSeconds * float64(time.Second))
	if o.all {
		if o.wasm {
			return o, fmt.Errorf("-all already includes -wasm; give one of them")
		}
		if o.scale < 10 || o.admissions < 1 || o.appendWriters < 1 || o.appendSeconds <= 0 || o.verifyEntries < 1 || o.smallClients < 1 || o.smallSeconds <= 0 {
			return o, fmt.Errorf("-scale must be at least 10, and -admissions, -append-writers, -append-seconds, -verify-entries, -small-clients and -small-seconds positive")
		}
		if o.jsonPath == "" {
			return o, fmt.Errorf("-json must name a file")
		}
	}
	return o, nil
}

// Report is what one benchmark run measured.
type Report struct {
	Queries []QueryTimes
	// Threads and Memory are the job limits the policy set; raw DuckDB runs
	// with the same.
	Threads int
	Memory  string
}

// QueryTimes are the timed runs of one query, in run order.
type QueryTimes struct {
	Name    string
	Dataset string
	Rows    int64 // rows of the dataset
	SQL     string
	// Platform is submit → released → CSV fully read, as a client sees it.
	Platform []time.Duration
	// Server is the job's own created_at → released (no HTTP, no polling,
	// no download).
	Server []time.Duration
	// Run is the sandbox run's wall time as the job reports it.
	Run []time.Duration
	// Raw is a fresh in-memory DuckDB running the query over the snapshot
	// and reading every row.
	Raw []time.Duration
}

// Ratio is the median platform time over the median raw DuckDB time.
func (q QueryTimes) Ratio() float64 { return ratio(median(q.Platform), median(q.Raw)) }

// MinRatio is the fastest platform time over the fastest raw time.
func (q QueryTimes) MinRatio() float64 { return ratio(slices.Min(q.Platform), slices.Min(q.Raw)) }

// PairedRatio is the median over runs of platform time / raw time of the
// same run: the two ran back to back, so load on a shared machine hits
// both alike.
func (q QueryTimes) PairedRatio() float64 {
	rs := make([]float64, len(q.Platform))
	for i := range rs {
		rs[i] = ratio(q.Platform[i], q.Raw[i])
	}
	return median(rs)
}

func ratio(a, b time.Duration) float64 {
	if b <= 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func median[T time.Duration | float64](ds []T) T {
	s := slices.Clone(ds)
	slices.Sort(s)
	n := len(s)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// minus returns a[i]-b[i] for each run.
func minus(a, b []time.Duration) []time.Duration {
	out := make([]time.Duration, len(a))
	for i := range a {
		out[i] = a[i] - b[i]
	}
	return out
}

// bench holds the running platform and the tool's output.
type bench struct {
	w        io.Writer
	start    time.Time
	dir      string // work directory
	data     string // the platform's data directory
	base     string
	operator *client.Client
	provider *client.Client
	threads  int
	memory   string
}

const (
	purpose = "platform overhead benchmark"
	agency  = "Benchmark Registry Office"
)

// districts are Hangzhou's ten districts.
var districts = []string{"上城区", "拱墅区", "西湖区", "滨江区", "萧山区", "余杭区", "富阳区", "临安区", "临平区", "钱塘区"}

// run parses args, runs the benchmark and prints progress and the report
// table to w.
func run(ctx context.Context, args []string, w io.Writer) (*Report, error) {
	o, err := parseFlags(args, w)
	if err != nil {
		return nil, err
	}
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return nil, fmt.Errorf("-cpuprofile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return nil, fmt.Errorf("-cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	if o.wasm {
		_, err := runWasm(ctx, o, w)
		return nil, err
	}
	if o.all {
		_, err := runAll(ctx, o, w)
		return nil, err
	}
	if len(o.nodes) > 0 {
		_, err := runNodes(ctx, o, w)
		return nil, err
	}
	b := &bench{w: w, start: time.Now()}
	dir, done, err := workDir(o.keep, "dsbx-bench-")
	if err != nil {
		return nil, err
	}
	defer done()
	b.dir = dir
	b.say("dsbx-bench: %d-row group-by and %d-row lookup, %d timed runs each, %d CPUs (GOMAXPROCS %d); work directory %s",
		o.rows, o.lookupRows, o.runs, runtime.NumCPU(), runtime.GOMAXPROCS(0), b.dir)

	files := filepath.Join(b.dir, "files")
	if err := os.MkdirAll(files, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", files, err)
	}
	peopleFile, lookupFile := filepath.Join(files, "people.parquet"), filepath.Join(files, "lookup.parquet")
	if err := b.generate(ctx, peopleFile, o.rows); err != nil {
		return nil, err
	}
	if err := b.generate(ctx, lookupFile, o.lookupRows); err != nil {
		return nil, err
	}

	stop, err := b.startPlatform(ctx)
	if err != nil {
		return nil, err
	}
	defer stop()
	if err := b.setup(ctx, map[string]string{"people": peopleFile, "lookup": lookupFile}); err != nil {
		return nil, err
	}

	queries := []QueryTimes{
		{Name: "group-by", Dataset: "people", Rows: o.rows,
			SQL: "SELECT district, count(*) AS n, avg(income) AS mean FROM people GROUP BY district ORDER BY district"},
		{Name: "lookup", Dataset: "lookup", Rows: o.lookupRows,
			SQL: "SELECT district, count(*) AS n FROM lookup WHERE income > 5000 GROUP BY district"},
	}
	rep := &Report{}
	for i := range queries {
		if err := b.measure(ctx, &queries[i], o.runs); err != nil {
			return nil, err
		}
	}
	rep.Queries, rep.Threads, rep.Memory = queries, b.threads, b.memory
	b.say("done")
	fmt.Fprintln(w)
	printReport(w, rep)
	return rep, nil
}

// workDir returns the directory a run works in: keep, which must be empty
// (see emptyDir), or a new temporary one named after prefix that done
// removes.
func workDir(keep, prefix string) (dir string, done func(), err error) {
	if keep != "" {
		return keep, func() {}, emptyDir(keep)
	}
	tmp, err := os.MkdirTemp("", prefix)
	if err != nil {
		return "", nil, fmt.Errorf("create a temporary directory: %w (set TMPDIR to a writable directory or give -keep DIR)", err)
	}
	return tmp, func() { os.RemoveAll(tmp) }, nil
}

// emptyDir makes sure dir exists and holds nothing, so a kept directory
// never mixes two runs.
func emptyDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("-keep %s: %w", dir, err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("-keep %s: %w", dir, err)
	}
	if len(ents) > 0 {
		return fmt.Errorf("-keep %s is not empty (it may hold an earlier run); remove it or name a new directory", dir)
	}
	return nil
}

// say prints a progress line with the time since the start.
func (b *bench) say(format string, args ...any) {
	fmt.Fprintf(b.w, "[%6.1fs] %s\n", time.Since(b.start).Seconds(), fmt.Sprintf(format, args...))
}

// ticking runs fn, printing a line every 10 s while it lasts.
func (b *bench) ticking(what string, fn func() error) error {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		began := time.Now()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				b.say("  … still %s (%s)", what, time.Since(began).Round(time.Second))
			}
		}
	}()
	err := fn()
	close(done)
	return err
}

// generate writes a people register of n rows to path as Parquet, made in
// DuckDB from range() for speed. The values are deterministic.
func (b *bench) generate(ctx context.Context, path string, n int64) error {
	b.say("generating %d rows into %s", n, filepath.Base(path))
	began := time.Now()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		return fmt.Errorf("generate data: open DuckDB: %w", err)
	}
	defer db.Close()
	list := make([]string, len(districts))
	for i, d := range districts {
		list[i] = literal(d)
	}
	// Values come from hashes of the row number: spread evenly, the same
	// on every run.
	q := fmt.Sprintf(`COPY (
	SELECT printf('3301%%014d', i) AS id_number,
	       ([%s])[1 + (hash(i) %% 10)::INTEGER] AS district,
	       (hash(i * 7 + 1) %% 100000)::INTEGER AS income,
	       DATE '1940-01-01' + (hash(i * 13 + 2) %% 25000)::INTEGER AS birth_date
	FROM range(%d) t(i)
) TO %s (FORMAT parquet, COMPRESSION zstd)`, strings.Join(list, ", "), n, literal(path))
	err = b.ticking("generating "+filepath.Base(path), func() error {
		_, err := db.ExecContext(ctx, q)
		return err
	})
	if err != nil {
		return fmt.Errorf("generate %s: %w (is there space in %s?)", path, err, filepath.Dir(path))
	}
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("generate %s: %w", path, err)
	}
	b.say("  %s: %d rows, %.1f MB in %s", filepath.Base(path), n, float64(st.Size())/(1<<20), time.Since(began).Round(10*time.Millisecond))
	return nil
}

// startPlatform opens the platform as `dsbx serve` does and serves it on a
// loopback port. stop shuts it down.
func (b *bench) startPlatform(ctx context.Context) (stop func(), err error) {
	b.data = filepath.Join(b.dir, "data")
	srv, err := server.Open(ctx, server.Config{Data: b.data, Workers: 2})
	if err != nil {
		return nil, fmt.Errorf("open the platform in %s: %w", b.data, err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		srv.Close()
		return nil, fmt.Errorf("listen on a loopback port: %w", err)
	}
	sctx, cancel := context.WithCancel(ctx)
	served := make(chan struct{})
	go func() { srv.Serve(sctx, l); close(served) }()
	b.base = "http://" + l.Addr().String()
	b.say("platform serving at %s, data directory %s", b.base, b.data)
	return func() {
		cancel()
		<-served
		srv.Close()
	}, nil
}

// setup has the admin add a provider and an operator, the provider
// catalogue and import both registers, and the operator obtain an
// agreement for both.
func (b *bench) setup(ctx context.Context, files map[string]string) error {
	tok, err := os.ReadFile(filepath.Join(b.data, server.AdminTokenFile))
	if err != nil {
		return fmt.Errorf("read the admin token: %w", err)
	}
	admin := client.New(b.base, strings.TrimSpace(string(tok)))
	_, issued, err := admin.AddPrincipal(ctx, operators.NewPrincipal{Name: "bench-provider", Roles: []string{operators.RoleProvider}, Organization: agency})
	if err != nil {
		return fmt.Errorf("add the provider: %w", err)
	}
	b.provider = client.New(b.base, issued.Token)
	_, issued, err = admin.AddPrincipal(ctx, operators.NewPrincipal{Name: "bench-operator", Roles: []string{operators.RoleOperator}, Organization: "Benchmark Analytics Co."})
	if err != nil {
		return fmt.Errorf("add the operator: %w", err)
	}
	b.operator = client.New(b.base, issued.Token)

	for _, name := range []string{"people", "lookup"} {
		if _, err := b.provider.CreateDataset(ctx, spec(name)); err != nil {
			return fmt.Errorf("create dataset %s: %w", name, err)
		}
		b.say("importing %s", filepath.Base(files[name]))
		began, phase, since := time.Now(), "", time.Now()
		var imp datasets.Imported
		err := b.ticking("importing "+name, func() error {
			var err error
			imp, err = b.provider.ImportVersion(ctx, name, datasets.Source{}, files[name], func(st datasets.Step) {
				if st.Phase != phase {
					if phase != "" {
						b.say("  %s: %s done in %s", name, phase, time.Since(since).Round(10*time.Millisecond))
					}
					phase, since = st.Phase, time.Now()
				}
			})
			return err
		})
		if err != nil {
			return fmt.Errorf("import %s into dataset %s: %w", files[name], name, err)
		}
		if phase != "" {
			b.say("  %s: %s done in %s", name, phase, time.Since(since).Round(10*time.Millisecond))
		}
		b.say("  %s: version %s, %d rows, %.1f MB snapshot, imported in %s", name, imp.Version.ID[:12], imp.Version.Rows, float64(imp.Version.Bytes)/(1<<20), time.Since(began).Round(10*time.Millisecond))
	}

	app, err := b.operator.Apply(ctx, operators.Request{
		Datasets: []operators.DatasetRequest{
			{Dataset: "people", Fields: []string{"district", "income", "birth_date"}},
			{Dataset: "lookup", Fields: []string{"district", "income", "birth_date"}},
		},
		Purpose:    purpose,
		ValidUntil: time.Now().In(operators.Zone).AddDate(1, 0, 0).Format(operators.DateLayout),
	})
	if err != nil {
		return fmt.Errorf("operator applies for people and lookup: %w", err)
	}
	_, a, err := b.provider.Approve(ctx, app.ID, operators.Approval{})
	if err != nil {
		return fmt.Errorf("provider approves application %d: %w", app.ID, err)
	}
	b.say("agreement %d: %s may use district, income, birth_date of people and lookup", a.ID, a.Holder)
	return nil
}

// spec is the catalog entry of a benchmark register.
func spec(name string) datasets.Spec {
	return datasets.Spec{
		Name: name, Title: "Generated people register (" + name + ")", Agency: agency,
		Grade: datasets.GradeGeneral, Open: datasets.OpenConditional,
		LegalBasis: "benchmark data: generated, opened only under an agreement like real personal data",
		Fields: []datasets.Field{
			{Name: "id_number", Sensitivity: "personal-sensitive", Identifier: datasets.IdentifierDirect},
			{Name: "district", Sensitivity: "internal", Identifier: datasets.IdentifierQuasi},
			{Name: "income", Sensitivity: "sensitive", Identifier: datasets.IdentifierNone},
			{Name: "birth_date", Sensitivity: "personal", Identifier: datasets.IdentifierQuasi},
		},
	}
}

// measure runs q once untimed on each side, then runs timed runs,
// alternating which side goes first.
func (b *bench) measure(ctx context.Context, q *QueryTimes, runs int) error {
	b.say("%s: %s", q.Name, q.SQL)
	j, _, err := b.platform(ctx, q)
	if err != nil {
		return err
	}
	snapshot := filepath.Join(b.data, "datasets", q.Dataset, j.Version+".parquet")
	if _, err := os.Stat(snapshot); err != nil {
		return fmt.Errorf("%s: the snapshot job %d ran on is not at %s (%v); has the catalog's layout (DATA/datasets/NAME/VERSION.parquet) changed?", q.Name, j.ID, snapshot, err)
	}
	if j.Decision != nil {
		b.threads, b.memory = j.Decision.Limits.Threads, j.Decision.Limits.Memory
	}
	rawRows, _, err := b.raw(ctx, q, snapshot)
	if err != nil {
		return err
	}
	if j.Result == nil || rawRows != j.Result.Rows {
		return fmt.Errorf("%s: raw DuckDB returned %d rows but job %d released %+v; the two sides do not run the same query", q.Name, rawRows, j.ID, j.Result)
	}
	b.say("  warm-up done: job %d released %d rows; raw DuckDB agrees", j.ID, rawRows)

	for i := 0; i < runs; i++ {
		var p, s, r, raw time.Duration
		var id int64
		platformRun := func() error {
			j, total, err := b.platform(ctx, q)
			if err != nil {
				return err
			}
			id, p, s, r = j.ID, total, j.UpdatedAt.Sub(j.CreatedAt), time.Duration(j.Run.WallMS)*time.Millisecond
			return nil
		}
		rawRun := func() (err error) {
			_, raw, err = b.raw(ctx, q, snapshot)
			return err
		}
		first, second := platformRun, rawRun
		if i%2 == 1 {
			first, second = rawRun, platformRun
		}
		if err := first(); err != nil {
			return err
		}
		if err := second(); err != nil {
			return err
		}
		q.Platform, q.Server, q.Run, q.Raw = append(q.Platform, p), append(q.Server, s), append(q.Run, r), append(q.Raw, raw)
		b.say("  run %d/%d: platform %s (job %d: run %s, server %s), raw DuckDB %s, ratio %.1f×",
			i+1, runs, ms(p), id, ms(r), ms(s), ms(raw), ratio(p, raw))
	}
	return nil
}

// platform runs q as a job end to end: submit, wait for the release, read
// the CSV result to its end. It returns the released job (as Wait saw it,
// before the download) and the total time.
func (b *bench) platform(ctx context.Context, q *QueryTimes) (jobs.Job, time.Duration, error) {
	began := time.Now()
	j, err := b.operator.Submit(ctx, jobs.Request{Dataset: q.Dataset, SQL: q.SQL, Purpose: purpose})
	if err != nil {
		return j, 0, fmt.Errorf("%s: submit: %w", q.Name, err)
	}
	if !jobs.Final(j.State) {
		wctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		j, err = b.operator.Wait(wctx, j.ID)
		cancel()
		if err != nil {
			return j, 0, fmt.Errorf("%s: wait for job %d: %w", q.Name, j.ID, err)
		}
	}
	if j.State != jobs.StateReleased {
		return j, 0, fmt.Errorf("%s: job %d ended %s, not released: %s", q.Name, j.ID, j.State, why(j))
	}
	var lines lineCounter
	if err := b.operator.FetchResult(ctx, j.ID, jobs.FormatCSV, &lines); err != nil {
		return j, 0, fmt.Errorf("%s: fetch the result of job %d: %w", q.Name, j.ID, err)
	}
	total := time.Since(began)
	if j.Run == nil || j.Result == nil {
		return j, 0, fmt.Errorf("%s: released job %d reports no run or result; the job record's shape has changed", q.Name, j.ID)
	}
	if got := lines.n - 1; got != j.Result.Rows {
		return j, 0, fmt.Errorf("%s: job %d's CSV has %d data lines, the job reports %d rows", q.Name, j.ID, got, j.Result.Rows)
	}
	return j, total, nil
}

// why explains a job that was not released.
func why(j jobs.Job) string {
	var parts []string
	if j.Decision != nil {
		for _, r := range j.Decision.Reasons {
			parts = append(parts, "policy: "+r.Code+": "+r.Message)
		}
	}
	for _, ch := range j.Checks {
		if ch.Verdict != disclosure.Pass {
			parts = append(parts, "check "+ch.Check+": "+string(ch.Verdict)+": "+ch.Detail+" (give more rows with -rows / -lookup-rows)")
		}
	}
	if j.Error != "" {
		parts = append(parts, "error: "+j.Error)
	}
	if len(parts) == 0 {
		return "no reason recorded; see the job with `dsbx job show`"
	}
	return strings.Join(parts, "; ")
}

// raw runs q in a fresh in-memory DuckDB over the snapshot, with the job's
// thread and memory limits, reading every row. It returns the rows read and
// the time from opening the database to closing it.
func (b *bench) raw(ctx context.Context, q *QueryTimes, snapshot string) (int64, time.Duration, error) {
	began := time.Now()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		return 0, 0, fmt.Errorf("%s: raw DuckDB: open: %w", q.Name, err)
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("%s: raw DuckDB: connect: %w", q.Name, err)
	}
	defer conn.Close()
	setup := []string{"CREATE VIEW " + q.Dataset + " AS SELECT * FROM read_parquet(" + literal(snapshot) + ")"}
	if b.threads > 0 {
		setup = append(setup, fmt.Sprintf("SET threads = %d", b.threads))
	}
	if b.memory != "" {
		setup = append(setup, "SET memory_limit = "+literal(b.memory))
	}
	for _, s := range setup {
		if _, err := conn.ExecContext(ctx, s); err != nil {
			return 0, 0, fmt.Errorf("%s: raw DuckDB: %s: %w", q.Name, s, err)
		}
	}
	rows, err := conn.QueryContext(ctx, q.SQL)
	if err != nil {
		return 0, 0, fmt.Errorf("%s: raw DuckDB: query: %w", q.Name, err)
	}
	cols, err := rows.Columns()
	if err != nil {
		rows.Close()
		return 0, 0, fmt.Errorf("%s: raw DuckDB: %w", q.Name, err)
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	var n int64
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			rows.Close()
			return 0, 0, fmt.Errorf("%s: raw DuckDB: scan: %w", q.Name, err)
		}
		n++
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return 0, 0, fmt.Errorf("%s: raw DuckDB: %w", q.Name, err)
	}
	rows.Close()
	conn.Close()
	db.Close()
	return n, time.Since(began), nil
}

// lineCounter counts the newlines written to it.
type lineCounter struct{ n int64 }

func (c *lineCounter) Write(p []byte) (int, error) {
	for _, ch := range p {
		if ch == '\n' {
			c.n++
		}
	}
	return len(p), nil
}

// printReport writes the table.
func printReport(w io.Writer, rep *Report) {
	fmt.Fprintf(w, "Platform job end to end vs raw DuckDB, same query and snapshot, alternated in one run (%d CPUs; raw DuckDB with the job's limits: threads=%d memory_limit=%s)\n\n",
		runtime.NumCPU(), rep.Threads, rep.Memory)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "query\trows\truns\tplatform min\tmedian\traw DuckDB min\tmedian\tratio min\tmedian\tpaired\t\tsandbox run\tserver lifecycle\tclient side\t")
	for _, q := range rep.Queries {
		server := minus(q.Server, q.Run)
		client := minus(q.Platform, q.Server)
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\t%s\t%.1f×\t%.1f×\t%.1f×\t\t%s\t%s\t%s\t\n",
			q.Name, q.Rows, len(q.Platform),
			ms(slices.Min(q.Platform)), ms(median(q.Platform)),
			ms(slices.Min(q.Raw)), ms(median(q.Raw)),
			q.MinRatio(), q.Ratio(), q.PairedRatio(),
			ms(median(q.Run)), ms(median(server)), ms(median(client)))
	}
	tw.Flush()
	fmt.Fprintln(w, `
ratio min = fastest platform / fastest raw; median = median platform / median raw;
paired = median over runs of platform / raw of the same run (the most robust to a noisy machine).
The last three columns split the median platform time:
  sandbox run       the job's own run wall time (locked DuckDB: load the allowed columns, query, write the Parquet result)
  server lifecycle  created → released minus the run: admission policy, audit entries, queueing, output checks, release
  client side       submit → CSV read minus created → released: HTTP, the client's polling interval, the CSV download`)
}

func ms(d time.Duration) string {
	switch {
	case d >= 10*time.Second:
		return fmt.Sprintf("%.1fs", d.Seconds())
	case d >= 100*time.Millisecond:
		return fmt.Sprintf("%.0fms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	}
}

// literal quotes s as an SQL string literal.
func literal(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
