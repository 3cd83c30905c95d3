package privacy

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"testing"
)

func laplaceConfig() Config {
	return Config{
		Mechanism:        Laplace,
		Epsilon:          1,
		EpsilonPerJob:    0.1,
		PersonKey:        "patient_id",
		MaxContributions: 1,
		Bounds:           map[string][2]float64{"cost": {0, 5000}},
	}
}

func gaussianConfig() Config {
	return Config{
		Mechanism:        Gaussian,
		Epsilon:          1,
		Delta:            1e-5,
		EpsilonPerJob:    0.5,
		DeltaPerJob:      1e-6,
		PersonKey:        "patient_id",
		MaxContributions: 1,
	}
}

func TestValidateGood(t *testing.T) {
	for _, c := range []Config{laplaceConfig(), gaussianConfig()} {
		if err := c.Validate(); err != nil {
			t.Errorf("%s: unexpected error: %v", c.Mechanism, err)
		}
	}
	// Per-job equal to the total (after float rounding) is fine.
	c := laplaceConfig()
	c.Epsilon, c.EpsilonPerJob = 0.3, 0.1+0.2
	if err := c.Validate(); err != nil {
		t.Errorf("epsilon_per_job == epsilon: %v", err)
	}
}

func TestValidateBad(t *testing.T) {
	cases := []struct {
		name  string
		edit  func(*Config)
		base  func() Config
		field string // must appear in the error
	}{
		{"unknown mechanism", func(c *Config) { c.Mechanism = "exponential" }, laplaceConfig, "mechanism"},
		{"missing mechanism", func(c *Config) { c.Mechanism = "" }, laplaceConfig, "mechanism"},
		{"zero epsilon", func(c *Config) { c.Epsilon = 0 }, laplaceConfig, "epsilon"},
		{"negative epsilon", func(c *Config) { c.Epsilon = -1 }, laplaceConfig, "epsilon"},
		{"NaN epsilon", func(c *Config) { c.Epsilon = math.NaN() }, laplaceConfig, "epsilon"},
		{"infinite epsilon", func(c *Config) { c.Epsilon = math.Inf(1) }, laplaceConfig, "epsilon"},
		{"zero epsilon per job", func(c *Config) { c.EpsilonPerJob = 0 }, laplaceConfig, "epsilon_per_job"},
		{"per job over total", func(c *Config) { c.EpsilonPerJob = 2 }, laplaceConfig, "epsilon_per_job"},
		{"gaussian without delta", func(c *Config) { c.Delta = 0 }, gaussianConfig, "delta"},
		{"gaussian delta 1", func(c *Config) { c.Delta = 1 }, gaussianConfig, "delta"},
		{"gaussian without delta per job", func(c *Config) { c.DeltaPerJob = 0 }, gaussianConfig, "delta_per_job"},
		{"gaussian delta per job over total", func(c *Config) { c.DeltaPerJob = 1e-4 }, gaussianConfig, "delta_per_job"},
		{"laplace with delta", func(c *Config) { c.Delta = 1e-6 }, laplaceConfig, "delta"},
		{"laplace with delta per job", func(c *Config) { c.DeltaPerJob = 1e-7 }, laplaceConfig, "delta_per_job"},
		{"L zero", func(c *Config) { c.MaxContributions = 0 }, laplaceConfig, "max_contributions"},
		{"L negative", func(c *Config) { c.MaxContributions = -3 }, laplaceConfig, "max_contributions"},
		{"lo > hi", func(c *Config) { c.Bounds = map[string][2]float64{"cost": {10, 1}} }, laplaceConfig, `bounds["cost"]`},
		{"NaN bound", func(c *Config) { c.Bounds = map[string][2]float64{"cost": {math.NaN(), 1}} }, laplaceConfig, `bounds["cost"]`},
		{"empty bound field", func(c *Config) { c.Bounds = map[string][2]float64{"": {0, 1}} }, laplaceConfig, "bounds"},
		{"no person key", func(c *Config) { c.PersonKey = "" }, laplaceConfig, "person_key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.base()
			tc.edit(&c)
			err := c.Validate()
			if err == nil {
				t.Fatalf("Validate accepted %+v", c)
			}
			if !strings.Contains(err.Error(), tc.field) {
				t.Errorf("error %q does not name %s", err, tc.field)
			}
		})
	}
}

func TestValidateReportsAllProblems(t *testing.T) {
	err := Config{Mechanism: Laplace}.Validate()
	if err == nil {
		t.Fatal("empty config accepted")
	}
	for _, f := range []string{"epsilon", "epsilon_per_job", "person_key", "max_contributions"} {
		if !strings.Contains(err.Error(), f) {
			t.Errorf("error %q does not mention %s", err, f)
		}
	}
}

func TestChargeTenTenthsFitOne(t *testing.T) {
	b := laplaceConfig().NewBudget()
	var err error
	for i := 0; i < 10; i++ {
		if b, err = b.Charge(Spend{Epsilon: 0.1}); err != nil {
			t.Fatalf("job %d: %v", i+1, err)
		}
	}
	if b.Jobs != 10 {
		t.Errorf("Jobs = %d, want 10", b.Jobs)
	}
	if r := b.Remaining(); r.Epsilon != 0 || r.Delta != 0 {
		t.Errorf("Remaining = %+v, want zero", r)
	}
	before := b
	after, err := b.Charge(Spend{Epsilon: 0.1})
	var ex *ExhaustedError
	if !errors.As(err, &ex) {
		t.Fatalf("11th job: err = %v, want *ExhaustedError", err)
	}
	if after != before || b != before {
		t.Errorf("budget changed on refusal: %+v -> %+v", before, after)
	}
	if ex.Remaining != (Spend{}) || ex.Asked != (Spend{Epsilon: 0.1}) {
		t.Errorf("ExhaustedError = %+v", ex)
	}
	for _, want := range []string{"privacy budget exhausted", "ε=0.1", "ε=0 remains of 1", "new agreement or a larger budget"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q lacks %q", err, want)
		}
	}
}

func TestChargeExhaustedMidway(t *testing.T) {
	b := Budget{Epsilon: 1}
	b, _ = b.Charge(Spend{Epsilon: 0.4})
	b, _ = b.Charge(Spend{Epsilon: 0.4})
	_, err := b.Charge(Spend{Epsilon: 0.5})
	var ex *ExhaustedError
	if !errors.As(err, &ex) {
		t.Fatalf("err = %v, want *ExhaustedError", err)
	}
	if math.Abs(ex.Remaining.Epsilon-0.2) > 1e-12 {
		t.Errorf("Remaining = %v, want 0.2", ex.Remaining.Epsilon)
	}
	want := "privacy budget exhausted: the job asks ε=0.5 but only ε=0.2 remains of 1; ask the provider for a new agreement or a larger budget"
	if err.Error() != want {
		t.Errorf("message\n got %q\nwant %q", err, want)
	}
	if b.Jobs != 2 {
		t.Errorf("Jobs = %d, want 2", b.Jobs)
	}
}

func TestChargeTracksDelta(t *testing.T) {
	c := gaussianConfig()
	c.Epsilon, c.EpsilonPerJob = 10, 0.1 // ε is plentiful; δ runs out first
	b := c.NewBudget()
	var err error
	for i := 0; i < 10; i++ {
		if b, err = b.Charge(c.JobSpend()); err != nil {
			t.Fatalf("job %d: %v", i+1, err)
		}
	}
	if b.SpentDelta != 1e-5 || math.Abs(b.SpentEpsilon-1) > 1e-12 {
		t.Errorf("spent = ε %v δ %v", b.SpentEpsilon, b.SpentDelta)
	}
	_, err = b.Charge(c.JobSpend())
	var ex *ExhaustedError
	if !errors.As(err, &ex) {
		t.Fatalf("err = %v, want *ExhaustedError on δ", err)
	}
	if ex.Remaining.Delta != 0 || math.Abs(ex.Remaining.Epsilon-9) > 1e-9 {
		t.Errorf("Remaining = %+v", ex.Remaining)
	}
	if !strings.Contains(err.Error(), "δ=1e-06") {
		t.Errorf("message %q does not show δ", err)
	}
}

func TestChargeRejectsInvalidSpend(t *testing.T) {
	b := Budget{Epsilon: 1}
	for _, s := range []Spend{{Epsilon: -0.1}, {Epsilon: math.NaN()}, {Epsilon: 0.1, Delta: math.Inf(1)}} {
		got, err := b.Charge(s)
		if err == nil {
			t.Errorf("Charge(%+v) accepted", s)
		}
		var ex *ExhaustedError
		if errors.As(err, &ex) {
			t.Errorf("Charge(%+v): invalid spend reported as exhaustion", s)
		}
		if got != b {
			t.Errorf("Charge(%+v) changed the budget", s)
		}
	}
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

func TestScale(t *testing.T) {
	count := Aggregate{Kind: Count}
	c := laplaceConfig()
	c.EpsilonPerJob, c.MaxContributions = 1, 1
	if got, err := Scale(c, count, 1); err != nil || got != 1 {
		t.Errorf("laplace count L=1 ε=1 k=1: %v, %v; want 1", got, err)
	}
	if got, err := Scale(c, count, 2); err != nil || got != 2 {
		t.Errorf("laplace count L=1 ε=1 k=2: %v, %v; want 2", got, err)
	}
	c.EpsilonPerJob, c.MaxContributions = 0.5, 2
	if got, err := Scale(c, Aggregate{Kind: Sum, Field: "cost"}, 1); err != nil || got != 20000 {
		t.Errorf("laplace sum [0,5000] L=2 ε=0.5: %v, %v; want 20000", got, err)
	}
	c.Bounds = map[string][2]float64{"delta_t": {-300, 100}} // |lo| dominates
	if got, err := Scale(c, Aggregate{Kind: Sum, Field: "delta_t"}, 2); err != nil || got != 2400 {
		t.Errorf("laplace sum [-300,100] L=2 ε=0.5 k=2: %v, %v; want 2400", got, err)
	}

	g := gaussianConfig() // ε=0.5 δ=1e-6 per job, L=1
	want := 1 * math.Sqrt(2*math.Log(1.25/1e-6)) / 0.5
	if got, err := Scale(g, count, 1); err != nil || !near(got, want) {
		t.Errorf("gaussian count: %v, %v; want %v", got, err, want)
	}
	g.MaxContributions = 3
	g.Bounds = map[string][2]float64{"cost": {0, 10}}
	want = 30 * math.Sqrt(2*math.Log(1.25/(1e-6/2))) / 0.25
	if got, err := Scale(g, Aggregate{Kind: Sum, Field: "cost"}, 2); err != nil || !near(got, want) {
		t.Errorf("gaussian sum k=2: %v, %v; want %v", got, err, want)
	}
	if math.Abs(want-30*4*math.Sqrt(2*math.Log(2.5e6))) > 1e-9 {
		t.Fatal("test arithmetic")
	}
}

func TestScaleErrors(t *testing.T) {
	c := laplaceConfig()
	cases := []struct {
		name string
		c    Config
		a    Aggregate
		k    int
		want string
	}{
		{"sum without bounds", c, Aggregate{Kind: Sum, Field: "age"}, 1, `bounds["age"]`},
		{"sum without field", c, Aggregate{Kind: Sum}, 1, "field"},
		{"unknown kind", c, Aggregate{Kind: "median"}, 1, "median"},
		{"zero aggregates", c, Aggregate{Kind: Count}, 0, "aggregates"},
		{"unknown mechanism", func() Config { c := c; c.Mechanism = "x"; return c }(), Aggregate{Kind: Count}, 1, "mechanism"},
		{"zero epsilon", func() Config { c := c; c.EpsilonPerJob = 0; return c }(), Aggregate{Kind: Count}, 1, "epsilon_per_job"},
		{"zero L", func() Config { c := c; c.MaxContributions = 0; return c }(), Aggregate{Kind: Count}, 1, "max_contributions"},
		{"gaussian without delta", func() Config { c := gaussianConfig(); c.DeltaPerJob = 0; return c }(), Aggregate{Kind: Count}, 1, "delta_per_job"},
		{"gaussian ε >= 1", func() Config { c := gaussianConfig(); c.Epsilon, c.EpsilonPerJob = 4, 2; return c }(), Aggregate{Kind: Count}, 1, "ε < 1"},
	}
	for _, tc := range cases {
		if _, err := Scale(tc.c, tc.a, tc.k); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want one mentioning %s", tc.name, err, tc.want)
		}
	}
	// Gaussian with ε >= 1 per job is fine once split below 1 per value.
	g := gaussianConfig()
	g.Epsilon, g.EpsilonPerJob = 4, 2
	if _, err := Scale(g, Aggregate{Kind: Count}, 4); err != nil {
		t.Errorf("gaussian ε=2 split 4 ways: %v", err)
	}
}

func seed(s string) [32]byte { return Seed([]byte("test-secret"), s, "code", 1) }

func TestNoiseDeterminism(t *testing.T) {
	n := NewNoise(seed("v1"))
	same := NewNoise(seed("v1"))
	other := NewNoise(seed("v2"))

	for _, mech := range []struct {
		name string
		draw func(n *Noise, cell int, col string) float64
	}{
		{"laplace", func(n *Noise, cell int, col string) float64 { return n.Laplace(cell, col, 2) }},
		{"gaussian", func(n *Noise, cell int, col string) float64 { return n.Gaussian(cell, col, 3) }},
	} {
		t.Run(mech.name, func(t *testing.T) {
			a := mech.draw(n, 7, "count")
			if b := mech.draw(n, 7, "count"); a != b {
				t.Errorf("same Noise, same cell/column: %v != %v", a, b)
			}
			if b := mech.draw(same, 7, "count"); a != b {
				t.Errorf("same seed, new Noise: %v != %v", a, b)
			}
			if b := mech.draw(n, 8, "count"); a == b {
				t.Errorf("different cell gave the same draw %v", a)
			}
			if b := mech.draw(n, 7, "sum_cost"); a == b {
				t.Errorf("different column gave the same draw %v", a)
			}
			if b := mech.draw(other, 7, "count"); a == b {
				t.Errorf("different seed gave the same draw %v", a)
			}
			if b := mech.draw(n, -7, "count"); a == b {
				t.Errorf("negative cell gave the same draw %v", a)
			}
		})
	}
}

func TestSeed(t *testing.T) {
	base := Seed([]byte("k"), "v1", "abc", 1)
	if Seed([]byte("k"), "v1", "abc", 1) != base {
		t.Error("Seed is not deterministic")
	}
	for name, s := range map[string][32]byte{
		"secret":        Seed([]byte("K"), "v1", "abc", 1),
		"version":       Seed([]byte("k"), "v2", "abc", 1),
		"code hash":     Seed([]byte("k"), "v1", "abd", 1),
		"agreement":     Seed([]byte("k"), "v1", "abc", 2),
		"concatenation": Seed([]byte("k"), "v1a", "bc", 1),
	} {
		if s == base {
			t.Errorf("changing the %s did not change the seed", name)
		}
	}
}

func TestUniformRange(t *testing.T) {
	lo, hi := unit(0, 0), unit(math.MaxUint64, 0)
	if !(lo > 0 && hi < 1) {
		t.Fatalf("unit range [%v, %v] not inside (0,1)", lo, hi)
	}
	if lo != 1-hi {
		t.Errorf("unit grid not symmetric: %v vs %v", lo, 1-hi)
	}
	if unit(0, 5<<11) != 5.0/(1<<53) {
		t.Errorf("zero word did not fall back to the spare: %v", unit(0, 5<<11))
	}
	if laplaceInv(0.5, 2) != 0 {
		t.Errorf("laplaceInv(½) = %v", laplaceInv(0.5, 2))
	}
	for _, u := range []float64{lo, hi, 0.5 + 1.0/(1<<53), 0.5 - 1.0/(1<<53)} {
		if x := laplaceInv(u, 2); math.IsNaN(x) || math.IsInf(x, 0) {
			t.Errorf("laplaceInv(%v) = %v", u, x)
		}
		for _, u2 := range []float64{lo, hi} {
			if x := gaussianBM(u, u2, 3); math.IsNaN(x) || math.IsInf(x, 0) {
				t.Errorf("gaussianBM(%v, %v) = %v", u, u2, x)
			}
		}
	}
	if laplaceInv(lo, 1) >= 0 || laplaceInv(hi, 1) <= 0 || laplaceInv(lo, 1) != -laplaceInv(hi, 1) {
		t.Errorf("laplaceInv tails: %v, %v", laplaceInv(lo, 1), laplaceInv(hi, 1))
	}
	n := NewNoise(seed("v1"))
	for _, b := range []float64{0, -1, math.NaN(), math.Inf(1)} {
		if !math.IsNaN(n.Laplace(0, "x", b)) || !math.IsNaN(n.Gaussian(0, "x", b)) {
			t.Errorf("scale %v: want NaN for an invalid scale", b)
		}
	}
}

func draws(f func(cell int) float64, count int) []float64 {
	xs := make([]float64, count)
	for i := range xs {
		xs[i] = f(i)
	}
	return xs
}

func moments(xs []float64) (mean, mad, variance float64) {
	for _, x := range xs {
		mean += x
		mad += math.Abs(x)
	}
	n := float64(len(xs))
	mean /= n
	mad /= n
	for _, x := range xs {
		variance += (x - mean) * (x - mean)
	}
	variance /= n - 1
	return
}

func TestLaplaceDistribution(t *testing.T) {
	const b = 2.0
	for _, s := range []string{"v1", "v2", "v3"} {
		n := NewNoise(seed(s))
		xs := draws(func(i int) float64 { return n.Laplace(i, "count", b) }, 20000)
		mean, mad, variance := moments(xs)
		if math.Abs(mean) > 0.1 {
			t.Errorf("seed %s: mean %v, want within 0.1 of 0", s, mean)
		}
		if math.Abs(mad-b)/b > 0.05 {
			t.Errorf("seed %s: mean absolute deviation %v, want within 5%% of %v", s, mad, b)
		}
		if math.Abs(variance-2*b*b)/(2*b*b) > 0.10 {
			t.Errorf("seed %s: variance %v, want within 10%% of %v", s, variance, 2*b*b)
		}
		// Kolmogorov–Smirnov against the Laplace CDF; the 0.1% critical
		// value for n=20000 is 1.95/√n ≈ 0.0138.
		if d := ksDistance(xs, func(x float64) float64 {
			if x < 0 {
				return 0.5 * math.Exp(x/b)
			}
			return 1 - 0.5*math.Exp(-x/b)
		}); d > 0.0138 {
			t.Errorf("seed %s: KS distance %v to Laplace(0, %v)", s, d, b)
		}
	}
}

func TestGaussianDistribution(t *testing.T) {
	const sigma = 3.0
	for _, s := range []string{"v1", "v2", "v3"} {
		n := NewNoise(seed(s))
		xs := draws(func(i int) float64 { return n.Gaussian(i, "sum_cost", sigma) }, 20000)
		mean, _, variance := moments(xs)
		if math.Abs(mean) > 0.15 {
			t.Errorf("seed %s: mean %v, want within 0.15 of 0", s, mean)
		}
		if sd := math.Sqrt(variance); math.Abs(sd-sigma)/sigma > 0.05 {
			t.Errorf("seed %s: sample std %v, want within 5%% of %v", s, sd, sigma)
		}
		if d := ksDistance(xs, func(x float64) float64 {
			return 0.5 * math.Erfc(-x/(sigma*math.Sqrt2))
		}); d > 0.0138 {
			t.Errorf("seed %s: KS distance %v to N(0, %v²)", s, d, sigma)
		}
	}
}

func ksDistance(xs []float64, cdf func(float64) float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	n := float64(len(s))
	var d float64
	for i, x := range s {
		f := cdf(x)
		d = math.Max(d, math.Max(math.Abs(float64(i+1)/n-f), math.Abs(f-float64(i)/n)))
	}
	return d
}

func TestReleaseCounts(t *testing.T) {
	c := laplaceConfig()
	c.EpsilonPerJob = 0.1 // b = 10: plenty of negative draws to clamp
	n := NewNoise(seed("v1"))
	count := Aggregate{Kind: Count}
	zeros, moved := 0, 0
	for cell := 0; cell < 2000; cell++ {
		v, err := n.Release(c, count, 2, cell, "n", 3)
		if err != nil {
			t.Fatal(err)
		}
		if v < 0 || v != math.Trunc(v) || math.Signbit(v) {
			t.Fatalf("cell %d: released count %v is not a non-negative integer", cell, v)
		}
		if v == 0 {
			zeros++
		}
		if v != 3 {
			moved++
		}
		again, _ := n.Release(c, count, 2, cell, "n", 3)
		if again != v {
			t.Fatalf("cell %d: release not reproducible: %v then %v", cell, v, again)
		}
	}
	if zeros == 0 || moved < 1500 {
		t.Errorf("noise looks absent: %d zeros, %d of 2000 moved", zeros, moved)
	}

	g := gaussianConfig()
	for cell := 0; cell < 500; cell++ {
		v, err := n.Release(g, count, 1, cell, "n", 0)
		if err != nil {
			t.Fatal(err)
		}
		if v < 0 || v != math.Trunc(v) || math.Signbit(v) {
			t.Fatalf("gaussian cell %d: released count %v is not a non-negative integer", cell, v)
		}
	}
}

func TestReleaseSums(t *testing.T) {
	c := laplaceConfig()
	n := NewNoise(seed("v1"))
	sum := Aggregate{Kind: Sum, Field: "cost"}
	fractional := 0
	for cell := 0; cell < 100; cell++ {
		v, err := n.Release(c, sum, 2, cell, "sum_cost", 1234.5)
		if err != nil {
			t.Fatal(err)
		}
		want := 1234.5 + n.Laplace(cell, "sum_cost", 2*5000/0.1)
		if v != want {
			t.Fatalf("cell %d: sum %v, want value + Laplace draw %v", cell, v, want)
		}
		if v != math.Trunc(v) {
			fractional++
		}
	}
	if fractional == 0 {
		t.Error("sums look rounded")
	}
	// A zero-width range at zero has sensitivity 0: no noise needed.
	c.Bounds["flag"] = [2]float64{0, 0}
	if v, err := n.Release(c, Aggregate{Kind: Sum, Field: "flag"}, 1, 0, "sum_flag", 0); err != nil || v != 0 {
		t.Errorf("zero-sensitivity sum: %v, %v", v, err)
	}
}

func TestReleaseErrors(t *testing.T) {
	n := NewNoise(seed("v1"))
	c := laplaceConfig()
	if _, err := n.Release(c, Aggregate{Kind: Sum, Field: "age"}, 1, 0, "sum_age", 10); err == nil {
		t.Error("sum over a field without bounds released")
	}
	if _, err := n.Release(c, Aggregate{Kind: Count}, 1, 0, "n", math.NaN()); err == nil {
		t.Error("NaN value released")
	}
	c.Bounds["huge"] = [2]float64{0, math.MaxFloat64}
	if _, err := n.Release(c, Aggregate{Kind: Sum, Field: "huge"}, 1, 0, "sum_huge", 0); err == nil {
		t.Error("infinite release accepted")
	}
}

func ExampleBudget_Charge() {
	c := Config{Mechanism: Laplace, Epsilon: 1, EpsilonPerJob: 0.4, PersonKey: "id", MaxContributions: 1}
	b := c.NewBudget()
	for i := 0; i < 3; i++ {
		var err error
		if b, err = b.Charge(c.JobSpend()); err != nil {
			fmt.Println(err)
		}
	}
	fmt.Println(b.Jobs, b.Remaining().Epsilon)
	// Output:
	// privacy budget exhausted: the job asks ε=0.4 but only ε=0.2 remains of 1; ask the provider for a new agreement or a larger budget
	// 2 0.19999999999999996
}
