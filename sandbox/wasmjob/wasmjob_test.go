package wasmjob

import (
	"bytes"
	"context"
	stdsql "database/sql"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	duckdb "github.com/duckdb/duckdb-go/v2"

	sqlbox "github.com/datasandbox/dsbx/sandbox/sql"
	"github.com/datasandbox/dsbx/sandbox/wasm"
	"github.com/datasandbox/dsbx/sandbox/wasm/wasmtest"
)

func openPlain(t *testing.T) *stdsql.DB {
	t.Helper()
	c, err := duckdb.NewConnector("", nil)
	if err != nil {
		t.Fatal(err)
	}
	db := stdsql.OpenDB(c)
	t.Cleanup(func() { db.Close() })
	return db
}

// snapshot writes 1000 people: region 330106 has 600 rows, 330108 has 397,
// 330109 has 3.
func snapshot(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "people.parquet")
	_, err := openPlain(t).Exec(`COPY (SELECT CASE WHEN i < 600 THEN '330106' WHEN i < 997 THEN '330108' ELSE '330109' END AS region,
		1000 + i AS income, printf('ID%04d', i) AS id FROM range(1000) r(i)) TO '` + path + `' (FORMAT parquet)`)
	if err != nil {
		t.Fatal(err)
	}
	return path
}

func spec(t *testing.T, module []byte, fields ...string) Spec {
	t.Helper()
	tbl := sqlbox.Table{Name: "people", Parquet: snapshot(t)}
	for _, f := range fields {
		tbl.Columns = append(tbl.Columns, sqlbox.Column{Name: f, Form: sqlbox.FormRaw})
	}
	return Spec{
		Module: module, Table: tbl, Seed: 7,
		Limits: Limits{Timeout: 10 * time.Second, Memory: "256MB", Threads: 2, MaxRows: 1000, MaxBytes: 8 << 20,
			TempDir: filepath.Join(t.TempDir(), "tmp")},
		Out: filepath.Join(t.TempDir(), "result.parquet"),
	}
}

// stream encodes columns as an Arrow IPC stream, as a guest would write it.
func stream(t *testing.T, fields []arrow.Field, cols ...any) []byte {
	t.Helper()
	b, err := wasmtest.IPC(fields, cols...)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var (
	regionF = arrow.Field{Name: "region", Type: arrow.BinaryTypes.String, Nullable: true}
	totalF  = arrow.Field{Name: "total", Type: arrow.PrimitiveTypes.Int64, Nullable: true}
)

const aggregate = `{"kind":"aggregate","group_by":["region"]}`

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

// The host counts each group's rows itself; what the guest claims does not
// matter, and a key that does not occur counts 0.
func TestAggregateCellsCountedByHost(t *testing.T) {
	out := stream(t, []arrow.Field{regionF, totalF}, []string{"330106", "330109", "999999"}, []int64{1, 2, 3})
	s := spec(t, wasmtest.Emit(out, `["region","income"]`, aggregate), "region", "income")
	rep, err := Run(ctx(t), s)
	if err != nil {
		t.Fatal(err)
	}
	if got := rep.CellCounts; len(got) != 3 || got[0] != 600 || got[1] != 3 || got[2] != 0 {
		t.Fatalf("cell counts %v, want [600 3 0]", got)
	}
	if rep.Rows != 3 || len(rep.Columns) != 2 || rep.Columns[0].Name != "region" || rep.Columns[1].Name != "total" {
		t.Fatalf("result %+v", rep.Report)
	}
	if rep.Guest == nil || rep.Guest.Seed != 7 || rep.Guest.ModuleSHA256 == "" {
		t.Fatalf("guest report %+v", rep.Guest)
	}
	var n int
	var cols string
	if err := openPlain(t).QueryRow(`SELECT count(*), string_agg(DISTINCT column_name, ',') FROM (DESCRIBE SELECT * FROM '`+s.Out+`'), read_parquet('`+s.Out+`')`).Scan(&n, &cols); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(cols, "__dsbx") {
		t.Errorf("the written result holds a reserved column: %s", cols)
	}
}

func TestWholeTableAggregateAndRows(t *testing.T) {
	out := stream(t, []arrow.Field{totalF}, []int64{42})
	rep, err := Run(ctx(t), spec(t, wasmtest.Emit(out, `["income"]`, `{"kind":"aggregate"}`), "income"))
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.CellCounts) != 1 || rep.CellCounts[0] != 1000 {
		t.Fatalf("whole-table aggregate cells %v, want [1000]", rep.CellCounts)
	}
	rep, err = Run(ctx(t), spec(t, wasmtest.Emit(out, `["income"]`, ""), "income"))
	if err != nil {
		t.Fatal(err)
	}
	if rep.CellCounts != nil || rep.Output.Kind != wasm.OutputRows {
		t.Fatalf("row-level result has cells %v, kind %q", rep.CellCounts, rep.Output.Kind)
	}
}

// bodyBomb is an IPC stream whose record batch claims a 1 TiB body.
func bodyBomb(t *testing.T) []byte {
	good := stream(t, []arrow.Field{totalF}, []int64{1})
	// Find the record batch message: after the schema message. Patch its
	// bodyLength field by searching for the 8-byte little-endian body length.
	var want [8]byte
	binary.LittleEndian.PutUint64(want[:], 8+8) // one int64 value, validity omitted: padded body
	i := bytes.LastIndex(good, want[:])
	if i < 0 {
		binary.LittleEndian.PutUint64(want[:], 8)
		if i = bytes.LastIndex(good, want[:]); i < 0 {
			t.Skip("could not locate the body length to patch")
		}
	}
	bad := append([]byte(nil), good...)
	binary.LittleEndian.PutUint64(bad[i:], 1<<40)
	return bad
}

// Every hostile result is refused with a reason, and nothing is written.
func TestHostileResultsRefused(t *testing.T) {
	good := stream(t, []arrow.Field{regionF, totalF}, []string{"330106"}, []int64{1})
	list := arrow.Field{Name: "xs", Type: arrow.ListOf(arrow.PrimitiveTypes.Int64), Nullable: true}
	listStream := func() []byte {
		schema := arrow.NewSchema([]arrow.Field{list}, nil)
		b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
		defer b.Release()
		lb := b.Field(0).(*array.ListBuilder)
		lb.Append(true)
		lb.ValueBuilder().(*array.Int64Builder).Append(1)
		rec := b.NewRecordBatch()
		var buf bytes.Buffer
		w := ipc.NewWriter(&buf, ipc.WithSchema(schema))
		w.Write(rec)
		w.Close()
		return buf.Bytes()
	}()
	many := make([]int64, 1001)
	cases := []struct {
		name   string
		out    []byte
		output string
		code   string
	}{
		{"forged cell counts", stream(t, []arrow.Field{regionF, {Name: sqlbox.CellCountColumn, Type: arrow.PrimitiveTypes.Int64}}, []string{"330109"}, []int64{1000}), aggregate, CodeBadColumn},
		{"reserved name, other case", stream(t, []arrow.Field{regionF, {Name: "__DSBX_ord", Type: arrow.PrimitiveTypes.Int64}}, []string{"330109"}, []int64{1}), aggregate, CodeBadColumn},
		{"duplicate name ignoring case", stream(t, []arrow.Field{regionF, {Name: "Region", Type: arrow.BinaryTypes.String}}, []string{"a"}, []string{"b"}), "", CodeBadColumn},
		{"group key of another type", stream(t, []arrow.Field{{Name: "region", Type: arrow.PrimitiveTypes.Int64}, totalF}, []int64{330106}, []int64{1}), aggregate, CodeBadGroup},
		{"group key missing", stream(t, []arrow.Field{totalF}, []int64{1}), aggregate, CodeBadGroup},
		{"nested type", listStream, "", CodeBadColumn},
		{"no output", nil, "", CodeUndecodable},
		{"garbage", []byte("this is not arrow at all, just text"), "", CodeUndecodable},
		{"truncated", good[:len(good)-20], "", CodeUndecodable},
		{"body length bomb", bodyBomb(t), "", CodeUndecodable},
		{"too many rows", stream(t, []arrow.Field{totalF}, many), "", CodeUndecodable},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := spec(t, wasmtest.Emit(c.out, `["region","income"]`, c.output), "region", "income")
			_, err := Run(ctx(t), s)
			var oe *OutputError
			if !errors.As(err, &oe) || oe.Code != c.code {
				t.Fatalf("err %v, want an OutputError %s", err, c.code)
			}
			if _, err := os.Stat(s.Out); !os.IsNotExist(err) {
				t.Fatalf("a refused result left a file at %s", s.Out)
			}
		})
	}
}

func TestTrapMidOutputWritesNothing(t *testing.T) {
	good := stream(t, []arrow.Field{totalF}, []int64{1})
	s := spec(t, wasmtest.Trap(good, `["income"]`), "income")
	rep, err := Run(ctx(t), s)
	if !errors.Is(err, wasm.ErrGuestFailed) {
		t.Fatalf("err %v, want a guest failure", err)
	}
	if rep == nil || rep.Guest == nil || rep.Guest.OutputBytes == 0 {
		t.Fatalf("report %+v: the guest's partial output should be accounted", rep)
	}
	if _, err := os.Stat(s.Out); !os.IsNotExist(err) {
		t.Fatal("a trapped guest left a result")
	}
}

func TestViewMustMatchDeclaredFields(t *testing.T) {
	out := stream(t, []arrow.Field{totalF}, []int64{1})
	_, err := Run(ctx(t), spec(t, wasmtest.Emit(out, `["income"]`, ""), "income", "id"))
	if err == nil || !strings.Contains(err.Error(), "declared fields") {
		t.Fatalf("err %v, want the mismatch named", err)
	}
}

func TestRunIsolated(t *testing.T) {
	out := stream(t, []arrow.Field{regionF, totalF}, []string{"330108"}, []int64{5})
	s := spec(t, wasmtest.Emit(out, `["region","income"]`, aggregate), "region", "income")
	rep, err := RunIsolated(ctx(t), s)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.CellCounts) != 1 || rep.CellCounts[0] != 397 || rep.Process.CPU == 0 || rep.Guest.Seed != 7 {
		t.Fatalf("isolated report %+v", rep)
	}
	// Failures keep their type across the process boundary.
	bad := spec(t, wasmtest.Trap(out, `["region","income"]`), "region", "income")
	if _, err := RunIsolated(ctx(t), bad); !errors.Is(err, wasm.ErrGuestFailed) {
		t.Fatalf("isolated trap: %v", err)
	}
	forged := spec(t, wasmtest.Emit(stream(t, []arrow.Field{{Name: sqlbox.CellCountColumn, Type: arrow.PrimitiveTypes.Int64}}, []int64{9}), `["income"]`, ""), "income")
	var oe *OutputError
	if _, err := RunIsolated(ctx(t), forged); !errors.As(err, &oe) || oe.Code != CodeBadColumn {
		t.Fatalf("isolated forged column: %v", err)
	}
}

func TestHungWorkerIsKilled(t *testing.T) {
	defer func(m string, g time.Duration) { workerMode, KillGrace = m, g }(workerMode, KillGrace)
	workerMode, KillGrace = "hang", 200*time.Millisecond
	s := spec(t, wasmtest.Emit(nil, `[]`, ""))
	s.Limits.Timeout = 300 * time.Millisecond
	start := time.Now()
	_, err := RunIsolated(ctx(t), s)
	if !errors.Is(err, wasm.ErrLimit) || time.Since(start) > 10*time.Second {
		t.Fatalf("err %v after %v, want a time limit", err, time.Since(start))
	}
}
