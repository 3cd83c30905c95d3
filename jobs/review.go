package jobs

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/datasandbox/dsbx/operators"
)

// Review is what output checkers (and the submitter) have said about a
// held result.
type Review struct {
	// Required is how many different output checkers must approve the
	// result, as the release policy last said.
	Required int `json:"required"`
	// Justification is the submitter's case for an exception.
	Justification string           `json:"justification,omitempty"`
	Decisions     []ReviewDecision `json:"decisions,omitempty"`
}

// ReviewDecision is one output checker's decision.
type ReviewDecision struct {
	Reviewer string    `json:"reviewer"`
	Approve  bool      `json:"approve"`
	Reason   string    `json:"reason"`
	At       time.Time `json:"at"`
}

// approvals names the reviewers who approved, in order; never nil.
func (r *Review) approvals() []string {
	out := []string{}
	if r == nil {
		return out
	}
	for _, d := range r.Decisions {
		if d.Approve {
			out = append(out, d.Reviewer)
		}
	}
	return out
}

// ReviewRequest is an output checker's decision on a held result.
type ReviewRequest struct {
	Approve bool   `json:"approve"`
	Reason  string `json:"reason"`
}

// maxReviewText bounds a reason or a justification.
const maxReviewText = 4000

func reviewText(what, s string) (string, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return "", &InputError{Code: "bad_request", Msg: what + " is required: say why, for the record"}
	case len(s) > maxReviewText || !utf8.ValidString(s):
		return "", &InputError{Code: "bad_request", Msg: fmt.Sprintf("%s must be valid UTF-8 of at most %d bytes", what, maxReviewText)}
	}
	return s, nil
}

// Review records output checker p's decision on held job id. A rejection
// rejects the result for good. An approval releases it once the release
// policy is satisfied (important and core data need two different
// checkers) and nothing was withdrawn meanwhile; until then the job stays
// held. Nobody reviews their own job, and nobody decides twice.
func (s *Service) Review(ctx context.Context, p operators.Principal, id int64, req ReviewRequest) (Job, error) {
	if !p.Has(operators.RoleReviewer) {
		return Job{}, &operators.ForbiddenError{Msg: "only output checkers (role reviewer) review held results"}
	}
	reason, err := reviewText("reason", req.Reason)
	if err != nil {
		return Job{}, err
	}
	s.reviewMu.Lock()
	defer s.reviewMu.Unlock()
	j, err := s.load(ctx, id)
	if err != nil {
		return Job{}, err
	}
	switch {
	case j.State != StateHeld:
		return Job{}, &operators.ConflictError{Msg: fmt.Sprintf("job %d is %s; only held results are reviewed", id, j.State)}
	case j.Operator == p.Name:
		return Job{}, &operators.ForbiddenError{Msg: fmt.Sprintf("job %d is %s's own; another output checker must review it", id, p.Name)}
	case j.Review != nil && slices.ContainsFunc(j.Review.Decisions, func(d ReviewDecision) bool { return d.Reviewer == p.Name }):
		return Job{}, &operators.ConflictError{Msg: fmt.Sprintf("%s already reviewed job %d; a second approval must come from another output checker", p.Name, id)}
	}
	if j.Review == nil {
		j.Review = &Review{}
	}
	d := ReviewDecision{Reviewer: p.Name, Approve: req.Approve, Reason: reason, At: s.now().UTC()}
	j.Review.Decisions = append(j.Review.Decisions, d)
	if !req.Approve {
		j.Error = fmt.Sprintf("output checker %s rejected the result: %s", p.Name, reason)
		if err := s.stepAs(ctx, &j, p.Name, "review.rejected", StateRejected, d); err != nil {
			return Job{}, err
		}
		return j, nil
	}
	decision, err := s.decideRelease(ctx, &j)
	if err != nil {
		return Job{}, err
	}
	if _, err := s.appendAs(ctx, &j, p.Name, "review.approved", map[string]any{"review": d, "release": decision}); err != nil {
		return Job{}, err
	}
	if err := s.settle(ctx, &j, decision, "", nil); err != nil {
		return Job{}, err
	}
	return j, nil
}

// Justify attaches the submitter's case for an exception to held job id,
// for the output checkers; a later justification replaces it.
func (s *Service) Justify(ctx context.Context, p operators.Principal, id int64, text string) (Job, error) {
	text, err := reviewText("justification", text)
	if err != nil {
		return Job{}, err
	}
	s.reviewMu.Lock()
	defer s.reviewMu.Unlock()
	j, err := s.load(ctx, id)
	if err != nil {
		return Job{}, err
	}
	if j.Operator != p.Name {
		return Job{}, fmt.Errorf("job %d: %w", id, ErrNotFound)
	}
	if j.State != StateHeld {
		return Job{}, &operators.ConflictError{Msg: fmt.Sprintf("job %d is %s; only a held result can be justified", id, j.State)}
	}
	if j.Review == nil {
		j.Review = &Review{}
	}
	j.Review.Justification = text
	if err := s.stepAs(ctx, &j, p.Name, "review.justified", StateHeld, map[string]any{"justification": text}); err != nil {
		return Job{}, err
	}
	return j, nil
}

// ReviewQueue lists the held results p may review, oldest first: those of
// other operators, that p has not decided yet.
func (s *Service) ReviewQueue(ctx context.Context, p operators.Principal) ([]Job, error) {
	if !p.Has(operators.RoleReviewer) {
		return nil, &operators.ForbiddenError{Msg: "only output checkers (role reviewer) have a review queue"}
	}
	held, err := s.query(ctx, `WHERE state = ? ORDER BY id`, StateHeld)
	if err != nil {
		return nil, err
	}
	out := []Job{}
	for _, j := range held {
		if j.Operator == p.Name || (j.Review != nil && slices.ContainsFunc(j.Review.Decisions, func(d ReviewDecision) bool { return d.Reviewer == p.Name })) {
			continue
		}
		out = append(out, j)
	}
	return out, nil
}
