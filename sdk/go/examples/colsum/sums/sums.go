// Package sums is colsum's aggregate: the guest runs it in the sandbox and
// dsbx-bench runs the same code natively, so the benchmark compares one
// loop on two engines.
package sums

import (
	"math"

	"github.com/apache/arrow-go/v18/arrow/array"
)

// Sums is what colsum computes.
type Sums struct {
	Rows, Values  int64 // rows, non-NULL amounts
	Sum, Min, Max int64
}

// Add folds one int64 array into s. The common case, no NULLs, is a tight
// loop over the values buffer.
func (s *Sums) Add(a *array.Int64) {
	vals := a.Int64Values()
	s.Rows += int64(len(vals))
	if len(vals) == 0 {
		return
	}
	if a.NullN() == 0 {
		sum, lo, hi := s.Sum, s.Min, s.Max
		if s.Values == 0 {
			lo, hi = math.MaxInt64, math.MinInt64
		}
		// Eight values per iteration: in the sandbox every loop back-edge
		// costs a termination check (a call out of the compiled code), so
		// the loop is unrolled. Natively it makes no difference.
		i := 0
		for ; i+8 <= len(vals); i += 8 {
			c := vals[i : i+8 : i+8]
			sum += c[0] + c[1] + c[2] + c[3] + c[4] + c[5] + c[6] + c[7]
			lo = min(lo, c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7])
			hi = max(hi, c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7])
		}
		for _, v := range vals[i:] {
			sum += v
			lo = min(lo, v)
			hi = max(hi, v)
		}
		s.Sum, s.Min, s.Max = sum, lo, hi
		s.Values += int64(len(vals))
		return
	}
	for i, v := range vals {
		if a.IsNull(i) {
			continue
		}
		if s.Values == 0 {
			s.Min, s.Max = v, v
		}
		s.Sum += v
		s.Min = min(s.Min, v)
		s.Max = max(s.Max, v)
		s.Values++
	}
}
