package jobs

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/datasandbox/dsbx/operators"
	"github.com/datasandbox/dsbx/policies"
	"github.com/datasandbox/dsbx/privacy"
)

// spent is what operator has spent of its privacy budget on dataset, over
// every agreement.
func (s *Service) spent(ctx context.Context, operator, dataset string) (privacy.Spend, int, error) {
	var sp privacy.Spend
	var jobs int
	err := s.db.QueryRowContext(ctx, `SELECT coalesce(sum(epsilon), 0), coalesce(sum(delta), 0), count(*) FROM privacy_spend WHERE operator = ? AND dataset = ?`,
		operator, dataset).Scan(&sp.Epsilon, &sp.Delta, &jobs)
	if err != nil {
		return privacy.Spend{}, 0, fmt.Errorf("privacy budget of %s on %s: %w", operator, dataset, err)
	}
	return sp, jobs, nil
}

// privacyFacts is what policies learn of an agreement's privacy terms and
// the budget spent under them.
func privacyFacts(c *privacy.Config, sp privacy.Spend) policies.Privacy {
	if c == nil {
		return policies.Privacy{}
	}
	p := policies.Privacy{
		Mechanism: c.Mechanism, Epsilon: c.Epsilon, Delta: c.Delta, EpsilonPerJob: c.EpsilonPerJob, DeltaPerJob: c.DeltaPerJob,
		SpentEpsilon: sp.Epsilon, SpentDelta: sp.Delta, Bounded: []string{},
	}
	for f := range c.Bounds {
		p.Bounded = append(p.Bounded, f)
	}
	sort.Strings(p.Bounded)
	return p
}

// charge spends a DP job's share of its operator's budget on the dataset,
// or says why it cannot: the policy admitted the job on the budget as it
// stood, and budgetMu makes sure two jobs cannot both take the last of it.
// The caller holds budgetMu until the spend is recorded.
func (s *Service) charge(ctx context.Context, operator, dataset string, c *privacy.Config) (privacy.Spend, error) {
	sp, n, err := s.spent(ctx, operator, dataset)
	if err != nil {
		return privacy.Spend{}, err
	}
	b := c.NewBudget()
	b.SpentEpsilon, b.SpentDelta, b.Jobs = sp.Epsilon, sp.Delta, n
	if _, err := b.Charge(c.JobSpend()); err != nil {
		return privacy.Spend{}, err
	}
	return c.JobSpend(), nil
}

// recordSpend writes a DP job's spend into the ledger.
func (s *Service) recordSpend(ctx context.Context, j Job, sp privacy.Spend) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO privacy_spend(job, operator, dataset, agreement, epsilon, delta, spent_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		j.ID, j.Operator, j.Dataset, j.Agreement, sp.Epsilon, sp.Delta, j.CreatedAt.Format(time.RFC3339Nano))
	if err != nil {
		return fmt.Errorf("job %d: record privacy spend: %w", j.ID, err)
	}
	return nil
}

// Budget is an operator's differential-privacy budget on a dataset under
// one agreement, and what it has spent on the dataset so far.
type Budget struct {
	Operator  string  `json:"operator"`
	Dataset   string  `json:"dataset"`
	Agreement int64   `json:"agreement_id"`
	Mechanism string  `json:"mechanism"`
	Epsilon   float64 `json:"epsilon"`
	Delta     float64 `json:"delta,omitempty"`
	// PerJob is what each job spends.
	PerJob privacy.Spend `json:"per_job"`
	Spent  privacy.Spend `json:"spent"`
	// Remaining is what is left under this agreement's totals.
	Remaining privacy.Spend `json:"remaining"`
	Jobs      int           `json:"jobs"`
}

// Budgets lists the privacy budgets p may see: an operator or researcher
// its own; the admin, regulators and reviewers everyone's.
func (s *Service) Budgets(ctx context.Context, p operators.Principal) ([]Budget, error) {
	holder := p.Name
	if p.Has(operators.RoleAdmin) || p.Has(operators.RoleRegulator) || p.Has(operators.RoleReviewer) {
		holder = ""
	}
	list, err := s.agreements.Private(ctx, holder)
	if err != nil {
		return nil, err
	}
	out := []Budget{}
	for _, a := range list {
		c := a.Outputs.Privacy
		for _, sc := range a.Scope {
			sp, n, err := s.spent(ctx, a.Holder, sc.Dataset)
			if err != nil {
				return nil, err
			}
			b := c.NewBudget()
			b.SpentEpsilon, b.SpentDelta, b.Jobs = sp.Epsilon, sp.Delta, n
			out = append(out, Budget{Operator: a.Holder, Dataset: sc.Dataset, Agreement: a.ID, Mechanism: c.Mechanism,
				Epsilon: c.Epsilon, Delta: c.Delta, PerJob: c.JobSpend(), Spent: sp, Remaining: b.Remaining(), Jobs: n})
		}
	}
	return out, nil
}
