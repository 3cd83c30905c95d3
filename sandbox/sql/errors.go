package sql

import (
	"errors"
	"fmt"
)

// Refusal codes carried by Error.
const (
	CodeEmpty              = "empty"               // the query holds no statement
	CodeTooLong            = "too_long"            // the query text exceeds MaxQueryBytes
	CodeParse              = "parse"               // DuckDB's parser rejected the text
	CodeNotSelect          = "not_select"          // a statement other than SELECT
	CodeMultipleStatements = "multiple_statements" // more than one statement
	CodeTableFunction      = "table_function"      // a table function or other non-table source in FROM
	CodeUnknownTable       = "unknown_table"       // a table that is neither a dataset nor a CTE
	CodeUnknownField       = "unknown_field"       // a column that no referenced table or alias defines
	CodeForbiddenFunction  = "forbidden_function"  // a function that reveals the host or catalog or reads files
	CodeReservedName       = "reserved_name"       // a name in the sandbox's reserved __dsbx namespace
)

// Error is a refusal of a query; the server returns it as HTTP 400.
type Error struct {
	Code    string // one of the Code constants
	Message string // what was refused and why, fit to show the submitter
}

// Error returns the code and the message.
func (e *Error) Error() string { return "sql: " + e.Code + ": " + e.Message }

// refuse builds a refusal with a formatted message.
func refuse(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrLimit reports that a job exceeded one of its resource limits; the wrapping error names the limit and the values.
var ErrLimit = errors.New("sql: limit exceeded")
