package datasets

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/compute"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// Limits on Arrow IPC input. Arrow IPC is untrusted: every length in it is
// checked before arrow-go allocates or recurses on it.
const (
	// arrowMaxBatchBytes caps one record batch: its message body and its
	// decoded buffers (each array counted at least one byte per value).
	arrowMaxBatchBytes = 256 << 20
	// arrowMaxFields caps the fields of a schema, nested ones included.
	arrowMaxFields = 4096
	// arrowMaxDepth caps type nesting, as arrow-go's array loader does.
	arrowMaxDepth = 64
	// arrowMaxMetadata caps one message's FlatBuffers metadata.
	arrowMaxMetadata = 16 << 20
	// arrowMaxFooter caps the footer of the file format (24 bytes a block).
	arrowMaxFooter = 64 << 20
	// arrowMaxLive caps all memory the decoder holds at once: the current
	// message body, its decompressed buffers and the dictionaries.
	arrowMaxLive = 3 * arrowMaxBatchBytes

	// Output: batches of at least arrowBigBatch bytes become row groups of
	// their own; smaller ones are gathered into row groups of up to
	// arrowRowGroupBytes and arrowRowGroupRows.
	arrowBigBatch      = 8 << 20
	arrowRowGroupBytes = 64 << 20
	arrowRowGroupRows  = 1 << 20
)

var arrowMagic = []byte("ARROW1")

const (
	ipcContinuation = 0xFFFFFFFF

	// FlatBuffers MessageHeader union tags (Message.fbs).
	ipcHeaderSchema     = 1
	ipcHeaderDictionary = 2
	ipcHeaderRecord     = 3
)

// arrowToParquet converts the Arrow IPC data at src — either the IPC file
// format (magic "ARROW1", .arrow/.feather v2) or the IPC stream format
// (.arrows) — into a zstd-compressed Parquet file at dst, streaming record
// batch by record batch so memory stays bounded by one batch. It returns the
// number of rows written.
//
// The format is told by the magic bytes, never by the extension. Input is
// untrusted: lengths in the FlatBuffers metadata are checked before arrow-go
// sees them, a record batch over 256 MiB of buffers or a schema over 4096
// fields is refused, every batch is fully validated before it is written,
// and any panic in the decoder or the Parquet writer becomes an error. A
// problem with the input (not Arrow IPC, truncated, corrupt, an unsupported
// type, no rows) is an *InputError naming the file by its base name only.
// Dictionary-encoded columns are written as plain columns of their value
// type (pqarrow supports them, also when the dictionary changes between
// batches), so DuckDB reads a dictionary<utf8> column as VARCHAR.
//
// ctx is checked between batches; on cancellation ctx.Err() is returned. On
// any error no file is left at dst.
func arrowToParquet(ctx context.Context, src, dst string) (rows int64, err error) {
	defer func() {
		if err != nil {
			os.Remove(dst)
		}
	}()
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	name := filepath.Base(src)
	in, err := os.Open(src)
	if err != nil {
		return 0, fmt.Errorf("arrow import %s: %w", name, err)
	}
	defer in.Close()
	info, err := in.Stat()
	if err != nil {
		return 0, fmt.Errorf("arrow import %s: %w", name, err)
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return 0, fmt.Errorf("arrow import %s: %w", name, err)
	}
	defer func() {
		if err != nil {
			out.Close()
		}
	}()

	c := &arrowConv{
		ctx:   ctx,
		name:  name,
		in:    in,
		size:  info.Size(),
		alloc: &arrowBudget{mem: memory.NewGoAllocator(), limit: arrowMaxLive},
		sink:  &sinkWriter{w: bufio.NewWriterSize(out, 1<<20)},
	}
	rows, err = c.run()
	if err != nil {
		return 0, err
	}
	if err := c.sink.w.Flush(); err != nil {
		return 0, fmt.Errorf("arrow import %s: write parquet: %w", name, err)
	}
	if err := out.Close(); err != nil {
		return 0, fmt.Errorf("arrow import %s: write parquet: %w", name, err)
	}
	return rows, nil
}

// arrowConv is one conversion.
type arrowConv struct {
	ctx   context.Context
	name  string
	in    *os.File
	size  int64
	alloc *arrowBudget
	sink  *sinkWriter

	stream bool   // IPC stream format, not file format
	batch  int    // 1-based number of the record batch being read
	dicts  int    // dictionary batches read
	where  string // the message being read, for error messages
}

// sinkWriter remembers a write error, which is the server's problem and not
// the input's.
type sinkWriter struct {
	w   *bufio.Writer
	err error
}

func (s *sinkWriter) Write(p []byte) (int, error) {
	n, err := s.w.Write(p)
	if err != nil && s.err == nil {
		s.err = err
	}
	return n, err
}

// run decodes and writes, turning any panic into an error.
func (c *arrowConv) run() (rows int64, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			rows, err = 0, c.decodeError(fmt.Errorf("%v", p))
		}
	}()

	msgs, err := c.open()
	if err != nil {
		return 0, err
	}
	rd, err := ipc.NewReaderFromMessageReader(msgs, ipc.WithAllocator(c.alloc))
	if err != nil {
		return 0, c.decodeError(err)
	}
	defer rd.Release()

	schema := rd.Schema()
	if err := c.checkSchema(schema); err != nil {
		return 0, err
	}
	props := parquet.NewWriterProperties(
		parquet.WithCompression(compress.Codecs.Zstd),
		parquet.WithMaxRowGroupLength(arrowRowGroupRows),
	)
	out := writerSchema(schema)
	fw, err := pqarrow.NewFileWriter(out, c.sink, props, pqarrow.DefaultWriterProps())
	if err != nil {
		if c.sink.err != nil {
			return 0, fmt.Errorf("arrow import %s: write parquet: %w", c.name, c.sink.err)
		}
		return 0, inputErrorf("%s: cannot be stored as Parquet: %v; cast unusual columns to string, integer, floating point or timestamp types before exporting", c.name, trimArrowPrefix(err))
	}
	closed := false
	defer func() {
		if !closed {
			fw.Close()
		}
	}()

	var groupBytes, groupRows int64
	grouping := false
	for {
		if err := c.ctx.Err(); err != nil {
			return 0, err
		}
		if !rd.Next() {
			break
		}
		rec := rd.RecordBatch()
		size := arrowBatchBytes(rec)
		if size > arrowMaxBatchBytes {
			return 0, c.tooLarge(fmt.Sprintf("%d MiB of buffers", (size+(1<<20)-1)>>20))
		}
		if err := validateBatch(rec); err != nil {
			return 0, c.corrupt(err)
		}
		if rec.NumRows() == 0 {
			continue
		}
		if rec, err = c.decodeNestedDictionaries(rec, out); err != nil {
			return 0, c.corrupt(err)
		}
		switch {
		case size >= arrowBigBatch:
			err = fw.Write(rec)
			grouping = false
		default:
			if !grouping || groupBytes+size > arrowRowGroupBytes || groupRows+rec.NumRows() > arrowRowGroupRows {
				if err = fw.NewBufferedRowGroupChecked(); err != nil {
					break
				}
				grouping, groupBytes, groupRows = true, 0, 0
			}
			err = fw.WriteBuffered(rec)
			groupBytes += size
			groupRows += rec.NumRows()
		}
		n := rec.NumRows()
		rec.Release()
		if err != nil {
			if c.sink.err != nil {
				return 0, fmt.Errorf("arrow import %s: write parquet: %w", c.name, c.sink.err)
			}
			return 0, inputErrorf("%s: record batch %d cannot be written as Parquet: %v; export the file again", c.name, c.batch, trimArrowPrefix(err))
		}
		rows += n
	}
	if err := rd.Err(); err != nil {
		return 0, c.decodeError(err)
	}
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	if rows == 0 {
		return 0, inputErrorf("%s: has no data rows (a schema but no record batch with rows); export a table that has rows", c.name)
	}
	closed = true
	if err := fw.Close(); err != nil {
		if c.sink.err != nil {
			return 0, fmt.Errorf("arrow import %s: write parquet: %w", c.name, c.sink.err)
		}
		return 0, fmt.Errorf("arrow import %s: write parquet: %w", c.name, err)
	}
	return rows, nil
}

// checkSchema refuses schemas that cannot become a snapshot: no columns,
// duplicate names (DuckDB would rename one) or types Parquet cannot hold.
func (c *arrowConv) checkSchema(schema *arrow.Schema) error {
	if schema.NumFields() == 0 {
		return inputErrorf("%s: has no columns; export a table with at least one column", c.name)
	}
	seen := map[string]bool{}
	for _, f := range schema.Fields() {
		key := strings.ToLower(f.Name)
		if seen[key] {
			return inputErrorf("%s: column name %q appears twice (names are compared ignoring case); rename one of the columns before exporting", c.name, f.Name)
		}
		seen[key] = true
		if bad := unsupportedArrowType(f.Type); bad != nil && f.Type.ID() != arrow.NULL {
			return inputErrorf("%s: column %q has type %s, which the sandbox cannot store; cast it to a string, integer, floating point, decimal, date or timestamp type before exporting", c.name, f.Name, bad)
		}
		one := arrow.NewSchema([]arrow.Field{f}, nil)
		if _, err := pqarrow.ToParquet(one, nil, pqarrow.DefaultWriterProps()); err != nil {
			return inputErrorf("%s: column %q has type %s, which Parquet cannot hold (%v); cast it to a string, integer, floating point, decimal, date or timestamp type before exporting", c.name, f.Name, f.Type, trimArrowPrefix(err))
		}
	}
	return nil
}

// unsupportedArrowType returns the first type within t that the snapshot
// path refuses, or nil. These either have no Parquet form in pqarrow or come
// out of it in a form DuckDB does not read back as the same thing.
func unsupportedArrowType(t arrow.DataType) arrow.DataType {
	switch t := t.(type) {
	case arrow.UnionType, *arrow.RunEndEncodedType, *arrow.ListViewType, *arrow.LargeListViewType,
		*arrow.DurationType, *arrow.MonthIntervalType, *arrow.DayTimeIntervalType, *arrow.MonthDayNanoIntervalType:
		return t
	case *arrow.NullType:
		// A top-level null column (pyarrow's type for an all-None pandas
		// column) is written as an all-null column, which DuckDB reads as
		// INTEGER; checkSchema lets those through before calling this.
		return t
	case arrow.DecimalType:
		// Arrow decimals have at most 38 (decimal128) or 76 (decimal256)
		// digits, but DuckDB reads Parquet decimals of more than 38 as
		// DOUBLE, and pqarrow panics on a scale outside 0..precision.
		if t.GetPrecision() < 1 || t.GetPrecision() > 38 || t.GetScale() < 0 || t.GetScale() > t.GetPrecision() {
			return t
		}
	case *arrow.DictionaryType:
		return unsupportedArrowType(t.ValueType)
	case arrow.ExtensionType:
		return unsupportedArrowType(t.StorageType())
	case arrow.NestedType:
		for _, f := range t.Fields() {
			if bad := unsupportedArrowType(f.Type); bad != nil {
				return bad
			}
		}
	}
	return nil
}

// validateBatch fully validates rec. arrow-go's IPC reader gives null-typed
// arrays no buffer at all while its validator insists on one, so top-level
// null columns (whose length NewRecordBatch already checked) are skipped;
// nested null types are refused by checkSchema.
func validateBatch(rec arrow.RecordBatch) error {
	for i, col := range rec.Columns() {
		if col.DataType().ID() == arrow.NULL {
			continue
		}
		if err := array.ValidateFull(col); err != nil {
			return fmt.Errorf("column %q: %w", rec.Schema().Field(i).Name, err)
		}
	}
	return nil
}

// pqarrow writes dictionary arrays natively (DuckDB reads a dictionary<utf8>
// column as VARCHAR), also when the dictionary changes from batch to batch,
// but fails with a nil dereference on a dictionary nested in a list whose
// values are empty in a batch. Columns with a dictionary below a list or map
// are therefore decoded to their value types before writing.

// writerSchema is s with dictionaries below lists and maps decoded.
func writerSchema(s *arrow.Schema) *arrow.Schema {
	fields := slices.Clone(s.Fields())
	for i, f := range fields {
		if dictionaryInList(f.Type, false) {
			fields[i].Type = plainType(f.Type)
		}
	}
	md := s.Metadata()
	return arrow.NewSchema(fields, &md)
}

func dictionaryInList(t arrow.DataType, inList bool) bool {
	switch t := t.(type) {
	case *arrow.DictionaryType:
		return inList || dictionaryInList(t.ValueType, inList)
	case arrow.ListLikeType:
		return dictionaryInList(t.Elem(), true)
	case *arrow.StructType:
		for _, f := range t.Fields() {
			if dictionaryInList(f.Type, inList) {
				return true
			}
		}
	}
	return false
}

// plainType is t with every dictionary replaced by its value type.
func plainType(t arrow.DataType) arrow.DataType {
	plain := func(f arrow.Field) arrow.Field {
		f.Type = plainType(f.Type)
		return f
	}
	switch t := t.(type) {
	case *arrow.DictionaryType:
		return plainType(t.ValueType)
	case *arrow.MapType:
		m := arrow.MapOfFields(plain(t.KeyField()), plain(t.ItemField()))
		m.KeysSorted = t.KeysSorted
		return m
	case *arrow.ListType:
		return arrow.ListOfField(plain(t.ElemField()))
	case *arrow.LargeListType:
		return arrow.LargeListOfField(plain(t.ElemField()))
	case *arrow.FixedSizeListType:
		return arrow.FixedSizeListOfField(t.Len(), plain(t.ElemField()))
	case *arrow.StructType:
		fields := make([]arrow.Field, t.NumFields())
		for i, f := range t.Fields() {
			fields[i] = plain(f)
		}
		return arrow.StructOf(fields...)
	}
	return t
}

// decodeNestedDictionaries returns rec with the columns whose type differs
// in schema out decoded. rec stays the caller's; the caller releases the
// result too. Decoding allocates from the budget, so a dictionary
// that would expand beyond it is refused as too large.
func (c *arrowConv) decodeNestedDictionaries(rec arrow.RecordBatch, out *arrow.Schema) (arrow.RecordBatch, error) {
	if rec.Schema().Equal(out) {
		rec.Retain()
		return rec, nil
	}
	cols := make([]arrow.Array, rec.NumCols())
	defer func() {
		for _, col := range cols {
			if col != nil {
				col.Release()
			}
		}
	}()
	ctx := compute.WithAllocator(c.ctx, c.alloc)
	for i, col := range rec.Columns() {
		if arrow.TypeEqual(col.DataType(), out.Field(i).Type) {
			col.Retain()
			cols[i] = col
			continue
		}
		data, err := decodeDictionaries(ctx, col.Data())
		if err != nil {
			return nil, fmt.Errorf("column %q: %w", out.Field(i).Name, err)
		}
		cols[i] = array.MakeFromData(data)
		data.Release()
	}
	return array.NewRecordBatch(out, cols, rec.NumRows()), nil
}

// decodeDictionaries returns d with every dictionary array within it
// replaced by the values it stands for.
func decodeDictionaries(ctx context.Context, d arrow.ArrayData) (arrow.ArrayData, error) {
	t := d.DataType()
	plain := plainType(t)
	if arrow.TypeEqual(t, plain) {
		d.Retain()
		return d, nil
	}
	if d.Len() == 0 {
		empty := array.MakeArrayOfNull(memory.DefaultAllocator, plain, 0)
		defer empty.Release()
		empty.Data().Retain()
		return empty.Data(), nil
	}
	if dt, ok := t.(*arrow.DictionaryType); ok {
		values, err := decodeDictionaries(ctx, d.Dictionary())
		if err != nil {
			return nil, err
		}
		dict := array.MakeFromData(values)
		values.Release()
		defer dict.Release()
		idxData := array.NewData(dt.IndexType, d.Len(), d.Buffers(), nil, d.NullN(), d.Offset())
		indices := array.MakeFromData(idxData)
		idxData.Release()
		defer indices.Release()
		taken, err := compute.TakeArray(ctx, dict, indices)
		if err != nil {
			return nil, err
		}
		defer taken.Release()
		taken.Data().Retain()
		return taken.Data(), nil
	}
	children := make([]arrow.ArrayData, len(d.Children()))
	defer func() {
		for _, ch := range children {
			if ch != nil {
				ch.Release()
			}
		}
	}()
	for i, ch := range d.Children() {
		var err error
		if children[i], err = decodeDictionaries(ctx, ch); err != nil {
			return nil, err
		}
	}
	return array.NewData(plain, d.Len(), d.Buffers(), children, d.NullN(), d.Offset()), nil
}

// arrowBatchBytes is what rec costs: the bytes of all its buffers, each array
// counted at least one byte per value (a null-typed or child-less array has
// no buffers but still costs the writer per value), dictionaries included.
func arrowBatchBytes(rec arrow.RecordBatch) int64 {
	var n int64
	for _, col := range rec.Columns() {
		n += arrowDataBytes(col.Data(), 0)
		if n > arrowMaxBatchBytes {
			return n
		}
	}
	return n
}

func arrowDataBytes(d arrow.ArrayData, depth int) int64 {
	if d == nil || d.DataType() == nil || depth > arrowMaxDepth+1 {
		return 0
	}
	var n int64
	for _, b := range d.Buffers() {
		if b != nil {
			n += int64(b.Len())
		}
	}
	n = max(n, int64(d.Len()))
	for _, child := range d.Children() {
		n += arrowDataBytes(child, depth+1)
	}
	// Dictionary returns a typed nil when there is none.
	if dict, ok := d.Dictionary().(*array.Data); ok && dict != nil {
		n += arrowDataBytes(dict, depth+1)
	}
	return n
}

// Errors.

var (
	errArrowTooManyFields = errors.New("too many fields")
	errArrowTooDeep       = errors.New("too deeply nested")
)

func (c *arrowConv) notArrow() error {
	return inputErrorf("%s: not an Arrow IPC file or stream (no ARROW1 magic and no stream schema message); export with pyarrow.ipc.new_file or new_stream", c.name)
}

func (c *arrowConv) truncated() error {
	if c.stream {
		return inputErrorf("%s: truncated Arrow IPC stream (it ends in the middle of a message); upload the complete file or export it again with pyarrow.ipc.new_stream", c.name)
	}
	return inputErrorf("%s: truncated Arrow IPC file (the ARROW1 footer is missing or cut); upload the complete file or export it again with pyarrow.ipc.new_file", c.name)
}

func (c *arrowConv) corrupt(err error) error {
	where := c.where
	if where == "" {
		where = "the schema"
	}
	return inputErrorf("%s: corrupt Arrow IPC data in %s (%v); export the file again with pyarrow.ipc.new_file or new_stream", c.name, where, trimArrowPrefix(err))
}

func (c *arrowConv) tooLarge(what string) error {
	return inputErrorf("%s: record batch %d is too large (%s; the limit is %d MiB); write smaller batches, e.g. pyarrow's table.to_batches(max_chunksize=...) or write_feather(..., chunksize=...)", c.name, max(c.batch, 1), what, arrowMaxBatchBytes>>20)
}

func (c *arrowConv) schemaError(err error) error {
	switch {
	case errors.Is(err, errArrowTooManyFields):
		return inputErrorf("%s: the schema has more than %d fields (nested ones included); split the table into datasets with fewer columns", c.name, arrowMaxFields)
	case errors.Is(err, errArrowTooDeep):
		return inputErrorf("%s: the schema nests types more than %d levels deep; flatten the nested columns before exporting", c.name, arrowMaxDepth)
	}
	return c.corrupt(err)
}

// decodeError classifies an error (or recovered panic) from the decoder.
func (c *arrowConv) decodeError(err error) error {
	var ie *InputError
	switch {
	case errors.As(err, &ie):
		return ie
	case c.alloc.exceeded.Load():
		return c.tooLarge("decoding it needs more memory than allowed")
	}
	// The message reader reports truncation itself; an unexpected EOF
	// from arrow-go is compressed data that ends too soon.
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return c.corrupt(errors.New("a compressed buffer ends too soon"))
	}
	return c.corrupt(err)
}

// trimArrowPrefix drops arrow-go's package prefixes, which say nothing to a
// user.
func trimArrowPrefix(err error) string {
	msg := err.Error()
	for _, p := range []string{"arrow/ipc: ", "arrow/array: ", "arrow: ", "parquet: ", "unknown error while reading: ", "unknown error type: "} {
		msg = strings.ReplaceAll(msg, p, "")
	}
	if len(msg) > 300 {
		msg = msg[:300] + "…"
	}
	return msg
}

// Reading messages. arrow-go decodes the messages; arrowMessages frames them
// from the file (in stream order, or as the file format's footer lists
// them), checks their metadata and reads their bodies under the budget.

// ipcBlock is one message of the file format, as its footer lists it.
type ipcBlock struct {
	offset int64
	meta   int64
	body   int64
	dict   bool
}

// open detects the format and returns the message reader.
func (c *arrowConv) open() (*arrowMessages, error) {
	head := make([]byte, 8)
	n, err := c.in.ReadAt(head, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("arrow import %s: %w", c.name, err)
	}
	head = head[:n]
	m := &arrowMessages{c: c}
	m.refs.Store(1)
	switch {
	case bytes.HasPrefix(head, arrowMagic):
		c.where = "the footer"
		blocks, footer, err := c.readFooter()
		if err != nil {
			return nil, err
		}
		c.where = ""
		m.blocks = blocks
		first := footer
		for _, b := range blocks {
			first = min(first, b.offset)
		}
		m.stream = bufio.NewReader(io.NewSectionReader(c.in, 8, first-8))
	case bytes.HasPrefix(head, []byte("FEA1")):
		return nil, inputErrorf("%s: is a Feather version 1 file, which is not supported; save it again with pyarrow.feather.write_feather(table, path, version=2)", c.name)
	case bytes.HasPrefix(head, []byte("PAR1")):
		return nil, inputErrorf("%s: is a Parquet file, not Arrow IPC; upload it with a .parquet name", c.name)
	default:
		c.stream = true
		m.stream = bufio.NewReaderSize(io.NewSectionReader(c.in, 0, c.size), 1<<16)
	}
	return m, nil
}

// readFooter reads and checks the footer of the file format: its blocks must
// lie between the leading magic and the footer without overlapping, so no
// byte is decoded twice.
func (c *arrowConv) readFooter() (blocks []ipcBlock, footerAt int64, err error) {
	const tail = 4 + 6 // footer length, magic
	if c.size < 8+tail {
		return nil, 0, c.truncated()
	}
	buf := make([]byte, tail)
	if _, err := c.in.ReadAt(buf, c.size-tail); err != nil {
		return nil, 0, fmt.Errorf("arrow import %s: %w", c.name, err)
	}
	if !bytes.Equal(buf[4:], arrowMagic) {
		return nil, 0, c.truncated()
	}
	flen := int64(binary.LittleEndian.Uint32(buf))
	footerAt = c.size - tail - flen
	if flen < 8 || footerAt < 8 {
		return nil, 0, c.corrupt(fmt.Errorf("footer length %d does not fit the file", flen))
	}
	if flen > arrowMaxFooter {
		return nil, 0, inputErrorf("%s: the Arrow footer is %d MiB, more than %d MiB (too many record batches); write fewer, larger batches", c.name, flen>>20, arrowMaxFooter>>20)
	}
	footer := make([]byte, flen)
	if _, err := c.in.ReadAt(footer, footerAt); err != nil {
		return nil, 0, fmt.Errorf("arrow import %s: %w", c.name, err)
	}
	defer func() {
		if p := recover(); p != nil {
			blocks, footerAt, err = nil, 0, c.corrupt(fmt.Errorf("footer: %v", p))
		}
	}()
	b := flatBuf(footer)
	root := b.root()
	for _, kind := range []struct {
		id   int
		dict bool
	}{{2, true}, {3, false}} {
		start, n := b.vector(root, kind.id, 24)
		for i := range n {
			p := start + 24*i
			blk := ipcBlock{
				offset: b.i64(p),
				meta:   int64(int32(b.u32(p + 8))),
				body:   b.i64(p + 16),
				dict:   kind.dict,
			}
			if blk.offset < 8 || blk.meta < 8 || blk.meta > arrowMaxMetadata || blk.body < 0 ||
				blk.body > footerAt || blk.offset > footerAt-blk.meta-blk.body {
				return nil, 0, c.corrupt(fmt.Errorf("footer block %d (offset %d, metadata %d, body %d) does not fit the file", i, blk.offset, blk.meta, blk.body))
			}
			blocks = append(blocks, blk)
		}
	}
	sorted := slices.Clone(blocks)
	slices.SortFunc(sorted, func(x, y ipcBlock) int { return cmp.Compare(x.offset, y.offset) })
	for i := 1; i < len(sorted); i++ {
		if p := sorted[i-1]; p.offset+p.meta+p.body > sorted[i].offset {
			return nil, 0, c.corrupt(fmt.Errorf("footer blocks at offsets %d and %d overlap", p.offset, sorted[i].offset))
		}
	}
	return blocks, footerAt, nil
}

// arrowMessages is an ipc.MessageReader over the input.
type arrowMessages struct {
	c      *arrowConv
	stream *bufio.Reader // the stream, or the file's leading schema message
	blocks []ipcBlock    // file format: dictionaries, then record batches
	seen   int           // messages returned
	cont   bool          // the last framed message had a continuation marker
	msg    *ipc.Message
	refs   atomic.Int64
}

func (m *arrowMessages) Retain() { m.refs.Add(1) }

func (m *arrowMessages) Release() {
	if m.refs.Add(-1) == 0 && m.msg != nil {
		m.msg.Release()
		m.msg = nil
	}
}

// Message returns the next message, valid until the next call, or io.EOF.
func (m *arrowMessages) Message() (*ipc.Message, error) {
	c := m.c
	// Records hold their own references to the body, so the previous
	// message can go before the next body is read.
	if m.msg != nil {
		m.msg.Release()
		m.msg = nil
	}
	var (
		meta []byte
		body io.Reader
		blk  *ipcBlock
		err  error
	)
	if !c.stream && m.seen > 0 {
		if len(m.blocks) == 0 {
			return nil, io.EOF
		}
		blk = &m.blocks[0]
		m.blocks = m.blocks[1:]
		if blk.dict {
			c.where = fmt.Sprintf("dictionary batch %d", c.dicts+1)
		} else {
			c.where = fmt.Sprintf("record batch %d", c.batch+1)
		}
		meta, err = c.blockMeta(blk)
		body = io.NewSectionReader(c.in, blk.offset+blk.meta, blk.body)
	} else {
		if m.seen > 0 {
			c.where = fmt.Sprintf("the message after %s", c.where)
		}
		meta, err = m.framed()
		body = m.stream
	}
	if err != nil {
		return nil, err
	}
	typ, bodyLen, err := checkIPCMessage(meta)
	if err != nil {
		// Without the continuation marker (legacy framing) a first message
		// that does not parse says the input is not Arrow at all.
		if m.seen == 0 && c.stream && !m.cont {
			return nil, c.notArrow()
		}
		return nil, c.schemaError(err)
	}
	switch {
	case m.seen == 0 && typ != ipcHeaderSchema:
		if c.stream {
			return nil, c.notArrow()
		}
		return nil, c.corrupt(fmt.Errorf("the file does not start with a schema message"))
	case m.seen > 0 && typ == ipcHeaderSchema:
		return nil, c.corrupt(fmt.Errorf("a second schema message"))
	case blk != nil && blk.dict && typ != ipcHeaderDictionary:
		return nil, c.corrupt(fmt.Errorf("footer dictionary block holds message type %d", typ))
	case blk != nil && !blk.dict && typ != ipcHeaderRecord:
		return nil, c.corrupt(fmt.Errorf("footer record batch block holds message type %d", typ))
	}
	switch typ {
	case ipcHeaderSchema:
		c.where = "the schema"
	case ipcHeaderRecord:
		c.batch++
		c.where = fmt.Sprintf("record batch %d", c.batch)
	case ipcHeaderDictionary:
		c.dicts++
		c.where = fmt.Sprintf("dictionary batch %d", c.dicts)
	}
	if bodyLen < 0 || blk != nil && bodyLen != blk.body {
		return nil, c.corrupt(fmt.Errorf("message body length %d is wrong", bodyLen))
	}
	if bodyLen > arrowMaxBatchBytes {
		return nil, c.tooLarge(fmt.Sprintf("a %d MiB message body", bodyLen>>20))
	}
	buf := memory.NewResizableBuffer(c.alloc)
	defer buf.Release()
	buf.Resize(int(bodyLen))
	if _, err := io.ReadFull(body, buf.Bytes()); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, c.truncated()
		}
		return nil, fmt.Errorf("arrow import %s: %w", c.name, err)
	}
	m.msg = ipc.NewMessage(memory.NewBufferBytes(meta), buf)
	m.seen++
	return m.msg, nil
}

// framed reads the next message's metadata from the stream: an optional
// continuation marker, a length and the FlatBuffers Message. It returns
// io.EOF at the end-of-stream marker or at the end of the input.
func (m *arrowMessages) framed() ([]byte, error) {
	c := m.c
	var word [4]byte
	n, err := io.ReadFull(m.stream, word[:])
	if n == 0 && errors.Is(err, io.EOF) {
		if m.seen == 0 {
			return nil, c.notArrow()
		}
		return nil, io.EOF
	}
	if err != nil {
		return nil, m.framingError(err, false)
	}
	cont := binary.LittleEndian.Uint32(word[:]) == ipcContinuation
	m.cont = cont
	length := int32(binary.LittleEndian.Uint32(word[:]))
	if cont {
		if _, err := io.ReadFull(m.stream, word[:]); err != nil {
			return nil, m.framingError(err, true)
		}
		length = int32(binary.LittleEndian.Uint32(word[:]))
	}
	if length == 0 {
		if m.seen == 0 {
			return nil, c.notArrow()
		}
		return nil, io.EOF
	}
	if length < 8 || length > arrowMaxMetadata {
		if m.seen == 0 {
			return nil, c.notArrow()
		}
		return nil, c.corrupt(fmt.Errorf("message metadata length %d", length))
	}
	meta := make([]byte, length)
	if _, err := io.ReadFull(m.stream, meta); err != nil {
		return nil, m.framingError(err, cont)
	}
	return meta, nil
}

func (m *arrowMessages) framingError(err error, cont bool) error {
	if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("arrow import %s: %w", m.c.name, err)
	}
	if m.seen == 0 && m.c.stream && !cont {
		return m.c.notArrow()
	}
	return m.c.truncated()
}

// blockMeta reads the metadata of a block of the file format.
func (c *arrowConv) blockMeta(blk *ipcBlock) ([]byte, error) {
	buf := make([]byte, blk.meta)
	if _, err := c.in.ReadAt(buf, blk.offset); err != nil {
		return nil, fmt.Errorf("arrow import %s: %w", c.name, err)
	}
	prefix, length := 4, int64(int32(binary.LittleEndian.Uint32(buf)))
	if binary.LittleEndian.Uint32(buf) == ipcContinuation {
		prefix, length = 8, int64(int32(binary.LittleEndian.Uint32(buf[4:])))
	}
	if length < 8 || length > blk.meta-int64(prefix) {
		return nil, c.corrupt(fmt.Errorf("block at offset %d: metadata length %d does not fit %d", blk.offset, length, blk.meta))
	}
	return buf[prefix : int64(prefix)+length], nil
}

// Checking FlatBuffers. arrow-go trusts the lengths in the metadata: it
// allocates slices as long as a vector claims to be and recurses through
// field children without a limit, and FlatBuffers offsets may point
// backwards, so a few hundred bytes can claim gigabytes or form a cycle. Go
// cannot recover from running out of memory or stack, so the parts arrow-go
// walks eagerly are checked here first: vectors must fit in the buffer,
// fields are counted and their depth bounded.

// flatBuf reads FlatBuffers; reads out of range panic, and callers recover.
type flatBuf []byte

func (b flatBuf) u16(p int) int   { return int(binary.LittleEndian.Uint16(b[p : p+2])) }
func (b flatBuf) u32(p int) int   { return int(binary.LittleEndian.Uint32(b[p : p+4])) }
func (b flatBuf) i64(p int) int64 { return int64(binary.LittleEndian.Uint64(b[p : p+8])) }
func (b flatBuf) root() int       { return b.u32(0) }

// field returns the position of field id of the table at t, or -1 if it is
// absent; it follows the FlatBuffers runtime's rules exactly.
func (b flatBuf) field(t, id int) int {
	vt := t - int(int32(b.u32(t)))
	o := 4 + 2*id
	if o >= b.u16(vt) {
		return -1
	}
	off := b.u16(vt + o)
	if off == 0 {
		return -1
	}
	return t + off
}

// ref returns the position of the object that field id of the table at t
// refers to, or -1 if it is absent.
func (b flatBuf) ref(t, id int) int {
	p := b.field(t, id)
	if p < 0 {
		return -1
	}
	return p + b.u32(p)
}

// vector returns the position of the first element and the length of the
// vector field id of the table at t, with elements of size elem; it panics if
// the vector does not fit in the buffer.
func (b flatBuf) vector(t, id, elem int) (start, n int) {
	v := b.ref(t, id)
	if v < 0 {
		return 0, 0
	}
	n, start = b.u32(v), v+4
	if n > (len(b)-start)/elem {
		panic(fmt.Sprintf("vector of %d elements does not fit in %d bytes", n, len(b)))
	}
	return start, n
}

// checkIPCMessage checks a Message's metadata and returns its header type and
// body length.
func checkIPCMessage(meta []byte) (typ int, bodyLen int64, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("malformed message metadata: %v", p)
		}
	}()
	b := flatBuf(meta)
	root := b.root()
	if p := b.field(root, 1); p >= 0 {
		typ = int(b[p])
	}
	if p := b.field(root, 3); p >= 0 {
		bodyLen = b.i64(p)
	}
	b.vector(root, 4, 4) // custom_metadata
	header := b.ref(root, 2)
	switch typ {
	case ipcHeaderSchema:
		if header < 0 {
			return 0, 0, errors.New("schema message without a schema")
		}
		b.vector(header, 2, 4) // custom_metadata
		count := 0
		if err := b.checkFields(header, 1, 1, &count); err != nil {
			return 0, 0, err
		}
	case ipcHeaderDictionary, ipcHeaderRecord:
		if header < 0 {
			return 0, 0, errors.New("message without a header")
		}
	default:
		return 0, 0, fmt.Errorf("unknown message type %d", typ)
	}
	return typ, bodyLen, nil
}

// checkFields checks the vector of Field tables at field id of the table at t
// (a Schema's fields or a Field's children) and their children.
func (b flatBuf) checkFields(t, id, depth int, count *int) error {
	start, n := b.vector(t, id, 4)
	if n > 0 && depth > arrowMaxDepth {
		return errArrowTooDeep
	}
	for i := range n {
		if *count++; *count > arrowMaxFields {
			return errArrowTooManyFields
		}
		p := start + 4*i
		f := p + b.u32(p)
		b.vector(f, 6, 4) // custom_metadata
		if err := b.checkFields(f, 5, depth+1, count); err != nil {
			return err
		}
	}
	return nil
}

// arrowBudget is an allocator that refuses a single allocation over
// arrowMaxBatchBytes (a decompressed buffer that large cannot belong to an
// acceptable batch) and to hold more than limit bytes at once; it panics,
// and the decoder turns the panic into an error.
type arrowBudget struct {
	mem      memory.Allocator
	limit    int64
	used     atomic.Int64
	exceeded atomic.Bool
}

func (a *arrowBudget) take(n int64) {
	if n > arrowMaxBatchBytes {
		a.exceeded.Store(true)
		panic(fmt.Sprintf("a buffer of %d MiB", n>>20))
	}
	if n > 0 && a.used.Add(n) > a.limit {
		a.used.Add(-n)
		a.exceeded.Store(true)
		panic(fmt.Sprintf("decoding needs more than %d MiB", a.limit>>20))
	}
	if n < 0 {
		a.used.Add(n)
	}
}

func (a *arrowBudget) Allocate(size int) []byte {
	a.take(int64(size))
	return a.mem.Allocate(size)
}

func (a *arrowBudget) Reallocate(size int, b []byte) []byte {
	a.take(int64(size) - int64(len(b)))
	return a.mem.Reallocate(size, b)
}

func (a *arrowBudget) Free(b []byte) {
	a.used.Add(-int64(len(b)))
	a.mem.Free(b)
}
