package sql

import (
	"context"
	stdsql "database/sql"
	"encoding/hex"
	"fmt"
	"strings"
)

// Forms a column may be seen in. The host computes every form while it
// loads the table, before lockdown: the job's database never holds the raw
// value of a column in another form, nor the key of a hashed one.
const (
	// FormRaw is the value unchanged.
	FormRaw = "raw"
	// FormMasked is the value as text with its middle replaced by '*': a
	// quarter of the characters kept at each end (3301**********1234), or
	// only the first for values shorter than four (张*).
	FormMasked = "masked"
	// FormHashed is the hex SHA-256 of the table's hash key, a unit
	// separator and the value as text: equal values hash equal within one
	// agreement, so they still join and group, and cannot be looked up
	// without the key.
	FormHashed = "hashed"
	// FormGeneralised is a coarser value: dates and times become their year;
	// numbers are floored to one significant digit (45321 → 40000);
	// six-digit region codes (GB/T 2260) go one level up (330106 → 330100,
	// 330100 → 330000); other values become NULL.
	FormGeneralised = "generalised"
)

// MinHashKey is the shortest hash key a table with hashed columns accepts.
const MinHashKey = 16

// columnTypes returns the DuckDB type of each column of the Parquet file.
func columnTypes(ctx context.Context, conn *stdsql.Conn, parquet string) (map[string]string, error) {
	rows, err := conn.QueryContext(ctx, "DESCRIBE SELECT * FROM read_parquet("+literal(parquet)+")")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	types := map[string]string{}
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		types[fmt.Sprint(vals[0])] = strings.ToUpper(fmt.Sprint(vals[1]))
	}
	return types, rows.Err()
}

// formExpr is the SQL expression that computes column c of type typ in its
// form, named as the column.
func formExpr(c Column, typ string, key []byte) (string, error) {
	x := ident(c.Name)
	var e string
	switch c.Form {
	case FormRaw:
		return x, nil
	case FormMasked:
		s := "CAST(" + x + " AS VARCHAR)"
		n := "length(" + s + ")"
		k := "(" + n + " // 4)"
		e = "CASE WHEN " + n + " < 4 THEN left(" + s + ", 1) || repeat('*', " + n + " - 1) " +
			"ELSE left(" + s + ", " + k + ") || repeat('*', " + n + " - 2 * " + k + ") || right(" + s + ", " + k + ") END"
	case FormHashed:
		if len(key) < MinHashKey {
			return "", fmt.Errorf("column %s is hashed but the table's hash key has %d bytes, fewer than %d", c.Name, len(key), MinHashKey)
		}
		e = "sha256(" + literal(hex.EncodeToString(key)) + " || chr(31) || CAST(" + x + " AS VARCHAR))"
	case FormGeneralised:
		e = generalised(x, typ)
	default:
		return "", fmt.Errorf("column %s: form %q is not one of raw, masked, hashed, generalised", c.Name, c.Form)
	}
	return e + " AS " + x, nil
}

// generalised is the expression for x of type typ one level coarser.
func generalised(x, typ string) string {
	switch {
	case typ == "DATE" || strings.HasPrefix(typ, "TIMESTAMP"):
		return "CAST(year(" + x + ") AS INTEGER)"
	case isNumeric(typ):
		// floor(|x| / 10^k) · 10^k with k the exponent of the leading digit.
		p := "pow(10, floor(log10(abs(" + x + "))))"
		return "CASE WHEN " + x + " IS NULL OR " + x + " = 0 THEN " + x +
			" ELSE CAST(sign(" + x + ") * floor(abs(" + x + ") / " + p + ") * " + p + " AS " + typ + ") END"
	case typ == "VARCHAR":
		return "CASE WHEN NOT regexp_full_match(" + x + ", '[0-9]{6}') THEN NULL " +
			"WHEN right(" + x + ", 2) <> '00' THEN left(" + x + ", 4) || '00' " +
			"ELSE left(" + x + ", 2) || '0000' END"
	}
	return "CAST(NULL AS " + typ + ")"
}

func isNumeric(typ string) bool {
	switch typ {
	case "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "FLOAT", "DOUBLE":
		return true
	}
	return strings.HasPrefix(typ, "DECIMAL")
}
