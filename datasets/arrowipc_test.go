package datasets

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

var arrowCities = []string{"北京", "上海", "广州", "深圳"}

// arrowPeopleSchema is the schema of the test data: the types the brief
// names, nullable, and a dictionary-encoded string column.
func arrowPeopleSchema() *arrow.Schema {
	return arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "name", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "score", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "born", Type: arrow.FixedWidthTypes.Date32, Nullable: true},
		{Name: "amount", Type: &arrow.Decimal128Type{Precision: 12, Scale: 2}, Nullable: true},
		{Name: "seen_at", Type: &arrow.TimestampType{Unit: arrow.Microsecond}, Nullable: true},
		{Name: "active", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
		{Name: "city", Type: &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String}, Nullable: true},
	}, nil)
}

// arrowPeople returns the 12 test rows in batches of 5, 4 and 3. Row i has
// id i+1; every fourth row has nulls in all nullable columns. Each batch's
// dictionary starts with dict(batch) (the file format needs the same
// dictionary in every batch, a stream may grow or replace it).
func arrowPeople(t testing.TB, dict func(batch int) []string) []arrow.RecordBatch {
	t.Helper()
	names := []string{"张三", "李四", "王五", "赵六", "钱七", "孙八", "周九", "吴十", "郑十一", "冯十二", "陈十三", "褚十四"}
	schema := arrowPeopleSchema()
	var out []arrow.RecordBatch
	row := 0
	for batch, n := range []int{5, 4, 3} {
		b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
		cb := b.Field(7).(*array.BinaryDictionaryBuilder)
		seed := array.NewStringBuilder(memory.DefaultAllocator)
		seed.AppendValues(dict(batch), nil)
		seedArr := seed.NewStringArray()
		if err := cb.InsertStringDictValues(seedArr); err != nil {
			t.Fatal(err)
		}
		seedArr.Release()
		seed.Release()
		for range n {
			b.Field(0).(*array.Int64Builder).Append(int64(row + 1))
			if row%4 == 2 {
				for i := 1; i < 8; i++ {
					b.Field(i).AppendNull()
				}
				row++
				continue
			}
			b.Field(1).(*array.StringBuilder).Append(names[row])
			b.Field(2).(*array.Float64Builder).Append(float64(row) + 0.5)
			b.Field(3).(*array.Date32Builder).Append(arrow.Date32FromTime(time.Date(1990, 1, 1+row, 0, 0, 0, 0, time.UTC)))
			b.Field(4).(*array.Decimal128Builder).Append(decimal128.FromI64(int64(123450 + row)))
			b.Field(5).(*array.TimestampBuilder).Append(arrow.Timestamp(time.Date(2024, 5, 1, 8, 30, row, 0, time.UTC).UnixMicro()))
			b.Field(6).(*array.BooleanBuilder).Append(row%2 == 0)
			if err := cb.AppendString(dict(batch)[row%len(dict(batch))]); err != nil {
				t.Fatal(err)
			}
			row++
		}
		out = append(out, b.NewRecordBatch())
		b.Release()
	}
	t.Cleanup(func() {
		for _, r := range out {
			r.Release()
		}
	})
	return out
}

func sameCities(int) []string { return arrowCities }

// growingCities gives the stream a dictionary delta (batch 1 extends batch
// 0's dictionary) and a replacement (batch 2 starts over).
func growingCities(batch int) []string {
	switch batch {
	case 0:
		return arrowCities[:2]
	case 1:
		return arrowCities[:3]
	}
	return []string{"深圳", "北京"}
}

func writeArrowFile(t testing.TB, path string, recs []arrow.RecordBatch, opts ...ipc.Option) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := ipc.NewFileWriter(f, append([]ipc.Option{ipc.WithSchema(recs[0].Schema())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func writeArrowStream(t testing.TB, path string, schema *arrow.Schema, recs []arrow.RecordBatch, opts ...ipc.Option) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := ipc.NewWriter(f, append([]ipc.Option{ipc.WithSchema(schema)}, opts...)...)
	for _, r := range recs {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func openDuckDB(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestArrowToParquet(t *testing.T) {
	cases := []struct {
		name  string
		file  string
		write func(t *testing.T, path string)
		dict  func(int) []string
	}{
		{"file", "people.arrow", func(t *testing.T, p string) {
			writeArrowFile(t, p, arrowPeople(t, sameCities))
		}, sameCities},
		{"file-lz4", "people.feather", func(t *testing.T, p string) {
			// pyarrow's write_feather compresses with LZ4 by default.
			writeArrowFile(t, p, arrowPeople(t, sameCities), ipc.WithLZ4())
		}, sameCities},
		{"stream", "people.arrows", func(t *testing.T, p string) {
			writeArrowStream(t, p, arrowPeopleSchema(), arrowPeople(t, growingCities))
		}, growingCities},
		{"stream-zstd-deltas", "people.arrows", func(t *testing.T, p string) {
			writeArrowStream(t, p, arrowPeopleSchema(), arrowPeople(t, growingCities), ipc.WithZstd(), ipc.WithDictionaryDeltas(true))
		}, growingCities},
		{"stream-named-arrow", "people.arrow", func(t *testing.T, p string) {
			// The format is told by the magic bytes, not the extension.
			writeArrowStream(t, p, arrowPeopleSchema(), arrowPeople(t, growingCities))
		}, growingCities},
	}
	db := openDuckDB(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			src, dst := filepath.Join(dir, tc.file), filepath.Join(dir, "out.parquet")
			tc.write(t, src)
			rows, err := arrowToParquet(context.Background(), src, dst)
			if err != nil {
				t.Fatalf("arrowToParquet: %v", err)
			}
			if rows != 12 {
				t.Errorf("rows = %d, want 12", rows)
			}
			reader := "read_parquet(" + literal(dst) + ")"

			var n int64
			if err := db.QueryRow("SELECT count(*) FROM " + reader).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != 12 {
				t.Errorf("DuckDB counts %d rows, want 12", n)
			}

			want := [][2]string{
				{"id", "BIGINT"}, {"name", "VARCHAR"}, {"score", "DOUBLE"}, {"born", "DATE"},
				{"amount", "DECIMAL(12,2)"}, {"seen_at", "TIMESTAMP"}, {"active", "BOOLEAN"}, {"city", "VARCHAR"},
			}
			cols, err := db.Query("SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM " + reader + ")")
			if err != nil {
				t.Fatal(err)
			}
			var got [][2]string
			for cols.Next() {
				var c [2]string
				if err := cols.Scan(&c[0], &c[1]); err != nil {
					t.Fatal(err)
				}
				got = append(got, c)
			}
			cols.Close()
			if len(got) != len(want) {
				t.Fatalf("columns = %v, want %v", got, want)
			}
			for i := range want {
				if got[i] != want[i] {
					t.Errorf("column %d = %v, want %v", i, got[i], want[i])
				}
			}

			// id 2 is in batch 0, id 8 in batch 1 and id 11 (all nulls)
			// in batch 2.
			type row struct {
				name, born, amount, seen, city sql.NullString
				score                          sql.NullFloat64
				active                         sql.NullBool
			}
			q := `SELECT name, score, born::VARCHAR, amount::VARCHAR, seen_at::VARCHAR, active, city FROM ` + reader + ` WHERE id = ?`
			get := func(id int) row {
				var r row
				if err := db.QueryRow(q, id).Scan(&r.name, &r.score, &r.born, &r.amount, &r.seen, &r.active, &r.city); err != nil {
					t.Fatalf("id %d: %v", id, err)
				}
				return r
			}
			r := get(2)
			if r.name.String != "李四" || r.score.Float64 != 1.5 || r.born.String != "1990-01-02" || r.amount.String != "1234.51" ||
				r.seen.String != "2024-05-01 08:30:01" || r.active.Bool || r.city.String != tc.dict(0)[1] {
				t.Errorf("id 2 = %+v", r)
			}
			r = get(8)
			if r.name.String != "吴十" || r.amount.String != "1234.57" || !r.active.Valid || r.active.Bool || r.city.String != tc.dict(1)[7%len(tc.dict(1))] {
				t.Errorf("id 8 = %+v", r)
			}
			r = get(11)
			if r.name.Valid || r.score.Valid || r.born.Valid || r.amount.Valid || r.seen.Valid || r.active.Valid || r.city.Valid {
				t.Errorf("id 11 should be all nulls: %+v", r)
			}
			var nullNames int
			if err := db.QueryRow("SELECT count(*) FROM " + reader + " WHERE name IS NULL").Scan(&nullNames); err != nil {
				t.Fatal(err)
			}
			if nullNames != 3 {
				t.Errorf("%d null names, want 3", nullNames)
			}
		})
	}
}

// TestArrowToParquetListOfDictionary covers a dictionary inside a list,
// which pqarrow cannot write when a batch's list values are empty, and a
// top-level null column (pandas' all-None column).
func TestArrowToParquetListOfDictionary(t *testing.T) {
	dictT := &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int8, ValueType: arrow.BinaryTypes.String}
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "tags", Type: arrow.ListOf(dictT), Nullable: true},
		{Name: "nothing", Type: arrow.Null, Nullable: true},
	}, nil)
	var recs []arrow.RecordBatch
	for batch := range 2 {
		b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
		lb := b.Field(0).(*array.ListBuilder)
		vb := lb.ValueBuilder().(*array.BinaryDictionaryBuilder)
		if batch == 0 {
			lb.Append(true) // empty list
			lb.AppendNull()
		} else {
			lb.Append(true)
			vb.AppendString("红")
			vb.AppendString("绿")
			lb.Append(true)
			vb.AppendNull()
		}
		b.Field(1).AppendNull()
		b.Field(1).AppendNull()
		recs = append(recs, b.NewRecordBatch())
		b.Release()
	}
	defer func() {
		for _, r := range recs {
			r.Release()
		}
	}()
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "tags.arrows"), filepath.Join(dir, "out.parquet")
	writeArrowStream(t, src, schema, recs)
	rows, err := arrowToParquet(context.Background(), src, dst)
	if err != nil {
		t.Fatalf("arrowToParquet: %v", err)
	}
	if rows != 4 {
		t.Errorf("rows = %d, want 4", rows)
	}
	db := openDuckDB(t)
	var typ, all string
	if err := db.QueryRow("SELECT typeof(tags), string_agg(coalesce(tags::VARCHAR, 'NULL'), ';') FROM read_parquet("+literal(dst)+") GROUP BY ALL").Scan(&typ, &all); err != nil {
		t.Fatal(err)
	}
	if typ != "VARCHAR[]" || all != "[];NULL;[红, 绿];[NULL]" {
		t.Errorf("tags: type %s, values %s", typ, all)
	}
}

// TestArrowToParquetRowGroups mixes small batches, which are gathered into
// one row group, with a batch over 8 MiB, which gets row groups of its own
// of at most 2^20 rows.
func TestArrowToParquetRowGroups(t *testing.T) {
	schema := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64}}, nil)
	next := int64(0)
	batch := func(n int) arrow.RecordBatch {
		b := array.NewInt64Builder(memory.DefaultAllocator)
		defer b.Release()
		b.Reserve(n)
		for range n {
			next++
			b.UnsafeAppend(next)
		}
		col := b.NewArray()
		defer col.Release()
		return array.NewRecordBatch(schema, []arrow.Array{col}, int64(n))
	}
	recs := []arrow.RecordBatch{batch(10), batch(20), batch(1_200_000), batch(30), batch(40)}
	defer func() {
		for _, r := range recs {
			r.Release()
		}
	}()
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "ids.arrow"), filepath.Join(dir, "out.parquet")
	writeArrowFile(t, src, recs)
	rows, err := arrowToParquet(context.Background(), src, dst)
	if err != nil {
		t.Fatalf("arrowToParquet: %v", err)
	}
	if rows != next {
		t.Errorf("rows = %d, want %d", rows, next)
	}
	db := openDuckDB(t)
	var n, sum, first, last int64
	if err := db.QueryRow("SELECT count(*), sum(id), min(id), max(id) FROM read_parquet("+literal(dst)+")").Scan(&n, &sum, &first, &last); err != nil {
		t.Fatal(err)
	}
	if n != next || sum != next*(next+1)/2 || first != 1 || last != next {
		t.Errorf("count %d sum %d min %d max %d, want the %d ids 1..%d", n, sum, first, last, next, next)
	}
	var groups []int64
	rg, err := db.Query("SELECT row_group_num_rows FROM parquet_metadata(" + literal(dst) + ") ORDER BY row_group_id")
	if err != nil {
		t.Fatal(err)
	}
	for rg.Next() {
		var r int64
		if err := rg.Scan(&r); err != nil {
			t.Fatal(err)
		}
		groups = append(groups, r)
	}
	rg.Close()
	want := []int64{30, 1 << 20, 1_200_000 - 1<<20, 70}
	if !slices.Equal(groups, want) {
		t.Errorf("row groups %v, want %v", groups, want)
	}
}

// convertBad converts data written to a file called name and checks that it
// fails with an InputError (never a panic) and leaves no dst.
func convertBad(t *testing.T, name string, data []byte) *InputError {
	t.Helper()
	dir := t.TempDir()
	src, dst := filepath.Join(dir, name), filepath.Join(dir, "out.parquet")
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := arrowToParquet(context.Background(), src, dst)
	var ie *InputError
	if !errors.As(err, &ie) {
		t.Fatalf("err = %v (%T), want an *InputError", err, err)
	}
	if strings.Contains(ie.Msg, dir) {
		t.Errorf("message shows the server path: %s", ie.Msg)
	}
	if _, err := os.Stat(dst); !os.IsNotExist(err) {
		t.Errorf("dst left behind (stat: %v)", err)
	}
	return ie
}

func wantMsg(t *testing.T, ie *InputError, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(ie.Msg, p) {
			t.Errorf("message %q does not contain %q", ie.Msg, p)
		}
	}
}

func arrowBytes(t testing.TB, stream bool, opts ...ipc.Option) []byte {
	t.Helper()
	p := filepath.Join(t.TempDir(), "x")
	if stream {
		writeArrowStream(t, p, arrowPeopleSchema(), arrowPeople(t, growingCities), opts...)
	} else {
		writeArrowFile(t, p, arrowPeople(t, sameCities), opts...)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// recordBlocks returns the record batch blocks of an IPC file's footer.
func recordBlocks(t *testing.T, data []byte) []ipcBlock {
	t.Helper()
	p := filepath.Join(t.TempDir(), "x.arrow")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c := &arrowConv{name: "x.arrow", in: f, size: int64(len(data))}
	blocks, _, err := c.readFooter()
	if err != nil {
		t.Fatal(err)
	}
	var recs []ipcBlock
	for _, b := range blocks {
		if !b.dict {
			recs = append(recs, b)
		}
	}
	return recs
}

func TestArrowToParquetRejects(t *testing.T) {
	t.Run("random bytes", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(1, 2))
		data := make([]byte, 4096)
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		ie := convertBad(t, "people.arrow", data)
		wantMsg(t, ie, "people.arrow: not an Arrow IPC file or stream", "pyarrow.ipc.new_file")
	})
	t.Run("csv", func(t *testing.T) {
		convertBad(t, "people.arrow", []byte("id,name\n1,张三\n"))
	})
	t.Run("empty file", func(t *testing.T) {
		wantMsg(t, convertBad(t, "people.arrow", nil), "not an Arrow IPC file or stream")
	})
	t.Run("parquet", func(t *testing.T) {
		wantMsg(t, convertBad(t, "people.arrow", []byte("PAR1\x15\x04\x15\x10\x15\x14L\x15\x02\x15\x00PAR1")), "is a Parquet file")
	})
	t.Run("truncated file", func(t *testing.T) {
		data := arrowBytes(t, false)
		blk := recordBlocks(t, data)[1]
		cut := blk.offset + blk.meta + blk.body/2 // in the middle of batch 2's body
		ie := convertBad(t, "people.arrow", data[:cut])
		wantMsg(t, ie, "people.arrow: truncated Arrow IPC file")
	})
	t.Run("truncated stream", func(t *testing.T) {
		data := arrowBytes(t, true)
		ie := convertBad(t, "people.arrows", data[:len(data)*2/3])
		wantMsg(t, ie, "people.arrows: truncated Arrow IPC stream")
	})
	for _, compressed := range []bool{false, true} {
		name := "body flipped"
		var opts []ipc.Option
		if compressed {
			name += " lz4"
			opts = append(opts, ipc.WithLZ4())
		}
		t.Run(name, func(t *testing.T) {
			data := arrowBytes(t, false, opts...)
			blk := recordBlocks(t, data)[0]
			for i := blk.offset + blk.meta; i < blk.offset+blk.meta+blk.body; i++ {
				data[i] ^= 0xFF
			}
			wantMsg(t, convertBad(t, "people.arrow", data), "people.arrow: corrupt Arrow IPC data in record batch 1")
		})
	}
	t.Run("empty stream", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "x")
		writeArrowStream(t, p, arrowPeopleSchema(), nil)
		data, _ := os.ReadFile(p)
		wantMsg(t, convertBad(t, "people.arrows", data), "people.arrows: has no data rows")
	})
	t.Run("empty file format", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "x")
		f, _ := os.Create(p)
		w, err := ipc.NewFileWriter(f, ipc.WithSchema(arrowPeopleSchema()))
		if err != nil {
			t.Fatal(err)
		}
		w.Close()
		f.Close()
		data, _ := os.ReadFile(p)
		wantMsg(t, convertBad(t, "people.arrow", data), "has no data rows")
	})
	t.Run("too many fields", func(t *testing.T) {
		fields := make([]arrow.Field, arrowMaxFields+1)
		for i := range fields {
			fields[i] = arrow.Field{Name: "c" + string(rune('a'+i%26)) + string(rune('a'+i/26%26)) + string(rune('a'+i/676)), Type: arrow.PrimitiveTypes.Int8}
		}
		p := filepath.Join(t.TempDir(), "x")
		writeArrowStream(t, p, arrow.NewSchema(fields, nil), nil)
		data, _ := os.ReadFile(p)
		wantMsg(t, convertBad(t, "wide.arrows", data), "more than 4096 fields")
	})
	t.Run("batch over 256 MiB", func(t *testing.T) {
		// A null column has no buffers, so 300 Mi rows fit in a tiny
		// file; writing them would still cost per row.
		schema := arrow.NewSchema([]arrow.Field{{Name: "n", Type: arrow.Null, Nullable: true}}, nil)
		col := array.NewNull(300 << 20)
		rec := array.NewRecordBatch(schema, []arrow.Array{col}, 300<<20)
		defer rec.Release()
		col.Release()
		p := filepath.Join(t.TempDir(), "x")
		writeArrowStream(t, p, schema, []arrow.RecordBatch{rec})
		data, _ := os.ReadFile(p)
		wantMsg(t, convertBad(t, "big.arrows", data), "record batch 1 is too large", "256 MiB")
	})
	t.Run("body length over 256 MiB", func(t *testing.T) {
		data := append(schemaOnlyStream(t), ipcFramed(recordBatchMessage(1<<40))...)
		wantMsg(t, convertBad(t, "big.arrows", data), "record batch 1 is too large")
	})
	t.Run("unsupported type", func(t *testing.T) {
		schema := arrow.NewSchema([]arrow.Field{{Name: "wait", Type: arrow.FixedWidthTypes.Duration_s, Nullable: true}}, nil)
		b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
		b.Field(0).(*array.DurationBuilder).Append(5)
		rec := b.NewRecordBatch()
		defer rec.Release()
		b.Release()
		p := filepath.Join(t.TempDir(), "x")
		writeArrowFile(t, p, []arrow.RecordBatch{rec})
		data, _ := os.ReadFile(p)
		wantMsg(t, convertBad(t, "d.arrow", data), `column "wait" has type duration[s]`)
	})
	t.Run("decimal over 38 digits", func(t *testing.T) {
		// DuckDB would read it back as DOUBLE.
		schema := arrow.NewSchema([]arrow.Field{{Name: "big", Type: &arrow.Decimal256Type{Precision: 50, Scale: 2}, Nullable: true}}, nil)
		p := filepath.Join(t.TempDir(), "x")
		writeArrowStream(t, p, schema, nil)
		data, _ := os.ReadFile(p)
		wantMsg(t, convertBad(t, "d.arrows", data), `column "big" has type decimal256(50, 2)`)
	})
	t.Run("nested null type", func(t *testing.T) {
		schema := arrow.NewSchema([]arrow.Field{{Name: "s", Type: arrow.StructOf(arrow.Field{Name: "n", Type: arrow.Null, Nullable: true}), Nullable: true}}, nil)
		p := filepath.Join(t.TempDir(), "x")
		writeArrowStream(t, p, schema, nil)
		data, _ := os.ReadFile(p)
		wantMsg(t, convertBad(t, "d.arrows", data), `column "s" has type null`)
	})
	t.Run("duplicate column", func(t *testing.T) {
		schema := arrow.NewSchema([]arrow.Field{{Name: "a", Type: arrow.PrimitiveTypes.Int8}, {Name: "A", Type: arrow.PrimitiveTypes.Int8}}, nil)
		p := filepath.Join(t.TempDir(), "x")
		writeArrowStream(t, p, schema, nil)
		data, _ := os.ReadFile(p)
		wantMsg(t, convertBad(t, "d.arrows", data), `column name "A" appears twice`)
	})
}

// The metadata tests hand-craft FlatBuffers that arrow-go would follow into
// a cycle, an exponential walk or a huge allocation.

// fbBuilder writes FlatBuffers front to back; references are patched in
// with setRef, and may point backwards (uoffsets wrap around).
type fbBuilder struct{ b []byte }

// table writes a table with one inline field of the given size per field id
// (0 for absent) and returns its position and each field's position.
func (w *fbBuilder) table(sizes ...int) (int, []int) {
	vt := len(w.b)
	inline := 4
	offs := make([]int, len(sizes))
	for i, s := range sizes {
		if s > 0 {
			offs[i] = inline
			inline += s
		}
	}
	w.b = binary.LittleEndian.AppendUint16(w.b, uint16(4+2*len(sizes)))
	w.b = binary.LittleEndian.AppendUint16(w.b, uint16(inline))
	for _, o := range offs {
		w.b = binary.LittleEndian.AppendUint16(w.b, uint16(o))
	}
	t := len(w.b)
	w.b = binary.LittleEndian.AppendUint32(w.b, uint32(int32(t-vt)))
	w.b = append(w.b, make([]byte, inline-4)...)
	at := make([]int, len(sizes))
	for i, o := range offs {
		at[i] = -1
		if o > 0 {
			at[i] = t + o
		}
	}
	return t, at
}

// vector writes a vector of n references and returns its position and the
// position of each element.
func (w *fbBuilder) vector(n int) (int, []int) {
	v := len(w.b)
	w.b = binary.LittleEndian.AppendUint32(w.b, uint32(n))
	elems := make([]int, n)
	for i := range elems {
		elems[i] = len(w.b)
		w.b = append(w.b, 0, 0, 0, 0)
	}
	return v, elems
}

func (w *fbBuilder) setRef(at, target int) {
	binary.LittleEndian.PutUint32(w.b[at:], uint32(target-at))
}

// schemaMessage returns a Schema message whose fields vector is built by
// fields, which gets the builder and the position of the fields reference.
func schemaMessage(fields func(w *fbBuilder, ref int)) []byte {
	w := &fbBuilder{b: make([]byte, 4)}
	msg, mf := w.table(2, 1, 4, 8) // version, header_type, header, bodyLength
	w.setRef(0, msg)
	binary.LittleEndian.PutUint16(w.b[mf[0]:], 4) // V5
	w.b[mf[1]] = ipcHeaderSchema
	schema, sf := w.table(0, 4) // endianness, fields
	w.setRef(mf[2], schema)
	fields(w, sf[1])
	return w.b
}

// field writes a Field table with a children vector of n entries and
// returns its position and the children's element positions. A field with
// children is a struct, one without an int32, so arrow-go accepts them.
func (w *fbBuilder) field(n int) (int, []int) {
	f, ff := w.table(0, 0, 1, 4, 0, 4) // name, nullable absent; type_type, type, dictionary absent, children
	v, elems := w.vector(n)
	w.setRef(ff[5], v)
	if n > 0 {
		w.b[ff[2]] = 13 // Struct_
		st, _ := w.table()
		w.setRef(ff[3], st)
	} else {
		w.b[ff[2]] = 2           // Int
		it, itf := w.table(4, 1) // bitWidth, is_signed
		binary.LittleEndian.PutUint32(w.b[itf[0]:], 32)
		w.b[itf[1]] = 1
		w.setRef(ff[3], it)
	}
	return f, elems
}

func recordBatchMessage(bodyLen int64) []byte {
	w := &fbBuilder{b: make([]byte, 4)}
	msg, mf := w.table(2, 1, 4, 8)
	w.setRef(0, msg)
	binary.LittleEndian.PutUint16(w.b[mf[0]:], 4)
	w.b[mf[1]] = ipcHeaderRecord
	binary.LittleEndian.PutUint64(w.b[mf[3]:], uint64(bodyLen))
	rb, _ := w.table(8) // length
	w.setRef(mf[2], rb)
	return w.b
}

// ipcFramed frames a message's metadata for the stream format.
func ipcFramed(meta []byte) []byte {
	for len(meta)%8 != 0 {
		meta = append(meta, 0)
	}
	out := binary.LittleEndian.AppendUint32(nil, ipcContinuation)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(meta)))
	return append(out, meta...)
}

// schemaOnlyStream is a valid stream's schema message without the
// end-of-stream marker.
func schemaOnlyStream(t *testing.T) []byte {
	p := filepath.Join(t.TempDir(), "x")
	schema := arrow.NewSchema([]arrow.Field{{Name: "a", Type: arrow.PrimitiveTypes.Int64}}, nil)
	writeArrowStream(t, p, schema, nil)
	data, _ := os.ReadFile(p)
	return data[:len(data)-8]
}

func TestArrowToParquetMaliciousMetadata(t *testing.T) {
	t.Run("cyclic field children", func(t *testing.T) {
		meta := schemaMessage(func(w *fbBuilder, ref int) {
			v, elems := w.vector(1)
			w.setRef(ref, v)
			f, kids := w.field(1)
			w.setRef(elems[0], f)
			w.setRef(kids[0], f) // the field is its own child
		})
		convertBad(t, "cycle.arrows", ipcFramed(meta))
	})
	t.Run("exponential field DAG", func(t *testing.T) {
		// 40 levels of two references to the same field: 2^40 fields to
		// walk in 1.5 KB.
		meta := schemaMessage(func(w *fbBuilder, ref int) {
			v, elems := w.vector(2)
			w.setRef(ref, v)
			for range 40 {
				f, kids := w.field(2)
				for _, e := range elems {
					w.setRef(e, f)
				}
				elems = kids
			}
			leaf, _ := w.field(0)
			for _, e := range elems {
				w.setRef(e, leaf)
			}
		})
		wantMsg(t, convertBad(t, "dag.arrows", ipcFramed(meta)), "more than 4096 fields")
	})
	t.Run("deep nesting", func(t *testing.T) {
		meta := schemaMessage(func(w *fbBuilder, ref int) {
			v, elems := w.vector(1)
			w.setRef(ref, v)
			for range 100 {
				f, kids := w.field(1)
				w.setRef(elems[0], f)
				elems = kids
			}
			leaf, _ := w.field(0)
			w.setRef(elems[0], leaf)
		})
		wantMsg(t, convertBad(t, "deep.arrows", ipcFramed(meta)), "more than 64 levels")
	})
	t.Run("huge vector length", func(t *testing.T) {
		// A fields vector that claims 2^31-1 entries: arrow-go would make
		// a slice that long before looking at the first.
		meta := schemaMessage(func(w *fbBuilder, ref int) {
			v, _ := w.vector(1)
			binary.LittleEndian.PutUint32(w.b[v:], 1<<31-1)
			w.setRef(ref, v)
		})
		convertBad(t, "huge.arrows", ipcFramed(meta))
	})
	t.Run("huge custom metadata", func(t *testing.T) {
		// The schema's custom_metadata claims 2^31-1 key-value pairs.
		w := &fbBuilder{b: make([]byte, 4)}
		msg, mf := w.table(2, 1, 4, 8)
		w.setRef(0, msg)
		binary.LittleEndian.PutUint16(w.b[mf[0]:], 4)
		w.b[mf[1]] = ipcHeaderSchema
		schema, sf := w.table(0, 4, 4) // endianness, fields, custom_metadata
		w.setRef(mf[2], schema)
		fv, elems := w.vector(1)
		w.setRef(sf[1], fv)
		leaf, _ := w.field(0)
		w.setRef(elems[0], leaf)
		kv, _ := w.vector(1)
		binary.LittleEndian.PutUint32(w.b[kv:], 1<<31-1)
		w.setRef(sf[2], kv)
		convertBad(t, "meta.arrows", ipcFramed(w.b))
	})
}

// checkConverts converts data and checks that it succeeds or fails with an
// InputError, and leaves no dst when it fails. A panic fails the test.
func checkConverts(t *testing.T, what string, data []byte) {
	t.Helper()
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "m.arrow"), filepath.Join(dir, "out.parquet")
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := arrowToParquet(context.Background(), src, dst)
	if err == nil {
		return
	}
	var ie *InputError
	if !errors.As(err, &ie) {
		t.Fatalf("%s: err = %v (%T), want an *InputError", what, err, err)
	}
	if _, err := os.Stat(dst); !os.IsNotExist(err) {
		t.Fatalf("%s: dst left behind", what)
	}
}

var mangleCases = []struct {
	name   string
	stream bool
	opts   []ipc.Option
}{
	{"file", false, nil},
	{"stream", true, nil},
	{"file-lz4", false, []ipc.Option{ipc.WithLZ4()}},
	{"stream-zstd", true, []ipc.Option{ipc.WithZstd(), ipc.WithDictionaryDeltas(true)}},
}

// TestArrowToParquetMangled cuts valid files and streams at many places and
// flips many of their bytes. Cutting and flipping every byte (a few
// thousand each) found panics in arrow-go's String.ValidateFull and in
// pqarrow's decimal writer; this samples them so the test stays quick, and
// FuzzArrowToParquet goes further.
func TestArrowToParquetMangled(t *testing.T) {
	for _, tc := range mangleCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			good := arrowBytes(t, tc.stream, tc.opts...)
			rng := rand.New(rand.NewPCG(uint64(len(good)), 7))
			for range 150 {
				cut := rng.IntN(len(good))
				checkConverts(t, "cut at "+strconv.Itoa(cut), good[:cut])
			}
			data := bytes.Clone(good)
			for range 250 {
				i := rng.IntN(len(data))
				data[i] ^= byte(1 + rng.IntN(255))
				checkConverts(t, "flipped byte "+strconv.Itoa(i), data)
				data[i] = good[i]
			}
		})
	}
}

func FuzzArrowToParquet(f *testing.F) {
	for _, tc := range mangleCases {
		f.Add(arrowBytes(f, tc.stream, tc.opts...))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkConverts(t, "fuzz input", data)
	})
}

// cancelAfter is a context whose Err reports cancellation from its nth call
// on, so a conversion is cancelled between batches.
type cancelAfter struct {
	context.Context
	n atomic.Int32
}

func (c *cancelAfter) Err() error {
	if c.n.Add(-1) < 0 {
		return context.Canceled
	}
	return nil
}

func TestArrowToParquetCancelled(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "people.arrow"), filepath.Join(dir, "out.parquet")
	writeArrowFile(t, src, arrowPeople(t, sameCities))

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := arrowToParquet(ctx, src, dst); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled before: err = %v, want context.Canceled", err)
	}
	if _, err := os.Stat(dst); !os.IsNotExist(err) {
		t.Errorf("cancelled before: dst left behind (stat: %v)", err)
	}

	for n := int32(1); n <= 3; n++ {
		ctx := &cancelAfter{Context: context.Background()}
		ctx.n.Store(n) // pass the first n checks, then cancel mid-way
		if _, err := arrowToParquet(ctx, src, dst); !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled after %d checks: err = %v, want context.Canceled", n, err)
		}
		if _, err := os.Stat(dst); !os.IsNotExist(err) {
			t.Errorf("cancelled after %d checks: dst left behind (stat: %v)", n, err)
		}
	}
}
