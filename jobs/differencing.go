package jobs

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"

	"github.com/RoaringBitmap/roaring/v2"

	"github.com/datasandbox/dsbx/disclosure"
	sqlbox "github.com/datasandbox/dsbx/sandbox/sql"
)

// The differencing check: two released counts whose populations differ by
// a few people give those people away, however large each count is
// (everyone in a district, and everyone in it but one). Every released cell
// of an aggregate keeps its population, the snapshot rows behind it, in a
// ledger per operator and dataset version (released_cells), which no new
// policy or agreement resets. A new cell whose population contains, or is
// contained in, an earlier one's (or another cell's of the same result)
// and differs from it by fewer than the minimum cell count is held for
// review.

const checkDifferencing = "differencing"

// MaxMembershipRows bounds the snapshots whose cell populations are
// computed: the populations of a larger one (a list of row numbers per
// cell, inside the job's memory limit) are not, and its aggregates are
// reviewed once earlier releases exist on the version.
var MaxMembershipRows int64 = 2_000_000

// cellPopulations are the populations of a result's cells; nil where the
// sandbox could not compute one.
func cellPopulations(report *sqlbox.Report) []*roaring.Bitmap {
	out := make([]*roaring.Bitmap, len(report.Cells))
	for i, c := range report.Cells {
		if c.Members == nil {
			continue
		}
		b := roaring.New()
		for _, m := range c.Members {
			if m >= 0 && m <= math.MaxUint32 {
				b.Add(uint32(m))
			}
		}
		out[i] = b
	}
	return out
}

// differencing adds the differencing finding to as, and keeps the
// populations of the cells that would be released for the ledger.
func (s *Service) differencing(ctx context.Context, j *Job, report *sqlbox.Report, as *assessment, threshold int64) error {
	f := disclosure.Finding{Check: checkDifferencing, Verdict: disclosure.Pass}
	defer func() { as.report.Findings = append(as.report.Findings, f) }()
	switch {
	case !j.Analysis.Aggregate:
		f.Detail = "not applicable to a row-level extract"
		return nil
	case as.noised:
		f.Detail = "not applicable: differential privacy bounds what any combination of releases reveals"
		return nil
	}
	var earlier int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM released_cells WHERE operator = ? AND version = ? AND job != ?`,
		j.Operator, j.Version, j.ID).Scan(&earlier); err != nil {
		return fmt.Errorf("job %d: differencing: %w", j.ID, err)
	}
	pops := cellPopulations(report)
	if !slices.ContainsFunc(pops, func(b *roaring.Bitmap) bool { return b != nil }) {
		if earlier == 0 {
			f.Detail = "no earlier released results on this dataset version to combine with"
			return nil
		}
		// The same code on the same version gives the same result: a
		// repeat of a released job discloses nothing new.
		var repeats int
		if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM jobs WHERE operator = ? AND version = ? AND code_sha256 = ? AND state = ? AND id != ?`,
			j.Operator, j.Version, j.CodeSHA256, StateReleased, j.ID).Scan(&repeats); err != nil {
			return fmt.Errorf("job %d: differencing: %w", j.ID, err)
		}
		if repeats > 0 {
			f.Detail = "the same query on the same version was released before; a repeat discloses nothing new"
			return nil
		}
		why := "the query reads the data through a join, subquery or module"
		if j.Analysis.MembersSQL != "" {
			why = fmt.Sprintf("the dataset version has more than %d rows", MaxMembershipRows)
		}
		f.Verdict = disclosure.Review
		f.Detail = fmt.Sprintf("%s, so its cells cannot be compared with the %d cells you released earlier from this version; an output checker reviews it", why, earlier)
		return nil
	}
	suppressed := map[int]bool{}
	for _, c := range as.report.Changes {
		if c.Action == disclosure.ActionSuppressed {
			suppressed[c.Row] = true
		}
	}
	as.members = make([][]byte, len(pops))
	flagged := 0
	for i, a := range pops {
		if a == nil || suppressed[i] {
			continue
		}
		b, err := a.ToBytes()
		if err != nil {
			return fmt.Errorf("job %d: differencing: %w", j.ID, err)
		}
		as.members[i] = b
		why, err := s.isolates(ctx, j, a, i, pops, suppressed, threshold)
		if err != nil {
			return err
		}
		if why != "" {
			flagged++
			if len(f.Cells) < disclosure.MaxFindings {
				f.Cells = append(f.Cells, disclosure.CellFinding{Row: i, Reason: why})
			}
		}
	}
	if flagged == 0 {
		f.Detail = fmt.Sprintf("no cell differs by fewer than %d people from another released cell (%d earlier on this version)", threshold, earlier)
		return nil
	}
	f.Verdict = disclosure.Review
	f.Detail = fmt.Sprintf("%d cells differ by fewer than %d people from another released cell: subtracting one from the other would isolate them", flagged, threshold)
	return nil
}

// isolates says how cell i, of population a, combined with another cell of
// this result or an earlier released one, isolates fewer than threshold
// people; "" if it does not.
func (s *Service) isolates(ctx context.Context, j *Job, a *roaring.Bitmap, i int, pops []*roaring.Bitmap, suppressed map[int]bool, threshold int64) (string, error) {
	n := int64(a.GetCardinality())
	for k, b := range pops {
		if k == i || b == nil || suppressed[k] {
			continue
		}
		if d := nested(a, b); d > 0 && d < threshold {
			return fmt.Sprintf("differs from row %d of this result by %d people", k, d), nil
		}
	}
	rows, err := s.db.QueryContext(ctx, `SELECT job, cell, members FROM released_cells
		WHERE operator = ? AND version = ? AND job != ? AND count > ? AND count < ? AND members IS NOT NULL ORDER BY id`,
		j.Operator, j.Version, j.ID, n-threshold, n+threshold)
	if err != nil {
		return "", fmt.Errorf("job %d: differencing: %w", j.ID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var job, cell int64
		var raw []byte
		if err := rows.Scan(&job, &cell, &raw); err != nil {
			return "", fmt.Errorf("job %d: differencing: %w", j.ID, err)
		}
		b := roaring.New()
		if err := b.UnmarshalBinary(raw); err != nil {
			return "", fmt.Errorf("job %d: differencing: cell %d of job %d: %w", j.ID, cell, job, err)
		}
		if d := nested(a, b); d > 0 && d < threshold {
			return fmt.Sprintf("differs from row %d of your released job %d by %d people", cell, job, d), nil
		}
	}
	return "", rows.Err()
}

// nested returns how many people one population has beyond the other when
// one contains the other, and 0 otherwise (or when they are equal).
func nested(a, b *roaring.Bitmap) int64 {
	na, nb, both := int64(a.GetCardinality()), int64(b.GetCardinality()), int64(a.AndCardinality(b))
	switch {
	case both == nb && na > nb: // b within a
		return na - nb
	case both == na && nb > na: // a within b
		return nb - na
	}
	return 0
}

// ledgerCell is a cell to record in the ledger once its result is
// released: its count and its population (nil when unknown).
type ledgerCell struct {
	row     int
	count   int64
	members []byte
}

// ledgerCells are the cells of as that would be released.
func ledgerCells(as *assessment, counts []int64) []ledgerCell {
	suppressed := map[int]bool{}
	for _, c := range as.report.Changes {
		if c.Action == disclosure.ActionSuppressed {
			suppressed[c.Row] = true
		}
	}
	var out []ledgerCell
	for i, n := range counts {
		if suppressed[i] {
			continue
		}
		c := ledgerCell{row: i, count: n}
		if i < len(as.members) {
			c.members = as.members[i]
		}
		out = append(out, c)
	}
	return out
}

// ledgerPath keeps a held result's cells for the ledger until it is
// released; it never reaches the submitter.
func (s *Service) ledgerPath(id int64) string {
	return filepath.Join(s.dir, fmt.Sprint(id), "cells.bin")
}

// keepLedgerCells writes cells to job id's directory.
func (s *Service) keepLedgerCells(id int64, cells []ledgerCell) error {
	var buf []byte
	for _, c := range cells {
		buf = binary.AppendUvarint(buf, uint64(c.row))
		buf = binary.AppendUvarint(buf, uint64(c.count))
		if c.members == nil {
			buf = binary.AppendUvarint(buf, 0)
			continue
		}
		buf = binary.AppendUvarint(buf, uint64(len(c.members))+1)
		buf = append(buf, c.members...)
	}
	if err := os.WriteFile(s.ledgerPath(id), buf, 0o600); err != nil {
		return fmt.Errorf("job %d: keep released cells: %w", id, err)
	}
	return nil
}

// ledger records the released cells of job j kept by keepLedgerCells, for
// later differencing checks.
func (s *Service) ledger(ctx context.Context, j *Job) error {
	raw, err := os.ReadFile(s.ledgerPath(j.ID))
	if os.IsNotExist(err) {
		return nil // not an aggregate, or released with differential privacy
	}
	if err != nil {
		return fmt.Errorf("job %d: read released cells: %w", j.ID, err)
	}
	damaged := fmt.Errorf("job %d: released cells file %s is damaged", j.ID, s.ledgerPath(j.ID))
	next := func() (uint64, bool) {
		v, k := binary.Uvarint(raw)
		if k <= 0 {
			return 0, false
		}
		raw = raw[k:]
		return v, true
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	// A release cut off by a crash after its cells were recorded runs
	// again: its cells replace the ones recorded then.
	if _, err := tx.ExecContext(ctx, `DELETE FROM released_cells WHERE job = ?`, j.ID); err != nil {
		return fmt.Errorf("job %d: ledger: %w", j.ID, err)
	}
	for len(raw) > 0 {
		row, ok1 := next()
		count, ok2 := next()
		n, ok3 := next()
		if !ok1 || !ok2 || !ok3 || (n > 0 && n-1 > uint64(len(raw))) {
			return damaged
		}
		var members []byte
		if n > 0 {
			members, raw = raw[:n-1], raw[n-1:]
			// A population released before is not recorded again: equal
			// populations never difference (nested is 0), and a query
			// released again and again would otherwise make every later
			// check read all its copies.
			var dup int
			err := tx.QueryRowContext(ctx, `SELECT count(*) FROM released_cells WHERE operator = ? AND version = ? AND count = ? AND members = ? AND job != ?`,
				j.Operator, j.Version, count, members, j.ID).Scan(&dup)
			if err != nil {
				return fmt.Errorf("job %d: ledger: %w", j.ID, err)
			}
			if dup > 0 {
				continue
			}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO released_cells(operator, version, job, cell, count, members) VALUES (?, ?, ?, ?, ?, ?)`,
			j.Operator, j.Version, j.ID, row, count, members); err != nil {
			return fmt.Errorf("job %d: ledger: %w", j.ID, err)
		}
	}
	return tx.Commit()
}
