package synthetic

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// maxPatternLength bounds the length of the strings a Pattern makes.
const maxPatternLength = 1000

// Generate writes rows synthetic rows drawn independently per column from
// p, using a deterministic PRNG seeded with seed, to w as CSV (header row,
// the exact column names) when format is "csv", or Parquet with exactly the
// profile's column types when format is "parquet".
//
// In CSV an empty field is NULL and an empty string is written as "".
// Equal profiles, row counts, seeds and formats give equal bytes. Memory use
// does not grow with rows; Parquet is staged in a temporary file.
func Generate(ctx context.Context, p Profile, rows int64, seed uint64, format string, w io.Writer) error {
	if rows < 0 || rows > MaxRows {
		return fmt.Errorf("generate: %d rows: want 0 to %d", rows, MaxRows)
	}
	if format != "csv" && format != "parquet" {
		return fmt.Errorf("generate: format %q: want csv or parquet", format)
	}
	gens, err := compile(p)
	if err != nil {
		return fmt.Errorf("generate: %w", err)
	}
	if format == "parquet" {
		err = writeParquet(ctx, p, gens, rows, seed, w)
	} else {
		err = writeCSV(ctx, p, gens, rows, seed, w)
	}
	if err != nil {
		return fmt.Errorf("generate %s: %w", format, err)
	}
	return nil
}

// writeCSV writes the header and the rows as CSV to w.
func writeCSV(ctx context.Context, p Profile, gens []generator, rows int64, seed uint64, w io.Writer) error {
	bw := bufio.NewWriterSize(w, 1<<16)
	var header []byte
	for i, c := range p.Columns {
		if i > 0 {
			header = append(header, ',')
		}
		header = appendField(header, c.Name)
	}
	if _, err := bw.Write(append(header, '\n')); err != nil {
		return err
	}
	if _, err := writeRows(ctx, bw, gens, rows, seed, ""); err != nil {
		return err
	}
	return bw.Flush()
}

// writeParquet stages the rows as CSV in a temporary file and has DuckDB
// convert it to Parquet with the profile's column types, then copies that
// to w.
func writeParquet(ctx context.Context, p Profile, gens []generator, rows int64, seed uint64, w io.Writer) error {
	dir, err := os.MkdirTemp("", "dsbx-synthetic-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	staged := filepath.Join(dir, "rows.csv")
	f, err := os.Create(staged)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(f, 1<<16)
	// Every line starts with a field of its own, so that a line is never
	// empty, not even when its only column is NULL.
	longest, err := writeRows(ctx, bw, gens, rows, seed, "x,")
	if err == nil {
		err = bw.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}

	db, err := sql.Open("duckdb", "")
	if err != nil {
		return fmt.Errorf("start duckdb: %w", err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	// One thread keeps the row order and makes equal input give equal bytes.
	if _, err := db.ExecContext(ctx, "SET threads = 1; SET preserve_insertion_order = true"); err != nil {
		return fmt.Errorf("configure duckdb: %w", err)
	}
	columns := []string{"'c0': 'VARCHAR'"}
	var sel []string
	for i, c := range p.Columns {
		t, _ := parseType(c.Type) // compile checked it
		in := fmt.Sprintf("c%d", i+1)
		columns = append(columns, fmt.Sprintf("'%s': 'VARCHAR'", in))
		sel = append(sel, "CAST("+in+" AS "+t.name+") AS "+ident(c.Name))
	}
	out := filepath.Join(dir, "rows.parquet")
	copySQL := "COPY (SELECT " + strings.Join(sel, ", ") + " FROM read_csv(" + literal(staged) +
		", header = false, auto_detect = false, delim = ',', quote = '\"', escape = '\"', allow_quoted_nulls = false" +
		", max_line_size = " + strconv.Itoa(max(longest+1, 2<<20)) +
		", columns = {" + strings.Join(columns, ", ") + "})) TO " + literal(out) + " (FORMAT parquet)"
	if _, err := db.ExecContext(ctx, copySQL); err != nil {
		return fmt.Errorf("convert to parquet: %w", err)
	}
	pf, err := os.Open(out)
	if err != nil {
		return err
	}
	defer pf.Close()
	_, err = io.Copy(w, pf)
	return err
}

// writeRows writes rows CSV lines, each starting with prefix, and returns
// the length of the longest.
func writeRows(ctx context.Context, w io.Writer, gens []generator, rows int64, seed uint64, prefix string) (int, error) {
	rngs := make([]*rand.PCG, len(gens))
	for i := range gens {
		rngs[i] = rand.NewPCG(seed, mix(uint64(i)+1))
	}
	var line, value []byte
	longest := 0
	for r := range rows {
		if r%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return 0, err
			}
		}
		line = append(line[:0], prefix...)
		for i, g := range gens {
			if i > 0 {
				line = append(line, ',')
			}
			if g.nullRate > 0 && float01(rngs[i]) < g.nullRate {
				continue
			}
			value = g.draw(rngs[i], value[:0])
			line = appendField(line, value)
		}
		line = append(line, '\n')
		longest = max(longest, len(line))
		if _, err := w.Write(line); err != nil {
			return 0, err
		}
	}
	return longest, nil
}

// appendField appends v to b as a CSV field, quoted when it is empty or
// holds a comma, quote, line break or surrounding space.
func appendField[S string | []byte](b []byte, v S) []byte {
	quote := len(v) == 0 || v[0] == ' ' || v[len(v)-1] == ' ' || v[0] == '\t' || v[len(v)-1] == '\t'
	for i := 0; i < len(v) && !quote; i++ {
		quote = v[i] == ',' || v[i] == '"' || v[i] == '\r' || v[i] == '\n'
	}
	if !quote {
		return append(b, v...)
	}
	b = append(b, '"')
	for i := range len(v) {
		if v[i] == '"' {
			b = append(b, '"')
		}
		b = append(b, v[i])
	}
	return append(b, '"')
}

// A generator draws one column's values.
type generator struct {
	nullRate float64
	// draw appends a value drawn with r to b.
	draw func(r *rand.PCG, b []byte) []byte
}

// compile checks p and returns a generator per column.
func compile(p Profile) ([]generator, error) {
	if len(p.Columns) == 0 {
		return nil, errors.New("the profile has no columns")
	}
	seen := map[string]bool{}
	gens := make([]generator, len(p.Columns))
	for i, c := range p.Columns {
		if c.Name == "" {
			return nil, fmt.Errorf("column %d has no name", i+1)
		}
		// DuckDB's identifiers ignore case.
		key := strings.ToLower(c.Name)
		if seen[key] {
			return nil, fmt.Errorf("column %q appears twice", c.Name)
		}
		seen[key] = true
		g, err := compileColumn(c)
		if err != nil {
			return nil, fmt.Errorf("column %q: %w", c.Name, err)
		}
		gens[i] = g
	}
	return gens, nil
}

// compileColumn checks c and returns its generator.
func compileColumn(c Column) (generator, error) {
	t, err := parseType(c.Type)
	if err != nil {
		return generator{}, err
	}
	if !(c.NullRate >= 0 && c.NullRate <= 1) {
		return generator{}, fmt.Errorf("null rate %v is not between 0 and 1", c.NullRate)
	}
	n := 0
	for _, set := range []bool{len(c.Categories) > 0, c.Range != nil, c.Pattern != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		return generator{}, fmt.Errorf("has %d generators; want exactly one of categories, range and pattern", n)
	}
	g := generator{nullRate: c.NullRate}
	switch {
	case len(c.Categories) > 0:
		g.draw, err = categories(c.Categories, t)
	case c.Range != nil:
		g.draw, err = uniform(*c.Range, t)
	default:
		g.draw, err = patterned(*c.Pattern, t)
	}
	return g, err
}

// categories returns a draw that picks one of cs by weight.
func categories(cs []Category, t columnType) (func(*rand.PCG, []byte) []byte, error) {
	values := make([]string, len(cs))
	weights := make([]float64, len(cs))
	for i, c := range cs {
		if err := t.check(c.Value); err != nil {
			return nil, fmt.Errorf("category %q: %w", c.Value, err)
		}
		values[i], weights[i] = c.Value, c.Weight
	}
	pick, err := picker(weights)
	if err != nil {
		return nil, fmt.Errorf("categories: %w", err)
	}
	return func(r *rand.PCG, b []byte) []byte { return append(b, values[pick(r)]...) }, nil
}

// uniform returns a draw from rg at the resolution of t.
func uniform(rg Range, t columnType) (func(*rand.PCG, []byte) []byte, error) {
	bad := func(err error) error { return fmt.Errorf("range %s..%s: %w", rg.Min, rg.Max, err) }
	switch {
	case t.inInts():
		lo, err := t.parseInt(rg.Min)
		if err != nil {
			return nil, bad(err)
		}
		hi, err := t.parseInt(rg.Max)
		if err != nil {
			return nil, bad(err)
		}
		if lo > hi {
			return nil, bad(errors.New("min is above max"))
		}
		span := uint64(hi - lo)
		return func(r *rand.PCG, b []byte) []byte {
			off := r.Uint64()
			if span < math.MaxUint64 {
				off = below(r, span+1)
			}
			v := lo + int64(off)
			switch t.kind {
			case kindDate:
				return time.Unix(v*86400, 0).UTC().AppendFormat(b, dateLayout)
			case kindTimestamp:
				return time.Unix(v, 0).UTC().AppendFormat(b, timestampLayout)
			}
			return strconv.AppendInt(b, v, 10)
		}, nil
	case t.kind == kindDecimal || t.kind == kindDouble:
		lo, err := t.parseFloat(rg.Min)
		if err != nil {
			return nil, bad(err)
		}
		hi, err := t.parseFloat(rg.Max)
		if err != nil {
			return nil, bad(err)
		}
		if !(lo <= hi) || math.IsInf(lo, 0) || math.IsInf(hi, 0) {
			return nil, bad(errors.New("min is above max or not finite"))
		}
		// Decimals: the type's scale; doubles: four significant digits of
		// the spread, and at least those the bounds show.
		decimals := t.scale
		if t.kind == kindDouble {
			decimals = max(fraction(rg.Min), fraction(rg.Max))
			if hi > lo {
				decimals = max(decimals, 3-int(math.Floor(math.Log10(hi-lo))))
			}
			decimals = min(decimals, 15)
		}
		return func(r *rand.PCG, b []byte) []byte {
			v := min(lo+float01(r)*(hi-lo), hi)
			return strconv.AppendFloat(b, v, 'f', decimals, 64)
		}, nil
	}
	return nil, fmt.Errorf("a range needs a numeric, date or timestamp column, not %s", t.name)
}

// fraction returns the number of digits after the point in s.
func fraction(s string) int {
	if strings.ContainsAny(s, "eE") {
		return 15
	}
	if i := strings.IndexByte(s, '.'); i >= 0 {
		return len(s) - i - 1
	}
	return 0
}

// class is one choice at a Pattern position: a character class or a literal.
type class struct {
	chars   string // the characters to choose from, for ASCII classes
	hanzi   bool   // choose from hanzi
	literal string // write this
}

var (
	digits = "0123456789"
	upper  = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	lower  = "abcdefghijklmnopqrstuvwxyz"
)

// patterned returns a draw that makes random strings shaped by pt.
func patterned(pt Pattern, t columnType) (func(*rand.PCG, []byte) []byte, error) {
	if t.kind != kindText {
		return nil, fmt.Errorf("a pattern needs a VARCHAR column, not %s", t.name)
	}
	if pt.MinLength < 0 || pt.MinLength > pt.MaxLength || pt.MaxLength > maxPatternLength {
		return nil, fmt.Errorf("pattern lengths %d..%d: want 0 <= min <= max <= %d", pt.MinLength, pt.MaxLength, maxPatternLength)
	}
	if pt.MaxLength > 0 && len(pt.Positions) == 0 {
		return nil, errors.New("pattern has no positions")
	}
	type position struct {
		classes []class
		pick    func(*rand.PCG) int
	}
	positions := make([]position, len(pt.Positions))
	for i, p := range pt.Positions {
		var weights []float64
		add := func(c class, w float64) {
			if w != 0 {
				positions[i].classes = append(positions[i].classes, c)
				weights = append(weights, w)
			}
		}
		add(class{chars: digits}, p.Digit)
		add(class{chars: upper}, p.Upper)
		add(class{chars: lower}, p.Lower)
		add(class{hanzi: true}, p.Hanzi)
		lits := make([]string, 0, len(p.Literals))
		for l := range p.Literals {
			if utf8.RuneCountInString(l) != 1 || !utf8.ValidString(l) {
				return nil, fmt.Errorf("pattern position %d: literal %q is not one character", i+1, l)
			}
			lits = append(lits, l)
		}
		slices.Sort(lits)
		for _, l := range lits {
			add(class{literal: l}, p.Literals[l])
		}
		pick, err := picker(weights)
		if err != nil {
			return nil, fmt.Errorf("pattern position %d: %w", i+1, err)
		}
		positions[i].pick = pick
	}
	return func(r *rand.PCG, b []byte) []byte {
		n := pt.MinLength + int(below(r, uint64(pt.MaxLength-pt.MinLength+1)))
		for i := range n {
			p := positions[min(i, len(positions)-1)]
			switch c := p.classes[p.pick(r)]; {
			case c.hanzi:
				b = utf8.AppendRune(b, hanzi[below(r, uint64(len(hanzi)))])
			case c.literal != "":
				b = append(b, c.literal...)
			default:
				b = append(b, c.chars[below(r, uint64(len(c.chars)))])
			}
		}
		return b
	}, nil
}

// picker returns a function that picks an index with probability
// proportional to its weight.
func picker(weights []float64) (func(*rand.PCG) int, error) {
	cum := make([]float64, len(weights))
	total := 0.0
	for i, w := range weights {
		if !(w >= 0) || math.IsInf(w, 0) {
			return nil, fmt.Errorf("weight %v is not a finite number >= 0", w)
		}
		total += w
		cum[i] = total
	}
	if !(total > 0) {
		return nil, errors.New("the weights sum to 0")
	}
	return func(r *rand.PCG) int {
		u := float01(r) * total
		return sort.Search(len(cum)-1, func(i int) bool { return u < cum[i] })
	}, nil
}

// float01 returns a uniform float64 in [0, 1).
func float01(r *rand.PCG) float64 {
	return float64(r.Uint64()>>11) * 0x1p-53
}

// below returns a uniform integer in [0, n), n > 0, by Lemire's method.
func below(r *rand.PCG, n uint64) uint64 {
	hi, lo := bits.Mul64(r.Uint64(), n)
	if lo < n {
		for threshold := -n % n; lo < threshold; {
			hi, lo = bits.Mul64(r.Uint64(), n)
		}
	}
	return hi
}

// mix scrambles x (the SplitMix64 finaliser), to seed each column's PCG.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}
