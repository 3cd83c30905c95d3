package sql

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// arrowReader is the job's Arrow result.
type arrowReader = array.RecordReader

// capped is the record reader the writer database scans. It passes the job's
// batches through, fails with ErrLimit as soon as the rows or Arrow bytes exceed the
// caps, collects the cell-count column and leaves it out. DuckDB calls it through
// cgo, where a Go panic would kill the process, so Next turns panics into errors.
type capped struct {
	ctx     context.Context
	src     arrowReader
	limits  Limits
	schema  *arrow.Schema // the source schema without the cell-count column
	cellIdx int           // index of the cell-count column in the source, or -1
	columns []ResultColumn

	mu    sync.Mutex
	refs  atomic.Int64
	cur   arrow.RecordBatch
	rows  int64
	bytes int64
	cells []int64
	err   error
}

var _ array.RecordReader = (*capped)(nil)

func newCapped(ctx context.Context, src arrowReader, l Limits) (*capped, error) {
	c := &capped{ctx: ctx, src: src, limits: l, cellIdx: -1}
	c.refs.Store(1)
	var fields []arrow.Field
	for i, fd := range src.Schema().Fields() {
		if fd.Name == CellCountColumn {
			if c.cellIdx >= 0 {
				return nil, fmt.Errorf("sql: result has more than one %s column", CellCountColumn)
			}
			if fd.Type.ID() != arrow.INT64 {
				return nil, fmt.Errorf("sql: %s column has type %s, want int64", CellCountColumn, fd.Type)
			}
			c.cellIdx = i
			continue
		}
		fields = append(fields, fd)
		c.columns = append(c.columns, ResultColumn{Name: fd.Name, Type: fd.Type.String()})
	}
	if len(fields) == 0 {
		return nil, fmt.Errorf("sql: result has no columns besides %s", CellCountColumn)
	}
	c.schema = arrow.NewSchema(fields, nil)
	return c, nil
}

// Retain adds a reference.
func (c *capped) Retain() { c.refs.Add(1) }

// Release drops a reference and, with the last, the current batch.
func (c *capped) Release() {
	if c.refs.Add(-1) != 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur != nil {
		c.cur.Release()
		c.cur = nil
	}
}

// Schema returns the schema of the batches written.
func (c *capped) Schema() *arrow.Schema { return c.schema }

// Next advances to the next batch within the caps.
func (c *capped) Next() (ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	defer func() {
		if r := recover(); r != nil {
			c.err = fmt.Errorf("sql: panic while reading result: %v", r)
			ok = false
		}
	}()
	if c.cur != nil {
		c.cur.Release()
		c.cur = nil
	}
	if c.err != nil {
		return false
	}
	if err := c.ctx.Err(); err != nil {
		c.err = fmt.Errorf("sql: read result: %w", err)
		return false
	}
	if !c.src.Next() {
		if err := c.src.Err(); err != nil {
			c.err = fmt.Errorf("sql: read result: %w", err)
		}
		return false
	}
	rec := c.src.RecordBatch()
	c.rows += rec.NumRows()
	if c.rows > c.limits.MaxRows {
		c.err = fmt.Errorf("%w: result has more than the limit of %d rows", ErrLimit, c.limits.MaxRows)
		return false
	}
	for _, col := range rec.Columns() {
		c.bytes += dataSize(col.Data())
	}
	if c.bytes > c.limits.MaxBytes {
		c.err = fmt.Errorf("%w: result holds more than the limit of %d bytes (%d in Arrow buffers so far)", ErrLimit, c.limits.MaxBytes, c.bytes)
		return false
	}
	if c.cellIdx < 0 {
		rec.Retain()
		c.cur = rec
		return true
	}
	cells := rec.Column(c.cellIdx).(*array.Int64)
	for i := 0; i < cells.Len(); i++ {
		if cells.IsNull(i) {
			c.err = fmt.Errorf("sql: %s column holds a null", CellCountColumn)
			return false
		}
		c.cells = append(c.cells, cells.Value(i))
	}
	cols := make([]arrow.Array, 0, len(c.schema.Fields()))
	for i, col := range rec.Columns() {
		if i != c.cellIdx {
			cols = append(cols, col)
		}
	}
	c.cur = array.NewRecordBatch(c.schema, cols, rec.NumRows())
	return true
}

// RecordBatch returns the current batch.
func (c *capped) RecordBatch() arrow.RecordBatch {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cur
}

// Record returns the current batch.
//
// Deprecated: use RecordBatch.
func (c *capped) Record() arrow.RecordBatch { return c.RecordBatch() }

// Err returns the error that ended the stream, if any.
func (c *capped) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// dataSize sums the lengths of the buffers of an array, its children and its dictionary.
func dataSize(d arrow.ArrayData) int64 {
	if d == nil || reflect.ValueOf(d).IsNil() { // Dictionary returns a typed nil
		return 0
	}
	var n int64
	for _, b := range d.Buffers() {
		if b != nil {
			n += int64(b.Len())
		}
	}
	for _, child := range d.Children() {
		n += dataSize(child)
	}
	n += dataSize(d.Dictionary())
	return n
}
