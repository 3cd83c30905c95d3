package csdk_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/datasandbox/dsbx/sandbox/wasm"
)

const installHint = "apt-get install clang-14 lld-14 wasi-libc libclang-rt-14-dev-wasm32"

var (
	buildMu    sync.Mutex
	buildCache = map[string][]byte{}
)

// buildGuest compiles examples/<name>.c with clang-14 for wasm32-wasi, once
// per test binary. Without the toolchain the test is skipped, unless
// DSBX_REQUIRE_GUEST_TOOLCHAINS=1.
func buildGuest(t *testing.T, name string) []byte {
	t.Helper()
	missing := ""
	if _, err := exec.LookPath("clang-14"); err != nil {
		missing = "clang-14"
	} else if _, err := os.Stat("/usr/include/wasm32-wasi/stdio.h"); err != nil {
		missing = "wasi-libc (/usr/include/wasm32-wasi/stdio.h)"
	}
	if missing != "" {
		if os.Getenv("DSBX_REQUIRE_GUEST_TOOLCHAINS") == "1" {
			t.Fatalf("%s not found; install with: %s", missing, installHint)
		}
		t.Skipf("%s not found; install with: %s", missing, installHint)
	}
	buildMu.Lock()
	defer buildMu.Unlock()
	if b, ok := buildCache[name]; ok {
		return b
	}
	out := filepath.Join(t.TempDir(), name+".wasm")
	cmd := exec.Command("clang-14", "--target=wasm32-wasi", "-O2", "-Wall", "-Wextra", "-Werror",
		"-Wl,--strip-debug", "-I", ".", "-o", out, filepath.Join("examples", name+".c"))
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("clang-14: %v\n%s", err, msg)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s.wasm: %d bytes", name, len(b))
	buildCache[name] = b
	return b
}

var inputSchema = arrow.NewSchema([]arrow.Field{
	{Name: "region", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "income", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
}, nil)

type row struct {
	region   string
	regionOK bool
	income   int64
	incomeOK bool
}

// testRows is deterministic input: ~40 regions of different lengths (so
// bytewise order differs from numeric order), NULL incomes, one region
// whose incomes are all NULL, and some NULL regions.
func testRows(n int) []row {
	rng := rand.New(rand.NewPCG(1, 2))
	regions := []string{"33", "33000", "3301", "330106", "3301060", "330106a", "ü-region", "Zeta", "allnull"}
	for i := 0; len(regions) < 40; i++ {
		regions = append(regions, fmt.Sprintf("33%04d", (i*7919)%10000))
	}
	rows := make([]row, n)
	for i := range rows {
		r := row{region: regions[rng.IntN(len(regions))], regionOK: true, incomeOK: true}
		switch {
		case rng.IntN(50) == 0:
			r.region, r.regionOK = "", false
		case rng.IntN(500) == 0:
			r.region = "" // an empty, non-NULL region is its own group
		}
		r.income = rng.Int64N(2_000_000) - 200_000
		if rng.IntN(1000) == 0 {
			r.income = 1 << 50
		}
		if rng.IntN(10) == 0 || (r.regionOK && r.region == "allnull") {
			r.income, r.incomeOK = 0, false
		}
		rows[i] = r
	}
	return rows
}

// arrowStream writes rows as an IPC stream in batches of the given sizes.
func arrowStream(t *testing.T, rows []row, sizes []int) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(inputSchema))
	b := array.NewRecordBuilder(memory.DefaultAllocator, inputSchema)
	defer b.Release()
	rb, ib := b.Field(0).(*array.StringBuilder), b.Field(1).(*array.Int64Builder)
	at := 0
	for _, size := range sizes {
		for _, r := range rows[at : at+size] {
			if r.regionOK {
				rb.Append(r.region)
			} else {
				rb.AppendNull()
			}
			if r.incomeOK {
				ib.Append(r.income)
			} else {
				ib.AppendNull()
			}
		}
		at += size
		rec := b.NewRecordBatch()
		if err := w.Write(rec); err != nil {
			t.Fatal(err)
		}
		rec.Release()
	}
	if at != len(rows) {
		t.Fatalf("batch sizes cover %d of %d rows", at, len(rows))
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

type group struct {
	region  string
	null    bool
	n       int64
	total   int64
	totalOK bool
}

// expected is the DuckDB query
// SELECT region, count(*) AS n, CAST(sum(income) AS BIGINT) AS total FROM t GROUP BY region ORDER BY region
// in plain Go.
func expected(rows []row) []group {
	byRegion := map[string]*group{}
	var null *group
	for _, r := range rows {
		g := null
		if r.regionOK {
			g = byRegion[r.region]
		}
		if g == nil {
			g = &group{region: r.region, null: !r.regionOK}
			if r.regionOK {
				byRegion[r.region] = g
			} else {
				null = g
			}
		}
		g.n++
		if r.incomeOK {
			g.total += r.income
			g.totalOK = true
		}
	}
	var out []group
	for _, g := range byRegion {
		out = append(out, *g)
	}
	slices.SortFunc(out, func(a, b group) int { return strings.Compare(a.region, b.region) })
	if null != nil {
		out = append(out, *null)
	}
	return out
}

var wantSchema = arrow.NewSchema([]arrow.Field{
	{Name: "region", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "n", Type: arrow.PrimitiveTypes.Int64},
	{Name: "total", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
}, nil)

// decode reads the guest's output stream.
func decode(t *testing.T, out []byte) []group {
	t.Helper()
	r, err := ipc.NewReader(bytes.NewReader(out))
	if err != nil {
		t.Fatalf("output is not an Arrow IPC stream: %v", err)
	}
	defer r.Release()
	if !r.Schema().Equal(wantSchema) {
		t.Fatalf("output schema\n%v\nwant\n%v", r.Schema(), wantSchema)
	}
	var got []group
	for r.Next() {
		rec := r.RecordBatch()
		region := rec.Column(0).(*array.String)
		n := rec.Column(1).(*array.Int64)
		total := rec.Column(2).(*array.Int64)
		for i := 0; i < int(rec.NumRows()); i++ {
			if n.IsNull(i) {
				t.Fatalf("row %d: n is NULL", i)
			}
			got = append(got, group{region: region.Value(i), null: region.IsNull(i), n: n.Value(i),
				total: total.Value(i), totalOK: total.IsValid(i)})
			if region.IsNull(i) {
				got[len(got)-1].region = ""
			}
			if total.IsNull(i) {
				got[len(got)-1].total = 0
			}
		}
	}
	if err := r.Err(); err != nil {
		t.Fatalf("decoding output: %v", err)
	}
	return got
}

func TestCheckGroupsum(t *testing.T) {
	m, err := wasm.Check(context.Background(), buildGuest(t, "groupsum"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(m.Fields, []string{"region", "income"}) {
		t.Errorf("declared fields %q", m.Fields)
	}
	if m.Output.Kind != wasm.OutputAggregate || !slices.Equal(m.Output.GroupBy, []string{"region"}) {
		t.Errorf("declared output %+v", m.Output)
	}
	for _, imp := range m.Imports {
		t.Logf("import %s.%s", imp.Module, imp.Name)
	}
}

func runGuest(t *testing.T, mod, input []byte) (*wasm.Report, []byte, error) {
	t.Helper()
	var out bytes.Buffer
	rep, err := wasm.Run(context.Background(), wasm.Spec{Module: mod, Input: bytes.NewReader(input), Output: &out, Seed: 1})
	return rep, out.Bytes(), err
}

func TestGroupsum(t *testing.T) {
	mod := buildGuest(t, "groupsum")
	rows := testRows(50_000)
	sizes := []int{1, 7_000, 0, 12_345, 999, 29_655}
	in := arrowStream(t, rows, sizes)
	rep, out, err := runGuest(t, mod, in)
	if err != nil {
		t.Fatalf("%v\nreport: %+v", err, rep)
	}
	got, want := decode(t, out), expected(rows)
	if len(got) != len(want) {
		t.Fatalf("%d groups, want %d:\n%+v\nwant\n%+v", len(got), len(want), got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("group %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	var sawAllNull, sawNull bool
	for _, g := range want {
		sawAllNull = sawAllNull || (g.region == "allnull" && !g.totalOK)
		sawNull = sawNull || g.null
	}
	if !sawAllNull || !sawNull || len(want) < 40 {
		t.Fatalf("test data lacks a NULL-income group, a NULL region or groups: %+v", want)
	}
	if rep.Progress.Calls != int64(len(sizes)) || rep.Progress.Done != int64(len(rows)) || rep.Progress.Total != 0 {
		t.Errorf("progress %+v, want %d calls ending at %d rows", rep.Progress, len(sizes), len(rows))
	}
	wantLog := fmt.Sprintf("groupsum: %d rows, %d groups\n", len(rows), len(want))
	if !strings.Contains(rep.Log, wantLog) {
		t.Errorf("log %q lacks %q", rep.Log, wantLog)
	}
	t.Logf("%d input bytes, %d output bytes, %d groups, peak %d pages, wall %v", len(in), len(out), len(got), rep.PeakPages, rep.Wall)
}

func TestGroupsumEmptyInput(t *testing.T) {
	mod := buildGuest(t, "groupsum")
	rep, out, err := runGuest(t, mod, arrowStream(t, nil, nil))
	if err != nil {
		t.Fatalf("%v\nreport: %+v", err, rep)
	}
	if got := decode(t, out); len(got) != 0 {
		t.Errorf("empty input gave %+v", got)
	}
	if rep.Progress.Calls != 0 {
		t.Errorf("progress %+v, want no calls", rep.Progress)
	}
	if !strings.Contains(rep.Log, "groupsum: 0 rows, 0 groups\n") {
		t.Errorf("log %q", rep.Log)
	}
}

func TestGroupsumCorruptInput(t *testing.T) {
	mod := buildGuest(t, "groupsum")
	full := arrowStream(t, testRows(2_000), []int{1_000, 1_000})
	garbage := make([]byte, 4096)
	rand.NewChaCha8([32]byte{3, 4}).Read(garbage)
	for name, c := range map[string]struct {
		in   []byte
		want string
	}{
		"empty":          {nil, "input stream ended without the end-of-stream marker"},
		"in schema":      {full[:20], "input stream truncated in message metadata"},
		"in batch body":  {full[:len(full)/2], "input stream truncated"},
		"no EOS":         {full[:len(full)-8], "input stream ended without the end-of-stream marker"},
		"half EOS":       {full[:len(full)-4], "input stream truncated in a message prefix"},
		"garbage":        {garbage, "dsbx: reading input: "},
		"garbage prefix": {append([]byte{0xff, 0xff, 0xff, 0xff, 16, 0, 0, 0}, garbage[:16]...), "malformed message"},
	} {
		rep, _, err := runGuest(t, mod, c.in)
		if !errors.Is(err, wasm.ErrGuestFailed) {
			t.Errorf("%s: err %v, want a guest failure", name, err)
			continue
		}
		var g *wasm.GuestError
		if !errors.As(err, &g) || g.Trap != "" || g.ExitCode == 0 {
			t.Errorf("%s: %v, want a clean non-zero exit", name, err)
		}
		if !strings.Contains(rep.Log, c.want) || !strings.Contains(err.Error(), "dsbx: reading input:") {
			t.Errorf("%s: err %v, log %q; want %q", name, err, rep.Log, c.want)
		}
	}
}

// Types the reader does not support are refused with a clear message.
func TestGroupsumUnsupportedType(t *testing.T) {
	mod := buildGuest(t, "groupsum")
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "region", Type: arrow.ListOf(arrow.BinaryTypes.String), Nullable: true},
		{Name: "income", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	}, nil)
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(schema))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	rep, _, err := runGuest(t, mod, buf.Bytes())
	if !errors.Is(err, wasm.ErrGuestFailed) || !strings.Contains(rep.Log, `field "region": nested types are not supported`) {
		t.Errorf("err %v, log %q", err, rep.Log)
	}
}

var allTypes = arrow.NewSchema([]arrow.Field{
	{Name: "i8", Type: arrow.PrimitiveTypes.Int8, Nullable: true},
	{Name: "i16", Type: arrow.PrimitiveTypes.Int16, Nullable: true},
	{Name: "i32", Type: arrow.PrimitiveTypes.Int32, Nullable: true},
	{Name: "i64", Type: arrow.PrimitiveTypes.Int64},
	{Name: "u8", Type: arrow.PrimitiveTypes.Uint8, Nullable: true},
	{Name: "u16", Type: arrow.PrimitiveTypes.Uint16, Nullable: true},
	{Name: "u32", Type: arrow.PrimitiveTypes.Uint32, Nullable: true},
	{Name: "u64", Type: arrow.PrimitiveTypes.Uint64, Nullable: true},
	{Name: "f32", Type: arrow.PrimitiveTypes.Float32, Nullable: true},
	{Name: "f64", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	{Name: "b", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
	{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "bin", Type: arrow.BinaryTypes.Binary, Nullable: true},
	{Name: "ls", Type: arrow.BinaryTypes.LargeString, Nullable: true},
	{Name: "lbin", Type: arrow.BinaryTypes.LargeBinary, Nullable: true},
	{Name: "d32", Type: arrow.FixedWidthTypes.Date32, Nullable: true},
	{Name: "d64", Type: arrow.FixedWidthTypes.Date64, Nullable: true},
	{Name: "ts", Type: &arrow.TimestampType{Unit: arrow.Microsecond}, Nullable: true},
	{Name: "tsz", Type: &arrow.TimestampType{Unit: arrow.Nanosecond, TimeZone: "Europe/Rome"}, Nullable: true},
}, nil)

// randomBatch fills every column of allTypes with random values (extremes
// included) and about 1 in 7 NULLs in nullable columns.
func randomBatch(rng *rand.Rand, n int) arrow.RecordBatch {
	b := array.NewRecordBuilder(memory.DefaultAllocator, allTypes)
	defer b.Release()
	for i := 0; i < n; i++ {
		for c, f := range allTypes.Fields() {
			fb := b.Field(c)
			if f.Nullable && rng.IntN(7) == 0 {
				fb.AppendNull()
				continue
			}
			u := rng.Uint64()
			if rng.IntN(10) == 0 {
				u = []uint64{0, 1 << 63, 1<<63 - 1, ^uint64(0)}[rng.IntN(4)]
			}
			str := fmt.Sprintf("v%x%s", u, strings.Repeat("ü", rng.IntN(4)))
			if rng.IntN(10) == 0 {
				str = ""
			}
			switch fb := fb.(type) {
			case *array.Int8Builder:
				fb.Append(int8(u))
			case *array.Int16Builder:
				fb.Append(int16(u))
			case *array.Int32Builder:
				fb.Append(int32(u))
			case *array.Int64Builder:
				fb.Append(int64(u))
			case *array.Uint8Builder:
				fb.Append(uint8(u))
			case *array.Uint16Builder:
				fb.Append(uint16(u))
			case *array.Uint32Builder:
				fb.Append(uint32(u))
			case *array.Uint64Builder:
				fb.Append(u)
			case *array.Float32Builder:
				fb.Append(float32(rng.NormFloat64() * 1e6))
			case *array.Float64Builder:
				fb.Append(rng.NormFloat64() * 1e300)
			case *array.BooleanBuilder:
				fb.Append(u&1 == 1)
			case *array.StringBuilder:
				fb.Append(str)
			case *array.LargeStringBuilder:
				fb.Append(str)
			case *array.BinaryBuilder:
				fb.Append([]byte(str))
			case *array.Date32Builder:
				fb.Append(arrow.Date32(int32(u)))
			case *array.Date64Builder:
				fb.Append(arrow.Date64(int64(u)))
			case *array.TimestampBuilder:
				fb.Append(arrow.Timestamp(int64(u)))
			default:
				panic(fmt.Sprintf("no generator for %T", fb))
			}
		}
	}
	return b.NewRecordBatch()
}

// The reader and writer round-trip every supported type exactly.
func TestRoundtripAllTypes(t *testing.T) {
	mod := buildGuest(t, "roundtrip")
	m, err := wasm.Check(context.Background(), mod)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range allTypes.Fields() {
		names = append(names, f.Name)
	}
	if !slices.Equal(m.Fields, names) || m.Output.Kind != wasm.OutputRows {
		t.Fatalf("declared %q %+v, want %q", m.Fields, m.Output, names)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	var in bytes.Buffer
	w := ipc.NewWriter(&in, ipc.WithSchema(allTypes))
	var want []arrow.RecordBatch
	for _, n := range []int{1, 3000, 17, 8, 1025} {
		rec := randomBatch(rng, n)
		defer rec.Release()
		if err := w.Write(rec); err != nil {
			t.Fatal(err)
		}
		want = append(want, rec)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	rep, out, err := runGuest(t, mod, in.Bytes())
	if err != nil {
		t.Fatalf("%v\nreport: %+v", err, rep)
	}
	r, err := ipc.NewReader(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	if !r.Schema().Equal(allTypes) {
		t.Fatalf("schema\n%v\nwant\n%v", r.Schema(), allTypes)
	}
	i := 0
	for ; r.Next(); i++ {
		if i >= len(want) {
			t.Fatalf("more than %d batches", len(want))
		}
		got := r.RecordBatch()
		for c := range allTypes.Fields() {
			if !array.Equal(got.Column(c), want[i].Column(c)) {
				t.Errorf("batch %d column %s differs:\n%v\nwant\n%v", i, allTypes.Field(c).Name, got.Column(c), want[i].Column(c))
			}
		}
	}
	if err := r.Err(); err != nil || i != len(want) {
		t.Fatalf("%d batches, want %d (err %v)", i, len(want), err)
	}
	if !strings.Contains(rep.Log, "roundtrip: 4051 rows\n") {
		t.Errorf("log %q", rep.Log)
	}
}

// 10k groups over 1M rows in 64k-row batches: the hash table scales and
// memory stays bounded by one batch.
func TestGroupsumManyGroups(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	mod := buildGuest(t, "groupsum")
	rng := rand.New(rand.NewPCG(7, 8))
	rows := make([]row, 1_000_000)
	for i := range rows {
		rows[i] = row{region: fmt.Sprintf("r%d", rng.IntN(10_000)), regionOK: true, income: rng.Int64N(1e9), incomeOK: rng.IntN(20) != 0}
	}
	var sizes []int
	for left := len(rows); left > 0; left -= min(left, 1<<16) {
		sizes = append(sizes, min(left, 1<<16))
	}
	rep, out, err := runGuest(t, mod, arrowStream(t, rows, sizes))
	if err != nil {
		t.Fatalf("%v\nreport: %+v", err, rep)
	}
	got, want := decode(t, out), expected(rows)
	if !slices.Equal(got, want) {
		t.Fatalf("%d groups differ from the %d expected", len(got), len(want))
	}
	if rep.Progress.Calls != int64(len(sizes)) {
		t.Errorf("progress %+v, want %d calls", rep.Progress, len(sizes))
	}
	t.Logf("%d rows, %d groups, %d batches: wall %v, peak %d pages", len(rows), len(got), len(sizes), rep.Wall, rep.PeakPages)
}
