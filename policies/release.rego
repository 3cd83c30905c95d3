# Release: may a quarantined result leave? Go computes the disclosure checks
# and gathers the dataset's state as it is now; this policy turns them into
# an outcome.
package dsbx.release

import rego.v1

failed := [c | some c in input.checks; not c.passed]

withdrawn contains {"code": "dataset_suspended", "message": msg} if {
	input.dataset.status == "suspended"
	msg := sprintf("dataset %s was suspended after an objection (异议) was upheld; results that used it are held", [input.dataset.name])
}

withdrawn contains {"code": "field_suspended", "message": msg} if {
	some f in input.job.fields
	f in input.dataset.suspended_fields
	msg := sprintf("field %s of %s was suspended after an objection (异议) was upheld; results that used it are held", [f, input.dataset.name])
}

withdrawn contains {"code": "agreement_withdrawn", "message": msg} if {
	input.agreement.status != "active"
	msg := sprintf("agreement %d is %s; results of jobs run under it are held", [input.agreement.id, input.agreement.status])
}

withdrawn contains {"code": "agreement_withdrawn", "message": msg} if {
	input.agreement.status == "active"
	time.parse_rfc3339_ns(input.now) >= time.parse_rfc3339_ns(input.agreement.valid_until)
	msg := sprintf("agreement %d ended at %s; results of jobs run under it are held", [input.agreement.id, input.agreement.valid_until])
}

default outcome := "hold"

outcome := "release" if {
	count(input.checks) > 0
	count(failed) == 0
	count(withdrawn) == 0
}

decision := {
	"outcome": outcome,
	"reasons": array.concat([{"code": c.name, "message": c.detail} | some c in failed], [r | some r in withdrawn]),
}
