package sql

import (
	"context"
	stdsql "database/sql"
	"database/sql/driver"
	"errors"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	duckdb "github.com/duckdb/duckdb-go/v2"
)

// View streams the allowed view of t (its Columns in their order, each in
// its form) to fn as Arrow record batches, one batch resident at a time. It
// is how a Wasm job receives its data. The database that computes it runs
// no job code and, locked down, may read no file but t's snapshot. A view
// of no columns streams batches of no columns that still count the rows.
// memory bounds that database (DuckDB memory_limit, e.g. "512MB").
func View(ctx context.Context, t Table, memory string, fn func(array.RecordReader) error) (err error) {
	if err := t.validate(); err != nil {
		return err
	}
	connector, err := duckdb.NewConnector("", nil)
	if err != nil {
		return fmt.Errorf("sql: open view database: %w", err)
	}
	db := stdsql.OpenDB(connector)
	defer db.Close()
	db.SetMaxOpenConns(1)
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("sql: connect view database: %w", err)
	}
	defer conn.Close()
	sel, err := selectView(ctx, conn, t)
	if err != nil {
		return fmt.Errorf("sql: view of %s: %w", t.Name, err)
	}
	// One thread keeps the rows in snapshot order, so a job sees the same
	// stream every time.
	if err := lockdown(ctx, conn, lockSettings{threads: 1, memory: memory, tempSize: "0 bytes", allowed: []string{t.Parquet}}); err != nil {
		return err
	}
	return conn.Raw(func(dc any) (err error) {
		dconn, ok := dc.(driver.Conn)
		if !ok {
			return fmt.Errorf("sql: unexpected driver connection %T", dc)
		}
		ar, err := duckdb.NewArrowFromConn(dconn)
		if err != nil {
			return fmt.Errorf("sql: arrow interface: %w", err)
		}
		rr, err := ar.QueryContext(ctx, sel)
		if err != nil {
			return fmt.Errorf("sql: view of %s: %w", t.Name, err)
		}
		defer rr.Release()
		if len(t.Columns) == 0 {
			rr = &rowsOnly{src: rr, schema: arrow.NewSchema(nil, nil)}
		}
		if err := fn(rr); err != nil {
			return err
		}
		if err := rr.Err(); err != nil && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("sql: view of %s: %w", t.Name, err)
		}
		return nil
	})
}

// rowsOnly passes batches of no columns, as long as its source's.
type rowsOnly struct {
	src    array.RecordReader
	schema *arrow.Schema
	cur    arrow.RecordBatch
}

func (r *rowsOnly) Retain()               {}
func (r *rowsOnly) Release()              { r.drop() }
func (r *rowsOnly) Schema() *arrow.Schema { return r.schema }
func (r *rowsOnly) Err() error            { return r.src.Err() }

func (r *rowsOnly) Next() bool {
	r.drop()
	if !r.src.Next() {
		return false
	}
	r.cur = array.NewRecordBatch(r.schema, nil, r.src.RecordBatch().NumRows())
	return true
}

func (r *rowsOnly) RecordBatch() arrow.RecordBatch { return r.cur }
func (r *rowsOnly) Record() arrow.RecordBatch      { return r.cur }

func (r *rowsOnly) drop() {
	if r.cur != nil {
		r.cur.Release()
		r.cur = nil
	}
}
