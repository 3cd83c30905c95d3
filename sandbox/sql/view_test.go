package sql

import (
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// collect reads a whole view into string rows, for comparisons.
func collect(t *testing.T, tbl Table) (*arrow.Schema, [][]string, int) {
	t.Helper()
	var schema *arrow.Schema
	var rows [][]string
	batches := 0
	err := View(ctx(t), tbl, "256MB", func(rr array.RecordReader) error {
		schema = rr.Schema()
		for rr.Next() {
			b := rr.RecordBatch()
			batches++
			for i := 0; i < int(b.NumRows()); i++ {
				row := []string{}
				for _, c := range b.Columns() {
					row = append(row, strings.Clone(c.ValueStr(i))) // ValueStr shares the batch's memory
				}
				rows = append(rows, row)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return schema, rows, batches
}

// The view is exactly the allowed columns, in their order and forms, in
// snapshot order: the same rows a SQL job's table holds.
func TestViewStreamsAllowedColumnsInForms(t *testing.T) {
	snapshot := writeSnapshot(t)
	key := []byte("0123456789abcdef0123")
	tbl := Table{Name: "people", Parquet: snapshot, HashKey: key, Columns: []Column{
		{"income", FormGeneralised}, {"id_number", FormHashed}, {"district", FormRaw}, {"name", FormMasked},
	}}
	schema, rows, _ := collect(t, tbl)
	var names []string
	for _, f := range schema.Fields() {
		names = append(names, f.Name+":"+f.Type.String())
	}
	if got := strings.Join(names, ","); got != "income:int64,id_number:utf8,district:utf8,name:utf8" {
		t.Fatalf("schema %s", got)
	}
	if len(rows) != 500 {
		t.Fatalf("%d rows, want 500", len(rows))
	}
	// Compare with what a SQL job sees over the same table.
	spec := testSpec(t, snapshot, `SELECT income, id_number, district, name FROM people`)
	spec.Tables = []Table{tbl}
	if _, err := run(ctx(t), spec, false, nil); err != nil {
		t.Fatal(err)
	}
	db := openPlain(t)
	res, err := db.Query(`SELECT CAST(income AS VARCHAR), id_number, district, name FROM read_parquet(` + literal(spec.Out) + `)`)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	for i := 0; res.Next(); i++ {
		var a, b, c, d string
		if err := res.Scan(&a, &b, &c, &d); err != nil {
			t.Fatal(err)
		}
		if got := []string{a, b, c, d}; strings.Join(got, "|") != strings.Join(rows[i], "|") {
			t.Fatalf("row %d: view %v, SQL job %v", i, rows[i], got)
		}
		if strings.HasPrefix(b, "ID") || !strings.Contains(d, "*") {
			t.Fatalf("row %d not in its forms: %v", i, rows[i])
		}
	}
}

func TestViewWithoutColumnsCountsRows(t *testing.T) {
	schema, rows, _ := collect(t, Table{Name: "people", Parquet: writeSnapshot(t)})
	if schema.NumFields() != 0 || len(rows) != 500 {
		t.Fatalf("schema %v, %d rows; want no columns and 500 rows", schema, len(rows))
	}
}

func TestViewRefuses(t *testing.T) {
	snapshot := writeSnapshot(t)
	for name, tbl := range map[string]Table{
		"unknown column": {Name: "people", Parquet: snapshot, Columns: []Column{{"salary", FormRaw}}},
		"bad form":       {Name: "people", Parquet: snapshot, Columns: []Column{{"income", "rounded"}}},
		"hash no key":    {Name: "people", Parquet: snapshot, Columns: []Column{{"income", FormHashed}}},
		"relative path":  {Name: "people", Parquet: "people.parquet", Columns: []Column{{"income", FormRaw}}},
		"reserved name":  {Name: "__dsbx_x", Parquet: snapshot},
	} {
		err := View(ctx(t), tbl, "256MB", func(array.RecordReader) error { return nil })
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// Derive joins a host-registered Arrow input to a table and takes the cell
// counts from the reserved column; the input is visible only by its name.
func TestDeriveWithArrowInput(t *testing.T) {
	snapshot := writeSnapshot(t)
	b := array.NewRecordBuilder(memory.DefaultAllocator, arrow.NewSchema([]arrow.Field{{Name: "district", Type: arrow.BinaryTypes.String, Nullable: true}}, nil))
	defer b.Release()
	for _, d := range []string{"district 3", "district 9", "district 0"} {
		b.Field(0).(*array.StringBuilder).Append(d)
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	in, err := array.NewRecordReader(rec.Schema(), []arrow.RecordBatch{rec})
	if err != nil {
		t.Fatal(err)
	}
	spec := testSpec(t, snapshot, `SELECT g.district, coalesce(c.n, 0) AS `+CellCountColumn+`
		FROM __dsbx_in g LEFT JOIN (SELECT district, count(*) AS n FROM people GROUP BY district) c USING (district)
		ORDER BY g.district`)
	rep, err := Derive(ctx(t), spec, map[string]array.RecordReader{"__dsbx_in": in})
	if err != nil {
		t.Fatal(err)
	}
	if got := rep.CellCounts; len(got) != 3 || got[0] != 100 || got[1] != 100 || got[2] != 0 {
		t.Fatalf("cell counts %v, want [100 100 0]", got)
	}
	if _, err := Derive(ctx(t), spec, map[string]array.RecordReader{"people2": in}); err == nil {
		t.Error("an input outside the reserved namespace was accepted")
	}
}
