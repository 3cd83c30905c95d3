package jobs

import (
	"bytes"
	"context"
	"encoding/csv"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/datasandbox/dsbx/disclosure"
	"github.com/datasandbox/dsbx/operators"
)

// finding returns j's finding of check, failing the test if there is none.
func finding(t *testing.T, j Job, check string) disclosure.Finding {
	t.Helper()
	for _, f := range j.Checks {
		if f.Check == check {
			return f
		}
	}
	t.Fatalf("job %d has no %s finding: %+v", j.ID, check, j.Checks)
	return disclosure.Finding{}
}

// run submits query as who and waits for it.
func (p *platform) run(t *testing.T, who string, query string) Job {
	t.Helper()
	pr := p.principal(t, who)
	return p.wait(t, pr, p.submit(t, pr, query).ID)
}

// released reads j's released result as CSV records, header first.
func (p *platform) released(t *testing.T, j Job) [][]string {
	t.Helper()
	var out bytes.Buffer
	if err := p.svc.Deliver(context.Background(), p.principal(t, j.Operator), j.ID, FormatCSV, &out); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&out).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// Two queries whose populations differ by one person would give that
// person away; the second is held, whichever way round, and a difference
// of many people is not.
func TestDifferencingAttackIsHeld(t *testing.T) {
	p := newPlatform(t)
	p.start(t)
	// Incomes are 1000 + 10i: unique, so income != 2000 drops exactly person 100.
	first := p.run(t, "acme", `SELECT count(*) AS n FROM people WHERE income >= 1500`)
	if first.State != StateReleased {
		t.Fatalf("first query: %s %+v", first.State, first.Release)
	}
	second := p.run(t, "acme", `SELECT count(*) AS n FROM people WHERE income >= 1500 AND income != 2000`)
	f := finding(t, second, "differencing")
	if second.State != StateHeld || f.Verdict != disclosure.Review || len(f.Cells) != 1 ||
		!strings.Contains(f.Cells[0].Reason, "differs from row 0 of your released job "+strconv.FormatInt(first.ID, 10)+" by 1 people") {
		t.Fatalf("one person apart: %s %+v", second.State, f)
	}
	// Wider by one person is the same attack.
	wider := p.run(t, "acme", `SELECT count(*) AS n FROM people WHERE income >= 1490`)
	if wider.State != StateHeld || finding(t, wider, "differencing").Verdict != disclosure.Review {
		t.Fatalf("one person more: %s %+v", wider.State, finding(t, wider, "differencing"))
	}
	// Twenty people apart is an ordinary second query.
	far := p.run(t, "acme", `SELECT count(*) AS n FROM people WHERE income >= 1700`)
	if far.State != StateReleased {
		t.Fatalf("twenty people apart: %s %+v", far.State, finding(t, far, "differencing"))
	}
	// By group: the same attack cell by cell.
	if j := p.run(t, "acme", countOnly); j.State != StateReleased {
		t.Fatalf("counts by district: %s", j.State)
	}
	minusOne := p.run(t, "acme", `SELECT district, count(*) AS n FROM people WHERE income != 2000 GROUP BY district ORDER BY district`)
	f = finding(t, minusOne, "differencing")
	if minusOne.State != StateHeld || len(f.Cells) != 1 {
		t.Fatalf("counts by district but one person: %s %+v", minusOne.State, f)
	}
	// Another operator's releases are its own: beta starts afresh.
	p.agree(t, "beta", operators.Approval{Fields: map[string]map[string]string{"people": {"district": "raw", "income": "raw"}}})
	if j := p.run(t, "beta", `SELECT count(*) AS n FROM people WHERE income >= 1500 AND income != 2000`); j.State != StateReleased {
		t.Fatalf("beta's first query: %s %+v", j.State, finding(t, j, "differencing"))
	}
	// A query whose cells cannot be compared is reviewed once there are
	// earlier releases on the version.
	cte := p.run(t, "acme", `WITH rich AS (SELECT income FROM people WHERE income >= 2500) SELECT count(*) AS n FROM rich`)
	if f := finding(t, cte, "differencing"); cte.State != StateHeld || !strings.Contains(f.Detail, "cannot be compared") {
		t.Fatalf("a CTE after releases: %s %+v", cte.State, f)
	}
}

// Secondary suppression end to end: the small cell and the cells that
// would give it away through the margins are blank in the released file,
// and the report says which and why, never what they were.
func TestSuppressedCellsAreBlank(t *testing.T) {
	p := newPlatform(t)
	p.start(t)
	// District × (income below 1100): east has 4 such people (i = 0, 3, 6, 9).
	j := p.run(t, "acme", `SELECT district, income < 1100 AS low, count(*) AS n FROM people GROUP BY ALL ORDER BY ALL`)
	if j.State != StateHeld && j.State != StateReleased {
		t.Fatalf("state %s", j.State)
	}
	var primary, secondary []int
	for _, c := range j.Remedies {
		if c.Action != disclosure.ActionSuppressed {
			continue
		}
		if strings.HasPrefix(c.Reason, "primary") {
			primary = append(primary, c.Row)
		} else {
			secondary = append(secondary, c.Row)
		}
		if strings.Contains(c.Reason, "4") {
			t.Errorf("the reason tells the suppressed count: %q", c.Reason)
		}
	}
	if len(primary) == 0 || len(secondary) == 0 {
		t.Fatalf("remedies %+v: want primary and secondary suppression", j.Remedies)
	}
	if j.State == StateHeld {
		p.addReviewers(t, "check")
		var err error
		if j, err = p.svc.Review(context.Background(), p.principal(t, "check"), j.ID, ReviewRequest{Approve: true, Reason: "suppression is enough"}); err != nil {
			t.Fatal(err)
		}
	}
	recs := p.released(t, j)
	for _, row := range append(primary, secondary...) {
		if recs[row+1][2] != "" {
			t.Errorf("row %d released as %v, want its count blank", row, recs[row+1])
		}
	}
	if j.Result.Released.SHA256 == j.Result.SHA256 || j.Result.Released.Name != releasedFile {
		t.Fatalf("released the quarantined file itself: %+v", j.Result)
	}
}

// The same job gives the same released file, with the same report, every
// time: remedies and noise are deterministic.
func TestRerunsAreIdentical(t *testing.T) {
	p := newPlatform(t)
	p.start(t)
	q := `SELECT district, income < 1100 AS low, count(*) AS n FROM people GROUP BY ALL ORDER BY ALL`
	a, b := p.run(t, "acme", q), p.run(t, "acme", q)
	if a.Result.Released == nil || a.Result.Released.SHA256 != b.Result.Released.SHA256 || !slices.Equal(a.Remedies, b.Remedies) {
		t.Fatalf("two runs released %+v and %+v", a.Result.Released, b.Result.Released)
	}
	// The ledger keeps each population once: the rerun added no cells,
	// so repeats do not make later differencing checks slower.
	cells := func(job int64) (n int) {
		if err := p.db.QueryRowContext(context.Background(), `SELECT count(*) FROM released_cells WHERE job = ?`, job).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	const counted = `SELECT count(*) AS n FROM people WHERE income >= 1500`
	c, d := p.run(t, "acme", counted), p.run(t, "acme", counted)
	if c.State != StateReleased || d.State != StateReleased {
		t.Fatalf("a repeat: %s then %s", c.State, d.State)
	}
	if first, again := cells(c.ID), cells(d.ID); first != 1 || again != 0 {
		t.Errorf("ledger cells: %d for the first run, %d for the rerun; want the population once", first, again)
	}
}

// Differential privacy end to end: the released counts and sums are noisy,
// the same job gets the same noise, and the report says so.
func TestPrivateReleaseIsNoisyAndReproducible(t *testing.T) {
	p := dpPlatform(t)
	p.start(t)
	a, b := p.run(t, "acme", dpCount), p.run(t, "acme", dpCount)
	for _, j := range []Job{a, b} {
		if j.State != StateReleased {
			t.Fatalf("DP job %s: %+v %+v", j.State, j.Checks, j.Release)
		}
	}
	if f := finding(t, a, "differential_privacy"); !strings.Contains(f.Detail, "laplace noise for ε=0.4") {
		t.Fatalf("report %+v", f)
	}
	if a.Result.Released.SHA256 != b.Result.Released.SHA256 {
		t.Fatal("the same DP job released different noise twice: averaging would remove it")
	}
	exact := map[string]string{}
	for _, rec := range strings.Split(strings.TrimSpace(expectedCSV()), "\n")[1:] {
		f := strings.Split(rec, ",")
		exact[f[0]] = f[1]
	}
	recs := p.released(t, a)
	differs := false
	for _, rec := range recs[1:] {
		if rec[1] != "" && rec[1] != exact[rec[0]] {
			differs = true
		}
		if n, err := strconv.ParseFloat(rec[1], 64); rec[1] != "" && (err != nil || n != float64(int64(n)) || n < 0) {
			t.Errorf("noisy count %q is not a count", rec[1])
		}
	}
	if !differs {
		t.Fatalf("released %v: no count carries noise (exact %v)", recs, exact)
	}
}

// Row-level extracts leave only where the agreement allows them, and then
// only non-personal fields.
func TestRowLevelExtracts(t *testing.T) {
	p := newPlatform(t)
	p.start(t)
	j := p.run(t, "acme", `SELECT income FROM people`)
	if j.State != StateRejected || finding(t, j, "row_level").Verdict != disclosure.Fail {
		t.Fatalf("row-level without the agreement's leave: %s %+v", j.State, finding(t, j, "row_level"))
	}
	p.agree(t, "beta", operators.Approval{Fields: map[string]map[string]string{"people": {"district": "raw", "income": "raw"}},
		Outputs: operators.OutputRules{RowLevel: true}})
	if j := p.run(t, "beta", `SELECT district, income FROM people`); j.State != StateRejected {
		t.Fatalf("row-level with a quasi identifier: %s %+v", j.State, finding(t, j, "row_level"))
	}
	if j := p.run(t, "beta", `SELECT income FROM people`); j.State != StateReleased {
		t.Fatalf("row-level of a non-personal field under an agreement that allows it: %s %+v", j.State, j.Checks)
	}
}

// Top and bottom coding from the agreement clamp a row-level field.
func TestTopAndBottomCoding(t *testing.T) {
	p := newPlatform(t)
	p.start(t)
	p.agree(t, "beta", operators.Approval{Fields: map[string]map[string]string{"people": {"district": "raw", "income": "raw"}},
		Outputs: operators.OutputRules{RowLevel: true, TopCode: map[string]float64{"income": 2500}, BottomCode: map[string]float64{"income": 1200}}})
	j := p.run(t, "beta", `SELECT income FROM people ORDER BY income`)
	if j.State != StateReleased {
		t.Fatalf("state %s %+v", j.State, j.Checks)
	}
	recs := p.released(t, j)
	// Incomes are 1000 + 10i for i < 200: 20 below 1200, 49 above 2500.
	var low, high int
	for _, r := range recs[1:] {
		switch r[0] {
		case "1200":
			low++
		case "2500":
			high++
		}
		if v, _ := strconv.Atoi(r[0]); v < 1200 || v > 2500 {
			t.Fatalf("released %s outside [1200, 2500]", r[0])
		}
	}
	if low != 21 || high != 50 {
		t.Fatalf("%d values at the bottom code, %d at the top, want 21 and 50", low, high)
	}
	coded := 0
	for _, c := range j.Remedies {
		if c.Action == disclosure.ActionTopCoded || c.Action == disclosure.ActionBottomCoded {
			coded++
		}
	}
	if coded != 69 {
		t.Fatalf("%d coded values in the report, want 69", coded)
	}
}

// The populations of a snapshot too large for them are not computed; once
// there are earlier releases on the version, its aggregates are reviewed.
func TestDifferencingBeyondMembershipRows(t *testing.T) {
	defer func(n int64) { MaxMembershipRows = n }(MaxMembershipRows)
	MaxMembershipRows = peopleRows - 1
	p := newPlatform(t)
	p.start(t)
	if j := p.run(t, "acme", countOnly); j.State != StateReleased {
		t.Fatalf("the first release: %s %+v", j.State, finding(t, j, "differencing"))
	}
	j := p.run(t, "acme", `SELECT district, count(*) AS n FROM people WHERE income != 2000 GROUP BY district ORDER BY district`)
	if f := finding(t, j, "differencing"); j.State != StateHeld || !strings.Contains(f.Detail, "more than 199 rows") {
		t.Fatalf("a second query beyond the populations' limit: %s %+v", j.State, f)
	}
	// The released query again discloses nothing new.
	if again := p.run(t, "acme", countOnly); again.State != StateReleased || !strings.Contains(finding(t, again, "differencing").Detail, "released before") {
		t.Fatalf("a repeat of a released query: %s %+v", again.State, finding(t, again, "differencing"))
	}
}
