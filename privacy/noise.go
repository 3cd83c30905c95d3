package privacy

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
)

// Noise draws noise deterministically from a seed: the same seed and the
// same (cell, column) always give the same draw, so re-running a job
// reproduces its release and re-submitting the same query cannot average
// the noise away. A Noise is safe for concurrent use.
type Noise struct {
	seed [32]byte
}

// NewNoise returns a noise source for seed (see [Seed]).
func NewNoise(seed [32]byte) *Noise { return &Noise{seed: seed} }

// uniforms derives two independent uniform float64s in the open interval
// (0, 1) from SHA-256(seed || cell || column), where cell is 8 bytes
// big-endian (two's complement) and column is the rest, so the encoding is
// unambiguous. The first uniform comes from bytes 0–7 and the second from
// bytes 8–15; bytes 16–31 stand in for a word whose 53 bits are all zero.
func (n *Noise) uniforms(cell int, column string) (float64, float64) {
	h := sha256.New()
	h.Write(n.seed[:])
	var c [8]byte
	binary.BigEndian.PutUint64(c[:], uint64(int64(cell)))
	h.Write(c[:])
	h.Write([]byte(column))
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	word := func(i int) uint64 { return binary.BigEndian.Uint64(sum[8*i:]) }
	return unit(word(0), word(2)), unit(word(1), word(3))
}

// unit maps the top 53 bits k of x to k/2⁵³, exactly representable and
// strictly inside (0, 1). k = 0 (probability 2⁻⁵³) falls back to the spare
// word, and to the smallest grid point if that is zero too, so the grid is
// {1, …, 2⁵³−1}/2⁵³: uniform up to 2⁻⁵³ and symmetric about ½.
func unit(x, spare uint64) float64 {
	k := x >> 11
	if k == 0 {
		k = spare >> 11
	}
	if k == 0 {
		k = 1
	}
	return float64(k) / (1 << 53)
}

// Laplace returns a Laplace(0, b) draw for the given cell index and column
// name, by the inverse CDF. The result is finite for every finite b > 0; for
// b that is not a finite positive number it returns NaN, which no release
// path accepts (so invalid scales can never silently mean "no noise").
func (n *Noise) Laplace(cell int, column string, b float64) float64 {
	if !(b > 0) || math.IsInf(b, 1) {
		return math.NaN()
	}
	u, _ := n.uniforms(cell, column)
	return laplaceInv(u, b)
}

// laplaceInv is the Laplace(0, b) inverse CDF at u in (0, 1).
func laplaceInv(u, b float64) float64 {
	// F⁻¹(u) = -b·sgn(u-½)·ln(1-2|u-½|). For u on the k/2⁵³ grid,
	// 1-2|u-½| >= 2⁻⁵², so the logarithm is finite (|x| <= 36.1·b).
	w := u - 0.5
	x := -b * math.Log1p(-2*math.Abs(w))
	if w < 0 {
		return -x
	}
	return x
}

// Gaussian returns an N(0, σ²) draw for the given cell index and column
// name, by Box–Muller. The result is finite for every finite σ > 0; for σ
// that is not a finite positive number it returns NaN.
func (n *Noise) Gaussian(cell int, column string, sigma float64) float64 {
	if !(sigma > 0) || math.IsInf(sigma, 1) {
		return math.NaN()
	}
	u1, u2 := n.uniforms(cell, column)
	return gaussianBM(u1, u2, sigma)
}

// gaussianBM is Box–Muller on u1, u2 in (0, 1): u1 > 0 keeps the logarithm
// finite (|z| <= 8.6·σ).
func gaussianBM(u1, u2, sigma float64) float64 {
	return sigma * math.Sqrt(-2*math.Log(u1)) * math.Cos(2*math.Pi*u2)
}

// Release returns value plus noise for one aggregate of one cell, with the
// scale from [Scale] and the mechanism from c. Counts are rounded to the
// nearest integer and never go below 0; sums are returned unrounded. Both
// are post-processing and cost no extra privacy.
func (n *Noise) Release(c Config, a Aggregate, aggregates, cell int, column string, value float64) (float64, error) {
	if math.IsNaN(value) || math.IsInf(value, 0) {
		return 0, fmt.Errorf("privacy: cell %d column %q: cannot release the non-finite value %v", cell, column, value)
	}
	scale, err := Scale(c, a, aggregates)
	if err != nil {
		return 0, err
	}
	var noise float64
	if scale > 0 { // scale 0: bounds [0, 0], the sum is always 0 and reveals nothing
		switch c.Mechanism {
		case Laplace:
			noise = n.Laplace(cell, column, scale)
		case Gaussian:
			noise = n.Gaussian(cell, column, scale)
		}
	}
	out := value + noise
	if math.IsNaN(out) || math.IsInf(out, 0) {
		return 0, fmt.Errorf("privacy: cell %d column %q: noise scale %v is too large to release a finite value", cell, column, scale)
	}
	if a.Kind == Count {
		out = math.Round(out)
		if out <= 0 { // also turns -0 into 0
			out = 0
		}
	}
	return out, nil
}

// Seed derives a job's noise seed as HMAC-SHA256(secret, …) over what makes
// a release the same release: the dataset version, the code hash and the
// agreement id. The message is versioned and length-prefixed, so distinct
// inputs never collide by concatenation.
func Seed(secret []byte, version, codeHash string, agreement int64) [32]byte {
	m := hmac.New(sha256.New, secret)
	var buf [8]byte
	field := func(s string) {
		binary.BigEndian.PutUint64(buf[:], uint64(len(s)))
		m.Write(buf[:])
		m.Write([]byte(s))
	}
	field("dsbx/privacy/seed/v1")
	field(version)
	field(codeHash)
	binary.BigEndian.PutUint64(buf[:], uint64(agreement))
	m.Write(buf[:])
	var out [32]byte
	m.Sum(out[:0])
	return out
}
