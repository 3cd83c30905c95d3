package sql

import (
	"bytes"
	"context"
	stdsql "database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"sync"

	duckdb "github.com/duckdb/duckdb-go/v2"
)

// MaxQueryBytes is the longest query text Analyze and Run accept.
const MaxQueryBytes = 64 << 10

// queryer is a database or a single connection.
type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *stdsql.Row
}

// parser is a private, locked, data-less DuckDB used only for its parser and catalog of function names.
type parser struct {
	db         *stdsql.DB
	aggregates map[string]bool // lower-case names of all aggregate functions
	countStar  map[string]any  // the serialized expression count(*) AS __dsbx_cell_n
}

var sharedParser = sync.OnceValues(newParser)

// newParser opens and locks the parser database.
func newParser() (*parser, error) {
	ctx := context.Background()
	connector, err := duckdb.NewConnector("", nil)
	if err != nil {
		return nil, fmt.Errorf("sql: open parser database: %w", err)
	}
	db := stdsql.OpenDB(connector)
	db.SetMaxOpenConns(4)
	fail := func(err error) (*parser, error) {
		db.Close()
		return nil, err
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return fail(fmt.Errorf("sql: connect parser database: %w", err))
	}
	err = lockdown(ctx, conn, lockSettings{threads: 1, memory: "128MB", tempDir: "", tempSize: "0 bytes"})
	conn.Close()
	if err != nil {
		return fail(err)
	}
	p := &parser{db: db, aggregates: map[string]bool{}}
	rows, err := db.QueryContext(ctx, "SELECT DISTINCT lower(function_name) FROM duckdb_functions() WHERE function_type = 'aggregate'")
	if err != nil {
		return fail(fmt.Errorf("sql: list aggregate functions: %w", err))
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return fail(fmt.Errorf("sql: list aggregate functions: %w", err))
		}
		p.aggregates[name] = true
	}
	if err := rows.Err(); err != nil {
		return fail(fmt.Errorf("sql: list aggregate functions: %w", err))
	}
	doc, err := serialize(ctx, db, "SELECT count(*) AS "+CellCountColumn)
	if err != nil {
		return fail(fmt.Errorf("sql: serialize cell count template: %w", err))
	}
	node, perr := singleSelect(doc)
	if perr != nil {
		return fail(fmt.Errorf("sql: serialize cell count template: %w", perr))
	}
	list, _ := node["select_list"].([]any)
	if len(list) != 1 {
		return fail(fmt.Errorf("sql: unexpected cell count template %v", node["select_list"]))
	}
	p.countStar, _ = list[0].(map[string]any)
	return p, nil
}

// serialize parses query with DuckDB's parser into its JSON syntax tree; a parser
// refusal is returned as a document with "error": true, not as an error.
func serialize(ctx context.Context, q queryer, query string) (map[string]any, error) {
	var text string
	if err := q.QueryRowContext(ctx, "SELECT json_serialize_sql(?::VARCHAR)::VARCHAR", query).Scan(&text); err != nil {
		return nil, fmt.Errorf("sql: json_serialize_sql: %w", err)
	}
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber() // query_location is 2^64-1 when unknown; keep numbers exact
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("sql: decode json_serialize_sql output: %w", err)
	}
	return doc, nil
}

// deserialize renders a (possibly edited) syntax tree back to SQL text.
func deserialize(ctx context.Context, q queryer, doc map[string]any) (string, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(doc); err != nil {
		return "", fmt.Errorf("sql: encode syntax tree: %w", err)
	}
	var text string
	if err := q.QueryRowContext(ctx, "SELECT json_deserialize_sql(?::JSON)::VARCHAR", buf.String()).Scan(&text); err != nil {
		return "", fmt.Errorf("sql: json_deserialize_sql: %w", err)
	}
	return text, nil
}

// duckdbUnsupportedStatement is the error_type json_serialize_sql reports
// for any statement it cannot serialize, which is every statement but
// SELECT (COPY, ATTACH, SET, …): DuckDB's wording, not unfinished code here.
const duckdbUnsupportedStatement = "not implemented"

// singleSelect checks that doc holds exactly one SELECT statement and returns its query node.
func singleSelect(doc map[string]any) (map[string]any, *Error) {
	if failed, _ := doc["error"].(bool); failed {
		typ, _ := doc["error_type"].(string)
		msg, _ := doc["error_message"].(string)
		if typ == duckdbUnsupportedStatement {
			return nil, refuse(CodeNotSelect, "only SELECT queries may run (%s)", msg)
		}
		return nil, refuse(CodeParse, "%s", msg)
	}
	stmts, _ := doc["statements"].([]any)
	switch {
	case len(stmts) == 0:
		return nil, refuse(CodeEmpty, "the query holds no statement")
	case len(stmts) > 1:
		return nil, refuse(CodeMultipleStatements, "the query holds %d statements; submit exactly one SELECT", len(stmts))
	}
	stmt, _ := stmts[0].(map[string]any)
	node, _ := stmt["node"].(map[string]any)
	if node == nil {
		return nil, refuse(CodeParse, "the parser returned no query node")
	}
	return node, nil
}

// checkText refuses empty and oversized query texts before they reach DuckDB.
func checkText(query string) *Error {
	if strings.TrimSpace(query) == "" {
		return refuse(CodeEmpty, "the query is empty")
	}
	if len(query) > MaxQueryBytes {
		return refuse(CodeTooLong, "the query is %d bytes; the limit is %d", len(query), MaxQueryBytes)
	}
	return nil
}
