# Admission: may this job run, under which agreement, and which fields may it
# see, in which form? Go gathers the facts (input) and enforces the decision;
# every rule lives here.
package dsbx.admission

import rego.v1

import data.dsbx.fields

# ns is an RFC 3339 time in nanoseconds; undefined (never an error) for
# anything else, so a malformed time denies or holds instead of failing.
ns(s) := time.parse_rfc3339_ns(s) if regex.match(`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$`, s)

now_ns := ns(input.now)

normalize(s) := lower(trim_space(s))

requester if "operator" in input.principal.roles

requester if "researcher" in input.principal.roles

# Agreements covering this dataset whose purposes include the job's, and,
# if the job names one, that one.
candidates := [a |
	some a in input.agreements
	some p in a.purposes
	normalize(p) == normalize(input.job.purpose)
	chosen(a)
]

chosen(_) if input.job.agreement_id == 0

chosen(a) if a.id == input.job.agreement_id

# Why an agreement cannot carry this job now: {"id", "why"} per problem.
problems contains {"id": a.id, "why": sprintf("agreement %d is %s", [a.id, a.status])} if {
	some a in input.agreements
	not a.status in {"active", "expired"}
}

problems contains {"id": a.id, "why": sprintf("agreement %d ended at %s", [a.id, a.valid_until])} if {
	some a in input.agreements
	ended(a)
}

ended(a) if a.status == "expired"

ended(a) if {
	a.status == "active"
	now_ns >= ns(a.valid_until)
}

problems contains {"id": a.id, "why": sprintf("agreement %d is not in force until %s", [a.id, a.valid_from])} if {
	some a in input.agreements
	now_ns < ns(a.valid_from)
}

problems contains {"id": a.id, "why": msg} if {
	some a in input.agreements
	a.version != ""
	a.version != input.dataset.version
	msg := sprintf("agreement %d covers version %s of %s only, not %s", [a.id, substring(a.version, 0, 12), input.dataset.name, substring(input.dataset.version, 0, 12)])
}

problems contains {"id": a.id, "why": msg} if {
	some a in input.agreements
	a.quotas.max_jobs > 0
	a.usage.jobs >= a.quotas.max_jobs
	msg := sprintf("agreement %d allows %d jobs in all and %d were admitted", [a.id, a.quotas.max_jobs, a.usage.jobs])
}

problems contains {"id": a.id, "why": msg} if {
	some a in input.agreements
	a.quotas.jobs_per_day > 0
	a.usage.jobs_today >= a.quotas.jobs_per_day
	msg := sprintf("agreement %d allows %d jobs a day and %d were admitted today", [a.id, a.quotas.jobs_per_day, a.usage.jobs_today])
}

problems contains {"id": a.id, "why": msg} if {
	some a in input.agreements
	not valid_term(a)
	msg := sprintf("agreement %d has no valid term (%q to %q); the platform must record it again", [a.id, a.valid_from, a.valid_until])
}

valid_term(a) if {
	ns(a.valid_from)
	ns(a.valid_until)
}

deny contains {"code": "no_time", "message": msg} if {
	not now_ns
	msg := sprintf("the time of the decision %q is not an RFC 3339 time; nothing is admitted without it", [input.now])
}

unusable(a) := {p.why | some p in problems; p.id == a.id}

usable := [a | some a in candidates; count(unusable(a)) == 0]

# The agreement the job runs under: the oldest usable one that fits the job
# (grants every field it reads, allows its kind of output, pins core data);
# if none fits, the oldest usable one, whose denials then explain why.
fitting := [a | some a in usable; fits(a)]

fits(a) if {
	every f in input.job.fields {
		a.fields[f]
	}
	not aggregates_violation(a)
	not core_violation(a)
}

aggregates_violation(a) if {
	a.outputs.aggregates_only
	not input.job.aggregate
}

core_violation(a) if {
	input.dataset.grade == "core"
	a.version == ""
}

agreement := fitting[0] if count(fitting) > 0

agreement := usable[0] if {
	count(fitting) == 0
	count(usable) > 0
}

deny contains {"code": "dataset_closed", "message": msg} if {
	input.dataset.open == "closed"
	msg := sprintf("dataset %s is closed (不予开放): it is never served", [input.dataset.name])
}

deny contains {"code": "dataset_suspended", "message": msg} if {
	input.dataset.status == "suspended"
	msg := sprintf("dataset %s is suspended: an objection (异议) against it was upheld", [input.dataset.name])
}

deny contains {"code": "version_not_active", "message": msg} if {
	input.dataset.version_status != "active"
	msg := sprintf("version %s of %s is %s and serves no new job; submit against %s for the latest active version", [substring(input.dataset.version, 0, 12), input.dataset.name, input.dataset.version_status, input.dataset.name])
}

deny contains {"code": "field_suspended", "field": f, "message": msg} if {
	some f in input.job.fields
	f in input.dataset.suspended_fields
	msg := sprintf("field %s of %s is suspended: an objection (异议) against it was upheld", [f, input.dataset.name])
}

deny contains {"code": "not_a_requester", "message": msg} if {
	not requester
	msg := sprintf("%s holds roles %v; only operators and researchers submit jobs", [input.principal.name, input.principal.roles])
}

# Who submits the job is a fact like any other: a principal without a name
# (empty or blank, or not a string) is no one, and is admitted nothing.
# Found by FuzzAdmissionInput: nothing else looked at the name.
named_principal if {
	is_string(input.principal.name)
	trim_space(input.principal.name) != ""
}

deny contains {"code": "no_principal", "message": "the job's principal has no name; nothing is admitted without knowing who submits it"} if {
	not named_principal
}

deny contains {"code": "no_agreement", "message": msg} if {
	requester
	count(input.agreements) == 0
	msg := sprintf("%s has no data use agreement on %s; apply for one with 'dsbx application submit'", [input.principal.name, input.dataset.name])
}

deny contains {"code": "agreement_not_found", "message": msg} if {
	input.job.agreement_id != 0
	count([a | some a in input.agreements; a.id == input.job.agreement_id]) == 0
	msg := sprintf("agreement %d is not one of %s's agreements on %s", [input.job.agreement_id, input.principal.name, input.dataset.name])
}

deny contains {"code": "purpose_not_covered", "message": msg} if {
	count([a | some a in input.agreements; chosen(a)]) > 0
	count(candidates) == 0
	purposes := concat("; ", sort({p | some a in input.agreements; chosen(a); some p in a.purposes}))
	msg := sprintf("purpose %q is not covered by any agreement on %s (agreed purposes: %s)", [input.job.purpose, input.dataset.name, purposes])
}

deny contains {"code": "agreement_unusable", "message": msg} if {
	count(candidates) > 0
	count(usable) == 0
	some a in candidates
	msg := concat("; ", sort(unusable(a)))
}

deny contains {"code": "aggregates_only", "message": msg} if {
	aggregates_violation(agreement)
	msg := sprintf("agreement %d allows aggregate outputs only (GROUP BY with counts, sums, averages); this query returns rows", [agreement.id])
}

# Differential privacy (差分隐私): an agreement with a privacy budget admits
# only jobs whose every noisy output can be calibrated, and only while the
# operator's budget on the dataset lasts.
dp := agreement.outputs.privacy if agreement.outputs.privacy.mechanism != ""

# Counting and adding up bounded fields have a known sensitivity; nothing
# else does.
dp_aggregates := {"count_star", "count", "sum"}

dp_unsupported contains "a WebAssembly module's outputs cannot be noised; submit the aggregate as SQL" if {
	dp
	input.job.kind == "wasm"
}

dp_unsupported contains "the result is row-level; only counts and sums by group are released with differential privacy" if {
	dp
	input.job.kind == "sql"
	not input.job.aggregate
}

dp_unsupported contains sprintf("output %s is not one bare count(…) or sum(field) (it uses %s); differential privacy adds noise to exactly those", [o.name, concat(", ", o.aggregates)]) if {
	dp
	some o in input.job.outputs
	o.aggregated
	not dp_bare(o)
}

dp_bare(o) if {
	o.bare
	every f in o.aggregates {
		f in dp_aggregates
	}
}

dp_unsupported contains sprintf("output %s adds up %s, which has no clamp bounds in the agreement; only %s may be summed", [o.name, f, concat(", ", dp.bounded)]) if {
	dp
	some o in input.job.outputs
	"sum" in o.aggregates
	some f in o.fields
	not f in dp.bounded
}

deny contains {"code": "privacy_unsupported", "message": msg} if {
	some why in dp_unsupported
	msg := sprintf("agreement %d releases with differential privacy: %s", [agreement.id, why])
}

# Basic composition: each job spends epsilon_per_job (and delta_per_job).
dp_tolerance := 1e-9

deny contains {"code": "privacy_budget_exhausted", "message": msg} if {
	dp
	dp.spent_epsilon + dp.epsilon_per_job > dp.epsilon + dp_tolerance
	msg := sprintf("the privacy budget on %s is spent: this job needs ε=%v and only ε=%v of %v remains; ask the provider for a new agreement or a larger budget", [input.dataset.name, dp.epsilon_per_job, dp.epsilon - dp.spent_epsilon, dp.epsilon])
}

deny contains {"code": "privacy_budget_exhausted", "message": msg} if {
	dp
	dp.spent_delta + dp.delta_per_job > dp.delta + dp_tolerance
	msg := sprintf("the privacy budget on %s is spent: this job needs δ=%v and only δ=%v of %v remains", [input.dataset.name, dp.delta_per_job, dp.delta - dp.spent_delta, dp.delta])
}

# Field by field: denials and forms come from the fields package.
deny contains r if some r in fields.deny

deny contains {"code": "core_data_unpinned", "message": msg} if {
	core_violation(agreement)
	msg := sprintf("dataset %s is core data (核心数据): only an agreement that names the exact version may use it, and agreement %d covers whatever version is latest", [input.dataset.name, agreement.id])
}

default agreement_id := 0

agreement_id := agreement.id

default allow := false

allow if {
	count(deny) == 0
	agreement
}

# Each referenced field in the form the fields package decided.
forms := fields.forms if allow

default forms := {}

# The platform's minimum count per released cell; an agreement may raise it.
platform_min_cell_count := 10

default min_cell_count := 10

min_cell_count := max([platform_min_cell_count, agreement.outputs.min_cell_count])

limits := {
	"max_rows": 100000,
	"max_bytes": 67108864,
	"min_cell_count": min_cell_count,
	"timeout_seconds": 60,
	"memory": "512MB",
	"threads": 2,
}

decision := {
	"allow": allow,
	"reasons": [r | some r in deny],
	"agreement_id": agreement_id,
	"fields": forms,
	"limits": limits,
}
