// Package release reads a quarantined result into the table the disclosure
// checks look at, and writes the file that is released: the result with
// the changes of the remedies (suppression, rounding, coding) and of
// differential privacy applied, each column in its own type.
package release

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/datasandbox/dsbx/disclosure"
	sqlbox "github.com/datasandbox/dsbx/sandbox/sql"
)

// Table is a result held in memory: its columns, and its values row by row
// as the disclosure checks see them.
type Table struct {
	Fields []arrow.Field
	Rows   [][]disclosure.Value
	cols   []arrow.Array // the values as read, one array per column
}

// Numeric reports whether column i holds numbers the remedies may change.
func (t *Table) Numeric(i int) bool { return numeric(t.Fields[i].Type) }

func numeric(dt arrow.DataType) bool {
	switch dt.ID() {
	case arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64, arrow.UINT8, arrow.UINT16, arrow.UINT32, arrow.UINT64,
		arrow.FLOAT32, arrow.FLOAT64, arrow.DECIMAL128:
		return true
	}
	return false
}

// Release frees the table's arrays.
func (t *Table) Release() {
	for _, c := range t.cols {
		c.Release()
	}
	t.cols = nil
}

// Read loads the Parquet result at path, of at most maxRows rows.
func Read(ctx context.Context, path string, maxRows int64) (*Table, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("release: open result: %w", err)
	}
	defer f.Close()
	pf, err := file.NewParquetReader(f)
	if err != nil {
		return nil, fmt.Errorf("release: read result: %w", err)
	}
	defer pf.Close()
	if n := pf.NumRows(); n > maxRows {
		return nil, fmt.Errorf("release: result has %d rows, more than the %d the checks read", n, maxRows)
	}
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: 64 * 1024}, memory.DefaultAllocator)
	if err != nil {
		return nil, fmt.Errorf("release: read result: %w", err)
	}
	tbl, err := fr.ReadTable(ctx)
	if err != nil {
		return nil, fmt.Errorf("release: read result: %w", err)
	}
	defer tbl.Release()
	t := &Table{}
	for i := 0; i < int(tbl.NumCols()); i++ {
		col := tbl.Column(i)
		t.Fields = append(t.Fields, col.Field())
		var arr arrow.Array
		if chunks := col.Data().Chunks(); len(chunks) == 1 {
			arr = chunks[0]
			arr.Retain()
		} else if len(chunks) == 0 {
			arr = array.MakeArrayOfNull(memory.DefaultAllocator, col.DataType(), 0)
		} else if arr, err = array.Concatenate(chunks, memory.DefaultAllocator); err != nil {
			t.Release()
			return nil, fmt.Errorf("release: read column %s: %w", col.Name(), err)
		}
		t.cols = append(t.cols, arr)
	}
	rows := int(tbl.NumRows())
	t.Rows = make([][]disclosure.Value, rows)
	for r := range rows {
		t.Rows[r] = make([]disclosure.Value, len(t.cols))
		for c, arr := range t.cols {
			t.Rows[r][c] = valueAt(arr, r)
		}
	}
	return t, nil
}

// valueAt is row r of arr as the checks see it.
func valueAt(arr arrow.Array, r int) disclosure.Value {
	if arr.IsNull(r) {
		return disclosure.Value{Null: true}
	}
	switch a := arr.(type) {
	case *array.Int8:
		return disclosure.Value{Num: float64(a.Value(r))}
	case *array.Int16:
		return disclosure.Value{Num: float64(a.Value(r))}
	case *array.Int32:
		return disclosure.Value{Num: float64(a.Value(r))}
	case *array.Int64:
		return disclosure.Value{Num: float64(a.Value(r))}
	case *array.Uint8:
		return disclosure.Value{Num: float64(a.Value(r))}
	case *array.Uint16:
		return disclosure.Value{Num: float64(a.Value(r))}
	case *array.Uint32:
		return disclosure.Value{Num: float64(a.Value(r))}
	case *array.Uint64:
		return disclosure.Value{Num: float64(a.Value(r))}
	case *array.Float32:
		return disclosure.Value{Num: float64(a.Value(r))}
	case *array.Float64:
		return disclosure.Value{Num: a.Value(r)}
	case *array.Decimal128:
		return disclosure.Value{Num: a.Value(r).ToFloat64(a.DataType().(*arrow.Decimal128Type).Scale)}
	}
	return disclosure.Value{Text: arr.ValueStr(r)}
}

// Write writes t to out as Parquet, each column in the type it was read in;
// a column whose values were changed is rebuilt from t.Rows (numbers
// rounded to the column's integer or decimal type), the others are written
// as read. It writes through sqlbox.Derive, under limits.
func Write(ctx context.Context, t *Table, out string, limits sqlbox.Limits) (*sqlbox.Report, error) {
	cols := make([]arrow.Array, len(t.cols))
	defer func() {
		for _, c := range cols {
			if c != nil {
				c.Release()
			}
		}
	}()
	for c, orig := range t.cols {
		if !changed(t, c) {
			orig.Retain()
			cols[c] = orig
			continue
		}
		arr, err := rebuild(t, c)
		if err != nil {
			return nil, err
		}
		cols[c] = arr
	}
	schema := arrow.NewSchema(t.Fields, nil)
	rec := array.NewRecordBatch(schema, cols, int64(len(t.Rows)))
	defer rec.Release()
	rr, err := array.NewRecordReader(schema, []arrow.RecordBatch{rec})
	if err != nil {
		return nil, fmt.Errorf("release: %w", err)
	}
	defer rr.Release()
	rep, err := sqlbox.Derive(ctx, sqlbox.Spec{Query: "SELECT * FROM " + releasedView, Limits: limits, Out: out},
		map[string]array.RecordReader{releasedView: rr})
	if err != nil {
		return nil, fmt.Errorf("release: write %s: %w", out, err)
	}
	return rep, nil
}

// releasedView is the name the writer sees the released table under.
const releasedView = "__dsbx_released"

// changed reports whether any value of column c differs from what was read.
func changed(t *Table, c int) bool {
	for r, row := range t.Rows {
		if row[c] != valueAt(t.cols[c], r) {
			return true
		}
	}
	return false
}

// rebuild builds column c from t.Rows in its own type.
func rebuild(t *Table, c int) (arrow.Array, error) {
	orig, dt := t.cols[c], t.Fields[c].Type
	b := array.NewBuilder(memory.DefaultAllocator, dt)
	defer b.Release()
	for r, row := range t.Rows {
		v := row[c]
		if v.Null {
			b.AppendNull()
			continue
		}
		if v == valueAt(orig, r) {
			if err := b.AppendValueFromString(orig.ValueStr(r)); err != nil {
				return nil, fmt.Errorf("release: copy %s row %d: %w", t.Fields[c].Name, r, err)
			}
			continue
		}
		if !numeric(dt) {
			return nil, fmt.Errorf("release: column %s (%s) can only be suppressed, not changed", t.Fields[c].Name, dt)
		}
		if err := appendNumber(b, v.Num); err != nil {
			return nil, fmt.Errorf("release: %s row %d: %w", t.Fields[c].Name, r, err)
		}
	}
	return b.NewArray(), nil
}

// appendNumber appends x to a numeric builder, rounded to its type.
func appendNumber(b array.Builder, x float64) error {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return errors.New("not a finite number")
	}
	fits := func(lo, hi float64) (float64, error) {
		x = math.Round(x)
		if x < lo || x > hi {
			return 0, fmt.Errorf("%v does not fit the column's type", x)
		}
		return x, nil
	}
	var err error
	switch bb := b.(type) {
	case *array.Int8Builder:
		x, err = fits(math.MinInt8, math.MaxInt8)
		bb.Append(int8(x))
	case *array.Int16Builder:
		x, err = fits(math.MinInt16, math.MaxInt16)
		bb.Append(int16(x))
	case *array.Int32Builder:
		x, err = fits(math.MinInt32, math.MaxInt32)
		bb.Append(int32(x))
	case *array.Int64Builder:
		x, err = fits(math.MinInt64, math.MaxInt64)
		bb.Append(int64(x))
	case *array.Uint8Builder:
		x, err = fits(0, math.MaxUint8)
		bb.Append(uint8(x))
	case *array.Uint16Builder:
		x, err = fits(0, math.MaxUint16)
		bb.Append(uint16(x))
	case *array.Uint32Builder:
		x, err = fits(0, math.MaxUint32)
		bb.Append(uint32(x))
	case *array.Uint64Builder:
		x, err = fits(0, math.MaxUint64)
		bb.Append(uint64(x))
	case *array.Float32Builder:
		bb.Append(float32(x))
	case *array.Float64Builder:
		bb.Append(x)
	case *array.Decimal128Builder:
		dt := bb.Type().(*arrow.Decimal128Type)
		d, derr := decimal128.FromFloat64(x, dt.Precision, dt.Scale)
		if derr != nil {
			return fmt.Errorf("%v does not fit %s: %w", x, dt, derr)
		}
		bb.Append(d)
	default:
		return fmt.Errorf("cannot write a number into %s", b.Type())
	}
	return err
}
