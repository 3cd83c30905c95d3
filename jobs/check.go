package jobs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/datasandbox/dsbx/datasets"
	"github.com/datasandbox/dsbx/disclosure"
	"github.com/datasandbox/dsbx/operators"
	"github.com/datasandbox/dsbx/policies"
	"github.com/datasandbox/dsbx/privacy"
	"github.com/datasandbox/dsbx/release"
	sqlbox "github.com/datasandbox/dsbx/sandbox/sql"
)

// Aggregate functions by what their value discloses.
var (
	countFunctions     = []string{"count", "count_star"}
	magnitudeFunctions = []string{"sum", "avg", "mean", "fsum", "sumkahan", "kahan_sum", "favg"}
	// statisticFunctions summarise a distribution without being any one
	// record's value. Any other aggregate (min, max, median, quantiles,
	// mode, first, list, string_agg, …) is taken to be, or to carry, one
	// record's value: an extreme.
	statisticFunctions = []string{"stddev", "stddev_samp", "stddev_pop", "var_samp", "var_pop", "variance", "corr",
		"covar_pop", "covar_samp", "regr_slope", "regr_intercept", "regr_r2", "regr_count", "regr_avgx", "regr_avgy",
		"regr_sxx", "regr_syy", "regr_sxy", "kurtosis", "kurtosis_pop", "skewness", "entropy", "approx_count_distinct"}
)

// role is what output o of j discloses.
func role(j *Job, o Output) disclosure.Role {
	if !j.Analysis.Aggregate {
		return disclosure.RoleValue
	}
	if j.Kind == KindWasm {
		if !o.Aggregated {
			return disclosure.RoleKey
		}
		return disclosure.RoleStatistic // computed by the guest: see wasmValues
	}
	if len(o.Aggregates) == 0 {
		return disclosure.RoleKey
	}
	all := func(set []string) bool {
		for _, f := range o.Aggregates {
			if !slices.Contains(set, f) {
				return false
			}
		}
		return true
	}
	switch {
	case all(countFunctions):
		return disclosure.RoleCount
	case all(append(append(slices.Clip(countFunctions), magnitudeFunctions...), statisticFunctions...)):
		for _, f := range o.Aggregates {
			if slices.Contains(magnitudeFunctions, f) {
				return disclosure.RoleMagnitude
			}
		}
		return disclosure.RoleStatistic
	}
	return disclosure.RoleExtreme
}

// assessment is the disclosure review of one quarantined result.
type assessment struct {
	table    *release.Table
	report   disclosure.Report
	released disclosure.Table // the table after remedies and noise
	changed  bool             // released differs from what the job wrote
	members  [][]byte         // per cell, its serialized population; nil where unknown or suppressed
	noised   bool
}

// assess reads j's quarantined result, adds differential-privacy noise if
// its agreement asks for it, and runs the disclosure checks and remedies
// under params.
func (s *Service) assess(ctx context.Context, j *Job, report *sqlbox.Report, entry datasets.Entry, a operators.Agreement, params policies.Params) (*assessment, error) {
	tbl, dt, noised, err := s.resultTable(ctx, j, s.resultPath(j.ID), report, a)
	if err != nil {
		return nil, err
	}
	as := &assessment{table: tbl}
	var dpFinding *disclosure.Finding
	if c := a.Outputs.Privacy; c != nil {
		dpFinding = &disclosure.Finding{Check: "differential_privacy", Verdict: disclosure.Pass,
			Detail: fmt.Sprintf("%d count and sum columns carry %s noise for ε=%g (δ=%g) of the budget; each %s contributes at most %d rows, summed fields clamped to their bounds; the same job always gets the same noise",
				noised, c.Mechanism, c.EpsilonPerJob, c.DeltaPerJob, c.PersonKey, c.MaxContributions)}
		as.noised = true
	}
	as.report = disclosure.Assess(dt, disclosureParams(params, entry, dt.Columns, as.noised))
	as.released = disclosure.Apply(dt, as.report)
	as.changed = as.noised || len(as.report.Changes) > 0
	if dpFinding != nil {
		as.report.Findings = append(as.report.Findings, *dpFinding)
	}
	if j.Kind == KindWasm && j.Analysis.Aggregate {
		as.report.Findings = append(as.report.Findings, wasmValues(dt))
	}
	if err := s.differencing(ctx, j, report, as, params.MinCellCount); err != nil {
		tbl.Release()
		return nil, err
	}
	for _, f := range as.report.Findings {
		as.report.Verdict = worse(as.report.Verdict, f.Verdict)
	}
	return as, nil
}

// resultTable reads the result file of j at path into the checks' table,
// with the counts and contributions report gives, and adds
// differential-privacy noise if agreement a asks for it (noised is how many
// columns were noised).
func (s *Service) resultTable(ctx context.Context, j *Job, path string, report *sqlbox.Report, a operators.Agreement) (tbl *release.Table, dt disclosure.Table, noised int, err error) {
	tbl, err = release.Read(ctx, path, max(j.Decision.Limits.MaxRows, 1))
	if err != nil {
		return nil, dt, 0, fmt.Errorf("job %d: %w", j.ID, err)
	}
	outputs := s.outputsOf(j)
	for i, f := range tbl.Fields {
		o := Output{Name: f.Name, Fields: j.Analysis.Fields, Aggregated: j.Analysis.Aggregate}
		if i < len(outputs) && outputs[i].Name == f.Name {
			o = outputs[i]
		}
		dt.Columns = append(dt.Columns, disclosure.OutputColumn{Name: f.Name, Role: role(j, o), Fields: o.Fields, Numeric: tbl.Numeric(i)})
	}
	dt.Kind = disclosure.Classify(dt.Columns)
	counts := report.CellCounts
	if c := a.Outputs.Privacy; c != nil {
		if counts, noised, err = s.noise(j, c, dt.Columns, tbl, counts); err != nil {
			tbl.Release()
			return nil, dt, 0, err
		}
	}
	for r, values := range tbl.Rows {
		row := disclosure.Row{Values: values, Count: -1}
		if r < len(counts) {
			row.Count = counts[r]
		}
		for c, col := range dt.Columns {
			switch col.Role {
			case disclosure.RoleKey:
				row.Keys = append(row.Keys, values[c].Text+numText(values[c]))
			case disclosure.RoleMagnitude:
				if m, ok := magnitudeOf(j, report, r, c); ok {
					if row.Magnitudes == nil {
						row.Magnitudes = map[string]disclosure.Magnitude{}
					}
					row.Magnitudes[col.Name] = m
				}
			}
		}
		dt.Rows = append(dt.Rows, row)
	}
	if dt.Kind == disclosure.KindStatistics && len(counts) == 1 {
		dt.Observations = counts[0]
	}
	return tbl, dt, noised, nil
}

// numText renders a numeric key, which Value keeps in Num.
func numText(v disclosure.Value) string {
	if v.Null || v.Text != "" {
		return ""
	}
	return fmt.Sprint(v.Num)
}

func worse(a, b disclosure.Verdict) disclosure.Verdict {
	rank := map[disclosure.Verdict]int{disclosure.Pass: 0, disclosure.Review: 1, disclosure.Fail: 2}
	if rank[b] > rank[a] {
		return b
	}
	return a
}

// magnitudeOf is the contributions behind column c of result row r: of the
// sums and means in that output, the one its largest contributor dominates
// most.
func magnitudeOf(j *Job, report *sqlbox.Report, r, c int) (disclosure.Magnitude, bool) {
	if r >= len(report.Cells) {
		return disclosure.Magnitude{}, false
	}
	var best disclosure.Magnitude
	found := false
	for i, m := range j.Analysis.Magnitudes {
		if m.Output != c || i >= len(report.Cells[r].Magnitudes) {
			continue
		}
		st := report.Cells[r].Magnitudes[i]
		cand := disclosure.Magnitude{Total: st.Total, Top: st.Top, N: st.N}
		if !found || share(cand) > share(best) {
			best, found = cand, true
		}
	}
	return best, found
}

func share(m disclosure.Magnitude) float64 {
	if m.Total == 0 || len(m.Top) == 0 {
		return 0
	}
	return m.Top[0] / m.Total
}

// disclosureParams are the checks' parameters: the policy's, and the
// dataset's labels. The policy codes fields; a column is coded when it
// derives from exactly one coded field.
func disclosureParams(p policies.Params, e datasets.Entry, cols []disclosure.OutputColumn, noised bool) disclosure.Params {
	dp := disclosure.Params{
		MinCellCount: p.MinCellCount, DominanceP: p.Dominance.P, DominanceN: p.Dominance.N, DominanceK: p.Dominance.K,
		MinDegreesOfFreedom: p.MinDegreesOfFreedom, RowLevel: p.RowLevel, CheckAttributes: p.CheckAttributes,
		Suppress: p.Suppress, RoundBase: p.RoundBase, Noised: noised,
	}
	byColumn := func(byField map[string]float64) map[string]float64 {
		out := map[string]float64{}
		for _, c := range cols {
			if v, ok := byField[singleField(c.Fields)]; ok && c.Numeric {
				out[c.Name] = v
			}
		}
		return out
	}
	dp.TopCode, dp.BottomCode = byColumn(p.TopCode), byColumn(p.BottomCode)
	for _, f := range e.Fields {
		switch {
		case f.Identifier == datasets.IdentifierDirect:
			dp.DirectIdentifiers = append(dp.DirectIdentifiers, f.Name)
			dp.Personal = append(dp.Personal, f.Name)
		case f.Identifier == datasets.IdentifierQuasi || f.Sensitivity == "personal" || f.Sensitivity == "personal-sensitive":
			dp.Personal = append(dp.Personal, f.Name)
		}
		if f.FreeText {
			dp.FreeText = append(dp.FreeText, f.Name)
		}
	}
	return dp
}

// singleField is the one field of fields, or "".
func singleField(fields []string) string {
	if len(fields) == 1 {
		return fields[0]
	}
	return ""
}

// wasmValues holds the values a Wasm guest computed for review: the host
// verifies the groups and counts them itself, but cannot tell what a value
// column carries.
func wasmValues(t disclosure.Table) disclosure.Finding {
	var cols []string
	for _, c := range t.Columns {
		if c.Role != disclosure.RoleKey {
			cols = append(cols, c.Name)
		}
	}
	if len(cols) == 0 {
		return disclosure.Finding{Check: "wasm_values", Verdict: disclosure.Pass, Detail: "the result holds only group keys and host-counted cells"}
	}
	return disclosure.Finding{Check: "wasm_values", Verdict: disclosure.Review,
		Detail: fmt.Sprintf("columns %v were computed by a WebAssembly module; the host cannot verify what they carry, so an output checker reviews them", cols)}
}

// noise replaces j's counts and sums by their differential-privacy
// releases, and returns the noisy cell counts the minimum-count check
// thresholds on, and how many columns it noised.
func (s *Service) noise(j *Job, c *privacy.Config, cols []disclosure.OutputColumn, tbl *release.Table, counts []int64) ([]int64, int, error) {
	type noisy struct {
		col int
		agg privacy.Aggregate
	}
	var cells []noisy
	countCol := -1
	for i, col := range cols {
		switch col.Role {
		case disclosure.RoleKey:
		case disclosure.RoleCount:
			cells = append(cells, noisy{i, privacy.Aggregate{Kind: privacy.Count}})
			if countCol < 0 {
				countCol = i
			}
		case disclosure.RoleMagnitude:
			if len(col.Fields) != 1 {
				return nil, 0, fmt.Errorf("job %d: output %s sums %d fields; differential privacy noises sums of one bounded field", j.ID, col.Name, len(col.Fields))
			}
			cells = append(cells, noisy{i, privacy.Aggregate{Kind: privacy.Sum, Field: col.Fields[0]}})
		default:
			return nil, 0, fmt.Errorf("job %d: output %s cannot be released with differential privacy", j.ID, col.Name)
		}
	}
	n := len(cells)
	if countCol < 0 {
		n++ // a noisy count of each cell, to threshold on, spends a share too
	}
	seed := privacy.Seed(s.secret, j.Version, j.CodeSHA256, j.Agreement)
	nz := privacy.NewNoise(seed)
	out := make([]int64, len(tbl.Rows))
	for r, row := range tbl.Rows {
		for _, cell := range cells {
			v := row[cell.col]
			if v.Null {
				continue
			}
			x, err := nz.Release(*c, cell.agg, n, r, cols[cell.col].Name, v.Num)
			if err != nil {
				return nil, 0, fmt.Errorf("job %d: noise %s: %w", j.ID, cols[cell.col].Name, err)
			}
			row[cell.col] = disclosure.Value{Num: x}
		}
		switch {
		case countCol >= 0 && !row[countCol].Null:
			out[r] = int64(row[countCol].Num)
		case r < len(counts):
			x, err := nz.Release(*c, privacy.Aggregate{Kind: privacy.Count}, n, r, sqlbox.CellCountColumn, float64(counts[r]))
			if err != nil {
				return nil, 0, fmt.Errorf("job %d: noise the cell count: %w", j.ID, err)
			}
			out[r] = int64(x)
		}
	}
	return out, len(cells), nil
}

// checks is the record's view of an assessment's findings, for policy.
func policyChecks(fs []disclosure.Finding) []policies.Check {
	out := make([]policies.Check, 0, len(fs))
	for _, f := range fs {
		out = append(out, policies.Check{Name: f.Check, Verdict: string(f.Verdict), Detail: f.Detail})
	}
	return out
}

// publish writes the released file of assessment as, if the remedies or
// noise changed the result, and returns what will be released.
func (s *Service) publish(ctx context.Context, j *Job, as *assessment, limits sqlbox.Limits) (*ReleasedFile, error) {
	if !as.changed {
		return &ReleasedFile{Name: resultFile, SHA256: j.Result.SHA256, Rows: j.Result.Rows, Bytes: j.Result.Bytes}, nil
	}
	for r, row := range as.released.Rows {
		as.table.Rows[r] = row.Values
	}
	out := s.releasedPath(j.ID)
	os.Remove(out) // a rerun after a crash starts over
	rep, err := release.Write(ctx, as.table, out, limits)
	if err != nil {
		return nil, fmt.Errorf("job %d: %w", j.ID, err)
	}
	return &ReleasedFile{Name: releasedFile, SHA256: rep.SHA256, Rows: rep.Rows, Bytes: rep.Bytes}, nil
}

const (
	resultFile   = "result.parquet"   // what the job wrote, in quarantine
	releasedFile = "released.parquet" // the result after remedies and noise
)

func (s *Service) releasedPath(id int64) string {
	return filepath.Join(s.dir, fmt.Sprint(id), releasedFile)
}

// deliveredPath is the file a released job's result is served from.
func (s *Service) deliveredPath(j Job) (string, error) {
	if j.Result == nil || j.Result.Released == nil {
		return "", errors.New("no released file")
	}
	switch j.Result.Released.Name {
	case resultFile:
		return s.resultPath(j.ID), nil
	case releasedFile:
		return s.releasedPath(j.ID), nil
	}
	return "", fmt.Errorf("released file %q is not one the platform writes", j.Result.Released.Name)
}
