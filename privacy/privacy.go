// Package privacy adds differential privacy (DP) to aggregate releases from
// the sandbox: it validates an agreement's DP option, keeps each operator's
// privacy budget per dataset, computes noise scales, and draws noise
// deterministically.
//
// # Budget and composition
//
// An agreement grants a total budget (ε, and δ for the Gaussian mechanism)
// per operator per dataset. Every job spends EpsilonPerJob (and DeltaPerJob).
// Budgets compose by basic (sequential) composition: the guarantee after k
// jobs is (Σεᵢ, Σδᵢ), so a job is refused once the spent totals would exceed
// the granted ones ([Budget.Charge] returns an [*ExhaustedError]). Within a
// job, ε and δ are split evenly across the noisy values released per cell
// (for example a count and a sum per cell each get ε/2). Cells of one result
// partition the rows, so each cell gets the job's full share: a person's rows
// are bounded across all cells together, not per cell.
//
// # Contribution bounding
//
// Sensitivities here assume the sandbox has bounded each person's influence
// before aggregating: it keeps at most MaxContributions (L) rows per value of
// PersonKey per job, and clamps every summed field to its Bounds [lo, hi].
// Adding or removing one person then changes the released counts by at most
// L in total (Δ = L), and the released sums of a field by at most
// L·max(|lo|, |hi|). Without that bounding the noise computed here protects
// nothing; [Scale] refuses a sum over a field without Bounds for that reason.
//
// # Deterministic noise
//
// Noise is a pure function of a seed and the (cell, column) it is added to
// ([Noise]). The seed is derived ([Seed]) from a platform secret and what
// makes a release the same release: the dataset version, the code hash and
// the agreement. Re-running a job therefore reproduces its release exactly
// (results are auditable and re-runs leak nothing new), and re-submitting the
// same query cannot average the noise away, since every submission sees the
// same draw. Any change to the code or the data gives fresh noise and is a
// new job that spends budget. The secret must never leave the platform:
// whoever knows it can subtract the noise.
//
// # Disclosure checks still apply
//
// DP does not replace the disclosure checks. Noisy counts under the minimum
// cell count are still suppressed by package disclosure. Note that this
// package protects the released values, not which cells exist: cells that
// appear only because the data holds such a group are limited by that
// suppression, not formally bounded by ε.
//
// # Caveats
//
// The Gaussian calibration σ = Δ·√(2 ln(1.25/δ))/ε is the classical one
// (Dwork and Roth, Theorem A.1) and holds only for ε < 1 per released value,
// so [Scale] refuses larger per-value ε for the Gaussian mechanism. Noise is
// drawn in float64; counts are rounded to integers, which hides the low-order
// bits of the draw, while sums are released unrounded.
package privacy

import (
	"errors"
	"fmt"
	"math"
	"sort"
)

// Mechanism names.
const (
	Laplace  = "laplace"
	Gaussian = "gaussian"
)

// Aggregate kinds.
const (
	Count = "count"
	Sum   = "sum"
)

// tolerance is the absolute slack (scaled by the total when it exceeds 1)
// used when comparing ε and δ amounts, so that rounding in float64 sums
// (ten jobs of 0.1 add to 0.9999999999999999) does not refuse a job that
// fits exactly.
const tolerance = 1e-12

func tol(total float64) float64 { return tolerance * math.Max(1, math.Abs(total)) }

// Config is an agreement's differential-privacy option.
type Config struct {
	Mechanism        string                `json:"mechanism"`               // laplace or gaussian
	Epsilon          float64               `json:"epsilon"`                 // total ε budget per operator per dataset
	Delta            float64               `json:"delta,omitempty"`         // total δ budget (gaussian only; in (0,1) for gaussian, 0 for laplace)
	EpsilonPerJob    float64               `json:"epsilon_per_job"`         // ε each job spends
	DeltaPerJob      float64               `json:"delta_per_job,omitempty"` // δ each job spends (gaussian only)
	PersonKey        string                `json:"person_key"`              // field identifying a person (contribution bounding)
	MaxContributions int                   `json:"max_contributions"`       // rows per person kept per job (L >= 1)
	Bounds           map[string][2]float64 `json:"bounds,omitempty"`        // per summed field: clamp range [lo, hi]
}

// Validate reports every problem with c, each naming the offending field and
// how to fix it. It returns nil for a usable config.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("privacy: "+format, args...))
	}
	finitePos := func(x float64) bool { return x > 0 && !math.IsInf(x, 1) }

	switch c.Mechanism {
	case Laplace, Gaussian:
	case "":
		bad("mechanism is missing: set it to %q or %q", Laplace, Gaussian)
	default:
		bad("mechanism %q is unknown: set it to %q or %q", c.Mechanism, Laplace, Gaussian)
	}

	if !finitePos(c.Epsilon) {
		bad("epsilon is %v: the total budget must be a finite number > 0", c.Epsilon)
	}
	if !finitePos(c.EpsilonPerJob) {
		bad("epsilon_per_job is %v: each job must spend a finite ε > 0", c.EpsilonPerJob)
	} else if finitePos(c.Epsilon) && c.EpsilonPerJob > c.Epsilon+tol(c.Epsilon) {
		bad("epsilon_per_job %v exceeds the total epsilon %v: lower epsilon_per_job or raise epsilon", c.EpsilonPerJob, c.Epsilon)
	}

	switch c.Mechanism {
	case Gaussian:
		deltaOK := c.Delta > 0 && c.Delta < 1
		if !deltaOK {
			bad("delta is %v: the gaussian mechanism needs a total delta in (0, 1), typically well below 1/number of persons (e.g. 1e-6)", c.Delta)
		}
		if !(c.DeltaPerJob > 0 && c.DeltaPerJob < 1) {
			bad("delta_per_job is %v: the gaussian mechanism needs each job to spend a delta in (0, 1)", c.DeltaPerJob)
		} else if deltaOK && c.DeltaPerJob > c.Delta+tol(c.Delta) {
			bad("delta_per_job %v exceeds the total delta %v: lower delta_per_job or raise delta", c.DeltaPerJob, c.Delta)
		}
	case Laplace:
		if c.Delta != 0 {
			bad("delta is %v but the laplace mechanism is pure ε-DP: remove delta or use mechanism %q", c.Delta, Gaussian)
		}
		if c.DeltaPerJob != 0 {
			bad("delta_per_job is %v but the laplace mechanism is pure ε-DP: remove delta_per_job or use mechanism %q", c.DeltaPerJob, Gaussian)
		}
	}

	if c.PersonKey == "" {
		bad("person_key is missing: name the field that identifies a person, so each person's rows can be bounded")
	}
	if c.MaxContributions < 1 {
		bad("max_contributions is %d: keep at least 1 row per person (L >= 1)", c.MaxContributions)
	}

	fields := make([]string, 0, len(c.Bounds))
	for f := range c.Bounds {
		fields = append(fields, f)
	}
	sort.Strings(fields)
	for _, f := range fields {
		lo, hi := c.Bounds[f][0], c.Bounds[f][1]
		switch {
		case f == "":
			bad("bounds has an entry with an empty field name: name the summed field")
		case math.IsNaN(lo) || math.IsNaN(hi) || math.IsInf(lo, 0) || math.IsInf(hi, 0):
			bad("bounds[%q] is [%v, %v]: both ends must be finite numbers", f, lo, hi)
		case lo > hi:
			bad("bounds[%q] is [%v, %v]: lo is greater than hi; swap them to [%v, %v]", f, lo, hi, hi, lo)
		}
	}
	return errors.Join(errs...)
}

// JobSpend is what one job under c is charged.
func (c Config) JobSpend() Spend { return Spend{Epsilon: c.EpsilonPerJob, Delta: c.DeltaPerJob} }

// NewBudget is an unspent budget with c's totals.
func (c Config) NewBudget() Budget { return Budget{Epsilon: c.Epsilon, Delta: c.Delta} }

// Aggregate describes one noisy aggregate released per cell.
type Aggregate struct {
	Kind  string // "count" or "sum"
	Field string // the summed field, for sums
}

// Sensitivity is the most one person can change this aggregate across all
// cells of a result, given c's contribution bounding: L for counts and
// L·max(|lo|, |hi|) for sums.
func Sensitivity(c Config, a Aggregate) (float64, error) {
	if c.MaxContributions < 1 {
		return 0, fmt.Errorf("privacy: max_contributions is %d: keep at least 1 row per person (L >= 1)", c.MaxContributions)
	}
	L := float64(c.MaxContributions)
	switch a.Kind {
	case Count:
		return L, nil
	case Sum:
		if a.Field == "" {
			return 0, errors.New("privacy: a sum aggregate needs the summed field's name")
		}
		b, ok := c.Bounds[a.Field]
		if !ok {
			return 0, fmt.Errorf("privacy: field %q is summed but has no bounds: add bounds[%q] = [lo, hi] to the agreement's privacy option", a.Field, a.Field)
		}
		lo, hi := b[0], b[1]
		if math.IsNaN(lo) || math.IsNaN(hi) || math.IsInf(lo, 0) || math.IsInf(hi, 0) || lo > hi {
			return 0, fmt.Errorf("privacy: bounds[%q] is [%v, %v]: it must be finite with lo <= hi", a.Field, lo, hi)
		}
		return L * math.Max(math.Abs(lo), math.Abs(hi)), nil
	default:
		return 0, fmt.Errorf("privacy: aggregate kind %q is unknown: use %q or %q", a.Kind, Count, Sum)
	}
}

// Scale returns the noise parameter for one aggregate when a job with config
// c releases `aggregates` noisy values per cell, ε and δ split evenly across
// them: the Laplace scale b = Δ/ε_each or the Gaussian σ =
// Δ·√(2·ln(1.25/δ_each))/ε_each, with Δ from [Sensitivity]. It uses the
// per-job amounts (EpsilonPerJob, DeltaPerJob).
func Scale(c Config, a Aggregate, aggregates int) (float64, error) {
	if aggregates < 1 {
		return 0, fmt.Errorf("privacy: %d aggregates per cell: a job releases at least 1", aggregates)
	}
	if !(c.EpsilonPerJob > 0) || math.IsInf(c.EpsilonPerJob, 1) {
		return 0, fmt.Errorf("privacy: epsilon_per_job is %v: each job must spend a finite ε > 0", c.EpsilonPerJob)
	}
	delta, err := Sensitivity(c, a)
	if err != nil {
		return 0, err
	}
	k := float64(aggregates)
	eps := c.EpsilonPerJob / k
	switch c.Mechanism {
	case Laplace:
		return delta / eps, nil
	case Gaussian:
		if !(c.DeltaPerJob > 0 && c.DeltaPerJob < 1) {
			return 0, fmt.Errorf("privacy: delta_per_job is %v: the gaussian mechanism needs each job to spend a delta in (0, 1)", c.DeltaPerJob)
		}
		if eps >= 1 {
			return 0, fmt.Errorf("privacy: the gaussian mechanism is calibrated for ε < 1 per released value but each of %d values gets ε=%v: lower epsilon_per_job or use mechanism %q", aggregates, eps, Laplace)
		}
		d := c.DeltaPerJob / k
		return delta * math.Sqrt(2*math.Log(1.25/d)) / eps, nil
	case "":
		return 0, fmt.Errorf("privacy: mechanism is missing: set it to %q or %q", Laplace, Gaussian)
	default:
		return 0, fmt.Errorf("privacy: mechanism %q is unknown: set it to %q or %q", c.Mechanism, Laplace, Gaussian)
	}
}
