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
	Name   string `json:"name"`
	Passed bool   `json:"passed"`
	Detail string `json:"detail"`
}

// Release outcomes.
const (
	OutcomeRelease = "release"
	OutcomeHold    = "hold"
)

// ReleaseDecision is the release policy's answer.
type ReleaseDecision struct {
	Outcome string   `json:"outcome"`
	Reasons []Reason `json:"reasons"`
	Bundle  string   `json:"bundle"`
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
