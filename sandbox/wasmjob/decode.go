package wasmjob

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// maxColumns bounds a result's width.
const maxColumns = 1024

// decode reads the guest's output, an Arrow IPC stream, into record batches.
// The guest wrote those bytes, so decoding runs under recover(), every
// allocation counts against a cap of twice MaxBytes (compressed bodies
// cannot expand past it), message sizes are bounded, and every array is
// fully validated before the host touches its values.
func decode(b []byte, l Limits) (recs []arrow.RecordBatch, schema *arrow.Schema, err error) {
	alloc := &cappedAllocator{max: 2 * l.MaxBytes}
	defer func() {
		if r := recover(); r != nil {
			for _, rec := range recs {
				rec.Release()
			}
			recs, schema = nil, nil
			if e, ok := r.(error); ok && errors.Is(e, errAllocCap) {
				err = &OutputError{Code: CodeUndecodable, Msg: fmt.Sprintf("decoding the result would take more than %d bytes", alloc.max)}
				return
			}
			err = &OutputError{Code: CodeUndecodable, Msg: fmt.Sprintf("the result is not a valid Arrow IPC stream (decoder panicked: %v)", r)}
		}
	}()
	if len(b) == 0 {
		return nil, nil, &OutputError{Code: CodeUndecodable, Msg: "the guest wrote no result: stdout must carry an Arrow IPC stream"}
	}
	rd, err := ipc.NewReader(bytes.NewReader(b), ipc.WithAllocator(alloc),
		ipc.WithMetadataSizeLimit(1<<20), ipc.WithBodySizeLimit(l.MaxBytes+outputSlack))
	if err != nil {
		return nil, nil, &OutputError{Code: CodeUndecodable, Msg: "the result is not a valid Arrow IPC stream: " + err.Error()}
	}
	defer rd.Release()
	schema = rd.Schema()
	if n := schema.NumFields(); n == 0 || n > maxColumns {
		return nil, nil, &OutputError{Code: CodeBadColumn, Msg: fmt.Sprintf("the result has %d columns; it needs 1 to %d", n, maxColumns)}
	}
	var rows int64
	for rd.Next() {
		rec := rd.RecordBatch()
		for i, col := range rec.Columns() {
			if err := array.ValidateFull(col); err != nil {
				releaseAll(recs)
				return nil, nil, &OutputError{Code: CodeUndecodable, Msg: fmt.Sprintf("column %s of batch %d is malformed: %v", schema.Field(i).Name, len(recs), err)}
			}
		}
		rows += rec.NumRows()
		if rows > l.MaxRows {
			releaseAll(recs)
			return nil, nil, &OutputError{Code: CodeUndecodable, Msg: fmt.Sprintf("the result has more than %d rows, the limit", l.MaxRows)}
		}
		rec.Retain()
		recs = append(recs, rec)
	}
	if err := rd.Err(); err != nil {
		releaseAll(recs)
		return nil, nil, &OutputError{Code: CodeUndecodable, Msg: "the result is not a valid Arrow IPC stream: " + err.Error()}
	}
	return recs, schema, nil
}

func releaseAll(recs []arrow.RecordBatch) {
	for _, r := range recs {
		r.Release()
	}
}

// checkColumns refuses result columns the host cannot safely write or that
// would collide with its own: names in the reserved __dsbx namespace (a
// guest must not forge the cell counts), empty or duplicate names (DuckDB
// compares them case-insensitively), and types other than flat scalars.
func checkColumns(s *arrow.Schema) error {
	seen := map[string]bool{}
	for _, f := range s.Fields() {
		l := strings.ToLower(f.Name)
		switch {
		case strings.TrimSpace(f.Name) == "" || strings.ContainsRune(f.Name, 0):
			return &OutputError{Code: CodeBadColumn, Msg: fmt.Sprintf("result column name %q is empty or holds NUL", f.Name)}
		case strings.HasPrefix(l, "__dsbx"):
			return &OutputError{Code: CodeBadColumn, Msg: fmt.Sprintf("result column %s is in the platform's reserved __dsbx namespace", f.Name)}
		case seen[l]:
			return &OutputError{Code: CodeBadColumn, Msg: fmt.Sprintf("result column %s appears twice (names are compared ignoring case)", f.Name)}
		case !scalar(f.Type):
			return &OutputError{Code: CodeBadColumn, Msg: fmt.Sprintf("result column %s has type %s; results hold only booleans, integers, floats, decimals, strings, dates and timestamps", f.Name, f.Type)}
		}
		seen[l] = true
	}
	return nil
}

func scalar(t arrow.DataType) bool {
	switch t.ID() {
	case arrow.BOOL, arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64,
		arrow.UINT8, arrow.UINT16, arrow.UINT32, arrow.UINT64,
		arrow.FLOAT32, arrow.FLOAT64, arrow.DECIMAL128,
		arrow.STRING, arrow.LARGE_STRING, arrow.DATE32, arrow.TIMESTAMP:
		return true
	}
	return false
}

var errAllocCap = errors.New("allocation cap reached")

// cappedAllocator is a Go allocator that panics with errAllocCap once the
// bytes it has handed out and not taken back would exceed max.
type cappedAllocator struct {
	mem  memory.GoAllocator
	max  int64
	used atomic.Int64
}

func (a *cappedAllocator) Allocate(size int) []byte {
	if a.used.Add(int64(size)) > a.max {
		a.used.Add(-int64(size))
		panic(errAllocCap)
	}
	return a.mem.Allocate(size)
}

func (a *cappedAllocator) Reallocate(size int, b []byte) []byte {
	if a.used.Add(int64(size-len(b))) > a.max {
		a.used.Add(-int64(size - len(b)))
		panic(errAllocCap)
	}
	return a.mem.Reallocate(size, b)
}

func (a *cappedAllocator) Free(b []byte) {
	a.used.Add(-int64(len(b)))
	a.mem.Free(b)
}
