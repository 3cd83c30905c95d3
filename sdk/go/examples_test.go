// Package sdk holds the host-side tests of the Go guest SDK: the examples
// are built for wasip1 and run in the sandbox exactly as the platform runs
// them, and their Arrow results are checked value by value against plain Go.
package sdk

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/datasandbox/dsbx/sandbox/wasm"
)

var examples = []string{"groupsum", "colsum"}

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// module returns the named example built for GOOS=wasip1 GOARCH=wasm (all
// examples in one go build, once per test run), with its dsbx sections.
func module(t *testing.T, name string, fields []string, out wasm.Output) []byte {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "dsbx-sdk-examples-")
		if buildErr != nil {
			return
		}
		args := []string{"build", "-o", buildDir + string(os.PathSeparator)}
		for _, e := range examples {
			args = append(args, "./examples/"+e)
		}
		cmd := exec.Command("go", args...)
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "GOFLAGS=")
		if b, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, b)
		}
	})
	if buildErr != nil {
		t.Fatalf("build the examples: %v", buildErr)
	}
	m, err := os.ReadFile(filepath.Join(buildDir, name))
	if err != nil {
		t.Fatal(err)
	}
	if m, err = wasm.DeclareFields(m, fields); err != nil {
		t.Fatal(err)
	}
	if m, err = wasm.DeclareOutput(m, out); err != nil {
		t.Fatal(err)
	}
	if _, err := wasm.Check(context.Background(), m); err != nil {
		var we *wasm.Error
		if errors.As(err, &we) && we.Code == wasm.CodeForbiddenImport && strings.Contains(we.Msg, `"fd_seek"`) {
			t.Fatalf("the platform refuses the %s guest: %v\n"+
				"Every Go guest using arrow-go links time.LoadLocation (arrow.TimestampType.GetZone), whose zip reader "+
				"imports wasi_snapshot_preview1.fd_seek; the ABI allow-list must admit fd_seek (stdin/stdout are pipes: ESPIPE) "+
				"for Arrow guests built with Go", name, err)
		}
		t.Fatalf("the platform refuses the %s guest: %v", name, err)
	}
	return m
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// batchSizes are the input's batches: uneven, one empty, 50,000 rows.
var batchSizes = []int{1, 4096, 0, 12345, 777, 20000, 12781}

const rows = 50_000

// splitmix is a deterministic stream of pseudo-random numbers.
type splitmix uint64

func (s *splitmix) next() uint64 {
	*s += 0x9e3779b97f4a7c15
	z := uint64(*s)
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// person is one input row; nil is NULL.
type person struct {
	region *string
	income *int64
}

// allNull is a region whose incomes are all NULL.
const allNull = "339999"

// people generates the groupsum input: ~40 regions like "330106", 1 in 50
// regions NULL, 1 in 9 incomes NULL, the incomes of region allNull all NULL,
// incomes negative and positive.
func people() []person {
	rng := splitmix(42)
	out := make([]person, rows)
	for i := range out {
		var p person
		switch r := rng.next() % 50; {
		case r == 0:
		case r == 1:
			p.region = ptr(allNull)
		default:
			p.region = ptr(fmt.Sprintf("33%02d%02d", 1+rng.next()%3, 1+rng.next()%13)) // 39 codes
		}
		if rng.next()%9 != 0 && (p.region == nil || *p.region != allNull) {
			p.income = ptr(int64(rng.next()%2_000_000) - 100_000)
		}
		out[i] = p
	}
	return out
}

func ptr[T any](v T) *T { return &v }

// ipcStream encodes ps as an Arrow IPC stream in batches of batchSizes.
func ipcStream(t *testing.T, ps []person) []byte {
	t.Helper()
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "region", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "income", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	}, nil)
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(schema))
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	rb, ib := b.Field(0).(*array.StringBuilder), b.Field(1).(*array.Int64Builder)
	at := 0
	for _, n := range batchSizes {
		for _, p := range ps[at : at+n] {
			if p.region == nil {
				rb.AppendNull()
			} else {
				rb.Append(*p.region)
			}
			if p.income == nil {
				ib.AppendNull()
			} else {
				ib.Append(*p.income)
			}
		}
		at += n
		rec := b.NewRecordBatch()
		if err := w.Write(rec); err != nil {
			t.Fatal(err)
		}
		rec.Release()
	}
	if at != len(ps) {
		t.Fatalf("batch sizes cover %d rows of %d", at, len(ps))
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// groupRow is one expected groupsum result row.
type groupRow struct {
	region *string
	n      int64
	total  *int64
}

// expectGroups is SELECT region, count(*), CAST(sum(income) AS BIGINT)
// GROUP BY region ORDER BY region (NULLS LAST), in plain Go.
func expectGroups(ps []person) []groupRow {
	byKey := map[string]*groupRow{}
	null := &groupRow{}
	for _, p := range ps {
		g := null
		if p.region != nil {
			if g = byKey[*p.region]; g == nil {
				g = &groupRow{region: p.region}
				byKey[*p.region] = g
			}
		}
		g.n++
		if p.income != nil {
			if g.total == nil {
				g.total = ptr(int64(0))
			}
			*g.total += *p.income
		}
	}
	var out []groupRow
	for _, g := range byKey {
		out = append(out, *g)
	}
	slices.SortFunc(out, func(a, b groupRow) int { return cmp.Compare(*a.region, *b.region) })
	if null.n > 0 {
		out = append(out, *null)
	}
	return out
}

// result decodes a guest's stdout: exactly one schema and its batches,
// concatenated into one.
func result(t *testing.T, out []byte) (*arrow.Schema, []arrow.Array) {
	t.Helper()
	rd, err := ipc.NewReader(bytes.NewReader(out))
	if err != nil {
		t.Fatalf("output is not an Arrow IPC stream: %v", err)
	}
	defer rd.Release()
	schema := rd.Schema()
	parts := make([][]arrow.Array, schema.NumFields())
	for rd.Next() {
		for i, c := range rd.RecordBatch().Columns() {
			c.Retain()
			parts[i] = append(parts[i], c)
		}
	}
	if err := rd.Err(); err != nil {
		t.Fatalf("output stream: %v", err)
	}
	cols := make([]arrow.Array, len(parts))
	for i, p := range parts {
		if len(p) == 0 {
			t.Fatalf("output has no batches")
		}
		c, err := array.Concatenate(p, memory.DefaultAllocator)
		if err != nil {
			t.Fatal(err)
		}
		cols[i] = c
	}
	return schema, cols
}

func checkSchema(t *testing.T, got *arrow.Schema, names []string, types []arrow.DataType) {
	t.Helper()
	if got.NumFields() != len(names) {
		t.Fatalf("output schema %s, want columns %v", got, names)
	}
	for i, f := range got.Fields() {
		if f.Name != names[i] || !arrow.TypeEqual(f.Type, types[i]) {
			t.Errorf("output column %d is %s %s, want %s %s", i, f.Name, f.Type, names[i], types[i])
		}
	}
}

func run(t *testing.T, mod, in []byte) (*wasm.Report, []byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out bytes.Buffer
	rep, err := wasm.Run(ctx, wasm.Spec{Module: mod, Input: bytes.NewReader(in), Output: &out,
		Limits: wasm.Limits{MemoryPages: 1024, Timeout: time.Minute}, Seed: 1})
	return rep, out.Bytes(), err
}

func TestGroupSum(t *testing.T) {
	mod := module(t, "groupsum", []string{"region", "income"}, wasm.Output{Kind: wasm.OutputAggregate, GroupBy: []string{"region"}})
	m, err := wasm.Check(context.Background(), mod)
	if err != nil {
		t.Fatal(err)
	}
	var imports []string
	for _, im := range m.Imports {
		imports = append(imports, im.Module+"."+im.Name)
	}
	for _, want := range []string{"dsbx.log", "dsbx.progress"} {
		if !slices.Contains(imports, want) {
			t.Errorf("groupsum does not import %s: %v", want, imports)
		}
	}
	t.Logf("groupsum: %.1f MB, imports %v", float64(len(mod))/(1<<20), imports)

	ps := people()
	rep, out, err := run(t, mod, ipcStream(t, ps))
	if err != nil {
		t.Fatalf("run: %v\nlog:\n%s", err, logOf(rep))
	}
	t.Logf("groupsum over %d rows: compile %v, wall %v, peak %d pages", rows, rep.Compile, rep.Wall, rep.PeakPages)
	if rep.Progress.Calls != int64(len(batchSizes)) || rep.Progress.Done != rows || rep.Progress.Total != 0 {
		t.Errorf("progress %+v, want %d calls, done %d of 0 (unknown)", rep.Progress, len(batchSizes), rows)
	}
	if !strings.Contains(rep.Log, fmt.Sprintf("groupsum: %d rows in %d batches", rows, len(batchSizes))) {
		t.Errorf("log lacks the final line:\n%s", rep.Log)
	}

	schema, cols := result(t, out)
	checkSchema(t, schema, []string{"region", "n", "total"},
		[]arrow.DataType{arrow.BinaryTypes.String, arrow.PrimitiveTypes.Int64, arrow.PrimitiveTypes.Int64})
	for _, f := range schema.Fields() {
		if !f.Nullable {
			t.Errorf("output column %s is not nullable", f.Name)
		}
	}
	want := expectGroups(ps)
	region, n, total := cols[0].(*array.String), cols[1].(*array.Int64), cols[2].(*array.Int64)
	if region.Len() != len(want) {
		t.Fatalf("%d result rows, want %d", region.Len(), len(want))
	}
	var sawNullRegion, sawAllNull bool
	for i, w := range want {
		if region.IsNull(i) != (w.region == nil) || w.region != nil && region.Value(i) != *w.region {
			t.Errorf("row %d: region %s, want %s", i, region.ValueStr(i), str(w.region))
		}
		if n.IsNull(i) || n.Value(i) != w.n {
			t.Errorf("row %d (%s): n %s, want %d", i, str(w.region), n.ValueStr(i), w.n)
		}
		if total.IsNull(i) != (w.total == nil) || w.total != nil && total.Value(i) != *w.total {
			t.Errorf("row %d (%s): total %s, want %s", i, str(w.region), total.ValueStr(i), str(w.total))
		}
		sawNullRegion = sawNullRegion || w.region == nil
		sawAllNull = sawAllNull || w.region != nil && *w.region == allNull && w.total == nil
	}
	if len(want) < 35 || !sawNullRegion || !sawAllNull || want[len(want)-1].region != nil {
		t.Fatalf("test data lacks a case: %d groups, NULL region %v (last), all-NULL incomes %v", len(want), sawNullRegion, sawAllNull)
	}
}

func logOf(rep *wasm.Report) string {
	if rep == nil {
		return "(no report)"
	}
	return rep.Log
}

func str[T any](p *T) string {
	if p == nil {
		return "NULL"
	}
	return fmt.Sprint(*p)
}

func TestGroupSumTruncatedInput(t *testing.T) {
	mod := module(t, "groupsum", []string{"region", "income"}, wasm.Output{Kind: wasm.OutputAggregate, GroupBy: []string{"region"}})
	in := ipcStream(t, people())
	rep, _, err := run(t, mod, in[:len(in)/2])
	if !errors.Is(err, wasm.ErrGuestFailed) {
		t.Fatalf("run of a cut input: %v, want a guest failure", err)
	}
	var ge *wasm.GuestError
	if !errors.As(err, &ge) || ge.ExitCode != 1 {
		t.Fatalf("error %#v, want exit code 1", err)
	}
	if !strings.HasPrefix(ge.LogTail, "error: read the input after ") || !strings.Contains(ge.LogTail, "EOF") {
		t.Errorf("log tail %q does not say the input was cut\nlog:\n%s", ge.LogTail, logOf(rep))
	}
	t.Logf("cut input: %v", err)
}

func TestColSum(t *testing.T) {
	mod := module(t, "colsum", []string{"amount"}, wasm.Output{Kind: wasm.OutputAggregate})
	t.Logf("colsum: %.1f MB", float64(len(mod))/(1<<20))
	schema := arrow.NewSchema([]arrow.Field{{Name: "amount", Type: arrow.PrimitiveTypes.Int64, Nullable: true}}, nil)
	cases := []struct {
		name  string
		sizes []int
		null  func(i int) bool
	}{
		{"no NULLs", batchSizes, func(int) bool { return false }},
		{"some NULLs", batchSizes, func(i int) bool { return i%7 == 3 }},
		{"all NULL", []int{10, 0, 5}, func(int) bool { return true }},
		{"no rows", nil, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rng := splitmix(7)
			var buf bytes.Buffer
			w := ipc.NewWriter(&buf, ipc.WithSchema(schema))
			var nrows, values, sum, lo, hi int64
			i := 0
			for _, size := range c.sizes {
				b := array.NewInt64Builder(memory.DefaultAllocator)
				for range size {
					v := int64(rng.next()) >> 20 // large, both signs: sums wrap
					if c.null(i) {
						b.AppendNull()
					} else {
						b.Append(v)
						if values == 0 {
							lo, hi = v, v
						}
						sum, lo, hi = sum+v, min(lo, v), max(hi, v)
						values++
					}
					i++
				}
				nrows += int64(size)
				arr := b.NewArray()
				rec := array.NewRecordBatch(schema, []arrow.Array{arr}, int64(size))
				if err := w.Write(rec); err != nil {
					t.Fatal(err)
				}
				rec.Release()
				arr.Release()
				b.Release()
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			rep, out, err := run(t, mod, buf.Bytes())
			if err != nil {
				t.Fatalf("run: %v\nlog:\n%s", err, logOf(rep))
			}
			if rep.Progress.Calls != int64(len(c.sizes)) || rep.Progress.Done != nrows {
				t.Errorf("progress %+v, want %d calls, done %d", rep.Progress, len(c.sizes), nrows)
			}
			got, cols := result(t, out)
			i64 := arrow.PrimitiveTypes.Int64
			checkSchema(t, got, []string{"rows", "sum", "min", "max"}, []arrow.DataType{i64, i64, i64, i64})
			if cols[0].Len() != 1 {
				t.Fatalf("%d result rows, want 1", cols[0].Len())
			}
			if r := cols[0].(*array.Int64); r.IsNull(0) || r.Value(0) != nrows {
				t.Errorf("rows = %s, want %d", r.ValueStr(0), nrows)
			}
			for k, want := range []int64{sum, lo, hi} {
				a := cols[1+k].(*array.Int64)
				if values == 0 {
					if !a.IsNull(0) {
						t.Errorf("%s = %d, want NULL (no values)", got.Field(1+k).Name, a.Value(0))
					}
				} else if a.IsNull(0) || a.Value(0) != want {
					t.Errorf("%s = %s, want %d", got.Field(1+k).Name, a.ValueStr(0), want)
				}
			}
		})
	}
}
