# Release: may a quarantined result leave? Go computes the disclosure checks
# and gathers the dataset's state as it is now; this policy turns them into
# an outcome: release now, hold for review by output checkers, or reject.
package dsbx.release

import rego.v1

# ns is an RFC 3339 time in nanoseconds; undefined (never an error) for
# anything else, so a malformed time denies or holds instead of failing.
ns(s) := time.parse_rfc3339_ns(s) if regex.match(`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$`, s)

# A check that fails can never be waived; one that asks for review can, by
# enough output checkers.
failed := [c | some c in input.checks; c.verdict == "fail"]

# Anything but pass or fail, a missing verdict included, asks for review.
to_review := [c | some c in input.checks; not object.get(c, "verdict", "") in {"pass", "fail"}]

# Results from important or core data (重要数据, 核心数据) need a second,
# different reviewer.
default reviewers := 1

reviewers := 2 if input.dataset.grade in {"important", "core"}

approved if count({a | some a in input.review.approvals}) >= reviewers

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

# A missing or malformed time holds the result rather than releasing it.
withdrawn contains {"code": "agreement_withdrawn", "message": msg} if {
	not times_valid
	msg := sprintf("the time of the check (%q) or the end of agreement %d (%q) is not an RFC 3339 time; the result is held", [input.now, input.agreement.id, input.agreement.valid_until])
}

times_valid if {
	ns(input.now)
	ns(input.agreement.valid_until)
}

withdrawn contains {"code": "agreement_withdrawn", "message": msg} if {
	input.agreement.status == "active"
	ns(input.now) >= ns(input.agreement.valid_until)
	msg := sprintf("agreement %d ended at %s; results of jobs run under it are held", [input.agreement.id, input.agreement.valid_until])
}

# The parameters of the disclosure checks and remedies (package disclosure)
# for this result: the platform's defaults, which an agreement may tighten.
platform_min_cell_count := 10

params := {
	"min_cell_count": max([platform_min_cell_count, object.get(input.agreement.outputs, "min_cell_count", 0)]),
	"dominance": {"p": 10, "n": 2, "k": 85},
	"min_degrees_of_freedom": 10,
	"row_level": object.get(input.agreement.outputs, "row_level", false),
	"check_attributes": true,
	"suppress": true,
	"round_base": object.get(input.agreement.outputs, "round_base", 0),
	"top_code": coding("top_code"),
	"bottom_code": coding("bottom_code"),
}

# coding is the agreement's top or bottom coding, {} when it has none.
coding(k) := c if {
	c := input.agreement.outputs[k]
	is_object(c)
} else := {}

default outcome := "review"

outcome := "reject" if count(failed) > 0

# Every check passed: released without review.
outcome := "release" if {
	releasable
	count(to_review) == 0
}

# Checks asked for review, and enough output checkers approved.
outcome := "release" if {
	releasable
	approved
}

releasable if {
	count(input.checks) > 0
	count(failed) == 0
	count(withdrawn) == 0
}

decision := {
	"outcome": outcome,
	"reasons": array.concat([{"code": c.name, "message": c.detail} | some c in array.concat(failed, to_review)], [r | some r in withdrawn]),
	"reviewers": reviewers,
}
