package disclosure

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
)

// Kind classifies a result for the disclosure checks.
type Kind string

// The kinds of result Assess distinguishes.
const (
	// KindFrequency is a table of counts by group.
	KindFrequency Kind = "frequency"
	// KindMagnitude is a table of sums or means by group (at least one magnitude column).
	KindMagnitude Kind = "magnitude"
	// KindStatistics is an aggregate with no group keys: model coefficients or summary statistics.
	KindStatistics Kind = "statistics"
	// KindRows is a row-level extract.
	KindRows Kind = "rows"
)

// Role is what one output column is.
type Role string

// The roles an output column can have.
const (
	// RoleKey is a group key (not aggregated).
	RoleKey Role = "key"
	// RoleCount is a count of records.
	RoleCount Role = "count"
	// RoleMagnitude is a sum or mean of a field.
	RoleMagnitude Role = "magnitude"
	// RoleExtreme is one record's value: min, max, median, quantile, mode, first/last, arg_max and the like.
	RoleExtreme Role = "extreme"
	// RoleStatistic is a variance, correlation, regression coefficient or other summary.
	RoleStatistic Role = "statistic"
	// RoleValue is a row-level value.
	RoleValue Role = "value"
)

// Verdict is a check's, or a result's, outcome; Pass < Review < Fail and the worst wins.
type Verdict string

// The verdicts, from best to worst.
const (
	// Pass releases the result as far as this check is concerned.
	Pass Verdict = "pass"
	// Review holds the result for a human reviewer.
	Review Verdict = "review"
	// Fail refuses the result.
	Fail Verdict = "fail"
)

// rank orders verdicts; an unknown verdict ranks as Fail.
func rank(v Verdict) int {
	switch v {
	case Pass:
		return 0
	case Review:
		return 1
	}
	return 2
}

// worse returns the worse of two verdicts.
func worse(a, b Verdict) Verdict {
	if rank(b) > rank(a) {
		return b
	}
	return a
}

// OutputColumn is one column of a result: its role and the dataset fields it derives from.
type OutputColumn struct {
	Name    string   `json:"name"`              // unique within the table: changes name their column
	Role    Role     `json:"role"`              // what the column is
	Fields  []string `json:"fields,omitempty"`  // dataset fields it derives from
	Numeric bool     `json:"numeric,omitempty"` // its values are numbers (counts, sums, ...)
}

// Magnitude describes one magnitude column's contributions in one cell, for the dominance rules.
type Magnitude struct {
	Total float64   `json:"total"`         // sum of the absolute values of all contributions
	Top   []float64 `json:"top,omitempty"` // the largest absolute contributions, descending
	N     int64     `json:"n"`             // number of contributions
}

// Row is one row of a result: one cell of an aggregate table, or one record of an extract.
type Row struct {
	Keys       []string             `json:"keys,omitempty"`       // values of the key columns as text, in column order; "" for null
	Values     []Value              `json:"values"`               // one per column of the table (keys included), in column order
	Count      int64                `json:"count"`                // records behind this cell (aggregates); -1 if unknown
	Magnitudes map[string]Magnitude `json:"magnitudes,omitempty"` // per magnitude column name; missing means dominance cannot be checked
}

// Value is one value of a row: Num for numeric columns, Text otherwise.
type Value struct {
	Null bool    `json:"null,omitempty"` // the value is SQL NULL
	Num  float64 `json:"num,omitempty"`  // the value of a numeric column
	Text string  `json:"text,omitempty"` // the value of any other column, as text
}

// Table is a quarantined result together with what the sandbox computed about it.
type Table struct {
	Kind         Kind           `json:"kind"`                   // "" lets Assess infer it with Classify
	Columns      []OutputColumn `json:"columns"`                // in result order
	Rows         []Row          `json:"rows"`                   // in result order; CellFinding.Row and Change.Row index them
	Observations int64          `json:"observations,omitempty"` // KindStatistics: records the statistics were computed over (-1 if unknown)
}

// Params parameterise the checks and the remedies; zero values take the documented defaults.
type Params struct {
	MinCellCount        int64              `json:"min_cell_count,omitempty"`         // default 10
	DominanceP          float64            `json:"dominance_p,omitempty"`            // p% rule, percent; default 10
	DominanceN          int                `json:"dominance_n,omitempty"`            // n-k rule n; default 2
	DominanceK          float64            `json:"dominance_k,omitempty"`            // n-k rule k, percent; default 85
	MinDegreesOfFreedom int64              `json:"min_degrees_of_freedom,omitempty"` // default 10
	DirectIdentifiers   []string           `json:"direct_identifiers,omitempty"`     // fields labelled identifier=direct
	FreeText            []string           `json:"free_text,omitempty"`              // fields that are free text
	Personal            []string           `json:"personal,omitempty"`               // personal or personal-sensitive fields, and quasi identifiers
	RowLevel            bool               `json:"row_level,omitempty"`              // the agreement allows row-level extracts
	CheckAttributes     bool               `json:"check_attributes,omitempty"`       // check zero and full cells in tables with >= 2 keys
	Suppress            bool               `json:"suppress,omitempty"`               // remedy: primary and secondary cell suppression
	RoundBase           int64              `json:"round_base,omitempty"`             // remedy: round count columns to this base (0 or 1: none)
	TopCode             map[string]float64 `json:"top_code,omitempty"`               // remedy: clamp these numeric columns from above (rows, statistics)
	BottomCode          map[string]float64 `json:"bottom_code,omitempty"`            // remedy: clamp these numeric columns from below (rows, statistics)
	// Noised says the counts and magnitudes carry differential-privacy
	// noise over bounded contributions: dominance is not checked, and the
	// minimum cell count applies to the noisy counts.
	Noised bool `json:"noised,omitempty"`
}

// withDefaults fills in the defaults of unset (or negative) parameters.
func (p Params) withDefaults() Params {
	if p.MinCellCount <= 0 {
		p.MinCellCount = 10
	}
	if !(p.DominanceP > 0) {
		p.DominanceP = 10
	}
	if p.DominanceN <= 0 {
		p.DominanceN = 2
	}
	if !(p.DominanceK > 0) {
		p.DominanceK = 85
	}
	if p.MinDegreesOfFreedom <= 0 {
		p.MinDegreesOfFreedom = 10
	}
	return p
}

// CellFinding is one cell a check points at: a row, and a column when the check is about one column.
type CellFinding struct {
	Row    int    `json:"row"`              // 0-based index into Table.Rows
	Column string `json:"column,omitempty"` // the column, when the check is about one column of the row
	Reason string `json:"reason"`           // why the cell is listed, never its value
}

// Finding is the outcome of one check.
type Finding struct {
	Check   string        `json:"check"`           // the check's name, e.g. "min_cell_count"
	Verdict Verdict       `json:"verdict"`         // the check's outcome
	Detail  string        `json:"detail"`          // one sentence a submitter can act on
	Cells   []CellFinding `json:"cells,omitempty"` // at most MaxFindings
}

// MaxFindings bounds how many cells one finding lists.
const MaxFindings = 100

// The actions a Change records.
const (
	ActionSuppressed  = "suppressed"   // the value is withheld (null)
	ActionRounded     = "rounded"      // a count rounded to Params.RoundBase
	ActionTopCoded    = "top_coded"    // a value clamped to Params.TopCode
	ActionBottomCoded = "bottom_coded" // a value clamped to Params.BottomCode
)

// Change is one value a remedy changed; it never carries the original value.
type Change struct {
	Row    int    `json:"row"`    // 0-based index into Table.Rows
	Column string `json:"column"` // the changed column's name
	Action string `json:"action"` // ActionSuppressed, ActionRounded, ActionTopCoded or ActionBottomCoded
	Reason string `json:"reason"` // why, e.g. "primary: fewer than 10 records"
	// NewValue is the released value of a rounded or coded cell (nil when suppressed).
	NewValue *float64 `json:"new_value,omitempty"`
}

// Report is the outcome of Assess: the findings in a fixed order and the remedies' changes.
type Report struct {
	Kind       Kind      `json:"kind"`              // the kind the checks assumed
	Verdict    Verdict   `json:"verdict"`           // worst finding, after remedies
	Findings   []Finding `json:"findings"`          // one per check, in a fixed order
	Changes    []Change  `json:"changes,omitempty"` // every value a remedy changed, in row then column order
	Suppressed int       `json:"suppressed"`        // cells suppressed (primary and secondary)
}

// Classify infers a result's kind from its columns' roles: any value column makes a row-level extract, no key column statistics, a magnitude column a magnitude table, otherwise a frequency table.
func Classify(cols []OutputColumn) Kind {
	keys, mags := 0, 0
	for _, c := range cols {
		switch c.Role {
		case RoleValue:
			return KindRows
		case RoleKey:
			keys++
		case RoleMagnitude:
			mags++
		}
	}
	switch {
	case keys == 0:
		return KindStatistics
	case mags > 0:
		return KindMagnitude
	}
	return KindFrequency
}

// The check names, in the order of Report.Findings.
const (
	checkClassification    = "classification"
	checkDirectIdentifiers = "direct_identifiers"
	checkRowLevel          = "row_level"
	checkMinCellCount      = "min_cell_count"
	checkDominance         = "dominance"
	checkExtremes          = "extremes"
	checkAttributes        = "attributes"
	checkDegreesOfFreedom  = "degrees_of_freedom"
	checkSuppression       = "suppression"
	checkRounding          = "rounding"
	checkTopBottomCoding   = "top_bottom_coding"
)

// assessment is the working state of one Assess call.
type assessment struct {
	t        Table
	p        Params
	kind     Kind
	inferred bool
	keys     []int // indexes of the key columns

	primary    [][]string // per row: why it is a primary failure (empty: it is not)
	small      int        // cells with 0 < Count < MinCellCount
	unknown    int        // cells with an unknown count
	sensitive  int        // cells with a dominated magnitude column
	unchecked  int        // magnitude values whose dominance could not be checked
	suppressed []bool     // per row, after the suppression remedy
	changes    []change
}

// change is a Change with its column index, for sorting.
type change struct {
	Change
	col int
}

// Assess runs every disclosure check on t, applies the remedies p asks for, and returns the findings and changes.
func Assess(t Table, p Params) Report {
	a := &assessment{t: t, p: p.withDefaults(), kind: t.Kind}
	switch a.kind {
	case KindFrequency, KindMagnitude, KindStatistics, KindRows:
	default:
		a.kind, a.inferred = Classify(t.Columns), true
	}
	for i, c := range t.Columns {
		if c.Role == RoleKey {
			a.keys = append(a.keys, i)
		}
	}
	a.primary = make([][]string, len(t.Rows))
	a.suppressed = make([]bool, len(t.Rows))

	f := []Finding{
		a.classification(),
		a.directIdentifiers(),
		a.rowLevel(),
		a.minCellCount(),
		a.dominance(),
		a.extremes(),
		a.attributes(),
		a.degreesOfFreedom(),
	}
	f = append(f, a.suppression(&f[3], &f[4]), a.rounding(), a.topBottomCoding())

	r := Report{Kind: a.kind, Verdict: Pass, Findings: f}
	for _, x := range f {
		r.Verdict = worse(r.Verdict, x.Verdict)
	}
	sort.SliceStable(a.changes, func(i, j int) bool {
		if a.changes[i].Row != a.changes[j].Row {
			return a.changes[i].Row < a.changes[j].Row
		}
		return a.changes[i].col < a.changes[j].col
	})
	for _, c := range a.changes {
		r.Changes = append(r.Changes, c.Change)
	}
	for _, s := range a.suppressed {
		if s {
			r.Suppressed++
		}
	}
	return r
}

// Apply returns a copy of t with the report's changes applied: suppressed values become null, rounded and coded values are replaced; t is not modified.
//
// Changes name their column, so a table with duplicate column names has each change applied to the first column of that name.
func Apply(t Table, r Report) Table {
	out := t
	out.Columns = make([]OutputColumn, len(t.Columns))
	for i, c := range t.Columns {
		c.Fields = append([]string(nil), c.Fields...)
		out.Columns[i] = c
	}
	out.Rows = make([]Row, len(t.Rows))
	for i, row := range t.Rows {
		row.Keys = append([]string(nil), row.Keys...)
		row.Values = append([]Value(nil), row.Values...)
		if row.Magnitudes != nil {
			m := make(map[string]Magnitude, len(row.Magnitudes))
			for k, v := range row.Magnitudes {
				v.Top = append([]float64(nil), v.Top...)
				m[k] = v
			}
			row.Magnitudes = m
		}
		out.Rows[i] = row
	}
	col := map[string]int{}
	for i := len(t.Columns) - 1; i >= 0; i-- { // the first column of a name wins
		col[t.Columns[i].Name] = i
	}
	for _, c := range r.Changes {
		j, ok := col[c.Column]
		if !ok || c.Row < 0 || c.Row >= len(out.Rows) || j >= len(out.Rows[c.Row].Values) {
			continue
		}
		switch c.Action {
		case ActionSuppressed:
			out.Rows[c.Row].Values[j] = Value{Null: true}
		case ActionRounded, ActionTopCoded, ActionBottomCoded:
			if c.NewValue != nil {
				out.Rows[c.Row].Values[j] = Value{Num: *c.NewValue}
			}
		}
	}
	return out
}

// aggregate reports whether the kind is an aggregate result.
func (a *assessment) aggregate() bool { return a.kind != KindRows }

// grouped reports whether the kind is a table of cells by group, where suppression applies.
func (a *assessment) grouped() bool { return a.kind == KindFrequency || a.kind == KindMagnitude }

// value returns row i's value of column c, or a null when the row is short.
func (a *assessment) value(i, c int) Value {
	if v := a.t.Rows[i].Values; c < len(v) {
		return v[c]
	}
	return Value{Null: true}
}

// plural renders "1 key" or "2 keys".
func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// addCell appends a cell to a finding's list unless the list is full.
func addCell(f *Finding, c CellFinding) {
	if len(f.Cells) < MaxFindings {
		f.Cells = append(f.Cells, c)
	}
}

// set makes a lookup set of names.
func set(names []string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// derives reports the first of the given fields the column is, or derives from.
func derives(c OutputColumn, fields map[string]bool) (string, bool) {
	if fields[c.Name] {
		return c.Name, true
	}
	for _, f := range c.Fields {
		if fields[f] {
			return f, true
		}
	}
	return "", false
}

func (a *assessment) classification() Finding {
	byRole := map[Role]int{}
	for _, c := range a.t.Columns {
		byRole[c.Role]++
	}
	var parts []string
	switch a.kind {
	case KindRows:
		parts = append(parts, "row-level extract")
	case KindStatistics:
		parts = append(parts, "statistics: no group keys")
	default:
		parts = append(parts, fmt.Sprintf("%s table: %s", a.kind, plural(len(a.keys), "key")))
	}
	for _, r := range []Role{RoleCount, RoleMagnitude, RoleExtreme, RoleStatistic, RoleValue} {
		if n := byRole[r]; n > 0 {
			parts = append(parts, plural(n, string(r)+" column"))
		}
	}
	detail := parts[0]
	if len(parts) > 1 {
		sep := ", "
		if a.kind == KindRows {
			sep = ": "
		}
		detail += sep + strings.Join(parts[1:], ", ")
	}
	if a.inferred {
		detail += " (kind inferred from the column roles)"
	}
	return Finding{Check: checkClassification, Verdict: Pass, Detail: detail}
}

func (a *assessment) directIdentifiers() Finding {
	direct, free := set(a.p.DirectIdentifiers), set(a.p.FreeText)
	var bad []string
	for _, c := range a.t.Columns {
		switch c.Role {
		case RoleCount, RoleMagnitude, RoleStatistic:
			continue // aggregated: no single record's value
		}
		if f, ok := derives(c, direct); ok {
			bad = append(bad, describe(c, f, "direct identifier"))
		} else if f, ok := derives(c, free); ok {
			bad = append(bad, describe(c, f, "free text"))
		}
	}
	if len(bad) == 0 {
		return Finding{Check: checkDirectIdentifiers, Verdict: Pass, Detail: "no output column carries a direct identifier or free text"}
	}
	return Finding{Check: checkDirectIdentifiers, Verdict: Fail,
		Detail: "output columns carry direct identifiers or free text: " + strings.Join(bad, ", ") + "; drop them or only count them"}
}

// describe names a column and the field that taints it.
func describe(c OutputColumn, field, what string) string {
	if field == c.Name {
		return fmt.Sprintf("%s (%s)", c.Name, what)
	}
	return fmt.Sprintf("%s (from %s, %s)", c.Name, field, what)
}

func (a *assessment) rowLevel() Finding {
	f := Finding{Check: checkRowLevel}
	if a.kind != KindRows {
		f.Verdict, f.Detail = Pass, "not a row-level extract"
		return f
	}
	var reasons, personal []string
	if !a.p.RowLevel {
		reasons = append(reasons, "the agreement does not allow row-level extracts")
	}
	ps := set(a.p.Personal)
	for _, c := range a.t.Columns {
		if fld, ok := derives(c, ps); ok {
			personal = append(personal, describe(c, fld, "personal"))
		}
	}
	if len(personal) > 0 {
		reasons = append(reasons, "row-level columns derive from personal fields: "+strings.Join(personal, ", "))
	}
	if len(reasons) == 0 {
		f.Verdict, f.Detail = Pass, "row-level extracts are allowed and no column derives from a personal field"
		return f
	}
	f.Verdict, f.Detail = Fail, strings.Join(reasons, "; ")+"; aggregate the result instead"
	return f
}

func (a *assessment) minCellCount() Finding {
	f := Finding{Check: checkMinCellCount}
	min := a.p.MinCellCount
	switch a.kind {
	case KindRows:
		f.Verdict, f.Detail = Pass, "not applicable to a row-level extract (see row_level)"
		return f
	case KindStatistics:
		switch obs := a.t.Observations; {
		case obs < 0:
			f.Verdict, f.Detail = Review, "the number of records behind the statistics is unknown"
		case obs < min:
			f.Verdict, f.Detail = Fail, fmt.Sprintf("the statistics were computed over fewer than %d records; widen the population", min)
		default:
			f.Verdict, f.Detail = Pass, fmt.Sprintf("the statistics were computed over at least %d records", min)
		}
		return f
	}
	zeros := 0
	for i, r := range a.t.Rows {
		switch {
		case r.Count < 0:
			a.unknown++
			addCell(&f, CellFinding{Row: i, Reason: "record count unknown"})
		case r.Count == 0:
			zeros++
		case r.Count < min:
			a.small++
			reason := fmt.Sprintf("fewer than %d records", min)
			a.primary[i] = append(a.primary[i], reason)
			addCell(&f, CellFinding{Row: i, Reason: reason})
		}
	}
	f.Verdict = Pass
	if a.small > 0 || a.unknown > 0 {
		f.Verdict = Review
	}
	// The detail is final here unless suppression changes the verdict.
	switch {
	case len(a.t.Rows) == 0:
		f.Detail = "the result has no cells"
	case f.Verdict == Pass:
		f.Detail = fmt.Sprintf("all %d cells count at least %d records", len(a.t.Rows)-zeros, min)
		if zeros > 0 {
			f.Detail += fmt.Sprintf(" (%s: see attributes)", plural(zeros, "zero cell"))
		}
	default:
		f.Detail = a.minCellDetail(false, false)
	}
	return f
}

// minCellDetail words the min_cell_count finding once it is known whether suppression ran and protected every cell.
func (a *assessment) minCellDetail(suppressed, protected bool) string {
	min, n := a.p.MinCellCount, len(a.t.Rows)
	var parts []string
	if a.small > 0 {
		s := fmt.Sprintf("%d of %d cells count fewer than %d records", a.small, n, min)
		switch {
		case !suppressed:
			s += fmt.Sprintf("; drop them with HAVING count(*) >= %d, widen the groups, or request suppression", min)
		case protected:
			s += fmt.Sprintf("; %s suppressed (see suppression)", plural(a.countSuppressed(), "cell"))
		default:
			s += "; suppression could not protect every cell (see suppression)"
		}
		parts = append(parts, s)
	}
	if a.unknown > 0 {
		parts = append(parts, fmt.Sprintf("%d of %d cells have an unknown record count and need review", a.unknown, n))
	}
	return strings.Join(parts, "; ")
}

// countSuppressed counts the suppressed rows.
func (a *assessment) countSuppressed() int {
	n := 0
	for _, s := range a.suppressed {
		if s {
			n++
		}
	}
	return n
}

// dominated applies the p% and n-k rules to one cell's contributions; ok is false when they cannot be checked.
func dominated(m Magnitude, p Params) (pRule, nkRule, ok bool) {
	if math.IsNaN(m.Total) || m.Total < 0 {
		return false, false, false
	}
	if m.Total == 0 {
		return false, false, true
	}
	top := make([]float64, len(m.Top))
	for i, x := range m.Top {
		top[i] = math.Abs(x)
	}
	sort.Sort(sort.Reverse(sort.Float64Slice(top)))
	n := m.N
	if n <= 0 {
		n = math.MaxInt64 // unknown: ask for every contribution the rules use
	}
	needP, needNK := min(2, n), min(int64(p.DominanceN), n)
	if int64(len(top)) < max(needP, needNK) {
		return false, false, false
	}
	x1, x2 := top[0], 0.0
	if n >= 2 {
		x2 = top[1]
	}
	// p% rule: the second largest contributor, knowing its own value and
	// the total, estimates the largest to within the rest of the cell.
	pRule = (m.Total-x1-x2)*100 < p.DominanceP*x1
	// n-k rule: the n largest contributors hold more than k% of the total.
	var sum float64
	for _, x := range top[:needNK] {
		sum += x
	}
	nkRule = sum*100 > p.DominanceK*m.Total
	return pRule, nkRule, true
}

func (a *assessment) dominance() Finding {
	f := Finding{Check: checkDominance}
	if a.kind == KindRows {
		f.Verdict, f.Detail = Pass, "not applicable to a row-level extract"
		return f
	}
	var mags []int
	for i, c := range a.t.Columns {
		if c.Role == RoleMagnitude {
			mags = append(mags, i)
		}
	}
	if len(mags) == 0 {
		f.Verdict, f.Detail = Pass, "no magnitude columns"
		return f
	}
	if a.p.Noised {
		f.Verdict, f.Detail = Pass, "not applicable: contributions are bounded and the values carry differential-privacy noise"
		return f
	}
	sensitiveRows := 0
	for i, r := range a.t.Rows {
		if r.Count == 0 {
			continue // a zero cell has no contributions
		}
		rowSensitive := false
		for _, c := range mags {
			name := a.t.Columns[c].Name
			m, have := r.Magnitudes[name]
			if !have {
				if a.value(i, c).Null {
					continue // nothing released, nothing to dominate
				}
				a.unchecked++
				addCell(&f, CellFinding{Row: i, Column: name, Reason: "contributions not computed; dominance cannot be checked"})
				continue
			}
			pRule, nkRule, ok := dominated(m, a.p)
			if !ok {
				a.unchecked++
				addCell(&f, CellFinding{Row: i, Column: name, Reason: "too few contributions computed; dominance cannot be checked"})
				continue
			}
			var why, rules []string
			if pRule {
				why = append(why, fmt.Sprintf("p%% rule: the second-largest contributor could estimate the largest within %g%%", a.p.DominanceP))
				rules = append(rules, "p%")
			}
			if nkRule {
				why = append(why, fmt.Sprintf("n-k rule: the %d largest contributors hold more than %g%% of the total", a.p.DominanceN, a.p.DominanceK))
				rules = append(rules, "n-k")
			}
			if len(why) == 0 {
				continue
			}
			a.sensitive++
			rowSensitive = true
			addCell(&f, CellFinding{Row: i, Column: name, Reason: strings.Join(why, "; ")})
			if a.grouped() {
				rule := "dominance " + rules[0] + " rule"
				if len(rules) == 2 {
					rule = "dominance p% and n-k rules"
				}
				a.primary[i] = append(a.primary[i], rule+" on "+name)
			}
		}
		if rowSensitive {
			sensitiveRows++
		}
	}
	f.Verdict = Pass
	if a.sensitive > 0 || a.unchecked > 0 {
		f.Verdict = Review
	}
	if f.Verdict == Pass {
		f.Detail = fmt.Sprintf("no magnitude in %s is dominated by its largest contributors (p%% rule %g%%, n-k rule %d-%g%%)",
			plural(len(a.t.Rows), "cell"), a.p.DominanceP, a.p.DominanceN, a.p.DominanceK)
		return f
	}
	f.Detail = a.dominanceDetail(false, false)
	return f
}

// dominanceDetail words the dominance finding once it is known whether suppression ran and protected every cell.
func (a *assessment) dominanceDetail(suppressed, protected bool) string {
	var parts []string
	if a.sensitive > 0 {
		verb := "are"
		if a.sensitive == 1 {
			verb = "is"
		}
		s := fmt.Sprintf("%s %s dominated by the largest contributors (p%% rule %g%%, n-k rule %d-%g%%)",
			plural(a.sensitive, "magnitude value"), verb, a.p.DominanceP, a.p.DominanceN, a.p.DominanceK)
		switch {
		case !a.grouped():
			s += "; a statistic with no groups cannot be suppressed: widen the population or have it reviewed"
		case !suppressed:
			s += "; widen the groups, or request suppression"
		case protected:
			s += fmt.Sprintf("; %s suppressed (see suppression)", plural(a.countSuppressed(), "cell"))
		default:
			s += "; suppression could not protect every cell (see suppression)"
		}
		parts = append(parts, s)
	}
	if a.unchecked > 0 {
		parts = append(parts, fmt.Sprintf("%s could not be checked for dominance (contributions not computed) and must be reviewed", plural(a.unchecked, "magnitude value")))
	}
	return strings.Join(parts, "; ")
}

func (a *assessment) extremes() Finding {
	f := Finding{Check: checkExtremes, Verdict: Pass}
	if !a.aggregate() {
		f.Detail = "not applicable to a row-level extract"
		return f
	}
	var ext []string
	for _, c := range a.t.Columns {
		if c.Role == RoleExtreme {
			ext = append(ext, c.Name)
		}
	}
	if len(ext) == 0 {
		f.Detail = "no column reports a single record's value"
		return f
	}
	verb := "report"
	if len(ext) == 1 {
		verb = "reports"
	}
	f.Verdict = Review
	f.Detail = fmt.Sprintf("%s (%s) %s a single record's value (min, max, median, quantile, mode, first/last, arg_max): %s by group is one person's value; use sums, means or counts instead, or have the result reviewed",
		plural(len(ext), "column"), strings.Join(ext, ", "), verb, ext[0])
	return f
}

// keyID identifies row i's value of key j: its text, or a marker for null that no text equals.
func (a *assessment) keyID(i, j int) string {
	row := a.t.Rows[i]
	if c := a.keys[j]; c < len(row.Values) && row.Values[c].Null {
		return nullKey
	}
	if j < len(row.Keys) {
		return row.Keys[j]
	}
	return nullKey
}

// nullKey is the keyID of a null key value.
const nullKey = "\x00null"

// keyText renders "name=value" for row i's key j.
func (a *assessment) keyText(i, j int) string {
	v := "NULL"
	if id := a.keyID(i, j); id != nullKey {
		v = id
	}
	return a.t.Columns[a.keys[j]].Name + "=" + v
}

// line is a set of rows sharing all key values but one dimension's, whose total may be known.
type line struct {
	desc string
	rows []int
}

// lines groups the rows by the values of every key but skip, in order of first appearance.
func (a *assessment) lines(skip int) []line {
	var out []line
	index := map[string]int{}
	for i := range a.t.Rows {
		var id, desc []string
		for j := range a.keys {
			if j == skip {
				continue
			}
			id = append(id, a.keyID(i, j))
			desc = append(desc, a.keyText(i, j))
		}
		k := strings.Join(id, "\x00\x01")
		n, ok := index[k]
		if !ok {
			n = len(out)
			index[k] = n
			out = append(out, line{desc: strings.Join(desc, ", ")})
		}
		out[n].rows = append(out[n].rows, i)
	}
	return out
}

func (a *assessment) attributes() Finding {
	f := Finding{Check: checkAttributes, Verdict: Pass}
	switch {
	case !a.p.CheckAttributes:
		f.Detail = "not requested"
		return f
	case !a.grouped():
		f.Detail = "not applicable to " + string(a.kind) + " results"
		return f
	case len(a.keys) < 2:
		f.Detail = "needs at least 2 key columns"
		return f
	}
	last := len(a.keys) - 1
	categories := map[string]bool{}
	for i := range a.t.Rows {
		categories[a.keyID(i, last)] = true
	}
	var cells []CellFinding
	zeros, full := 0, 0
	for i, r := range a.t.Rows {
		if r.Count == 0 {
			zeros++
			var keys []string
			for j := range a.keys {
				keys = append(keys, a.keyText(i, j))
			}
			cells = append(cells, CellFinding{Row: i, Reason: "zero cell: no record has " + strings.Join(keys, ", ")})
		}
	}
	if len(categories) >= 2 {
		for _, ln := range a.lines(last) {
			present := map[string]bool{}
			first := -1
			for _, i := range ln.rows {
				if a.t.Rows[i].Count != 0 {
					present[a.keyID(i, last)] = true
					if first < 0 {
						first = i
					}
				}
			}
			if len(present) == 1 {
				full++
				cells = append(cells, CellFinding{Row: first,
					Reason: fmt.Sprintf("full cell: every record in line %s has %s", ln.desc, a.keyText(first, last))})
			}
		}
	}
	if zeros+full == 0 {
		f.Detail = "no zero or full cells"
		return f
	}
	sort.SliceStable(cells, func(i, j int) bool { return cells[i].Row < cells[j].Row })
	for _, c := range cells {
		addCell(&f, c)
	}
	f.Verdict = Review
	var what []string
	if zeros > 0 {
		what = append(what, plural(zeros, "zero cell"))
	}
	if full > 0 {
		what = append(what, plural(full, "full cell"))
	}
	f.Detail = strings.Join(what, " and ") + " reveal an attribute shared by every record of a group; merge categories or have the table reviewed"
	return f
}

func (a *assessment) degreesOfFreedom() Finding {
	f := Finding{Check: checkDegreesOfFreedom, Verdict: Pass}
	if a.kind != KindStatistics {
		f.Detail = "not a statistics result"
		return f
	}
	est := 0
	for _, c := range a.t.Columns {
		switch c.Role {
		case RoleStatistic, RoleMagnitude, RoleExtreme:
			est++
		}
	}
	obs := a.t.Observations
	if obs < 0 {
		f.Verdict, f.Detail = Review, "the number of observations is unknown, so the degrees of freedom cannot be checked"
		return f
	}
	dof := obs - int64(est)
	if dof < a.p.MinDegreesOfFreedom {
		f.Verdict = Review
		f.Detail = fmt.Sprintf("%d observations and %s leave %d degrees of freedom, fewer than %d; use more observations or estimate fewer statistics",
			obs, plural(est, "estimated statistic"), dof, a.p.MinDegreesOfFreedom)
		return f
	}
	f.Detail = fmt.Sprintf("%d degrees of freedom (at least %d)", dof, a.p.MinDegreesOfFreedom)
	return f
}

func (a *assessment) rounding() Finding {
	f := Finding{Check: checkRounding, Verdict: Pass}
	base := a.p.RoundBase
	if base <= 1 {
		f.Detail = "no rounding"
		return f
	}
	b := float64(base)
	changed := 0
	for i := range a.t.Rows {
		if a.suppressed[i] {
			continue
		}
		for c, col := range a.t.Columns {
			v := a.value(i, c)
			if col.Role != RoleCount || v.Null {
				continue
			}
			// Every count is recorded, changed or not: listing only the
			// changed ones would tell which counts were multiples of base.
			nv := math.Floor(v.Num/b+0.5) * b
			if math.IsNaN(nv) {
				continue
			}
			changed++
			a.changes = append(a.changes, change{Change{Row: i, Column: col.Name, Action: ActionRounded,
				Reason: fmt.Sprintf("rounded to a multiple of %d", base), NewValue: &nv}, c})
		}
	}
	f.Detail = fmt.Sprintf("count columns rounded to multiples of %d (%s)", base, plural(changed, "value"))
	return f
}

func (a *assessment) topBottomCoding() Finding {
	f := Finding{Check: checkTopBottomCoding, Verdict: Pass}
	if len(a.p.TopCode) == 0 && len(a.p.BottomCode) == 0 {
		f.Detail = "no top or bottom coding requested"
		return f
	}
	if a.kind != KindRows && a.kind != KindStatistics {
		f.Detail = "top and bottom coding apply to row-level extracts and statistics only; not applied to a " + string(a.kind) + " table"
		return f
	}
	used := map[string]bool{}
	top, bottom := 0, 0
	for i := range a.t.Rows {
		for c, col := range a.t.Columns {
			hi, hasHi := a.p.TopCode[col.Name]
			lo, hasLo := a.p.BottomCode[col.Name]
			if !col.Numeric || (!hasHi && !hasLo) {
				continue
			}
			used[col.Name] = true
			v := a.value(i, c)
			if v.Null {
				continue
			}
			x := v.Num
			if hasHi && x > hi {
				x = hi
				top++
				nv := x
				a.changes = append(a.changes, change{Change{Row: i, Column: col.Name, Action: ActionTopCoded,
					Reason: fmt.Sprintf("top-coded at %g", hi), NewValue: &nv}, c})
			}
			if hasLo && x < lo {
				x = lo
				bottom++
				nv := x
				a.changes = append(a.changes, change{Change{Row: i, Column: col.Name, Action: ActionBottomCoded,
					Reason: fmt.Sprintf("bottom-coded at %g", lo), NewValue: &nv}, c})
			}
		}
	}
	var ignored []string
	for _, m := range []map[string]float64{a.p.TopCode, a.p.BottomCode} {
		for name := range m {
			if !used[name] {
				ignored = append(ignored, name)
			}
		}
	}
	sort.Strings(ignored)
	ignored = slices.Compact(ignored)
	f.Detail = fmt.Sprintf("%s top-coded, %s bottom-coded", plural(top, "value"), plural(bottom, "value"))
	if len(ignored) > 0 {
		f.Detail += "; ignored (no numeric column of that name): " + strings.Join(ignored, ", ")
	}
	return f
}
