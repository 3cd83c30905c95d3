package main

// dsbx-bench -wasm measures what running a job as WebAssembly costs against
// native Go doing the same work: a column sum (rows, sum, min, max) over one
// int64 column, with the sdk/go/examples/colsum guest run by wasm.Run, the
// way the platform runs Wasm jobs.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/datasandbox/dsbx/sandbox/wasm"
	"github.com/datasandbox/dsbx/sdk/go/examples/colsum/sums"
)

// module is the Go module the repository holds; -repo must be its root.
const module = "github.com/datasandbox/dsbx"

// wasmBatchRows is the rows of one generated record batch.
const wasmBatchRows = 64 << 10

// colsumDir is the guest's package, relative to the repository root.
const colsumDir = "./sdk/go/examples/colsum"

// Result is colsum's one result row; Null means sum, min and max are NULL
// (no values), and then they are 0 here.
type Result struct {
	Rows, Sum, Min, Max int64
	Null                bool
}

// resultOf is s as colsum reports it.
func resultOf(s sums.Sums) Result {
	if s.Values == 0 {
		return Result{Rows: s.Rows, Null: true}
	}
	return Result{Rows: s.Rows, Sum: s.Sum, Min: s.Min, Max: s.Max}
}

// WasmReport is what one -wasm run measured.
type WasmReport struct {
	Rows, StreamBytes  int64
	Batches, ModuleLen int
	Build              time.Duration // go build of the guest
	Result             Result        // every side's result (they agree)
	// Compile is the first wasm.Check of the module: validation and
	// compilation into the process-wide cache, which every later Check and
	// Run of the module hits.
	Compile time.Duration
	// FirstRun is the first wasm.Run; FirstWall its guest run alone (the
	// first instance's run is slower than later ones).
	FirstRun, FirstWall time.Duration
	// Timed runs, in run order.
	InMemory []time.Duration // native Go summing the arrays in memory
	OverIPC  []time.Duration // native Go decoding the IPC stream and summing
	Wasm     []time.Duration // wasm.Run end to end (cached compilation)
	WasmWall []time.Duration // the guest's run (Report.Wall): instantiation to exit
	// WasmSetup is Report.Compile: validation, runtime setup and the
	// cached compilation lookup.
	WasmSetup []time.Duration
	// C is the same job from the C guest (sdk/c/examples/colsum.c, clang
	// -O2), or why it was not measured.
	C CGuest
}

// CGuest is what the C colsum guest measured.
type CGuest struct {
	Skipped   string // why it was not measured, or ""
	ModuleLen int
	Wasm      []time.Duration // wasm.Run end to end
	WasmWall  []time.Duration // the guest's run
}

// runWasm runs the -wasm benchmark and prints progress and a table to w.
func runWasm(ctx context.Context, o options, w io.Writer) (*WasmReport, error) {
	// Run guests as the platform's Wasm workers do: compiled without
	// deadline checks, the process ending at the deadline instead.
	overran := func(err error) {
		fmt.Fprintln(os.Stderr, "dsbx-bench: a guest overran a limit:", err)
		os.Exit(1)
	}
	wasm.ExitAtDeadline(wasm.Deadline{
		Arm: func(timeout time.Duration, err error) func() { // the guests here do not loop
			t := time.AfterFunc(timeout, func() { overran(err) })
			return func() { t.Stop() }
		},
		Stop: overran,
	})
	b := &bench{w: w, start: time.Now()}
	b.say("dsbx-bench -wasm: column sum of %d int64 rows, %d timed runs each, %d CPUs (GOMAXPROCS %d)",
		o.rows, o.runs, runtime.NumCPU(), runtime.GOMAXPROCS(0))
	root, err := repoRoot(o.repo)
	if err != nil {
		return nil, err
	}
	dir, done, err := workDir(o.keep, "dsbx-bench-wasm-")
	if err != nil {
		return nil, err
	}
	defer done()

	rep := &WasmReport{Rows: o.rows}
	began := time.Now()
	schema, batches := amounts(o.rows)
	defer func() {
		for _, r := range batches {
			r.Release()
		}
	}()
	var stream bytes.Buffer
	iw := ipc.NewWriter(&stream, ipc.WithSchema(schema))
	for _, r := range batches {
		if err := iw.Write(r); err != nil {
			return nil, fmt.Errorf("encode the input stream: %w", err)
		}
	}
	if err := iw.Close(); err != nil {
		return nil, fmt.Errorf("encode the input stream: %w", err)
	}
	in := stream.Bytes()
	rep.Batches, rep.StreamBytes = len(batches), int64(len(in))
	b.say("  generated %d rows in %d batches, %.1f MB as an Arrow IPC stream, in %s",
		o.rows, len(batches), float64(len(in))/(1<<20), time.Since(began).Round(time.Millisecond))

	mod, build, compile, err := b.buildColsum(ctx, root, dir)
	if err != nil {
		return nil, err
	}
	rep.ModuleLen, rep.Build, rep.Compile = len(mod), build, compile
	cmod, skipped, err := b.buildColsumC(ctx, root, dir)
	if err != nil {
		return nil, err
	}
	rep.C.ModuleLen, rep.C.Skipped = len(cmod), skipped

	first, wall, _, got, err := wasmRun(ctx, mod, in)
	if err != nil {
		return nil, err
	}
	rep.FirstRun, rep.FirstWall, rep.Result = first, wall, got
	want := resultOf(inMemory(batches))
	if got != want {
		return nil, fmt.Errorf("the Wasm job computed %+v, native Go in memory %+v: the sides disagree", got, want)
	}
	b.say("  first Wasm run %s (guest %s); result agrees with native Go: %+v", ms(first), ms(wall), got)

	sides := []struct {
		name string
		run  func() (Result, time.Duration, error)
	}{
		{"native Go in memory", func() (Result, time.Duration, error) {
			t := time.Now()
			s := inMemory(batches)
			return resultOf(s), time.Since(t), nil
		}},
		{"native Go over IPC", func() (Result, time.Duration, error) {
			t := time.Now()
			s, err := overIPC(in)
			return resultOf(s), time.Since(t), err
		}},
		{"the Wasm job", func() (Result, time.Duration, error) {
			d, wall, setup, s, err := wasmRun(ctx, mod, in)
			rep.WasmWall, rep.WasmSetup = append(rep.WasmWall, wall), append(rep.WasmSetup, setup)
			return s, d, err
		}},
	}
	if cmod != nil {
		if _, _, _, got, err := wasmRun(ctx, cmod, in); err != nil {
			return nil, fmt.Errorf("the C guest: %w", err)
		} else if got != want {
			return nil, fmt.Errorf("the C guest computed %+v, native Go in memory %+v: the sides disagree", got, want)
		}
		sides = append(sides, struct {
			name string
			run  func() (Result, time.Duration, error)
		}{"the C Wasm job", func() (Result, time.Duration, error) {
			d, wall, _, s, err := wasmRun(ctx, cmod, in)
			rep.C.WasmWall = append(rep.C.WasmWall, wall)
			return s, d, err
		}})
	}
	for i := 0; i < o.runs; i++ {
		var times [4]time.Duration
		for k := range sides { // rotate which side goes first
			j := (i + k) % len(sides)
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			runtime.GC()
			s, d, err := sides[j].run()
			if err != nil {
				return nil, err
			}
			if s != want {
				return nil, fmt.Errorf("run %d: %s computed %+v, native Go in memory %+v: the sides disagree", i+1, sides[j].name, s, want)
			}
			times[j] = d
		}
		rep.InMemory, rep.OverIPC, rep.Wasm = append(rep.InMemory, times[0]), append(rep.OverIPC, times[1]), append(rep.Wasm, times[2])
		c := ""
		if cmod != nil {
			rep.C.Wasm = append(rep.C.Wasm, times[3])
			c = fmt.Sprintf(", C Wasm %s (guest %s)", ms(times[3]), ms(rep.C.WasmWall[i]))
		}
		b.say("  run %d/%d: native in memory %s, native over IPC %s, Wasm %s (guest %s)%s; sums agree",
			i+1, o.runs, ms(times[0]), ms(times[1]), ms(times[2]), ms(rep.WasmWall[i]), c)
	}
	b.say("done")
	fmt.Fprintln(w)
	printWasmReport(w, rep)
	return rep, nil
}

// amounts generates n rows of the int64 column amount, deterministically,
// in batches of wasmBatchRows: values in [-1e6, 1e6] from a hash of the row
// number, no NULLs.
func amounts(n int64) (*arrow.Schema, []arrow.RecordBatch) {
	schema := arrow.NewSchema([]arrow.Field{{Name: "amount", Type: arrow.PrimitiveTypes.Int64, Nullable: true}}, nil)
	var out []arrow.RecordBatch
	bld := array.NewInt64Builder(memory.DefaultAllocator)
	defer bld.Release()
	vals := make([]int64, 0, wasmBatchRows)
	for at := int64(0); at < n; {
		size := min(n-at, wasmBatchRows)
		vals = vals[:0]
		for i := at; i < at+size; i++ {
			vals = append(vals, int64(mix(uint64(i))%2_000_001)-1_000_000)
		}
		bld.AppendValues(vals, nil)
		col := bld.NewArray()
		out = append(out, array.NewRecordBatch(schema, []arrow.Array{col}, size))
		col.Release()
		at += size
	}
	return schema, out
}

// mix is splitmix64's finaliser.
func mix(z uint64) uint64 {
	z += 0x9e3779b97f4a7c15
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// inMemory sums the batches as they are.
func inMemory(batches []arrow.RecordBatch) sums.Sums {
	var s sums.Sums
	for _, r := range batches {
		s.Add(r.Column(0).(*array.Int64))
	}
	return s
}

// overIPC decodes the stream, as the guest does, and sums.
func overIPC(stream []byte) (sums.Sums, error) {
	var s sums.Sums
	rd, err := ipc.NewReader(bytes.NewReader(stream))
	if err != nil {
		return s, fmt.Errorf("native over IPC: %w", err)
	}
	defer rd.Release()
	for rd.Next() {
		s.Add(rd.RecordBatch().Column(0).(*array.Int64))
	}
	if err := rd.Err(); err != nil {
		return s, fmt.Errorf("native over IPC: %w", err)
	}
	return s, nil
}

// wasmRun runs the guest over the stream with wasm.Run and decodes its
// result. It returns wasm.Run's time and the guest's own (Report.Wall).
func wasmRun(ctx context.Context, mod, stream []byte) (total, wall, setup time.Duration, s Result, err error) {
	var out bytes.Buffer
	t := time.Now()
	rep, err := wasm.Run(ctx, wasm.Spec{Module: mod, Input: bytes.NewReader(stream), Output: &out,
		Limits: wasm.Limits{Timeout: 10 * time.Minute}, Seed: 1})
	total = time.Since(t)
	if err != nil {
		log := ""
		if rep != nil {
			log = "; guest log:\n" + rep.Log
		}
		return 0, 0, 0, s, fmt.Errorf("the Wasm job failed: %w%s", err, log)
	}
	s, err = decodeSums(out.Bytes())
	if err != nil {
		return 0, 0, 0, s, fmt.Errorf("the Wasm job's result: %w", err)
	}
	return total, rep.Wall, rep.Compile, s, nil
}

// decodeSums reads colsum's one-row result.
func decodeSums(out []byte) (Result, error) {
	var res Result
	rd, err := ipc.NewReader(bytes.NewReader(out))
	if err != nil {
		return res, err
	}
	defer rd.Release()
	want := []string{"rows", "sum", "min", "max"}
	var names []string
	for _, f := range rd.Schema().Fields() {
		if f.Type.ID() != arrow.INT64 {
			return res, fmt.Errorf("column %s is %s, want int64", f.Name, f.Type)
		}
		names = append(names, f.Name)
	}
	if !slices.Equal(names, want) {
		return res, fmt.Errorf("columns %v, want %v", names, want)
	}
	n := 0
	for rd.Next() {
		r := rd.RecordBatch()
		if r.NumRows() == 0 {
			continue
		}
		n += int(r.NumRows())
		v := func(c int) *array.Int64 { return r.Column(c).(*array.Int64) }
		res = Result{Rows: v(0).Value(0), Sum: v(1).Value(0), Min: v(2).Value(0), Max: v(3).Value(0), Null: v(1).IsNull(0)}
		if res.Null {
			res.Sum, res.Min, res.Max = 0, 0, 0
		}
	}
	if err := rd.Err(); err != nil {
		return res, err
	}
	if n != 1 {
		return res, fmt.Errorf("%d rows, want 1", n)
	}
	return res, nil
}

// buildColsum builds the colsum guest for wasip1 into dir and declares its
// field and output, and validates it as the platform will, which compiles
// it into the shared cache. It returns the module, the build time and the
// compilation (validation) time.
func (b *bench) buildColsum(ctx context.Context, root, dir string) ([]byte, time.Duration, time.Duration, error) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		return nil, 0, 0, fmt.Errorf("-wasm builds the guest with the Go toolchain, but `go` is not on PATH (%v); install Go or add it to PATH", err)
	}
	out := filepath.Join(dir, "colsum.wasm")
	b.say("building %s for GOOS=wasip1 GOARCH=wasm in %s", colsumDir, root)
	cmd := exec.CommandContext(ctx, gobin, "build", "-o", out, colsumDir)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "GOFLAGS=")
	began := time.Now()
	var msg []byte
	err = b.ticking("building the guest", func() error {
		var err error
		msg, err = cmd.CombinedOutput()
		return err
	})
	build := time.Since(began)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("build the colsum guest (GOOS=wasip1 GOARCH=wasm go build -o %s %s in %s): %w\n%s", out, colsumDir, root, err, msg)
	}
	mod, err := os.ReadFile(out)
	if err != nil {
		return nil, 0, 0, err
	}
	if mod, err = wasm.DeclareFields(mod, []string{"amount"}); err != nil {
		return nil, 0, 0, fmt.Errorf("declare the guest's fields: %w", err)
	}
	if mod, err = wasm.DeclareOutput(mod, wasm.Output{Kind: wasm.OutputAggregate}); err != nil {
		return nil, 0, 0, fmt.Errorf("declare the guest's output: %w", err)
	}
	if err := os.WriteFile(out, mod, 0o644); err != nil {
		return nil, 0, 0, err
	}
	b.say("  colsum.wasm: %.1f MB, built in %s; compiling it", float64(len(mod))/(1<<20), build.Round(10*time.Millisecond))
	began = time.Now()
	err = b.ticking("compiling the guest", func() error {
		_, err := wasm.Check(ctx, mod)
		return err
	})
	compile := time.Since(began)
	if err != nil {
		var we *wasm.Error
		if errors.As(err, &we) && we.Code == wasm.CodeForbiddenImport && strings.Contains(we.Msg, `"fd_seek"`) {
			return nil, 0, 0, fmt.Errorf("the platform refuses the colsum guest: %w\n(every Go guest using arrow-go links time.LoadLocation, "+
				"whose zip reader imports fd_seek; the ABI allow-list in sandbox/wasm must admit fd_seek)", err)
		}
		return nil, 0, 0, fmt.Errorf("the platform refuses the colsum guest: %w", err)
	}
	b.say("  compiled (wasm.Check, cold cache) in %s", compile.Round(10*time.Millisecond))
	return mod, build, compile, nil
}

// cColsum is the C guest's source, relative to the repository root.
const cColsum = "sdk/c/examples/colsum.c"

// buildColsumC builds the C colsum guest with clang-14 for wasm32-wasi into
// dir and validates it. Without clang-14 it returns no module and why.
func (b *bench) buildColsumC(ctx context.Context, root, dir string) ([]byte, string, error) {
	clang, err := exec.LookPath("clang-14")
	if err != nil {
		return nil, "clang-14 is not installed (make guest-toolchains installs it)", nil
	}
	out := filepath.Join(dir, "colsum-c.wasm")
	cmd := exec.CommandContext(ctx, clang, "--target=wasm32-wasi", "-O2", "-I", filepath.Join(root, "sdk/c"), "-o", out, filepath.Join(root, cColsum))
	if msg, err := cmd.CombinedOutput(); err != nil {
		return nil, "", fmt.Errorf("build the C colsum guest (%s): %w\n%s", cmd, err, msg)
	}
	mod, err := os.ReadFile(out)
	if err != nil {
		return nil, "", err
	}
	if _, err := wasm.Check(ctx, mod); err != nil {
		return nil, "", fmt.Errorf("the platform refuses the C colsum guest: %w", err)
	}
	b.say("  colsum-c.wasm: %.0f KB, built with clang-14 -O2 and compiled", float64(len(mod))/(1<<10))
	return mod, "", nil
}

// repoRoot returns dir, or the nearest directory at or above the working
// directory whose go.mod declares this module.
func repoRoot(dir string) (string, error) {
	isRoot := func(d string) bool {
		b, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err != nil {
			return false
		}
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) == 2 && f[0] == "module" && f[1] == module {
				return true
			}
		}
		return false
	}
	if dir != "" {
		if !isRoot(dir) {
			return "", fmt.Errorf("-repo %s: no go.mod of module %s there", dir, module)
		}
		return dir, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		if isRoot(d) {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", errors.New("-wasm builds " + colsumDir + " from the repository, but the working directory " + wd +
				" is not inside it (no go.mod of module " + module + " above it); run from the repository or give -repo DIR")
		}
	}
}

// printWasmReport writes the table.
func printWasmReport(w io.Writer, r *WasmReport) {
	fmt.Fprintf(w, "Column sum (rows, sum, min, max) of %d int64 rows in %d batches (%.1f MB Arrow IPC stream), %d timed runs, %d CPUs (GOMAXPROCS %d)\n\n",
		r.Rows, r.Batches, float64(r.StreamBytes)/(1<<20), len(r.Wasm), runtime.NumCPU(), runtime.GOMAXPROCS(0))
	memMed, ipcMed := median(r.InMemory), median(r.OverIPC)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "side\tmin\tmedian\tM rows/s\t/ native in memory\t/ native over IPC\t")
	row := func(name string, ds []time.Duration) {
		m := median(ds)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.0f\t%.1f×\t%.1f×\t\n", name, ms(slices.Min(ds)), ms(m),
			float64(r.Rows)/m.Seconds()/1e6, ratio(m, memMed), ratio(m, ipcMed))
	}
	row("native Go, in memory", r.InMemory)
	row("native Go, over IPC", r.OverIPC)
	row("Wasm job, Go guest (wasm.Run)", r.Wasm)
	row("  guest run alone", r.WasmWall)
	if len(r.C.Wasm) > 0 {
		row("Wasm job, C guest (wasm.Run)", r.C.Wasm)
		row("  guest run alone", r.C.WasmWall)
	}
	tw.Flush()
	if r.C.Skipped != "" {
		fmt.Fprintf(w, "\nC guest not measured: %s\n", r.C.Skipped)
	}
	fmt.Fprintf(w, `
sums agree on every side: %d rows, sum %d, min %d, max %d
colsum.wasm: %.1f MB, go build %s; compilation (first wasm.Check, cold cache) %s; first wasm.Run %s (guest %s)
later runs: wasm.Run beyond the guest %s (median), of which validation, runtime setup and cached compilation lookup %s
native in memory  the guest's summing loop over the arrays as generated
native over IPC   ipc.NewReader over the same stream bytes, then the same loop: the work the guest does
Wasm job          wasm.Run with the stream as stdin, as the platform's Wasm workers run it (compiled without deadline
                  checks; the worker exits at the deadline): validation (cached compilation), runtime setup, guest run, result decoding;
                  the Go guest is sdk/go/examples/colsum (arrow-go), the C guest sdk/c/examples/colsum.c (the C SDK's reader)
guest run alone   the Wasm job's Report.Wall: instantiation to exit
`, r.Result.Rows, r.Result.Sum, r.Result.Min, r.Result.Max,
		float64(r.ModuleLen)/(1<<20), r.Build.Round(10*time.Millisecond), ms(r.Compile), ms(r.FirstRun), ms(r.FirstWall),
		ms(median(minus(r.Wasm, r.WasmWall))), ms(median(r.WasmSetup)))
}
