package sql

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// arrowReader is the job's Arrow result.
type arrowReader = array.RecordReader

// capped is the record reader the writer database scans. It passes the job's
// batches through, fails with ErrLimit as soon as the rows or Arrow bytes exceed the
// caps, and collects the columns the sandbox appended (the reserved __dsbx
// namespace: see layoutOf) and leaves them out. DuckDB calls it through
// cgo, where a Go panic would kill the process, so Next turns panics into errors.
type capped struct {
	ctx     context.Context
	src     arrowReader
	limits  Limits
	schema  *arrow.Schema // the source schema without the appended columns
	layout  layout
	columns []ResultColumn

	mu    sync.Mutex
	refs  atomic.Int64
	cur   arrow.RecordBatch
	rows  int64
	bytes int64
	cells []int64
	stats []CellStats // when the layout has columns beyond the cell count
	err   error
}

var _ array.RecordReader = (*capped)(nil)

// layout is where the sandbox's appended columns sit in a result.
type layout struct {
	keep       []int    // the source columns written, in order
	cellIdx    int      // CellCountColumn, or -1
	magnitudes [][3]int // per magnitude, its _total, _top and _n columns
	membersIdx int      // MembersColumn, or -1
}

// stats reports whether the result carries columns beyond the cell count.
func (l layout) stats() bool { return len(l.magnitudes) > 0 || l.membersIdx >= 0 }

// layoutOf finds the appended columns: every column named with the
// reserved prefix (in any case) must be one the sandbox appends, in the
// order CellSQL and MembersSQL append them, after all of the job's own
// columns: CellCountColumn, then each magnitude's _total (float64), _top
// (list of float64) and _n (int64), then MembersColumn (list of int64). A
// reserved name anywhere else, a Wasm guest's or one a query made up,
// fails the run.
func layoutOf(fields []arrow.Field) (layout, error) {
	l := layout{cellIdx: -1, membersIdx: -1}
	reserved := func(name string) bool { return strings.HasPrefix(strings.ToLower(name), reservedPrefix) }
	first := len(fields)
	for i, fd := range fields {
		if reserved(fd.Name) {
			first = i
			break
		}
		l.keep = append(l.keep, i)
	}
	if first == len(fields) {
		return l, nil
	}
	unexpected := func(i int) error {
		if !reserved(fields[i].Name) {
			return fmt.Errorf("sql: result column %q follows the sandbox's appended %s columns", fields[i].Name, reservedPrefix)
		}
		return fmt.Errorf("sql: result column %q is in the sandbox's reserved %s namespace and is not one of the columns the sandbox appends, in their place", fields[i].Name, reservedPrefix)
	}
	typed := func(i int, name string, want arrow.Type, elem arrow.Type) error {
		fd := fields[i]
		if fd.Name != name {
			return unexpected(i)
		}
		switch {
		case elem == arrow.NULL && fd.Type.ID() == want:
			return nil
		case elem != arrow.NULL:
			if lt, ok := fd.Type.(arrow.ListLikeType); ok && (fd.Type.ID() == arrow.LIST || fd.Type.ID() == arrow.LARGE_LIST) && lt.Elem().ID() == elem {
				return nil
			}
			return fmt.Errorf("sql: %s column has type %s, want a list of %s", name, fd.Type, strings.ToLower(elem.String()))
		}
		return fmt.Errorf("sql: %s column has type %s, want %s", name, fd.Type, strings.ToLower(want.String()))
	}
	i := first
	if err := typed(i, CellCountColumn, arrow.INT64, arrow.NULL); err != nil {
		return l, err
	}
	l.cellIdx = i
	i++
	for m := 0; i < len(fields) && fields[i].Name == magnitudeColumn(m)+"_total"; m++ {
		if i+3 > len(fields) {
			return l, fmt.Errorf("sql: result ends before the columns of magnitude %s", magnitudeColumn(m))
		}
		p := magnitudeColumn(m)
		if err := typed(i, p+"_total", arrow.FLOAT64, arrow.NULL); err != nil {
			return l, err
		}
		if err := typed(i+1, p+"_top", arrow.LIST, arrow.FLOAT64); err != nil {
			return l, err
		}
		if err := typed(i+2, p+"_n", arrow.INT64, arrow.NULL); err != nil {
			return l, err
		}
		l.magnitudes = append(l.magnitudes, [3]int{i, i + 1, i + 2})
		i += 3
	}
	if i < len(fields) && fields[i].Name == MembersColumn {
		if err := typed(i, MembersColumn, arrow.LIST, arrow.INT64); err != nil {
			return l, err
		}
		l.membersIdx = i
		i++
	}
	if i < len(fields) {
		return l, unexpected(i)
	}
	return l, nil
}

func newCapped(ctx context.Context, src arrowReader, l Limits) (*capped, error) {
	c := &capped{ctx: ctx, src: src, limits: l}
	fields := src.Schema().Fields()
	lay, err := layoutOf(fields)
	if err != nil {
		return nil, err
	}
	if len(lay.keep) == 0 {
		return nil, fmt.Errorf("sql: result has no columns besides the sandbox's %s columns", reservedPrefix)
	}
	c.layout = lay
	c.refs.Store(1)
	kept := make([]arrow.Field, len(lay.keep))
	for i, k := range lay.keep {
		kept[i] = fields[k]
		c.columns = append(c.columns, ResultColumn{Name: fields[k].Name, Type: fields[k].Type.String()})
	}
	c.schema = arrow.NewSchema(kept, nil)
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
	if c.layout.cellIdx < 0 {
		rec.Retain()
		c.cur = rec
		return true
	}
	if err := c.capture(rec); err != nil {
		c.err = err
		return false
	}
	cols := make([]arrow.Array, len(c.layout.keep))
	for i, k := range c.layout.keep {
		cols[i] = rec.Column(k)
	}
	c.cur = array.NewRecordBatch(c.schema, cols, rec.NumRows())
	return true
}

// capture collects the appended columns of one batch.
func (c *capped) capture(rec arrow.RecordBatch) error {
	cells := rec.Column(c.layout.cellIdx).(*array.Int64)
	for i := 0; i < cells.Len(); i++ {
		if cells.IsNull(i) {
			return fmt.Errorf("sql: %s column holds a null", CellCountColumn)
		}
		c.cells = append(c.cells, cells.Value(i))
	}
	if !c.layout.stats() {
		return nil
	}
	n := int(rec.NumRows())
	rows := make([]CellStats, n)
	for r := range rows {
		rows[r].Count = cells.Value(r)
		if len(c.layout.magnitudes) > 0 {
			rows[r].Magnitudes = make([]MagnitudeStats, len(c.layout.magnitudes))
		}
	}
	for m, idx := range c.layout.magnitudes {
		name := magnitudeColumn(m)
		total := rec.Column(idx[0]).(*array.Float64)
		top := rec.Column(idx[1]).(array.ListLike)
		count := rec.Column(idx[2]).(*array.Int64)
		for r := range rows {
			s := &rows[r].Magnitudes[m]
			if !total.IsNull(r) {
				s.Total = total.Value(r)
			}
			var err error
			if s.Top, err = floatList(top, r, name+"_top"); err != nil {
				return err
			}
			if count.IsNull(r) {
				return fmt.Errorf("sql: %s_n column holds a null", name)
			}
			s.N = count.Value(r)
		}
	}
	if c.layout.membersIdx >= 0 {
		members := rec.Column(c.layout.membersIdx).(array.ListLike)
		values := members.ListValues().(*array.Int64)
		for r := range rows {
			rows[r].Members = []int64{}
			if members.IsNull(r) {
				continue
			}
			start, end := members.ValueOffsets(r)
			for j := start; j < end; j++ {
				if values.IsNull(int(j)) {
					return fmt.Errorf("sql: %s column holds a null row number", MembersColumn)
				}
				rows[r].Members = append(rows[r].Members, values.Value(int(j)))
			}
		}
	}
	c.stats = append(c.stats, rows...)
	return nil
}

// floatList reads row r of a list of float64 column; a null list is empty.
func floatList(col array.ListLike, r int, name string) ([]float64, error) {
	out := []float64{}
	if col.IsNull(r) {
		return out, nil
	}
	values := col.ListValues().(*array.Float64)
	start, end := col.ValueOffsets(r)
	for j := start; j < end; j++ {
		if values.IsNull(int(j)) {
			return nil, fmt.Errorf("sql: %s column holds a null value", name)
		}
		out = append(out, values.Value(int(j)))
	}
	return out, nil
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
