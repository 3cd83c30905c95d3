# Unit tests of admission.rego: every deny rule with a case that fires it and
# a near miss that does not, the choice of agreement, and the defaults.
# Run by `go test ./policies` (TestRegoUnitTests) and by `opa test policies/`.
package dsbx.admission_test

import rego.v1

import data.dsbx.admission

# --- Fixtures: the input the Go side builds (AdmissionInput's json tags). ---

# Agreement 7 covers district and income raw and id_number hashed, for 2026
# in China Standard Time, for the latest version of the dataset.
agreement7 := {
	"id": 7,
	"kind": "data-use",
	"provider": "Hangzhou Civil Affairs",
	"version": "",
	"fields": {"district": "raw", "income": "raw", "id_number": "hashed"},
	"purposes": ["Elderly care planning"],
	"outputs": {"aggregates_only": false, "min_cell_count": 0},
	"quotas": {"max_jobs": 0, "jobs_per_day": 0},
	"usage": {"jobs": 0, "jobs_today": 0},
	"valid_from": "2026-01-01T00:00:00+08:00",
	"valid_until": "2027-01-01T00:00:00+08:00",
	"status": "active",
}

# An operator runs a row query over district and income, under whichever
# agreement the policy chooses; the purpose differs from the agreed one only
# in case and a trailing space.
base := {
	"now": "2026-11-23T09:00:00Z",
	"principal": {"name": "acme", "roles": ["operator"], "organization": "Acme Analytics"},
	"dataset": {
		"name": "population",
		"version": "abcdef0123456789",
		"open": "conditional",
		"grade": "important",
		"status": "active",
		"suspended_fields": [],
		"version_status": "active",
		"fields": [
			{"name": "id_number", "type": "VARCHAR", "sensitivity": "personal-sensitive", "identifier": "direct"},
			{"name": "name", "type": "VARCHAR", "sensitivity": "personal", "identifier": "direct"},
			{"name": "district", "type": "VARCHAR", "sensitivity": "internal", "identifier": "quasi"},
			{"name": "income", "type": "DECIMAL(10,2)", "sensitivity": "sensitive", "identifier": "none"},
		],
	},
	"agreements": [agreement7],
	"job": {
		"kind": "sql",
		"purpose": "elderly care planning ",
		"code_sha256": "",
		"tables": ["population"],
		"fields": ["district", "income"],
		"functions": [],
		"aggregate": false,
		"agreement_id": 0,
		"outputs": [],
	},
}

# --- Variants. object.union merges nested objects, so a patch names only
# what it changes; arrays (agreements, fields, roles) are replaced whole. ---

with_input(patch) := object.union(base, patch)

with_dataset(patch) := object.union(base, {"dataset": patch})

with_job(patch) := object.union(base, {"job": patch})

with_now(now) := object.union(base, {"now": now})

with_agreements(agreements) := object.union(base, {"agreements": agreements})

# Agreement 7 changed by patch, as the only agreement.
with_agreement7(patch) := with_agreements([object.union(agreement7, patch)])

agreement(patch) := object.union(agreement7, patch)

# --- Helpers. ---

decide(inp) := d if {
	d := admission.decision with input as inp
}

codes(inp) := {r.code | some r in decide(inp).reasons}

# The messages of the reasons with code c.
messages(inp, c) := {r.message | some r in decide(inp).reasons; r.code == c}

# Denied with a reason of code c whose message contains text, and nothing
# let through.
denied(inp, c, text) if {
	d := decide(inp)
	d.allow == false
	d.fields == {}
	some r in d.reasons
	r.code == c
	contains(r.message, text)
}

# Not denied for code c (other reasons may be present).
not_denied(inp, c) if {
	cs := codes(inp)
	not c in cs
}

allowed(inp) if {
	d := decide(inp)
	d.allow == true
	d.reasons == []
}

# --- The covered job. ---

test_base_job_allowed_under_agreement_7 if {
	d := decide(base)
	d.allow == true
	d.reasons == []
	d.agreement_id == 7
	d.fields == {"district": "raw", "income": "raw"}
}

test_limits if {
	decide(base).limits == {
		"max_rows": 100000,
		"max_bytes": 67108864,
		"min_cell_count": 10,
		"timeout_seconds": 60,
		"memory": "512MB",
		"threads": 2,
	}
}

# --- Defaults. ---

test_default_allow_is_false if {
	admission.allow == false with input as with_agreements([])
}

test_allow_requires_an_agreement if {
	# Every input without an agreement is denied for a reason; allow also
	# asks for the agreement itself, should those reasons ever miss a case.
	admission.allow == false with input as with_agreements([]) with admission.deny as set()
	admission.allow with input as base with admission.deny as set()
}

test_default_agreement_id_is_0 if {
	d := decide(with_agreements([]))
	d.agreement_id == 0
	not admission.agreement with input as with_agreements([])
}

test_default_forms_empty_when_denied if {
	# Agreement 7 is chosen, but the job is denied: no field is served.
	inp := with_dataset({"open": "closed"})
	admission.agreement.id == 7 with input as inp
	admission.forms == {} with input as inp
	decide(inp).fields == {}
}

test_default_min_cell_count_without_agreement if {
	decide(with_agreements([])).limits.min_cell_count == 10
}

# --- dataset_closed ---

test_dataset_closed_denied if {
	denied(with_dataset({"open": "closed"}), "dataset_closed", "dataset population is closed (不予开放): it is never served")
}

test_dataset_closed_not_for_open_datasets if {
	allowed(with_dataset({"open": "unconditional"}))
	allowed(with_dataset({"open": "conditional"}))
}

# --- dataset_suspended ---

test_dataset_suspended_denied if {
	denied(with_dataset({"status": "suspended"}), "dataset_suspended", "objection (异议) against it was upheld")
}

test_dataset_suspended_not_for_active_dataset if {
	allowed(with_dataset({"status": "active"}))

	# A suspended field the job does not use suspends nothing else.
	not_denied(with_dataset({"suspended_fields": ["name"]}), "dataset_suspended")
}

# --- version_not_active ---

test_version_not_active_sealed if {
	denied(with_dataset({"version_status": "sealed"}), "version_not_active", "version abcdef012345 of population is sealed")
}

test_version_not_active_destroyed if {
	denied(with_dataset({"version_status": "destroyed"}), "version_not_active", "is destroyed and serves no new job")
}

test_version_not_active_not_for_active_version if {
	not_denied(base, "version_not_active")
	allowed(base)
}

# --- field_suspended ---

test_field_suspended_denied if {
	inp := with_dataset({"suspended_fields": ["income"]})
	denied(inp, "field_suspended", "field income of population is suspended")
	some r in decide(inp).reasons
	r.code == "field_suspended"
	r.field == "income"
}

test_field_suspended_not_when_unused if {
	allowed(with_dataset({"suspended_fields": ["name", "id_number"]}))
}

# --- not_a_requester ---

test_not_a_requester_denied if {
	denied(with_input({"principal": {"roles": ["admin"]}}), "not_a_requester", "only operators and researchers submit jobs")
	denied(with_input({"principal": {"roles": []}}), "not_a_requester", "acme holds roles")
	denied(with_input({"principal": {"roles": ["provider", "auditor"]}}), "not_a_requester", "only operators")
}

test_not_a_requester_not_for_operators_and_researchers if {
	allowed(with_input({"principal": {"roles": ["operator"]}}))
	allowed(with_input({"principal": {"roles": ["researcher"]}}))
	allowed(with_input({"principal": {"roles": ["admin", "researcher"]}}))
}

# --- no_agreement ---

test_no_agreement_denied if {
	denied(with_agreements([]), "no_agreement", "acme has no data use agreement on population")
}

test_no_agreement_not_with_an_agreement if {
	not_denied(base, "no_agreement")

	# Even an unusable agreement is an agreement: the reason is elsewhere.
	not_denied(with_agreement7({"status": "revoked"}), "no_agreement")
}

test_no_agreement_not_for_non_requesters if {
	# Someone who may not submit at all is told that, not to apply.
	inp := object.union(with_agreements([]), {"principal": {"roles": ["admin"]}})
	codes(inp) == {"not_a_requester"}
}

# --- agreement_not_found ---

test_agreement_not_found_denied if {
	inp := with_job({"agreement_id": 8})
	denied(inp, "agreement_not_found", "agreement 8 is not one of acme's agreements on population")
	decide(inp).agreement_id == 0
}

test_agreement_not_found_not_for_held_agreement if {
	inp := with_job({"agreement_id": 7})
	not_denied(inp, "agreement_not_found")
	allowed(inp)
	decide(inp).agreement_id == 7
}

# --- purpose_not_covered ---

test_purpose_not_covered_denied if {
	denied(with_job({"purpose": "marketing"}), "purpose_not_covered", "purpose \"marketing\" is not covered by any agreement on population (agreed purposes: Elderly care planning)")
}

test_purpose_match_ignores_case_and_surrounding_space if {
	allowed(with_job({"purpose": "Elderly care planning"}))
	allowed(with_job({"purpose": "  ELDERLY CARE PLANNING\t"}))
	allowed(with_agreement7({"purposes": ["  elderly Care planning "]}))
}

test_purpose_any_of_the_agreed_purposes if {
	allowed(with_agreement7({"purposes": ["Pension forecasting", "Elderly care planning"]}))
	denied(with_agreement7({"purposes": ["Pension forecasting", "Housing"]}), "purpose_not_covered", "agreed purposes: Housing; Pension forecasting")
}

test_purpose_not_covered_not_without_agreements if {
	# no_agreement says it; purpose_not_covered needs an agreement to compare.
	not_denied(with_agreements([]), "purpose_not_covered")
}

test_purpose_not_covered_lists_only_the_named_agreement if {
	# The job names 7, whose purpose is not the job's; 9 would cover it but
	# is not used, and its purposes are not listed.
	a9 := agreement({"id": 9, "purposes": ["Marketing"]})
	inp := object.union(with_agreements([agreement7, a9]), {"job": {"purpose": "marketing", "agreement_id": 7}})
	denied(inp, "purpose_not_covered", "(agreed purposes: Elderly care planning)")
	every m in messages(inp, "purpose_not_covered") {
		not contains(m, "Marketing")
	}
}

# --- agreement_unusable ---

test_agreement_unusable_revoked if {
	denied(with_agreement7({"status": "revoked"}), "agreement_unusable", "agreement 7 is revoked")
}

test_agreement_unusable_suspended if {
	denied(with_agreement7({"status": "suspended"}), "agreement_unusable", "agreement 7 is suspended")
}

test_agreement_unusable_expired_by_the_sweep if {
	denied(with_agreement7({"status": "expired"}), "agreement_unusable", "agreement 7 ended at 2027-01-01T00:00:00+08:00")
}

test_agreement_unusable_ended_at_valid_until if {
	# valid_until is the first instant no longer covered.
	denied(with_now("2026-12-31T16:00:00Z"), "agreement_unusable", "agreement 7 ended at 2027-01-01T00:00:00+08:00")
	denied(with_now("2027-01-01T00:00:00+08:00"), "agreement_unusable", "ended at")
	denied(with_now("2027-03-01T00:00:00Z"), "agreement_unusable", "ended at")
}

test_agreement_usable_until_just_before_valid_until if {
	allowed(with_now("2026-12-31T15:59:59Z"))
	allowed(with_now("2026-12-31T23:59:59+08:00"))
	allowed(with_now("2026-12-31T15:59:59.999999999Z"))
}

test_agreement_unusable_not_yet_in_force if {
	denied(with_agreement7({"valid_from": "2026-12-01T00:00:00+08:00"}), "agreement_unusable", "agreement 7 is not in force until 2026-12-01T00:00:00+08:00")
	denied(with_now("2025-12-31T15:59:59Z"), "agreement_unusable", "not in force until 2026-01-01T00:00:00+08:00")
}

test_agreement_usable_from_valid_from if {
	allowed(with_now("2025-12-31T16:00:00Z"))
	allowed(with_agreement7({"valid_from": "2026-11-23T09:00:00Z"}))
}

test_agreement_unusable_pinned_to_another_version if {
	denied(with_agreement7({"version": "fedcba9876543210"}), "agreement_unusable", "agreement 7 covers version fedcba987654 of population only, not abcdef012345")
}

test_agreement_usable_pinned_to_this_version if {
	allowed(with_agreement7({"version": "abcdef0123456789"}))
}

test_agreement_unusable_max_jobs if {
	denied(with_agreement7({"quotas": {"max_jobs": 5}, "usage": {"jobs": 5}}), "agreement_unusable", "agreement 7 allows 5 jobs in all and 5 were admitted")
	denied(with_agreement7({"quotas": {"max_jobs": 5}, "usage": {"jobs": 6}}), "agreement_unusable", "allows 5 jobs in all")
}

test_agreement_usable_below_max_jobs if {
	allowed(with_agreement7({"quotas": {"max_jobs": 5}, "usage": {"jobs": 4, "jobs_today": 4}}))

	# 0 is unlimited.
	allowed(with_agreement7({"quotas": {"max_jobs": 0}, "usage": {"jobs": 100000}}))
}

test_agreement_unusable_jobs_per_day if {
	denied(with_agreement7({"quotas": {"jobs_per_day": 2}, "usage": {"jobs": 9, "jobs_today": 2}}), "agreement_unusable", "agreement 7 allows 2 jobs a day and 2 were admitted today")
}

test_agreement_usable_below_jobs_per_day if {
	allowed(with_agreement7({"quotas": {"jobs_per_day": 2}, "usage": {"jobs": 9, "jobs_today": 1}}))

	# 0 is unlimited.
	allowed(with_agreement7({"quotas": {"jobs_per_day": 0}, "usage": {"jobs_today": 500}}))
}

test_agreement_unusable_lists_every_problem if {
	inp := with_agreement7({"status": "suspended", "quotas": {"max_jobs": 1}, "usage": {"jobs": 1}})
	messages(inp, "agreement_unusable") == {"agreement 7 allows 1 jobs in all and 1 were admitted; agreement 7 is suspended"}
}

test_agreement_unusable_not_for_usable_agreement if {
	not_denied(base, "agreement_unusable")
}

# --- Choice of agreement. ---

test_oldest_usable_agreement_chosen if {
	# Input lists agreements oldest first; 3 is revoked, so 7 carries the
	# job, with the platform's minimum cell count.
	a3 := agreement({"id": 3, "status": "revoked"})
	a9 := agreement({"id": 9, "outputs": {"min_cell_count": 25}})
	d := decide(with_agreements([a3, agreement7, a9]))
	d.allow == true
	d.agreement_id == 7
	d.limits.min_cell_count == 10
}

test_agreement_not_covering_purpose_skipped if {
	a5 := agreement({"id": 5, "purposes": ["Marketing"]})
	a9 := agreement({"id": 9})
	d := decide(with_agreements([a5, a9]))
	d.allow == true
	d.agreement_id == 9
}

test_named_agreement_honoured if {
	a9 := agreement({"id": 9, "outputs": {"min_cell_count": 25}})
	inp := object.union(with_agreements([agreement7, a9]), {"job": {"agreement_id": 9}})
	d := decide(inp)
	d.allow == true
	d.agreement_id == 9
	d.limits.min_cell_count == 25
}

test_named_agreement_unusable_no_fallback if {
	a3 := agreement({"id": 3, "status": "revoked"})
	inp := object.union(with_agreements([a3, agreement7]), {"job": {"agreement_id": 3}})
	d := decide(inp)
	d.allow == false
	d.agreement_id == 0
	codes(inp) == {"agreement_unusable"}
	messages(inp, "agreement_unusable") == {"agreement 3 is revoked"}
}

test_unusable_agreements_each_explained if {
	a3 := agreement({"id": 3, "status": "revoked"})
	a4 := agreement({"id": 4, "quotas": {"jobs_per_day": 1}, "usage": {"jobs_today": 1}})
	inp := with_agreements([a3, a4])
	messages(inp, "agreement_unusable") == {
		"agreement 3 is revoked",
		"agreement 4 allows 1 jobs a day and 1 were admitted today",
	}
}

# --- aggregates_only ---

test_aggregates_only_denies_row_query if {
	denied(with_agreement7({"outputs": {"aggregates_only": true}}), "aggregates_only", "agreement 7 allows aggregate outputs only")
}

test_aggregates_only_allows_aggregate if {
	inp := object.union(with_agreement7({"outputs": {"aggregates_only": true}}), {"job": {"aggregate": true}})
	allowed(inp)
}

test_aggregates_only_not_when_rows_agreed if {
	not_denied(base, "aggregates_only")
	allowed(base)
}

# --- core_data_unpinned ---

test_core_data_unpinned_denied if {
	denied(with_dataset({"grade": "core"}), "core_data_unpinned", "dataset population is core data (核心数据)")
}

test_core_data_pinned_allowed if {
	inp := object.union(with_agreement7({"version": "abcdef0123456789"}), {"dataset": {"grade": "core"}})
	allowed(inp)
}

test_core_data_unpinned_not_for_important_data if {
	not_denied(with_dataset({"grade": "important"}), "core_data_unpinned")
	not_denied(with_dataset({"grade": "general"}), "core_data_unpinned")
}

# --- min_cell_count = max(10, the agreement's) ---

test_min_cell_count_raised_by_agreement if {
	decide(with_agreement7({"outputs": {"min_cell_count": 25}})).limits.min_cell_count == 25
	decide(with_agreement7({"outputs": {"min_cell_count": 11}})).limits.min_cell_count == 11
}

test_min_cell_count_never_below_platform if {
	decide(with_agreement7({"outputs": {"min_cell_count": 0}})).limits.min_cell_count == 10
	decide(with_agreement7({"outputs": {"min_cell_count": 5}})).limits.min_cell_count == 10
	decide(with_agreement7({"outputs": {"min_cell_count": 10}})).limits.min_cell_count == 10
}

# --- Field rules reach the decision (details in fields_test.rego). ---

test_field_denials_reach_the_decision if {
	inp := with_job({"fields": ["district", "shoe_size"]})
	denied(inp, "unknown_field", "dataset population has no field shoe_size")
	some r in decide(inp).reasons
	r.code == "unknown_field"
	r.field == "shoe_size"
}

test_forms_only_for_referenced_fields if {
	inp := with_job({"fields": ["income"]})
	decide(inp).fields == {"income": "raw"}
}

# --- Malformed times deny rather than let a job through. ---

test_no_time_denied if {
	denied(with_now("yesterday"), "no_time", "is not an RFC 3339 time")
	not_denied(base, "no_time")
}

test_agreement_without_valid_term_unusable if {
	denied(with_agreement7({"valid_until": "2027-01-01"}), "agreement_unusable", "agreement 7 has no valid term")
	denied(with_agreement7({"valid_from": ""}), "agreement_unusable", "has no valid term")
}

# --- The agreement that fits the job is preferred over an older one. ---

test_fitting_agreement_preferred if {
	narrow := json.patch(agreement7, [{"op": "replace", "path": "/id", "value": 3}, {"op": "replace", "path": "/fields", "value": {"district": "raw"}}])
	d := decide(with_agreements([narrow, agreement7]))
	d.allow
	d.agreement_id == 7
}

test_named_agreement_not_replaced_by_a_fitting_one if {
	narrow := json.patch(agreement7, [{"op": "replace", "path": "/id", "value": 3}, {"op": "replace", "path": "/fields", "value": {"district": "raw"}}])
	inp := object.union(with_agreements([narrow, agreement7]), {"job": {"agreement_id": 3}})
	denied(inp, "field_not_granted", "field income is outside agreement 3")
}

test_purpose_not_covered_not_raised_for_unknown_named_agreement if {
	inp := with_job({"agreement_id": 99})
	denied(inp, "agreement_not_found", "agreement 99 is not one of acme's")
	not_denied(inp, "purpose_not_covered")
}

# --- Differential privacy. ---

dp_terms := {
	"mechanism": "laplace", "epsilon": 1, "delta": 0, "epsilon_per_job": 0.25, "delta_per_job": 0,
	"spent_epsilon": 0, "spent_delta": 0, "bounded": ["income"],
}

# A DP agreement, with spent ε, and a job whose outputs are given.
dp_job(spent, outputs) := object.union(
	with_agreement7({"outputs": {"privacy": object.union(dp_terms, {"spent_epsilon": spent})}}),
	{"job": {"aggregate": true, "outputs": outputs}},
)

key := {"name": "district", "fields": ["district"], "aggregated": false, "aggregates": null, "bare": false}

n := {"name": "n", "fields": null, "aggregated": true, "aggregates": ["count_star"], "bare": true}

total := {"name": "total", "fields": ["income"], "aggregated": true, "aggregates": ["sum"], "bare": true}

test_dp_counts_and_bounded_sums_admitted if {
	allowed(dp_job(0, [key, n, total]))
	allowed(dp_job(0.75, [key, n, total])) # exactly the last 0.25
}

test_dp_budget_exhausted if {
	denied(dp_job(0.8, [key, n]), "privacy_budget_exhausted", "needs ε=0.25 and only ε=0.2")
	denied(dp_job(1, [key, n]), "privacy_budget_exhausted", "ask the provider")
}

test_dp_delta_budget_exhausted if {
	inp := object.union(dp_job(0, [key, n]), {"agreements": [object.union(agreement7, {"outputs": {"privacy": object.union(dp_terms, {
		"mechanism": "gaussian", "delta": 1e-6, "delta_per_job": 4e-7, "spent_delta": 8e-7,
	})}})]})
	denied(inp, "privacy_budget_exhausted", "δ")
}

test_dp_only_bare_counts_and_sums if {
	avg := {"name": "mean", "fields": ["income"], "aggregated": true, "aggregates": ["avg"], "bare": true}
	denied(dp_job(0, [key, avg]), "privacy_unsupported", "output mean is not one bare count(…) or sum(field) (it uses avg)")
	scaled := object.union(total, {"bare": false})
	denied(dp_job(0, [key, scaled]), "privacy_unsupported", "output total is not one bare")
}

test_dp_sum_needs_bounds if {
	age := {"name": "ages", "fields": ["age"], "aggregated": true, "aggregates": ["sum"], "bare": true}
	denied(dp_job(0, [key, age]), "privacy_unsupported", "adds up age, which has no clamp bounds")
}

test_dp_refuses_rows_and_wasm if {
	denied(object.union(dp_job(0, [key]), {"job": {"aggregate": false}}), "privacy_unsupported", "row-level")
	denied(object.union(dp_job(0, [key, n]), {"job": {"kind": "wasm"}}), "privacy_unsupported", "WebAssembly")
}

test_no_dp_no_privacy_rules if {
	# Without privacy terms, nothing of the above applies.
	inp := object.union(with_agreement7({"outputs": {"privacy": object.union(dp_terms, {"mechanism": "", "spent_epsilon": 5})}}), {"job": {"aggregate": true, "outputs": [key, {"name": "mean", "fields": ["income"], "aggregated": true, "aggregates": ["avg"], "bare": false}]}})
	allowed(inp)
}
