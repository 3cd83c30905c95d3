package policies

import (
	"context"
	"time"
)

// ReleaseInput describes a quarantined result and the checks it went through.
type ReleaseInput struct {
	Now    time.Time `json:"now"`
	Job    Job       `json:"job"`
	Result Result    `json:"result"`
	Checks []Check   `json:"checks"`
	// Dataset is the catalog entry as it stands now, not as it stood at
	// admission: an objection upheld meanwhile holds the result.
	Dataset Dataset `json:"dataset"`
	// Agreement is the agreement the job was admitted under, as it stands
	// now: a suspension, revocation or expiry meanwhile holds the result.
	Agreement Agreement `json:"agreement"`
	// Review is what output checkers have said about the result so far.
	Review Review `json:"review"`
}

// Review is the state of a held result's review.
type Review struct {
	// Justification is the submitter's case for an exception, "" if none.
	Justification string `json:"justification"`
	// Approvals names the reviewers who approved the result, in order.
	Approvals []string `json:"approvals"`
}

// Result is the shape of a quarantined result.
type Result struct {
	Rows    int64    `json:"rows"`
	Bytes   int64    `json:"bytes"`
	SHA256  string   `json:"sha256"`
	Columns []string `json:"columns"`
}

// Check is the outcome of one disclosure check.
type Check struct {
	Name    string `json:"name"`
	Verdict string `json:"verdict"` // pass, review or fail
	Detail  string `json:"detail"`
}

// Check verdicts.
const (
	VerdictPass   = "pass"
	VerdictReview = "review"
	VerdictFail   = "fail"
)

// Release outcomes.
const (
	OutcomeRelease = "release" // the result leaves quarantine now
	OutcomeReview  = "review"  // held until enough output checkers approve it
	OutcomeReject  = "reject"  // never released
)

// ReleaseDecision is the release policy's answer.
type ReleaseDecision struct {
	Outcome string   `json:"outcome"`
	Reasons []Reason `json:"reasons"`
	// Reviewers is how many distinct output checkers must approve a
	// result held for review.
	Reviewers int    `json:"reviewers"`
	Bundle    string `json:"bundle"`
}

// Release evaluates the release policy for in.
func (e *Engine) Release(ctx context.Context, in ReleaseInput) (ReleaseDecision, error) {
	in = releaseDefaults(in)
	var d ReleaseDecision
	if err := eval(ctx, e.release, "release", in, &d); err != nil {
		return ReleaseDecision{}, err
	}
	d.Bundle = e.hash
	return d, nil
}

// Params are the parameters of the disclosure checks and remedies for one
// result, as the release policy sets them from the agreement and dataset.
type Params struct {
	MinCellCount        int64     `json:"min_cell_count"`
	Dominance           Dominance `json:"dominance"`
	MinDegreesOfFreedom int64     `json:"min_degrees_of_freedom"`
	RowLevel            bool      `json:"row_level"`
	CheckAttributes     bool      `json:"check_attributes"`
	Suppress            bool      `json:"suppress"`
	RoundBase           int64     `json:"round_base"`
	// TopCode and BottomCode clamp the values of output columns that derive
	// from one field, by field.
	TopCode    map[string]float64 `json:"top_code"`
	BottomCode map[string]float64 `json:"bottom_code"`
}

// Dominance parameterises the p% and n-k dominance rules.
type Dominance struct {
	P float64 `json:"p"`
	N int     `json:"n"`
	K float64 `json:"k"`
}

// ReleaseParams evaluates the release policy's check parameters for in
// (whose checks and review are not yet known and are ignored).
func (e *Engine) ReleaseParams(ctx context.Context, in ReleaseInput) (Params, error) {
	in = releaseDefaults(in)
	var p Params
	if err := eval(ctx, e.params, "release params", in, &p); err != nil {
		return Params{}, err
	}
	return p, nil
}
