package datasets

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// The column types a snapshot may have. Jobs, field forms and synthetic data
// all handle exactly these; anything else is refused at import with advice
// to override the type.
var typeNames = []string{"BOOLEAN", "INTEGER", "BIGINT", "DOUBLE", "DECIMAL(P,S)", "VARCHAR", "DATE", "TIMESTAMP"}

var typeAliases = map[string]string{
	"BOOLEAN": "BOOLEAN", "BOOL": "BOOLEAN",
	"INTEGER": "INTEGER", "INT": "INTEGER", "INT4": "INTEGER", "INT32": "INTEGER",
	"BIGINT": "BIGINT", "INT8": "BIGINT", "INT64": "BIGINT", "LONG": "BIGINT",
	"DOUBLE": "DOUBLE", "FLOAT8": "DOUBLE", "FLOAT64": "DOUBLE",
	"VARCHAR": "VARCHAR", "TEXT": "VARCHAR", "STRING": "VARCHAR",
	"DATE":      "DATE",
	"TIMESTAMP": "TIMESTAMP", "DATETIME": "TIMESTAMP",
}

// widening maps file types that convert to a served type without loss.
var widening = map[string]string{
	"TINYINT": "INTEGER", "SMALLINT": "INTEGER", "UTINYINT": "INTEGER", "USMALLINT": "INTEGER",
	"UINTEGER": "BIGINT", "FLOAT": "DOUBLE",
	"TIMESTAMP_S": "TIMESTAMP", "TIMESTAMP_MS": "TIMESTAMP",
}

var decimalRE = regexp.MustCompile(`^(?:DECIMAL|NUMERIC)\s*\(\s*(\d+)\s*,\s*(\d+)\s*\)$`)

// parseType returns the canonical name of a served column type.
func parseType(t string) (string, error) {
	u := strings.ToUpper(strings.TrimSpace(t))
	if c, ok := typeAliases[u]; ok {
		return c, nil
	}
	if m := decimalRE.FindStringSubmatch(u); m != nil {
		p, _ := strconv.Atoi(m[1])
		s, _ := strconv.Atoi(m[2])
		if p < 1 || p > 38 || s > p {
			return "", fmt.Errorf("type %s: precision must be 1..38 and scale at most the precision", t)
		}
		return fmt.Sprintf("DECIMAL(%d,%d)", p, s), nil
	}
	return "", fmt.Errorf("type %q is not served; use one of %s", t, strings.Join(typeNames, ", "))
}

// servedType maps a type DuckDB reports for a file column to the served type
// it is stored as.
func servedType(column, fileType string) (string, error) {
	if w, ok := widening[fileType]; ok {
		return w, nil
	}
	t, err := parseType(fileType)
	if err != nil {
		return "", inputErrorf("column %s has type %s, which the sandbox does not serve; convert it, or override it with --schema %s=TYPE (one of %s)",
			column, fileType, column, strings.Join(typeNames, ", "))
	}
	return t, nil
}

// Type inference for CSV, which is staged with every column as text. A
// column takes the narrowest type every non-null value matches exactly:
// integers without leading zeros, signs or separators (so codes like 0571
// stay text), plain decimals, ISO dates and timestamps without a zone,
// true/false; otherwise VARCHAR. DuckDB's casts alone are too lenient
// (' +1_000' is a BIGINT to them), and regular expressions over every value
// cost minutes on gigabytes, so each test is a cast plus cheap string
// checks.
var inferred = []struct {
	typ  string
	test string // SQL predicate over %[1]s, the quoted column
}{
	{"BOOLEAN", `lower(%[1]s) IN ('true', 'false')`},
	{"BIGINT", guarded(`(left(%[1]s, 1) BETWEEN '0' AND '9' OR left(%[1]s, 1) = '-') AND length(%[1]s) <= 20`,
		`CAST(TRY_CAST(%[1]s AS BIGINT) AS VARCHAR) = %[1]s`)},
	{"DOUBLE", guarded(`(left(%[1]s, 1) BETWEEN '0' AND '9' OR (left(%[1]s, 1) = '-' AND substr(%[1]s, 2, 1) BETWEEN '0' AND '9'))`+
		` AND right(%[1]s, 1) BETWEEN '0' AND '9' AND NOT contains(%[1]s, '_') AND NOT contains(%[1]s, ' ')`+
		` AND NOT (ltrim(%[1]s, '-') LIKE '0%%' AND length(ltrim(%[1]s, '-')) > 1 AND ltrim(%[1]s, '-') NOT LIKE '0.%%')`,
		`TRY_CAST(%[1]s AS DOUBLE) IS NOT NULL`)},
	{"DATE", guarded(`length(%[1]s) = 10 AND substr(%[1]s, 5, 1) = '-' AND substr(%[1]s, 8, 1) = '-'`,
		`TRY_CAST(%[1]s AS DATE) IS NOT NULL`)},
	{"TIMESTAMP", guarded(`length(%[1]s) BETWEEN 16 AND 26 AND substr(%[1]s, 5, 1) = '-' AND substr(%[1]s, 8, 1) = '-'`+
		` AND substr(%[1]s, 11, 1) IN (' ', 'T') AND substr(%[1]s, 14, 1) = ':' AND right(%[1]s, 1) BETWEEN '0' AND '9'`+
		` AND NOT contains(substr(%[1]s, 12), '-') AND NOT contains(%[1]s, '+')`,
		`TRY_CAST(%[1]s AS TIMESTAMP) IS NOT NULL`)},
}

// guarded runs the cast test only where the cheap string checks pass:
// DuckDB reorders the operands of AND, so an AND would cast every value.
func guarded(cheap, cast string) string {
	return "CASE WHEN " + cheap + " THEN " + cast + " ELSE false END"
}

// cast returns the SQL that converts the quoted column col of type from to
// type to, yielding NULL where a value does not convert. TRY_CAST alone
// would round ('12.5' to the BIGINT 13, '0.125' to the DECIMAL(10,2) 0.13)
// and drop a time of day ('2024-01-02 10:00' to a DATE); such values do not
// fit and yield NULL too.
func cast(col, from, to string) string {
	try := fmt.Sprintf("TRY_CAST(%s AS %s)", col, to)
	integer := to == "INTEGER" || to == "BIGINT"
	scale := -1
	if m := decimalRE.FindStringSubmatch(to); m != nil {
		scale, _ = strconv.Atoi(m[2])
	}
	switch {
	case from == to:
		return col
	case to == "BOOLEAN" && from == "VARCHAR":
		return fmt.Sprintf(`CASE lower(%[1]s) WHEN 'true' THEN true WHEN 'false' THEN false ELSE TRY_CAST(%[1]s AS BOOLEAN) END`, col)
	case from == "VARCHAR" && integer:
		return fmt.Sprintf(`CASE WHEN regexp_full_match(%s, '\s*[-+]?[0-9]+(\.0*)?\s*') THEN %s END`, col, try)
	case from == "VARCHAR" && scale >= 0:
		frac := fmt.Sprintf(`\.[0-9]{0,%d}0*`, scale)
		return fmt.Sprintf(`CASE WHEN regexp_full_match(%s, '\s*[-+]?([0-9]+(%s)?|%s)\s*') THEN %s END`, col, frac, frac, try)
	case from == "VARCHAR" && to == "DATE":
		// Ten characters hold a date but no time of day.
		return fmt.Sprintf(`CASE WHEN length(%[1]s) <= 10 OR TRY_CAST(%[1]s AS TIMESTAMP) IS NULL OR TRY_CAST(%[1]s AS TIMESTAMP) = %[2]s THEN %[2]s END`, col, try)
	case (integer || scale >= 0) && (from == "FLOAT" || from == "DOUBLE" || decimalRE.MatchString(from)),
		to == "DATE" && strings.HasPrefix(from, "TIMESTAMP"):
		return fmt.Sprintf(`CASE WHEN %[2]s = %[1]s THEN %[2]s END`, col, try)
	default:
		return try
	}
}

// ident quotes s as a SQL identifier.
func ident(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// literal quotes s as a SQL string literal.
func literal(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}
