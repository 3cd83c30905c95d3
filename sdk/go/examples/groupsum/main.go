// Command groupsum is an example dsbx Wasm job: a grouped aggregate. It
// reads the fields region (a string) and income (int64), both nullable, and
// writes one row per distinct region, ascending bytewise, the NULL region
// (if any) last, with
//
//	region  the group's key, in the type it was read in (nullable)
//	n       int64, the group's rows
//	total   int64, the sum of the group's non-NULL incomes; NULL if it has none
//
// exactly what DuckDB computes for
//
//	SELECT region, count(*) AS n, CAST(sum(income) AS BIGINT) AS total
//	FROM t GROUP BY region ORDER BY region
//
// including failing when a total does not fit in BIGINT (sums are exact, in
// 128 bits, until then). Build and declare it:
//
//	GOOS=wasip1 GOARCH=wasm go build -o groupsum.wasm ./sdk/go/examples/groupsum
//	dsbx wasm declare groupsum.wasm --fields region,income --group-by region
package main

import (
	"fmt"
	"io"
	"math/bits"
	"os"
	"slices"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/datasandbox/dsbx/sdk/go/guest"
)

func main() {
	guest.Main(func() error { return run(os.Stdin, os.Stdout) })
}

// group accumulates one region.
type group struct {
	n     int64  // rows
	hi    int64  // high 64 bits of the 128-bit sum of non-NULL incomes
	lo    uint64 // low 64 bits
	valid bool   // at least one non-NULL income
}

func (g *group) add(v int64) {
	var carry uint64
	g.lo, carry = bits.Add64(g.lo, uint64(v), 0)
	g.hi += v>>63 + int64(carry) // sign-extend v to 128 bits
	g.valid = true
}

// total is the sum as int64; ok is false if it does not fit.
func (g *group) total() (v int64, ok bool) {
	return int64(g.lo), g.hi == int64(g.lo)>>63
}

// stringArray is the read side of the string array types a region may come in.
type stringArray interface {
	arrow.Array
	Value(i int) string
}

// stringBuilder is the write side.
type stringBuilder interface {
	array.Builder
	Append(string)
}

func run(in io.Reader, out io.Writer) error {
	groups := map[string]*group{}
	var null group // the NULL region
	var rows, batches int64

	rd, err := guest.NewReader(in) // guest.Input() in a job that only ever reads stdin
	if err != nil {
		return err
	}
	defer rd.Release()
	for rd.Next() {
		b := rd.RecordBatch() // valid until the next Next
		regions, incomes, err := columns(b)
		if err != nil {
			return err
		}
		n := int(b.NumRows())
		for i := 0; i < n; i++ {
			g := &null
			if regions.IsValid(i) {
				r := regions.Value(i)
				if g = groups[r]; g == nil {
					g = &group{}
					groups[strings.Clone(r)] = g // r points into the batch's buffer
				}
			}
			g.n++
			if incomes.IsValid(i) {
				g.add(incomes.Value(i))
			}
		}
		rows += int64(n)
		batches++
		guest.Progress(rows, 0)
	}
	if err := rd.Err(); err != nil {
		return fmt.Errorf("read the input after %d rows: %w", rows, err)
	}
	var regionType arrow.DataType = arrow.BinaryTypes.String
	if idx := rd.Schema().FieldIndices("region"); len(idx) == 1 {
		regionType = rd.Schema().Field(idx[0]).Type
	}

	keys := make([]string, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, strings.Compare) // bytewise, as DuckDB's default collation

	mem := memory.DefaultAllocator
	rb, ok := array.NewBuilder(mem, regionType).(stringBuilder)
	if !ok {
		return fmt.Errorf("region is %s; want a string type (utf8, large_utf8, utf8_view)", regionType)
	}
	defer rb.Release()
	nb := array.NewInt64Builder(mem)
	defer nb.Release()
	tb := array.NewInt64Builder(mem)
	defer tb.Release()
	emit := func(key string, isNull bool, g *group) error {
		if isNull {
			rb.AppendNull()
		} else {
			rb.Append(key)
		}
		nb.Append(g.n)
		if !g.valid {
			tb.AppendNull()
			return nil
		}
		t, ok := g.total()
		if !ok {
			return fmt.Errorf("the total income of region %q does not fit in int64 (BIGINT)", key)
		}
		tb.Append(t)
		return nil
	}
	for _, k := range keys {
		if err := emit(k, false, groups[k]); err != nil {
			return err
		}
	}
	if null.n > 0 {
		if err := emit("", true, &null); err != nil {
			return err
		}
	}

	schema := arrow.NewSchema([]arrow.Field{
		{Name: "region", Type: regionType, Nullable: true},
		{Name: "n", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "total", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	}, nil)
	cols := []arrow.Array{rb.NewArray(), nb.NewArray(), tb.NewArray()}
	defer func() {
		for _, c := range cols {
			c.Release()
		}
	}()
	rec := array.NewRecordBatch(schema, cols, int64(cols[0].Len()))
	defer rec.Release()
	w := guest.NewWriter(out, schema)
	if err := w.Write(rec); err != nil {
		return fmt.Errorf("write the result: %w", err)
	}
	if err := w.Close(); err != nil {
		return err
	}
	guest.Log("groupsum: %d rows in %d batches, %d groups (%d with a NULL region)", rows, batches, rec.NumRows(), null.n)
	return nil
}

// columns finds region and income in b by name.
func columns(b arrow.RecordBatch) (stringArray, *array.Int64, error) {
	col := func(name string) (arrow.Array, error) {
		idx := b.Schema().FieldIndices(name)
		if len(idx) != 1 {
			return nil, fmt.Errorf("the input has %d columns named %q, want 1 (declare the fields region,income)", len(idx), name)
		}
		return b.Column(idx[0]), nil
	}
	r, err := col("region")
	if err != nil {
		return nil, nil, err
	}
	regions, ok := r.(stringArray)
	if !ok || !slices.Contains([]arrow.Type{arrow.STRING, arrow.LARGE_STRING, arrow.STRING_VIEW}, r.DataType().ID()) {
		return nil, nil, fmt.Errorf("input column region is %s, want a string type", r.DataType())
	}
	c, err := col("income")
	if err != nil {
		return nil, nil, err
	}
	incomes, ok := c.(*array.Int64)
	if !ok {
		return nil, nil, fmt.Errorf("input column income is %s, want int64", c.DataType())
	}
	return regions, incomes, nil
}
