// Package synthetic makes synthetic data with a dataset version's schema,
// for sandbox mode: a researcher develops SQL locally against synthetic rows
// and submits it unchanged to run on the real data.
//
// [Build] reads a Parquet snapshot and writes a [Profile]: for each column
// its type, its share of NULLs and one generator, chosen from
//
//   - categories: values seen at least k times (the profile's MinCount),
//     with their weights;
//   - a range: the 5th to 95th percentile, rounded outward to two
//     significant digits of the spread, and never equal to the real minimum
//     or maximum;
//   - a pattern: string lengths and, per position, the weights of character
//     classes (digit, upper, lower, hanzi) and of separators seen at least
//     k times there; generated characters come from the classes, Chinese ones
//     from a fixed list of common characters in this package, never from
//     the data.
//
// A text column gets categories when its values seen at least k times (at
// most 200) cover 80% of its non-NULL values, and a pattern otherwise; a
// numeric, date or timestamp column gets categories when at most 20 such
// values cover 90%, and a range otherwise. A column with fewer than k
// non-NULL values, or a BOOLEAN one with no value seen k times, gets a
// generator that depends on its type alone.
//
// A profile therefore carries no value seen fewer than k times, no outlier
// and no real row; figures (row count, weights, NULL shares) are rounded.
// [Generate] draws rows independently per column from a profile,
// deterministically from a seed, as CSV or Parquet.
package synthetic

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// DefaultMinCount is the minimum count k that Build uses when given k <= 0.
const DefaultMinCount = 10

// MaxRows is the largest number of rows Generate writes.
const MaxRows = 10_000_000

// Profile describes a dataset version's columns well enough to draw
// plausible synthetic rows, and carries no rare real value.
type Profile struct {
	// Rows is the number of rows in the real version, rounded to two
	// significant digits so that it is not exact.
	Rows int64 `json:"rows"`
	// MinCount is k: values seen fewer than k times are never kept.
	MinCount int64 `json:"min_count"`
	// Columns are the version's columns, in order.
	Columns []Column `json:"columns"`
}

// Column describes one column of a Profile. Exactly one of Categories, Range
// and Pattern is set.
type Column struct {
	// Name is the column's name, exactly as in the data.
	Name string `json:"name"`
	// Type is the DuckDB type: BOOLEAN, INTEGER, BIGINT, DOUBLE,
	// DECIMAL(p,s), VARCHAR, DATE or TIMESTAMP.
	Type string `json:"type"`
	// NullRate is the share of NULLs, rounded to 0.01; it is 0 only when the
	// column has no NULL and 1 only when it has nothing else.
	NullRate float64 `json:"null_rate"`
	// Categories lists the values of a low-cardinality column seen at least
	// MinCount times.
	Categories []Category `json:"categories,omitempty"`
	// Range bounds a numeric, date or timestamp column.
	Range *Range `json:"range,omitempty"`
	// Pattern shapes a high-cardinality text column.
	Pattern *Pattern `json:"pattern,omitempty"`
}

// Category is one value of a categorical column and its relative weight.
type Category struct {
	// Value is the value as DuckDB casts it to VARCHAR, e.g. "西湖区",
	// "true", "12.50", "2024-01-31".
	Value string `json:"value"`
	// Weight is the value's share of the non-NULL values, rounded to two
	// significant digits; weights need not sum to 1.
	Weight float64 `json:"weight"`
}

// Range is the interval, inclusive, from which a column's values are drawn
// uniformly, at the column type's resolution: whole numbers, the decimal
// scale, days, seconds, and for DOUBLE four significant digits of the
// spread.
type Range struct {
	// Min is the lower bound in the column type's text form, e.g. "1000",
	// "0.25", "2020-01-01", "2020-01-01 00:00:00".
	Min string `json:"min"`
	// Max is the upper bound in the same form.
	Max string `json:"max"`
}

// Pattern shapes random strings: a length drawn uniformly from MinLength to
// MaxLength characters (at most 1000), and each character drawn from its
// Position.
type Pattern struct {
	// MinLength is the shortest length, in characters (the 5th percentile).
	MinLength int `json:"min_length"`
	// MaxLength is the longest length, in characters (the 95th percentile).
	MaxLength int `json:"max_length"`
	// Positions describes the first characters one by one; characters past
	// the end of Positions are drawn from its last element.
	Positions []Position `json:"positions"`
}

// Position holds the weights of the character classes at one position of a
// Pattern. The weights are shares rounded to 0.01 and need not sum to 1.
type Position struct {
	// Digit is the weight of the ASCII digits 0-9.
	Digit float64 `json:"digit,omitempty"`
	// Upper is the weight of the ASCII letters A-Z.
	Upper float64 `json:"upper,omitempty"`
	// Lower is the weight of the ASCII letters a-z.
	Lower float64 `json:"lower,omitempty"`
	// Hanzi is the weight of Chinese characters, drawn from a fixed list of
	// common ones.
	Hanzi float64 `json:"hanzi,omitempty"`
	// Literals weighs single characters of no class above, such as "-",
	// " " or "·", each seen at least MinCount times at this position.
	Literals map[string]float64 `json:"literals,omitempty"`
}

// hanzi are the Chinese characters a Pattern's Hanzi class draws from:
// common surnames, characters of given names and of place names.
var hanzi = []rune("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤" +
	"伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂华建国文辉玉萍红玲芬燕鹏飞斌宇浩凯健俊帆帅旭宁欣怡婷雪琳晨阳志海波峰亮成新春晓梅云德福寿荣" +
	"省市区县镇乡村街道路号楼室东南西北中山河湖城州安长广元和兴佳园花小大天")

// kind is how a column type is profiled and generated.
type kind int

const (
	kindBoolean kind = iota
	kindInteger
	kindDecimal
	kindDouble
	kindDate
	kindTimestamp
	kindText
)

// columnType is a parsed, supported column type.
type columnType struct {
	name  string // canonical DuckDB name, safe to put in SQL
	kind  kind
	lo    int64   // in whole-number form (see inInts): smallest value
	hi    int64   // in whole-number form: largest value
	scale int     // kindDecimal: digits after the point
	limit float64 // kindDecimal: largest absolute value
}

const (
	dateLayout      = "2006-01-02"
	timestampLayout = "2006-01-02 15:04:05"
	// Dates and timestamps are drawn from the years 1 to 9999, which both
	// DuckDB and these layouts write the same way.
	firstDay = -719162 // 0001-01-01, in days since 1970-01-01
	lastDay  = 2932896 // 9999-12-31
)

var decimalType = regexp.MustCompile(`^DECIMAL\s*\(\s*(\d{1,2})\s*,\s*(\d{1,2})\s*\)$`)

// supportedTypes names the types parseType accepts, for error messages.
const supportedTypes = "BOOLEAN, INTEGER, BIGINT, DOUBLE, DECIMAL(p,s), VARCHAR, DATE, TIMESTAMP"

// parseType parses a DuckDB type name; the result's name is canonical.
func parseType(s string) (columnType, error) {
	u := strings.ToUpper(strings.TrimSpace(s))
	switch u {
	case "BOOLEAN":
		return columnType{name: u, kind: kindBoolean}, nil
	case "INTEGER":
		return columnType{name: u, kind: kindInteger, lo: math.MinInt32, hi: math.MaxInt32}, nil
	case "BIGINT":
		return columnType{name: u, kind: kindInteger, lo: math.MinInt64, hi: math.MaxInt64}, nil
	case "DOUBLE":
		return columnType{name: u, kind: kindDouble}, nil
	case "VARCHAR":
		return columnType{name: u, kind: kindText}, nil
	case "DATE":
		return columnType{name: u, kind: kindDate, lo: firstDay, hi: lastDay}, nil
	case "TIMESTAMP":
		return columnType{name: u, kind: kindTimestamp, lo: firstDay * 86400, hi: lastDay*86400 + 86399}, nil
	}
	if m := decimalType.FindStringSubmatch(u); m != nil {
		p, _ := strconv.Atoi(m[1])
		sc, _ := strconv.Atoi(m[2])
		if p >= 1 && p <= 38 && sc <= p {
			return columnType{
				name: fmt.Sprintf("DECIMAL(%d,%d)", p, sc), kind: kindDecimal, scale: sc,
				limit: math.Pow10(p-sc) - math.Pow10(-sc),
			}, nil
		}
	}
	return columnType{}, fmt.Errorf("type %q is not supported (supported: %s)", s, supportedTypes)
}

// inInts reports whether the type's values are drawn as whole numbers:
// integers, days since 1970 for dates, seconds since 1970 for timestamps.
func (t columnType) inInts() bool {
	return t.kind == kindInteger || t.kind == kindDate || t.kind == kindTimestamp
}

// parseInt parses a value of an integer, date or timestamp column into its
// whole-number form.
func (t columnType) parseInt(s string) (int64, error) {
	var v int64
	switch t.kind {
	case kindInteger:
		i, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, err
		}
		v = i
	case kindDate:
		d, err := time.Parse(dateLayout, s)
		if err != nil {
			return 0, err
		}
		v = floorDiv(d.Unix(), 86400)
	case kindTimestamp:
		// Fractional seconds are accepted and dropped.
		ts, err := time.Parse(timestampLayout, s)
		if err != nil {
			return 0, err
		}
		v = ts.Unix()
	default:
		return 0, fmt.Errorf("%s has no whole-number form", t.name)
	}
	if v < t.lo || v > t.hi {
		return 0, fmt.Errorf("%s is out of range for %s", s, t.name)
	}
	return v, nil
}

// formatInt formats the whole-number form of a value.
func (t columnType) formatInt(v int64) string {
	switch t.kind {
	case kindDate:
		return time.Unix(v*86400, 0).UTC().Format(dateLayout)
	case kindTimestamp:
		return time.Unix(v, 0).UTC().Format(timestampLayout)
	}
	return strconv.FormatInt(v, 10)
}

var decimalValue = regexp.MustCompile(`^-?[0-9]+(\.[0-9]+)?$`)

// parseFloat parses a value of a DECIMAL or DOUBLE column.
func (t columnType) parseFloat(s string) (float64, error) {
	if t.kind == kindDecimal {
		if !decimalValue.MatchString(s) {
			return 0, fmt.Errorf("%q is not a decimal number", s)
		}
		if i := strings.IndexByte(s, '.'); i >= 0 && len(s)-i-1 > t.scale {
			return 0, fmt.Errorf("%s has more than %d decimals", s, t.scale)
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, err
	}
	if t.kind == kindDecimal && math.Abs(v) > t.limit {
		return 0, fmt.Errorf("%s is out of range for %s", s, t.name)
	}
	return v, nil
}

// check reports whether s is a valid value of the type.
func (t columnType) check(s string) error {
	switch t.kind {
	case kindBoolean:
		if s != "true" && s != "false" {
			return fmt.Errorf("%q is not true or false", s)
		}
	case kindText:
	case kindDecimal, kindDouble:
		_, err := t.parseFloat(s)
		return err
	default:
		_, err := t.parseInt(s)
		return err
	}
	return nil
}

// floorDiv divides rounding towards negative infinity.
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// ident quotes s as a SQL identifier.
func ident(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// literal quotes s as a SQL string literal.
func literal(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}
