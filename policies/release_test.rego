# Unit tests of release.rego: the outcome from the disclosure checks, and
# every reason a result is withdrawn, each with a near miss that releases.
# Run by `go test ./policies` (TestRegoUnitTests) and by `opa test policies/`.
package dsbx.release_test

import rego.v1

import data.dsbx.release

# --- Fixtures: the input the Go side builds (ReleaseInput's json tags). ---

agreement7 := {
	"id": 7,
	"kind": "data-use",
	"provider": "Hangzhou Civil Affairs",
	"version": "",
	"fields": {"district": "raw", "income": "raw", "id_number": "hashed"},
	"purposes": ["Elderly care planning"],
	"outputs": {"aggregates_only": false, "min_cell_count": 0},
	"quotas": {"max_jobs": 0, "jobs_per_day": 0},
	"usage": {"jobs": 1, "jobs_today": 1},
	"valid_from": "2026-01-01T00:00:00+08:00",
	"valid_until": "2027-01-01T00:00:00+08:00",
	"status": "active",
}

passed_checks := [
	{"name": "min_cell_count", "verdict": "pass", "detail": ""},
	{"name": "direct_identifiers", "verdict": "pass", "detail": ""},
]

# A result of a job over district and income that passed every check, under
# an agreement still in force, on a dataset still active.
base := {
	"now": "2026-11-23T09:00:00Z",
	"job": {
		"kind": "sql",
		"purpose": "Elderly care planning",
		"code_sha256": "",
		"tables": ["population"],
		"fields": ["district", "income"],
		"functions": [],
		"aggregate": true,
		"agreement_id": 7,
		"outputs": [],
	},
	"result": {"rows": 12, "bytes": 480, "sha256": "", "columns": ["district", "avg_income"]},
	"checks": passed_checks,
	"dataset": {
		"name": "population",
		"version": "abcdef0123456789",
		"open": "conditional",
		"grade": "important",
		"status": "active",
		"suspended_fields": [],
		"version_status": "active",
		"fields": [],
	},
	"agreement": agreement7,
}

# --- Variants. ---

with_checks(cs) := object.union(base, {"checks": cs})

with_dataset(patch) := object.union(base, {"dataset": patch})

with_agreement(patch) := object.union(base, {"agreement": patch})

with_now(now) := object.union(base, {"now": now})

# --- Helpers. ---

decide(inp) := d if {
	d := release.decision with input as inp
}

released(inp) if {
	d := decide(inp)
	d.outcome == "release"
	d.reasons == []
}

# Held with exactly one reason, of code c, its message containing text.
held_for(inp, c, text) if {
	d := decide(inp)
	d.outcome == "review"
	count(d.reasons) == 1
	d.reasons[0].code == c
	contains(d.reasons[0].message, text)
}

# --- Outcome from the checks. ---

test_all_checks_passed_released if {
	released(base)
	released(with_checks([{"name": "min_cell_count", "verdict": "pass", "detail": "all 12 cells ≥ 10"}]))
}

test_failed_check_held_with_its_detail if {
	inp := with_checks([
		{"name": "min_cell_count", "verdict": "review", "detail": "3 cells below 10"},
		{"name": "direct_identifiers", "verdict": "pass", "detail": ""},
	])
	d := decide(inp)
	d.outcome == "review"
	d.reasons == [{"code": "min_cell_count", "message": "3 cells below 10"}]
}

test_every_failed_check_is_a_reason if {
	inp := with_checks([
		{"name": "min_cell_count", "verdict": "review", "detail": "3 cells below 10"},
		{"name": "direct_identifiers", "verdict": "review", "detail": "column who looks like 身份证号"},
	])
	d := decide(inp)
	d.outcome == "review"
	d.reasons == [
		{"code": "min_cell_count", "message": "3 cells below 10"},
		{"code": "direct_identifiers", "message": "column who looks like 身份证号"},
	]
}

test_check_without_verdict_held if {
	# A check that does not say it passed is reviewed.
	d := decide(with_checks([{"name": "min_cell_count", "detail": "not run"}]))
	d.outcome == "review"
	d.reasons == [{"code": "min_cell_count", "message": "not run"}]
	decide(with_checks([{"name": "min_cell_count", "verdict": "ok", "detail": "not run"}])).outcome == "review"
}

test_no_checks_held if {
	d := decide(with_checks([]))
	d.outcome == "review"
	d.reasons == []
}

test_failed_check_rejected_even_when_approved if {
	inp := object.union(
		with_checks([
			{"name": "direct_identifiers", "verdict": "fail", "detail": "column id_number is a direct identifier"},
			{"name": "min_cell_count", "verdict": "review", "detail": "3 cells below 10"},
		]),
		{"review": {"justification": "", "approvals": ["check", "check2"]}},
	)
	d := decide(inp)
	d.outcome == "reject"
	d.reasons[0].code == "direct_identifiers"
}

# --- Review by output checkers. ---

review_checks := [{"name": "min_cell_count", "verdict": "review", "detail": "3 cells below 10"}]

with_approvals(grade, approvals) := object.union(
	with_checks(review_checks),
	{"dataset": {"grade": grade}, "review": {"justification": "needed for the survey", "approvals": approvals}},
)

test_general_data_needs_one_reviewer if {
	d := decide(with_approvals("general", []))
	d.outcome == "review"
	d.reviewers == 1
	decide(with_approvals("general", ["check"])).outcome == "release"
}

test_important_and_core_data_need_two_different_reviewers if {
	every grade in ["important", "core"] {
		decide(with_approvals(grade, [])).reviewers == 2
		decide(with_approvals(grade, ["check"])).outcome == "review"
		decide(with_approvals(grade, ["check", "check"])).outcome == "review" # the same reviewer twice is one
		decide(with_approvals(grade, ["check", "check2"])).outcome == "release"
	}
}

test_approved_but_withdrawn_stays_held if {
	inp := object.union(with_approvals("general", ["check"]), {"dataset": {"status": "suspended"}})
	d := decide(inp)
	d.outcome == "review"
	"dataset_suspended" in {r.code | some r in d.reasons}
}

# --- Defaults. ---

test_default_outcome_review if {
	release.outcome == "review" with input as {}
	release.outcome == "review" with input as with_checks([])
}

test_default_outcome_not_used_when_released if {
	release.outcome == "release" with input as base
}

# --- dataset_suspended ---

test_dataset_suspended_held if {
	held_for(with_dataset({"status": "suspended"}), "dataset_suspended", "dataset population was suspended after an objection (异议) was upheld")
}

test_dataset_suspended_not_for_active_dataset if {
	released(with_dataset({"status": "active"}))
}

# --- field_suspended ---

test_used_field_suspended_held if {
	held_for(with_dataset({"suspended_fields": ["income"]}), "field_suspended", "field income of population was suspended")
}

test_unused_field_suspended_released if {
	released(with_dataset({"suspended_fields": ["id_number", "name"]}))
}

# --- agreement_withdrawn ---

test_agreement_revoked_held if {
	held_for(with_agreement({"status": "revoked"}), "agreement_withdrawn", "agreement 7 is revoked; results of jobs run under it are held")
}

test_agreement_suspended_held if {
	held_for(with_agreement({"status": "suspended"}), "agreement_withdrawn", "agreement 7 is suspended")
}

test_agreement_expired_held if {
	held_for(with_agreement({"status": "expired"}), "agreement_withdrawn", "agreement 7 is expired")
}

test_agreement_ended_held if {
	# valid_until is the first instant no longer covered.
	held_for(with_now("2026-12-31T16:00:00Z"), "agreement_withdrawn", "agreement 7 ended at 2027-01-01T00:00:00+08:00")
	held_for(with_now("2026-12-31T16:00:01Z"), "agreement_withdrawn", "ended at")
}

test_agreement_active_until_just_before_valid_until_released if {
	released(with_now("2026-12-31T15:59:59Z"))
	released(with_now("2026-12-31T15:59:59.999999999Z"))
}

# --- Reasons together. ---

test_failed_checks_then_withdrawals if {
	inp := object.union(
		with_checks([{"name": "min_cell_count", "verdict": "review", "detail": "3 cells below 10"}]),
		{"agreement": {"status": "revoked"}, "dataset": {"status": "suspended"}},
	)
	d := decide(inp)
	d.outcome == "review"
	count(d.reasons) == 3
	d.reasons[0] == {"code": "min_cell_count", "message": "3 cells below 10"}
	{r.code | some r in array.slice(d.reasons, 1, 3)} == {"agreement_withdrawn", "dataset_suspended"}
}

test_malformed_times_held if {
	held_for(with_now("not a time"), "agreement_withdrawn", "is not an RFC 3339 time")
	held_for(with_agreement({"valid_until": "2027-01-01"}), "agreement_withdrawn", "is not an RFC 3339 time")
}

# --- Check parameters. ---

test_params_platform_defaults if {
	p := release.params with input as base
	p.min_cell_count == 10
	p.dominance == {"p": 10, "n": 2, "k": 85}
	p.min_degrees_of_freedom == 10
	p.suppress
	p.row_level == false
	p.round_base == 0
}

test_params_from_the_agreement if {
	p := release.params with input as with_agreement({"outputs": {"min_cell_count": 20, "row_level": true, "round_base": 5}})
	p.min_cell_count == 20
	p.row_level
	p.round_base == 5
	low := release.params with input as with_agreement({"outputs": {"min_cell_count": 3}})
	low.min_cell_count == 10
}
