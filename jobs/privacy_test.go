package jobs

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/datasandbox/dsbx/operators"
	"github.com/datasandbox/dsbx/policies"
	"github.com/datasandbox/dsbx/privacy"
)

// dpTerms are differential-privacy terms on people: ε 1 in all, 0.4 a job.
func dpTerms() *privacy.Config {
	return &privacy.Config{Mechanism: privacy.Laplace, Epsilon: 1, EpsilonPerJob: 0.4, PersonKey: "id_number",
		MaxContributions: 1, Bounds: map[string][2]float64{"income": {0, 5000}}}
}

// dpPlatform is newPlatform with acme's agreement releasing under dpTerms.
func dpPlatform(t *testing.T) *platform {
	t.Helper()
	p := newPlatform(t)
	// acme's first agreement has no privacy terms; revoke it so the DP one is used.
	for _, a := range p.agreementsOf(t, "acme") {
		if _, err := p.dir.SetStatus(context.Background(), p.principal(t, "admin"), a.ID, operators.StatusRevoked, "replaced by a DP agreement"); err != nil {
			t.Fatal(err)
		}
	}
	p.agree(t, "acme", operators.Approval{
		Fields:  map[string]map[string]string{"people": {"district": "raw", "income": "raw"}},
		Outputs: operators.OutputRules{Privacy: dpTerms()},
	})
	return p
}

func (p *platform) agreementsOf(t *testing.T, holder string) []operators.Agreement {
	t.Helper()
	list, err := p.dir.Applicable(context.Background(), holder, "people")
	if err != nil {
		t.Fatal(err)
	}
	return list
}

const dpCount = `SELECT district, count(*) AS n, sum(income) AS total FROM people GROUP BY district`

// The budget is spent at admission, per operator and dataset; the job that
// would overspend it is denied, and the spent budget is visible.
func TestPrivacyBudgetExhaustionDeniesTheNextJob(t *testing.T) {
	p := dpPlatform(t)
	ctx := context.Background()
	acme := p.principal(t, "acme")
	p.submit(t, acme, dpCount)
	p.submit(t, acme, dpCount)
	j, err := p.svc.Submit(ctx, acme, Request{Dataset: "people", SQL: dpCount, Purpose: testPurpose})
	if err != nil {
		t.Fatal(err)
	}
	if j.State != StateDenied || !slices.ContainsFunc(j.Decision.Reasons, func(r policies.Reason) bool { return r.Code == "privacy_budget_exhausted" }) {
		t.Fatalf("third job at ε 0.4 of 1: %s %+v", j.State, j.Decision.Reasons)
	}
	budgets, err := p.svc.Budgets(ctx, acme)
	if err != nil || len(budgets) != 1 {
		t.Fatalf("budgets %+v %v", budgets, err)
	}
	b := budgets[0]
	if b.Operator != "acme" || b.Dataset != "people" || b.Jobs != 2 || b.Spent.Epsilon < 0.79 || b.Spent.Epsilon > 0.81 || b.Remaining.Epsilon > 0.21 {
		t.Fatalf("budget %+v, want 2 jobs, ε 0.8 spent", b)
	}
	if others, _ := p.svc.Budgets(ctx, p.principal(t, "beta")); len(others) != 0 {
		t.Fatalf("beta sees acme's budget: %+v", others)
	}
	if all, _ := p.svc.Budgets(ctx, p.principal(t, "admin")); len(all) != 1 {
		t.Fatalf("the admin sees %d budgets, want 1", len(all))
	}
	// A dry run spends nothing.
	if _, err := p.svc.Explain(ctx, acme, Request{Dataset: "people", SQL: dpCount, Purpose: testPurpose}); err != nil {
		t.Fatal(err)
	}
	if again, _ := p.svc.Budgets(ctx, acme); again[0].Jobs != 2 {
		t.Fatalf("explain spent budget: %+v", again[0])
	}
}

// Concurrent submissions cannot both take the last of a budget.
func TestPrivacyBudgetUnderConcurrency(t *testing.T) {
	p := dpPlatform(t)
	acme := p.principal(t, "acme")
	var wg sync.WaitGroup
	var mu sync.Mutex
	queued := 0
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			j, err := p.svc.Submit(context.Background(), acme, Request{Dataset: "people", SQL: dpCount, Purpose: testPurpose})
			if err != nil {
				t.Error(err)
				return
			}
			if j.State == StateQueued {
				mu.Lock()
				queued++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if queued != 2 {
		t.Fatalf("%d jobs admitted at ε 0.4 each on a budget of 1, want 2", queued)
	}
}

// Only bare counts and sums of bounded fields are noised.
func TestPrivacyRefusesWhatCannotBeNoised(t *testing.T) {
	p := dpPlatform(t)
	acme := p.principal(t, "acme")
	for _, q := range []string{
		`SELECT district, avg(income) AS mean FROM people GROUP BY district`,
		`SELECT district, 2 * sum(income) AS twice FROM people GROUP BY district`,
		`SELECT district, income FROM people`,
	} {
		j, err := p.svc.Submit(context.Background(), acme, Request{Dataset: "people", SQL: q, Purpose: testPurpose})
		if err != nil {
			t.Fatal(err)
		}
		if j.State != StateDenied || !slices.ContainsFunc(j.Decision.Reasons, func(r policies.Reason) bool { return r.Code == "privacy_unsupported" }) {
			t.Errorf("%s: %s %+v", q, j.State, j.Decision.Reasons)
		}
	}
}
