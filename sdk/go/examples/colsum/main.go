// Command colsum is an example dsbx Wasm job and the Wasm side of
// dsbx-bench -wasm: a column aggregate. It reads one int64 field, amount,
// and writes one row:
//
//	rows  int64, all rows read
//	sum   int64, the sum of the non-NULL amounts (wrapping at 64 bits)
//	min   int64, the least non-NULL amount
//	max   int64, the greatest non-NULL amount
//
// sum, min and max are NULL when there is no non-NULL amount. Build it and
// declare its field and its output, an aggregate of one group of all rows:
//
//	GOOS=wasip1 GOARCH=wasm go build -o colsum.wasm ./sdk/go/examples/colsum
//
// then wasm.DeclareFields(module, []string{"amount"}) and
// wasm.DeclareOutput(module, wasm.Output{Kind: wasm.OutputAggregate}) (or
// dsbx wasm declare colsum.wasm --fields amount).
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/datasandbox/dsbx/sdk/go/examples/colsum/sums"
	"github.com/datasandbox/dsbx/sdk/go/guest"
)

func main() {
	guest.Main(func() error { return run(os.Stdin, os.Stdout) })
}

func run(in io.Reader, out io.Writer) error {
	var s sums.Sums
	var batches int64
	err := guest.Read(in, func(b arrow.RecordBatch) error { // guest.Each(...) reads stdin
		idx := b.Schema().FieldIndices("amount")
		if len(idx) != 1 {
			return fmt.Errorf("the input has %d columns named amount, want 1 (declare the field amount)", len(idx))
		}
		a, ok := b.Column(idx[0]).(*array.Int64)
		if !ok {
			return fmt.Errorf("input column amount is %s, want int64", b.Column(idx[0]).DataType())
		}
		s.Add(a)
		batches++
		guest.Progress(s.Rows, 0)
		return nil
	})
	if err != nil {
		return err
	}

	mem := memory.DefaultAllocator
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "rows", Type: arrow.PrimitiveTypes.Int64},
		{Name: "sum", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "min", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "max", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	}, nil)
	b := array.NewRecordBuilder(mem, schema)
	defer b.Release()
	b.Field(0).(*array.Int64Builder).Append(s.Rows)
	for i, v := range []int64{s.Sum, s.Min, s.Max} {
		if s.Values == 0 {
			b.Field(1 + i).AppendNull()
		} else {
			b.Field(1 + i).(*array.Int64Builder).Append(v)
		}
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	w := guest.NewWriter(out, schema)
	if err := w.Write(rec); err != nil {
		return fmt.Errorf("write the result: %w", err)
	}
	if err := w.Close(); err != nil {
		return err
	}
	guest.Log("colsum: %d rows (%d non-NULL) in %d batches", s.Rows, s.Values, batches)
	return nil
}
