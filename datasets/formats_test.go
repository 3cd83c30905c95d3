package datasets

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"golang.org/x/text/encoding/simplifiedchinese"
)

// gbkRows are UTF-8 originals with characters from all over GBK.
var gbkRows = [][]string{
	{"1", "浙江省杭州市西湖区", "张三丰"},
	{"2", "广东省深圳市南山区", "欧阳娜娜"},
	{"3", "北京市海淀区中关村", "司马懿"},
	{"4", "新疆维吾尔自治区乌鲁木齐市", "买买提·艾力"},
	{"5", "内蒙古自治区呼和浩特市", "龘靐齉"},
}

func gbkSpec() Spec {
	return Spec{
		Name: "gbk", Grade: GradeGeneral, Open: OpenConditional, LegalBasis: "测试",
		Fields: []Field{
			field("id", "编号", "public", IdentifierNone),
			field("address", "地址", "personal", IdentifierQuasi),
			field("name", "姓名", "personal", IdentifierDirect),
		},
	}
}

func gbkCSV(t *testing.T) (utf8Text string, gbk []byte) {
	t.Helper()
	var b strings.Builder
	b.WriteString("编号,地址,姓名\n")
	for _, r := range gbkRows {
		b.WriteString(strings.Join(r, ",") + "\n")
	}
	enc, err := simplifiedchinese.GBK.NewEncoder().Bytes([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	return b.String(), enc
}

func TestImportGBK(t *testing.T) {
	ctx := context.Background()
	tc := newTestCatalog(t)
	tc.mustCreate(t, gbkSpec())
	text, gbk := gbkCSV(t)
	if string(gbk) == text {
		t.Fatal("the GBK encoding changed nothing")
	}
	src := writeTestFile(t, "gbk.csv", gbk)
	var transcoded bool
	got, err := tc.Import(ctx, "importer", "gbk", Source{}, src, func(s Step) {
		if s.Phase == "transcode" && s.Total == int64(len(gbk)) && s.Done > 0 {
			transcoded = true
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if got.Version.Encoding != EncodingGBK || got.Version.Rows != int64(len(gbkRows)) || !transcoded {
		t.Fatalf("version %+v (transcode progress reported: %v)", got.Version, transcoded)
	}
	rows := querySnapshot(t, tc.SnapshotPath("gbk", got.Version), "SELECT CAST(id AS VARCHAR), address, name FROM t ORDER BY id")
	if !reflect.DeepEqual(rows, gbkRows) {
		t.Errorf("snapshot rows %v\nwant %v", rows, gbkRows)
	}

	// The same file named as GBK, or as GB18030, is the same version.
	for _, enc := range []string{"gbk", "GB18030"} {
		again, err := tc.Import(ctx, "importer", "gbk", Source{Encoding: enc}, src, nil)
		if err != nil || !again.Existing || again.Version.Encoding != EncodingGBK {
			t.Errorf("explicit %s: %+v, %v", enc, again.Version, err)
		}
	}
	// The UTF-8 original is the same data, so the same snapshot.
	again, err := tc.Import(ctx, "importer", "gbk", Source{}, writeTestFile(t, "utf8.csv", []byte(text)), nil)
	if err != nil || !again.Existing || again.Version.ID != got.Version.ID {
		t.Errorf("UTF-8 original: %+v, %v; want the existing version", again.Version, err)
	}
}

func TestImportRefusesBadEncodings(t *testing.T) {
	ctx := context.Background()
	tc := newTestCatalog(t)
	tc.mustCreate(t, gbkSpec())
	_, gbk := gbkCSV(t)
	before := tc.stateOf(t)
	cases := []struct {
		name    string
		content []byte
		src     Source
		want    []string
	}{
		{"neither UTF-8 nor GBK", []byte("编号,地址,姓名\n1,\x80\xff\xfe,x\n"), Source{}, []string{"gbk.csv", "neither UTF-8 nor GBK"}},
		{"GBK declared UTF-8", gbk, Source{Encoding: "utf-8"}, []string{"gbk.csv", "--encoding gbk"}},
		{"GBK declared utf8", gbk, Source{Encoding: "UTF8"}, []string{"--encoding gbk"}},
		{"UTF-8 declared GBK", []byte("编号,地址,姓名\n1,\xe8\xa5\xbf\xe6\xb9\x96,x\n"), Source{Encoding: "gbk"}, []string{"gbk.csv"}},
		{"unknown encoding", gbk, Source{Encoding: "big5"}, []string{"encoding", "big5"}},
		{"encoding of a parquet file", gbk, Source{Name: "gbk.parquet", Encoding: "gbk"}, []string{"CSV only"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := tc.Import(ctx, "importer", "gbk", c.src, writeTestFile(t, "gbk.csv", c.content), nil)
			wantInputError(t, err, c.want...)
			if after := tc.stateOf(t); after != before {
				t.Errorf("state changed:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
	// Invalid GBK past the part detection looks at is found while
	// transcoding, with its line.
	body := gbk[strings.IndexByte(string(gbk), '\n')+1:]
	content := slices.Clone(gbk)
	for len(content) < sniffSize+1000 {
		content = append(content, body...)
	}
	content = append(content, "9,\x80\xff,x\n"...)
	_, err := tc.Import(ctx, "importer", "gbk", Source{}, writeTestFile(t, "gbk.csv", content), nil)
	wantInputError(t, err, "not valid GBK", "line "+strconv.Itoa(strings.Count(string(content), "\n")))
	if after := tc.stateOf(t); after != before {
		t.Errorf("state changed:\nbefore %s\nafter  %s", before, after)
	}
}

// writeTestParquet writes the result of query to a Parquet file with DuckDB.
func writeTestParquet(t testing.TB, name, query string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("COPY (" + query + ") TO " + literal(p) + " (FORMAT parquet)"); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestImportParquetWidensTypes(t *testing.T) {
	ctx := context.Background()
	tc := newTestCatalog(t)
	tc.mustCreate(t, Spec{Name: "pq", Grade: GradeGeneral, Open: OpenUnconditional, Keys: []string{"id"}, Fields: []Field{
		field("id", "", "public", IdentifierNone),
		field("small", "", "public", IdentifierNone),
		field("ratio", "", "public", IdentifierNone),
		field("price", "", "public", IdentifierNone),
		field("day", "", "public", IdentifierNone),
		field("name", "名称", "public", IdentifierNone),
	}})
	src := writeTestParquet(t, "data.parquet", `SELECT i AS id, (i % 300)::SMALLINT AS small, (i / 4)::FLOAT AS ratio,
		(i * 1.25)::DECIMAL(10,2) AS price, DATE '2024-01-01' + i::INTEGER AS day, '名称' || i AS 名称
		FROM range(1000) r(i)`)
	got, err := tc.Import(ctx, "importer", "pq", Source{}, src, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"id": "BIGINT", "small": "INTEGER", "ratio": "DOUBLE", "price": "DECIMAL(10,2)", "day": "DATE", "name": "VARCHAR"}
	if tys := fieldTypes(got.Entry); !reflect.DeepEqual(tys, want) {
		t.Errorf("types %v, want %v", tys, want)
	}
	v := got.Version
	if v.Format != FormatParquet || v.Encoding != "" || v.Rows != 1000 || v.Source != "data.parquet" {
		t.Errorf("version %+v", v)
	}
	path := tc.SnapshotPath("pq", v)
	if s := snapshotSchema(t, path); !slices.Equal(s, []string{"id BIGINT", "small INTEGER", "ratio DOUBLE", "price DECIMAL(10,2)", "day DATE", "name VARCHAR"}) {
		t.Errorf("snapshot schema %v", s)
	}
	rows := querySnapshot(t, path, "SELECT id, small, ratio, CAST(price AS VARCHAR), CAST(day AS VARCHAR), name FROM t WHERE id = 999")
	if !reflect.DeepEqual(rows, [][]string{{"999", "99", "249.75", "1248.75", "2026-09-26", "名称999"}}) {
		t.Errorf("row 999 = %v", rows)
	}
	if s := statsOf(t, v, "small"); s.Min != "0" || s.Max != "299" || s.Type != "INTEGER" {
		t.Errorf("small stats %+v", s)
	}
	if v.Quality.DuplicateKeys != 0 || v.Quality.NullKeys != 0 {
		t.Errorf("quality %+v", v.Quality)
	}
	// The same file again is the same version.
	again, err := tc.Import(ctx, "importer", "pq", Source{}, src, nil)
	if err != nil || !again.Existing || again.Version.ID != v.ID {
		t.Errorf("re-import: %+v, %v", again.Version, err)
	}
}

func TestImportParquetRefusesUnservedTypes(t *testing.T) {
	ctx := context.Background()
	tc := newTestCatalog(t)
	tc.mustCreate(t, Spec{Name: "nested", Grade: GradeGeneral, Open: OpenUnconditional, Fields: []Field{
		field("id", "", "public", IdentifierNone),
		field("tags", "", "public", IdentifierNone),
	}})
	before := tc.stateOf(t)
	for name, q := range map[string]string{
		"list":   "SELECT i AS id, [i, i + 1] AS tags FROM range(10) r(i)",
		"struct": "SELECT i AS id, {'a': i, 'b': 'x'} AS tags FROM range(10) r(i)",
		"map":    "SELECT i AS id, MAP {'k': i} AS tags FROM range(10) r(i)",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := tc.Import(ctx, "importer", "nested", Source{}, writeTestParquet(t, "nested.parquet", q), nil)
			wantInputError(t, err, "tags", "--schema tags=")
			if after := tc.stateOf(t); after != before {
				t.Errorf("state changed:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
	// Overriding the type as the error suggests imports it as text.
	got, err := tc.Import(ctx, "importer", "nested", Source{Schema: map[string]string{"tags": "VARCHAR"}},
		writeTestParquet(t, "nested.parquet", "SELECT i AS id, [i, i + 1] AS tags FROM range(10) r(i)"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if tys := fieldTypes(got.Entry); tys["tags"] != "VARCHAR" || tys["id"] != "BIGINT" {
		t.Errorf("types %v", tys)
	}
	if rows := querySnapshot(t, tc.SnapshotPath("nested", got.Version), "SELECT tags FROM t WHERE id = 3"); !reflect.DeepEqual(rows, [][]string{{"[3, 4]"}}) {
		t.Errorf("tags of row 3 = %v", rows)
	}
}

// writeTestArrow writes an Arrow IPC file (file format when file is true, else
// stream format) with two record batches.
func writeTestArrow(t *testing.T, name string, file bool) string {
	t.Helper()
	mem := memory.NewGoAllocator()
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "small", Type: arrow.PrimitiveTypes.Int16},
		{Name: "score", Type: arrow.PrimitiveTypes.Float32},
		{Name: "区县", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "ok", Type: arrow.FixedWidthTypes.Boolean},
		{Name: "day", Type: arrow.FixedWidthTypes.Date32},
	}, nil)
	p := filepath.Join(t.TempDir(), name)
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	type writer interface {
		Write(arrow.RecordBatch) error
		Close() error
	}
	var w writer
	if file {
		if w, err = ipc.NewFileWriter(f, ipc.WithSchema(schema), ipc.WithAllocator(mem)); err != nil {
			t.Fatal(err)
		}
	} else {
		w = ipc.NewWriter(f, ipc.WithSchema(schema), ipc.WithAllocator(mem))
	}
	b := array.NewRecordBuilder(mem, schema)
	defer b.Release()
	id := 0
	for batch := 0; batch < 2; batch++ {
		for i := 0; i < 50; i++ {
			b.Field(0).(*array.Int64Builder).Append(int64(id))
			b.Field(1).(*array.Int16Builder).Append(int16(id * 10))
			b.Field(2).(*array.Float32Builder).Append(float32(id) / 2)
			if id%10 == 7 {
				b.Field(3).(*array.StringBuilder).AppendNull()
			} else {
				b.Field(3).(*array.StringBuilder).Append(inferDistricts[id%len(inferDistricts)])
			}
			b.Field(4).(*array.BooleanBuilder).Append(id%2 == 0)
			b.Field(5).(*array.Date32Builder).Append(arrow.Date32(19723 + id)) // 2024-01-01 + id
			id++
		}
		rec := b.NewRecordBatch()
		if err := w.Write(rec); err != nil {
			t.Fatal(err)
		}
		rec.Release()
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestImportArrowIPC(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name string
		file bool
	}{{"data.arrow", true}, {"data.arrows", false}} {
		t.Run(c.name, func(t *testing.T) {
			tc := newTestCatalog(t)
			tc.mustCreate(t, Spec{Name: "arrow", Grade: GradeGeneral, Open: OpenUnconditional, Fields: []Field{
				field("id", "", "public", IdentifierNone),
				field("small", "", "public", IdentifierNone),
				field("score", "", "public", IdentifierNone),
				field("district", "区县", "public", IdentifierQuasi),
				field("ok", "", "public", IdentifierNone),
				field("day", "", "public", IdentifierNone),
			}})
			var phases []string
			got, err := tc.Import(ctx, "importer", "arrow", Source{}, writeTestArrow(t, c.name, c.file), func(s Step) { phases = append(phases, s.Phase) })
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]string{"id": "BIGINT", "small": "INTEGER", "score": "DOUBLE", "district": "VARCHAR", "ok": "BOOLEAN", "day": "DATE"}
			if tys := fieldTypes(got.Entry); !reflect.DeepEqual(tys, want) {
				t.Errorf("types %v, want %v", tys, want)
			}
			v := got.Version
			if v.Format != FormatArrow || v.Rows != 100 || !slices.Contains(phases, "convert") {
				t.Errorf("version %+v, phases %v", v, phases)
			}
			if s := statsOf(t, v, "district"); s.Nulls != 10 || s.NullRate != 0.1 {
				t.Errorf("district stats %+v", s)
			}
			rows := querySnapshot(t, tc.SnapshotPath("arrow", v), "SELECT id, small, score, district, ok, CAST(day AS VARCHAR) FROM t WHERE id IN (7, 99) ORDER BY id")
			if !reflect.DeepEqual(rows, [][]string{{"7", "70", "3.5", "NULL", "false", "2024-01-08"}, {"99", "990", "49.5", "萧山区", "false", "2024-04-09"}}) {
				t.Errorf("rows %v", rows)
			}
		})
	}
}

func TestImportArrowRefusesGarbage(t *testing.T) {
	tc := newTestCatalog(t)
	tc.mustCreate(t, Spec{Name: "arrow", Grade: GradeGeneral, Open: OpenUnconditional, Fields: []Field{field("id", "", "public", IdentifierNone)}})
	before := tc.stateOf(t)
	_, err := tc.Import(context.Background(), "importer", "arrow", Source{}, writeTestFile(t, "data.arrow", []byte("id\n1\n2\n")), nil)
	wantInputError(t, err, "data.arrow")
	if after := tc.stateOf(t); after != before {
		t.Errorf("state changed:\nbefore %s\nafter  %s", before, after)
	}
}

// Files as spreadsheet programs save them: a UTF-8 byte order mark, CRLF
// line ends, a quoted cell with a line break, a blank last line; or GBK
// with CRLF.
func TestImportSpreadsheetCSV(t *testing.T) {
	ctx := context.Background()
	tc := newTestCatalog(t)
	tc.mustCreate(t, gbkSpec())
	want := [][]string{{"1", "浙江省杭州市\n西湖区", "张三"}, {"2", "北京市", "李四"}}
	const text = "编号,地址,姓名\r\n1,\"浙江省杭州市\n西湖区\",张三\r\n2,北京市,李四\r\n\r\n"
	got, err := tc.Import(ctx, "importer", "gbk", Source{}, writeTestFile(t, "excel.csv", []byte("\ufeff"+text)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.Version.Encoding != EncodingUTF8 || got.Version.Rows != 2 {
		t.Errorf("version %+v", got.Version)
	}
	if rows := querySnapshot(t, tc.SnapshotPath("gbk", got.Version), "SELECT CAST(id AS VARCHAR), address, name FROM t ORDER BY id"); !reflect.DeepEqual(rows, want) {
		t.Errorf("rows %q, want %q", rows, want)
	}
	gbk, err := simplifiedchinese.GBK.NewEncoder().Bytes([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	transcoded := false
	again, err := tc.Import(ctx, "importer", "gbk", Source{}, writeTestFile(t, "excel.csv", gbk), func(s Step) {
		transcoded = transcoded || s.Phase == "transcode"
	})
	if err != nil || !transcoded {
		t.Fatalf("GBK: %v (transcoded: %v)", err, transcoded)
	}
	// The same data: the stored version, as it was imported.
	if !again.Existing || again.Version.ID != got.Version.ID || again.Version.Encoding != EncodingUTF8 {
		t.Errorf("the GBK file: %+v; want the existing version", again.Version)
	}
}

// Encoding detection looks at the first megabytes only; GBK after them is
// reported with the way out.
func TestImportGBKPastDetection(t *testing.T) {
	ctx := context.Background()
	tc := newTestCatalog(t)
	tc.mustCreate(t, Spec{Name: "late", Grade: GradeGeneral, Open: OpenUnconditional, Fields: []Field{
		field("id", "", "public", IdentifierNone), field("name", "", "public", IdentifierNone),
	}})
	var b strings.Builder
	b.WriteString("id,name\n")
	for i := 0; b.Len() <= sniffSize; i++ {
		fmt.Fprintf(&b, "%d,ascii only\n", i)
	}
	tail, err := simplifiedchinese.GBK.NewEncoder().String("999999,西湖区\n")
	if err != nil {
		t.Fatal(err)
	}
	src := writeTestFile(t, "late.csv", []byte(b.String()+tail))
	before := tc.stateOf(t)
	_, err = tc.Import(ctx, "importer", "late", Source{}, src, nil)
	wantInputError(t, err, "late.csv", "not valid UTF-8", "--encoding gbk")
	if after := tc.stateOf(t); after != before {
		t.Errorf("state changed:\nbefore %s\nafter  %s", before, after)
	}
	got, err := tc.Import(ctx, "importer", "late", Source{Encoding: "gbk"}, src, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rows := querySnapshot(t, tc.SnapshotPath("late", got.Version), "SELECT name FROM t WHERE id = 999999"); !reflect.DeepEqual(rows, [][]string{{"西湖区"}}) {
		t.Errorf("last row %v", rows)
	}
}
