# Admission: may this job run, under which agreement, and which fields may it
# see, in which form? Go gathers the facts (input) and enforces the decision;
# every rule lives here.
package dsbx.admission

import rego.v1

day_ns := 86400000000000

now_ns := time.parse_rfc3339_ns(input.now)

normalize(s) := lower(trim_space(s))

requester if "operator" in input.principal.roles

requester if "researcher" in input.principal.roles

# Agreements on this dataset whose purpose is the job's purpose.
candidates := [a |
	some a in input.agreements
	normalize(a.purpose) == normalize(input.job.purpose)
]

in_term(a) if {
	time.parse_ns("2006-01-02", a.valid_from) <= now_ns
	now_ns < time.parse_ns("2006-01-02", a.valid_until) + day_ns
}

usable := [a | some a in candidates; a.status == "active"; in_term(a)]

# The agreement the job runs under: the oldest usable one.
agreement := usable[0] if count(usable) > 0

field_meta[f.name] := f if some f in input.dataset.fields

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

deny contains {"code": "no_agreement", "message": msg} if {
	requester
	count(input.agreements) == 0
	msg := sprintf("%s has no data use agreement on %s", [input.principal.name, input.dataset.name])
}

deny contains {"code": "purpose_not_covered", "message": msg} if {
	count(input.agreements) > 0
	count(candidates) == 0
	purposes := concat("; ", sort({a.purpose | some a in input.agreements}))
	msg := sprintf("purpose %q is not covered by any agreement on %s (agreed purposes: %s)", [input.job.purpose, input.dataset.name, purposes])
}

deny contains {"code": "agreement_inactive", "message": msg} if {
	count(candidates) > 0
	count(usable) == 0
	some a in candidates
	msg := sprintf("agreement %d is %s (term %s to %s)", [a.id, state(a), a.valid_from, a.valid_until])
}

state(a) := a.status if a.status != "active"

state(a) := "expired" if {
	a.status == "active"
	now_ns >= time.parse_ns("2006-01-02", a.valid_until) + day_ns
}

state(a) := "not yet in force" if {
	a.status == "active"
	now_ns < time.parse_ns("2006-01-02", a.valid_from)
}

deny contains {"code": "field_not_granted", "field": f, "message": msg} if {
	some f in input.job.fields
	not f in agreement.fields
	msg := sprintf("field %s is outside agreement %d, which covers %s", [f, agreement.id, concat(", ", agreement.fields)])
}

deny contains {"code": "field_personal_sensitive", "field": f, "message": msg} if {
	some f in input.job.fields
	field_meta[f].sensitivity == "personal-sensitive"
	msg := sprintf("field %s is personal-sensitive (个人敏感信息) and is never served raw", [f])
}

deny contains {"code": "unknown_field", "field": f, "message": msg} if {
	some f in input.job.fields
	not field_meta[f]
	msg := sprintf("dataset %s has no field %s", [input.dataset.name, f])
}

default agreement_id := 0

agreement_id := agreement.id

default allow := false

allow if {
	count(deny) == 0
	agreement
}

# Every referenced field is served raw for now; masked, hashed and generalised
# forms come with the field-forms policy.
fields[f] := "raw" if {
	allow
	some f in input.job.fields
}

limits := {
	"max_rows": 100000,
	"max_bytes": 67108864,
	"min_cell_count": 10,
	"timeout_seconds": 60,
	"memory": "512MB",
	"threads": 2,
}

decision := {
	"allow": allow,
	"reasons": [r | some r in deny],
	"agreement_id": agreement_id,
	"fields": fields,
	"limits": limits,
}
