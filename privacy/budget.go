package privacy

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Spend is a job's charge.
type Spend struct {
	Epsilon float64 `json:"epsilon"`
	Delta   float64 `json:"delta,omitempty"`
}

// Budget is what an operator has spent on one dataset.
type Budget struct {
	Epsilon      float64 `json:"epsilon"`         // total ε granted
	Delta        float64 `json:"delta,omitempty"` // total δ granted
	SpentEpsilon float64 `json:"spent_epsilon"`
	SpentDelta   float64 `json:"spent_delta,omitempty"`
	Jobs         int     `json:"jobs"` // jobs charged so far
}

// Remaining is what is left of the budget, never negative; amounts within
// the comparison tolerance of zero are reported as zero.
func (b Budget) Remaining() Spend {
	return Spend{
		Epsilon: remaining(b.Epsilon, b.SpentEpsilon),
		Delta:   remaining(b.Delta, b.SpentDelta),
	}
}

func remaining(total, spent float64) float64 {
	r := total - spent
	if !(r > tol(total)) { // also maps NaN to 0
		return 0
	}
	return r
}

// Charge returns b with s spent, by basic (sequential) composition: spent ε
// and δ add up. If s does not fit in what remains, Charge returns b unchanged
// and an *ExhaustedError naming what was asked and what remains. Amounts are
// compared with a small tolerance (1e-12, scaled by the total above 1), so
// ten jobs of 0.1 fit a budget of 1.0 exactly. A spend with a negative or
// non-finite amount is refused with a plain error.
func (b Budget) Charge(s Spend) (Budget, error) {
	for _, x := range []struct {
		name string
		v    float64
	}{{"ε", s.Epsilon}, {"δ", s.Delta}} {
		if x.v < 0 || math.IsNaN(x.v) || math.IsInf(x.v, 0) {
			return b, fmt.Errorf("privacy: a job cannot spend %s=%v: amounts must be finite and >= 0", x.name, x.v)
		}
	}
	rem := b.Remaining()
	if s.Epsilon > rem.Epsilon+tol(b.Epsilon) || s.Delta > rem.Delta+tol(b.Delta) {
		return b, &ExhaustedError{Asked: s, Remaining: rem, Total: Spend{Epsilon: b.Epsilon, Delta: b.Delta}}
	}
	b.SpentEpsilon = settle(b.Epsilon, b.SpentEpsilon+s.Epsilon)
	b.SpentDelta = settle(b.Delta, b.SpentDelta+s.Delta)
	b.Jobs++
	return b, nil
}

// settle snaps a spent amount that is within the tolerance of the total (on
// either side) to the total, so rounding never leaves a sliver or an
// overdraft.
func settle(total, spent float64) float64 {
	if math.Abs(total-spent) <= tol(total) {
		return total
	}
	return spent
}

// ExhaustedError is returned by [Budget.Charge] when a job asks for more
// than remains.
type ExhaustedError struct {
	Asked, Remaining Spend
	Total            Spend // the budget's totals
}

func (e *ExhaustedError) Error() string {
	withDelta := e.Asked.Delta != 0 || e.Total.Delta != 0
	var sb strings.Builder
	sb.WriteString("privacy budget exhausted: the job asks ")
	sb.WriteString(e.Asked.format(withDelta))
	sb.WriteString(" but only ")
	sb.WriteString(e.Remaining.format(withDelta))
	sb.WriteString(" remains of ")
	if withDelta {
		sb.WriteString(e.Total.format(true))
	} else {
		sb.WriteString(num(e.Total.Epsilon))
	}
	sb.WriteString("; ask the provider for a new agreement or a larger budget")
	return sb.String()
}

func (s Spend) format(withDelta bool) string {
	if !withDelta {
		return "ε=" + num(s.Epsilon)
	}
	return "ε=" + num(s.Epsilon) + ", δ=" + num(s.Delta)
}

// num formats an amount without float64 noise (0.19999999999999996 → 0.2).
func num(x float64) string { return strconv.FormatFloat(x, 'g', 10, 64) }
