package policies

import (
	"context"
	"time"
)

// AdmissionInput is the fact sheet for one job.
type AdmissionInput struct {
	Now        time.Time   `json:"now"`
	Principal  Principal   `json:"principal"`
	Dataset    Dataset     `json:"dataset"`
	Agreements []Agreement `json:"agreements"`
	Job        Job         `json:"job"`
}

// Principal is who submits the job.
type Principal struct {
	Name         string   `json:"name"`
	Roles        []string `json:"roles"`
	Organization string   `json:"organization"`
}

// Dataset is the catalog entry of the pinned dataset version.
type Dataset struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Open    string `json:"open"`
	Grade   string `json:"grade"`
	// Status is active or suspended (an objection was upheld);
	// SuspendedFields are fields suspended on their own.
	Status          string   `json:"status"`
	SuspendedFields []string `json:"suspended_fields"`
	// VersionStatus is active, sealed or destroyed.
	VersionStatus string  `json:"version_status"`
	Fields        []Field `json:"fields"`
}

// Field is a column's catalog label.
type Field struct {
	Name        string `json:"name"`
	Type        string `json:"type"`
	Sensitivity string `json:"sensitivity"`
	Identifier  string `json:"identifier"`
}

// Agreement is one of the principal's agreements covering the dataset, as
// it stands at the time of the decision, seen from that dataset.
type Agreement struct {
	ID       int64  `json:"id"`
	Kind     string `json:"kind"`
	Provider string `json:"provider"`
	// Version is the version of the dataset the agreement pins, or "" for
	// the latest.
	Version string `json:"version"`
	// Fields maps each covered field of the dataset to the form it is seen
	// in: raw, masked, hashed or generalised.
	Fields   map[string]string `json:"fields"`
	Purposes []string          `json:"purposes"`
	Outputs  OutputRules       `json:"outputs"`
	Quotas   Quotas            `json:"quotas"`
	Usage    Usage             `json:"usage"`
	// ValidFrom and ValidUntil are RFC 3339 instants; ValidUntil is the
	// first instant no longer covered.
	ValidFrom  string `json:"valid_from"`
	ValidUntil string `json:"valid_until"`
	// Status is active, suspended, revoked or expired.
	Status string `json:"status"`
}

// OutputRules are an agreement's limits on what may leave.
type OutputRules struct {
	AggregatesOnly bool  `json:"aggregates_only"`
	MinCellCount   int64 `json:"min_cell_count"`
	RowLevel       bool  `json:"row_level"`
	RoundBase      int64 `json:"round_base"`
	// TopCode and BottomCode clamp a field's released values from above
	// and below (field → value; null when none).
	TopCode    map[string]float64 `json:"top_code"`
	BottomCode map[string]float64 `json:"bottom_code"`
	Privacy    Privacy            `json:"privacy"`
}

// Privacy is an agreement's differential-privacy terms and what the
// operator has spent of its budget on the dataset; Mechanism is "" when
// the agreement has none.
type Privacy struct {
	Mechanism     string   `json:"mechanism"`
	Epsilon       float64  `json:"epsilon"`
	Delta         float64  `json:"delta"`
	EpsilonPerJob float64  `json:"epsilon_per_job"`
	DeltaPerJob   float64  `json:"delta_per_job"`
	SpentEpsilon  float64  `json:"spent_epsilon"`
	SpentDelta    float64  `json:"spent_delta"`
	Bounded       []string `json:"bounded"` // fields with clamp bounds: the only fields a noisy sum may add up
}

// Quotas bound the jobs run under an agreement; 0 is unlimited.
type Quotas struct {
	MaxJobs    int64 `json:"max_jobs"`
	JobsPerDay int64 `json:"jobs_per_day"`
}

// Usage counts the jobs admitted under an agreement so far, in total and
// since midnight (China Standard Time).
type Usage struct {
	Jobs      int64 `json:"jobs"`
	JobsToday int64 `json:"jobs_today"`
}

// Job is what the submitter asked for, as the SQL analysis sees it.
type Job struct {
	Kind      string   `json:"kind"`
	Purpose   string   `json:"purpose"`
	CodeHash  string   `json:"code_sha256"`
	Tables    []string `json:"tables"`
	Fields    []string `json:"fields"`
	Functions []string `json:"functions"`
	Aggregate bool     `json:"aggregate"`
	// AgreementID is the agreement the submitter asked to run under; 0 lets
	// the policy choose.
	AgreementID int64 `json:"agreement_id"`
	// Outputs are the result's columns and the fields each derives from.
	Outputs []Output `json:"outputs"`
}

// Output is one output column of a job.
type Output struct {
	Name       string   `json:"name"`
	Fields     []string `json:"fields"`
	Aggregated bool     `json:"aggregated"`
	// Aggregates names the aggregate functions in the column's expression.
	Aggregates []string `json:"aggregates"`
	// Bare is true when the column is exactly one aggregate call over one
	// field or *, nothing around it: what differential privacy can noise.
	Bare bool `json:"bare"`
}

// Decision is the admission policy's answer.
type Decision struct {
	Allow       bool              `json:"allow"`
	Reasons     []Reason          `json:"reasons"`
	AgreementID int64             `json:"agreement_id"`
	Fields      map[string]string `json:"fields"` // field → form ("raw")
	Limits      Limits            `json:"limits"`
	Bundle      string            `json:"bundle"`
}

// Reason explains one part of a decision.
type Reason struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

// Limits bound a job's execution and output.
type Limits struct {
	MaxRows        int64  `json:"max_rows"`
	MaxBytes       int64  `json:"max_bytes"`
	MinCellCount   int64  `json:"min_cell_count"`
	TimeoutSeconds int    `json:"timeout_seconds"`
	Memory         string `json:"memory"`
	Threads        int    `json:"threads"`
}

// Admit evaluates the admission policy for in.
func (e *Engine) Admit(ctx context.Context, in AdmissionInput) (Decision, error) {
	in = admissionDefaults(in)
	var d Decision
	if err := eval(ctx, e.admission, "admission", in, &d); err != nil {
		return Decision{}, err
	}
	d.Bundle = e.hash
	return d, nil
}
