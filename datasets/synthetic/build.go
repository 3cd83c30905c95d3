package synthetic

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"unicode"

	_ "github.com/duckdb/duckdb-go/v2" // the "duckdb" database/sql driver
)

// Thresholds that choose a column's generator.
const (
	// A text column is categorical when its values seen at least k times,
	// at most maxTextCategories of them, cover textCoverage of its non-NULL
	// values; other text columns get a Pattern.
	maxTextCategories = 200
	textCoverage      = 0.8
	// A numeric, date or timestamp column is categorical when at most
	// maxOtherCategories values seen at least k times cover otherCoverage
	// of its non-NULL values; other such columns get a Range.
	maxOtherCategories = 20
	otherCoverage      = 0.9
	// maxPositions bounds the positions a Pattern describes one by one.
	maxPositions = 64
)

// SampleRows bounds the rows a profile is computed from; larger versions are
// sampled.
var SampleRows int64 = 1_000_000

// Build profiles the Parquet file at path with DuckDB. k is the minimum
// count for a value to be kept (use 10 when k <= 0).
func Build(ctx context.Context, path string, k int64) (Profile, error) {
	if k <= 0 {
		k = DefaultMinCount
	}
	p, err := build(ctx, path, k)
	if err != nil {
		return Profile{}, fmt.Errorf("profile %s: %w", path, err)
	}
	return p, nil
}

func build(ctx context.Context, path string, k int64) (Profile, error) {
	if strings.ContainsAny(path, "*?[{") {
		return Profile{}, errors.New("the path has a glob character (one of *?[{), which DuckDB would expand")
	}
	info, err := os.Stat(path)
	if err != nil {
		return Profile{}, err
	}
	if info.IsDir() {
		return Profile{}, errors.New("is a directory, not a Parquet file")
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		return Profile{}, fmt.Errorf("start duckdb: %w", err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, "SET memory_limit = '1GB'"); err != nil {
		return Profile{}, fmt.Errorf("configure duckdb: %w", err)
	}

	src := "read_parquet(" + literal(path) + ")"
	names, types, err := describe(ctx, db, src)
	if err != nil {
		return Profile{}, fmt.Errorf("not a readable Parquet file: %w", err)
	}
	parsed := make([]columnType, len(types))
	for i, t := range types {
		if parsed[i], err = parseType(t); err != nil {
			return Profile{}, fmt.Errorf("column %q: %w", names[i], err)
		}
	}
	var total int64
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM "+src).Scan(&total); err != nil {
		return Profile{}, err
	}
	p := Profile{Rows: int64(roundSig(float64(total))), MinCount: k}
	if total > SampleRows {
		// Large versions are profiled from a fixed-seed reservoir sample:
		// the per-column passes then cost the same for 1 GB as for 10 GB.
		// k applies to counts in the sample, which only makes it stricter.
		if _, err := db.ExecContext(ctx, fmt.Sprintf("CREATE TEMP TABLE profile_sample AS SELECT * FROM %s USING SAMPLE reservoir(%d ROWS) REPEATABLE (42)", src, SampleRows)); err != nil {
			return Profile{}, fmt.Errorf("sample: %w", err)
		}
		src, total = "profile_sample", SampleRows
	}
	for i, name := range names {
		c, err := profileColumn(ctx, db, src, name, parsed[i], total, k)
		if err != nil {
			return Profile{}, fmt.Errorf("column %q: %w", name, err)
		}
		p.Columns = append(p.Columns, c)
	}
	if _, err := compile(p); err != nil {
		return Profile{}, fmt.Errorf("the profile does not compile: %w", err)
	}
	return p, nil
}

// describe returns the names and DuckDB types of the columns of src.
func describe(ctx context.Context, db *sql.DB, src string) (names, types []string, err error) {
	rows, err := db.QueryContext(ctx, "SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM "+src+")")
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var n, t string
		if err := rows.Scan(&n, &t); err != nil {
			return nil, nil, err
		}
		names = append(names, n)
		types = append(types, t)
	}
	return names, types, rows.Err()
}

// profileColumn profiles the column name of type t in src, which has total
// rows.
func profileColumn(ctx context.Context, db *sql.DB, src, name string, t columnType, total, k int64) (Column, error) {
	c := Column{Name: name, Type: t.name}
	col := ident(name)
	var nonNull int64
	if err := db.QueryRowContext(ctx, "SELECT count("+col+") FROM "+src).Scan(&nonNull); err != nil {
		return Column{}, err
	}
	c.NullRate = nullRate(total-nonNull, total)
	if nonNull < k {
		// Too few values to draw anything from without singling one out.
		setDefault(&c, t)
		return c, nil
	}

	limit, coverage := maxOtherCategories, otherCoverage
	switch t.kind {
	case kindBoolean:
		limit, coverage = 2, 0
	case kindText:
		limit, coverage = maxTextCategories, textCoverage
	}
	kept, covered, err := frequent(ctx, db, src, col, k, limit)
	if err != nil {
		return Column{}, err
	}
	// Drop values Generate would not take back, such as dates before the
	// year 1; they count as rare.
	kept = slices.DeleteFunc(kept, func(v valueCount) bool {
		if t.check(v.value) != nil {
			covered -= v.n
			return true
		}
		return false
	})
	switch {
	case len(kept) > 0 && float64(covered) >= coverage*float64(nonNull):
		for _, v := range kept {
			c.Categories = append(c.Categories, Category{Value: v.value, Weight: roundSig(float64(v.n) / float64(nonNull))})
		}
	case t.kind == kindBoolean:
		setDefault(&c, t)
	case t.kind == kindText:
		c.Pattern, err = pattern(ctx, db, src, col, k)
	default:
		c.Range, err = robustRange(ctx, db, src, col, t)
		if err == nil && c.Range == nil {
			setDefault(&c, t)
		}
	}
	return c, err
}

// valueCount is a value, cast to VARCHAR, and how often it occurs.
type valueCount struct {
	value string
	n     int64
}

// frequent returns the at most limit commonest values of col seen at least
// k times, and how many rows they cover.
func frequent(ctx context.Context, db *sql.DB, src, col string, k int64, limit int) ([]valueCount, int64, error) {
	rows, err := db.QueryContext(ctx, "SELECT CAST(v AS VARCHAR), n FROM (SELECT "+col+" AS v, count(*) AS n FROM "+src+
		" WHERE "+col+" IS NOT NULL GROUP BY 1 HAVING count(*) >= ?) ORDER BY n DESC, 1 LIMIT ?", k, limit)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	var kept []valueCount
	var covered int64
	for rows.Next() {
		var v valueCount
		if err := rows.Scan(&v.value, &v.n); err != nil {
			return nil, 0, err
		}
		kept = append(kept, v)
		covered += v.n
	}
	return kept, covered, rows.Err()
}

// robustRange returns the 5th to 95th percentile of col, rounded outward to
// two significant digits of their difference and moved inward by one unit
// where it meets the real minimum or maximum. It returns nil when no such
// range exists (the column has no finite value, or the range would vanish).
func robustRange(ctx context.Context, db *sql.DB, src, col string, t columnType) (*Range, error) {
	// x is the column as a number, where it is finite and, for dates and
	// timestamps, in the years 1 to 9999.
	x, where := "CAST("+col+" AS DOUBLE)", col+" IS NOT NULL"
	switch t.kind {
	case kindDate:
		x = "CAST(" + col + " - DATE '1970-01-01' AS DOUBLE)"
		where = col + " BETWEEN DATE '0001-01-01' AND DATE '9999-12-31'"
	case kindTimestamp:
		x = "epoch(" + col + ")"
		where = col + " BETWEEN TIMESTAMP '0001-01-01 00:00:00' AND TIMESTAMP '9999-12-31 23:59:59'"
	}
	var p5, p95, least, most sql.NullFloat64
	if err := db.QueryRowContext(ctx, "SELECT quantile_cont(x, 0.05), quantile_cont(x, 0.95), min(x), max(x) FROM (SELECT "+x+
		" AS x FROM "+src+" WHERE "+where+") WHERE isfinite(x)").Scan(&p5, &p95, &least, &most); err != nil {
		return nil, err
	}
	if !p5.Valid {
		return nil, nil
	}

	// Round to units of 10^e, two significant digits of the spread, but no
	// finer than the type holds.
	var e int
	switch spread := p95.Float64 - p5.Float64; {
	case spread > 0:
		e = int(math.Floor(math.Log10(spread))) - 1
	case p5.Float64 != 0:
		e = int(math.Floor(math.Log10(math.Abs(p5.Float64)))) - 1
	}
	switch t.kind {
	case kindDecimal:
		e = max(e, -t.scale)
	case kindDouble:
		e = max(e, -12)
	default:
		e = max(e, 0)
	}
	unit := math.Pow10(e)
	lo := toUnits(p5.Float64, e, math.Floor)
	hi := toUnits(p95.Float64, e, math.Ceil)
	switch {
	case t.inInts():
		lo, hi = max(lo, float64(t.lo)), min(hi, float64(t.hi))
	case t.kind == kindDecimal:
		lo, hi = max(lo, -t.limit), min(hi, t.limit)
	}
	// Never give away the extremes, even when a percentile rounds to one.
	if math.Abs(lo-least.Float64) < unit/2 {
		lo += unit
	}
	if math.Abs(hi-most.Float64) < unit/2 {
		hi -= unit
	}
	if lo > hi {
		return nil, nil
	}
	switch t.kind {
	case kindDecimal:
		return &Range{Min: formatFloat(lo, t.scale), Max: formatFloat(hi, t.scale)}, nil
	case kindDouble:
		return &Range{Min: formatFloat(lo, -e), Max: formatFloat(hi, -e)}, nil
	}
	return &Range{Min: t.formatInt(toInt64(lo)), Max: t.formatInt(toInt64(hi))}, nil
}

// toUnits rounds x to a multiple of 10^e with round (math.Floor or
// math.Ceil). For e < 0 it scales by 10^-e, which a float64 holds exactly,
// rather than by 10^e, which it does not.
func toUnits(x float64, e int, round func(float64) float64) float64 {
	if e < 0 {
		p := math.Pow10(-e)
		return round(x*p) / p
	}
	u := math.Pow10(e)
	return round(x/u) * u
}

// formatFloat formats v with max(decimals, 0) digits after the point.
func formatFloat(v float64, decimals int) string {
	s := fmt.Sprintf("%.*f", max(decimals, 0), v)
	if strings.Trim(s, "-0.") == "" {
		return strings.TrimPrefix(s, "-") // no "-0.00"
	}
	return s
}

// toInt64 converts v to an int64, saturating.
func toInt64(v float64) int64 {
	switch {
	case v >= math.MaxInt64:
		return math.MaxInt64
	case v <= math.MinInt64:
		return math.MinInt64
	}
	return int64(math.Round(v))
}

// positionCount counts the characters seen at one position of a text
// column.
type positionCount struct {
	n, digit, upper, lower, hanzi int64
	other                         map[rune]int64
}

// pattern returns the Pattern of the text column col: the 5th and 95th
// percentile of its lengths (at most maxPatternLength), and the character classes at each position
// that at least k values reach.
func pattern(ctx context.Context, db *sql.DB, src, col string, k int64) (*Pattern, error) {
	rows, err := db.QueryContext(ctx, "SELECT "+col+" FROM "+src+" WHERE "+col+" IS NOT NULL")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	lengths := map[int]int64{}
	counts := make([]positionCount, maxPositions)
	var n int64
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		i := 0
		for _, r := range s {
			if i < maxPositions {
				counts[i].add(r)
			}
			i++
		}
		lengths[i]++
		n++
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}

	p := &Pattern{
		MinLength: min(lengthQuantile(lengths, n, 0.05), maxPatternLength),
		MaxLength: min(lengthQuantile(lengths, n, 0.95), maxPatternLength),
	}
	for i := range min(p.MaxLength, maxPositions) {
		pos, ok := counts[i].position(k)
		if !ok {
			break
		}
		p.Positions = append(p.Positions, pos)
	}
	if p.MaxLength > 0 && len(p.Positions) == 0 {
		p.Positions = []Position{{Lower: 1}}
	}
	return p, nil
}

// add counts r.
func (c *positionCount) add(r rune) {
	c.n++
	switch {
	case r >= '0' && r <= '9':
		c.digit++
	case r >= 'A' && r <= 'Z':
		c.upper++
	case r >= 'a' && r <= 'z':
		c.lower++
	case unicode.Is(unicode.Han, r):
		c.hanzi++
	default:
		if c.other == nil {
			c.other = map[rune]int64{}
		}
		c.other[r]++
	}
}

// position returns the weights of the classes and literals seen at least k
// times, and false when fewer than k values reach the position or nothing
// is seen k times.
func (c *positionCount) position(k int64) (Position, bool) {
	if c.n < k {
		return Position{}, false
	}
	share := func(x int64) float64 {
		if x < k {
			return 0
		}
		return max(math.Round(100*float64(x)/float64(c.n))/100, 0.01)
	}
	p := Position{Digit: share(c.digit), Upper: share(c.upper), Lower: share(c.lower), Hanzi: share(c.hanzi)}
	for r, x := range c.other {
		if x >= k {
			if p.Literals == nil {
				p.Literals = map[string]float64{}
			}
			p.Literals[string(r)] = share(x)
		}
	}
	return p, p.Digit+p.Upper+p.Lower+p.Hanzi > 0 || len(p.Literals) > 0
}

// lengthQuantile returns the smallest length with at least the share q of
// the n lengths counted in h at or below it.
func lengthQuantile(h map[int]int64, n int64, q float64) int {
	keys := make([]int, 0, len(h))
	for l := range h {
		keys = append(keys, l)
	}
	slices.Sort(keys)
	var cum int64
	for _, l := range keys {
		cum += h[l]
		if float64(cum) >= q*float64(n) {
			return l
		}
	}
	return 0
}

// nullRate returns the share nulls/total rounded to 0.01, but above 0 when
// there is a NULL and below 1 when there is a value.
func nullRate(nulls, total int64) float64 {
	if total == 0 {
		return 0
	}
	r := math.Round(100*float64(nulls)/float64(total)) / 100
	switch {
	case nulls > 0 && r == 0:
		return 0.01
	case nulls < total && r == 1:
		return 0.99
	}
	return r
}

// roundSig rounds x to two significant digits.
func roundSig(x float64) float64 {
	if x == 0 || math.IsInf(x, 0) || math.IsNaN(x) {
		return x
	}
	e := int(math.Floor(math.Log10(math.Abs(x)))) - 1
	if e < 0 {
		p := math.Pow10(-e)
		return math.Round(x*p) / p
	}
	u := math.Pow10(e)
	return math.Round(x/u) * u
}

// setDefault gives c a generator that depends on its type alone, for
// columns with too few values to describe.
func setDefault(c *Column, t columnType) {
	switch t.kind {
	case kindBoolean:
		c.Categories = []Category{{Value: "false", Weight: 0.5}, {Value: "true", Weight: 0.5}}
	case kindInteger:
		c.Range = &Range{Min: "0", Max: "100"}
	case kindDecimal:
		c.Range = &Range{Min: formatFloat(0, t.scale), Max: formatFloat(min(100, t.limit), t.scale)}
	case kindDouble:
		c.Range = &Range{Min: "0", Max: "1"}
	case kindDate:
		c.Range = &Range{Min: "2000-01-01", Max: "2024-12-31"}
	case kindTimestamp:
		c.Range = &Range{Min: "2000-01-01 00:00:00", Max: "2024-12-31 23:59:59"}
	case kindText:
		c.Pattern = &Pattern{MinLength: 1, MaxLength: 8, Positions: []Position{{Lower: 1}}}
	}
}
