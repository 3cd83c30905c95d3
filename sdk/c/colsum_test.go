package csdk_test

import (
	"bytes"
	"math"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/datasandbox/dsbx/sdk/go/examples/colsum/sums"
)

// The C colsum guest (dsbx-bench's C Wasm side) computes what the Go
// guest's aggregate computes natively: over batches with and without
// NULLs, with wrapping sums and the extremes of int64, and over no values.
func TestColsumMatchesGo(t *testing.T) {
	mod := buildGuest(t, "colsum")
	schema := arrow.NewSchema([]arrow.Field{{Name: "other", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "amount", Type: arrow.PrimitiveTypes.Int64, Nullable: true}}, nil)
	for _, tc := range []struct {
		name  string
		sizes []int
		null  func(i int) bool
		value func(i int) int64
	}{
		{"no nulls", []int{1000, 0, 4096, 7}, func(int) bool { return false }, func(i int) int64 { return int64(i*7919%20001) - 10000 }},
		{"some nulls", []int{3000, 1, 2500}, func(i int) bool { return i%3 == 0 }, func(i int) int64 { return int64(i) * 3 }},
		{"wrapping", []int{10}, func(int) bool { return false }, func(i int) int64 { return math.MaxInt64 - int64(i) }},
		{"extremes", []int{2}, func(int) bool { return false }, func(i int) int64 { return []int64{math.MinInt64, math.MaxInt64}[i] }},
		{"all null", []int{50}, func(int) bool { return true }, func(int) int64 { return 0 }},
		{"empty", nil, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stream bytes.Buffer
			w := ipc.NewWriter(&stream, ipc.WithSchema(schema))
			var want sums.Sums
			row := 0
			for _, n := range tc.sizes {
				b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
				for range n {
					b.Field(0).(*array.StringBuilder).Append("x")
					if tc.null(row) {
						b.Field(1).AppendNull()
					} else {
						b.Field(1).(*array.Int64Builder).Append(tc.value(row))
					}
					row++
				}
				rec := b.NewRecordBatch()
				want.Add(rec.Column(1).(*array.Int64))
				if err := w.Write(rec); err != nil {
					t.Fatal(err)
				}
				rec.Release()
				b.Release()
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			rep, out, err := runGuest(t, mod, stream.Bytes())
			if err != nil {
				t.Fatalf("%v\nreport: %+v", err, rep)
			}
			r, err := ipc.NewReader(bytes.NewReader(out))
			if err != nil {
				t.Fatal(err)
			}
			defer r.Release()
			if !r.Next() || r.RecordBatch().NumRows() != 1 {
				t.Fatalf("want one result row: %v", r.Err())
			}
			res := r.RecordBatch()
			col := func(i int) *array.Int64 { return res.Column(i).(*array.Int64) }
			if got := col(0).Value(0); got != want.Rows {
				t.Errorf("rows %d, want %d", got, want.Rows)
			}
			if want.Values == 0 {
				if col(1).IsValid(0) || col(2).IsValid(0) || col(3).IsValid(0) {
					t.Errorf("sum, min, max %v %v %v over no values, want NULL", col(1), col(2), col(3))
				}
				return
			}
			if got := [3]int64{col(1).Value(0), col(2).Value(0), col(3).Value(0)}; got != [3]int64{want.Sum, want.Min, want.Max} {
				t.Errorf("sum, min, max %v, want %v", got, [3]int64{want.Sum, want.Min, want.Max})
			}
		})
	}
}
