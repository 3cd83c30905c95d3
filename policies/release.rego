# Release: may a quarantined result leave? Go computes the disclosure checks;
# this policy turns them into an outcome.
package dsbx.release

import rego.v1

failed := [c | some c in input.checks; not c.passed]

default outcome := "hold"

outcome := "release" if {
	count(input.checks) > 0
	count(failed) == 0
}

decision := {
	"outcome": outcome,
	"reasons": [{"code": c.name, "message": c.detail} | some c in failed],
}
