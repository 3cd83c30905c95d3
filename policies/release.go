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
