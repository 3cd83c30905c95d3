# Unit tests of fields.rego: every field rule with a case that fires it and a
# near miss that does not, and the forms served. The fields package reads the
# admission input and the agreement admission chose.
# Run by `go test ./policies` (TestRegoUnitTests) and by `opa test policies/`.
package dsbx.fields_test

import rego.v1

import data.dsbx.fields

# --- Fixtures: the admission input (AdmissionInput's json tags). ---

# Agreement 7 names a form for district, income, id_number, birth_date,
# salary, region and disabled; name is not covered.
agreement7 := {
	"id": 7,
	"kind": "data-use",
	"provider": "Hangzhou Civil Affairs",
	"version": "",
	"fields": {
		"district": "raw",
		"income": "raw",
		"id_number": "hashed",
		"birth_date": "generalised",
		"salary": "generalised",
		"region": "generalised",
		"disabled": "raw",
	},
	"purposes": ["Elderly care planning"],
	"outputs": {"aggregates_only": false, "min_cell_count": 0},
	"quotas": {"max_jobs": 0, "jobs_per_day": 0},
	"usage": {"jobs": 0, "jobs_today": 0},
	"valid_from": "2026-01-01T00:00:00+08:00",
	"valid_until": "2027-01-01T00:00:00+08:00",
	"status": "active",
}

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
			{"name": "birth_date", "type": "DATE", "sensitivity": "personal", "identifier": "quasi"},
			{"name": "salary", "type": "DECIMAL(10,2)", "sensitivity": "sensitive", "identifier": "none"},
			{"name": "region", "type": "VARCHAR", "sensitivity": "internal", "identifier": "quasi"},
			{"name": "disabled", "type": "BOOLEAN", "sensitivity": "sensitive", "identifier": "none"},
		],
	},
	"agreements": [agreement7],
	"job": {
		"kind": "sql",
		"purpose": "Elderly care planning",
		"code_sha256": "",
		"tables": ["population"],
		"fields": ["district", "income"],
		"functions": [],
		"aggregate": false,
		"agreement_id": 0,
		"outputs": [],
	},
}

# --- Variants. ---

# The job references fs (and nothing else).
referencing(fs) := object.union(base, {"job": {"fields": fs}})

# Agreement 7 names form for field f.
agreeing(inp, f, form) := json.patch(inp, [{"op": "add", "path": sprintf("/agreements/0/fields/%s", [f]), "value": form}])

# The job's output columns.
outputting(inp, outs) := object.union(inp, {"job": {"outputs": outs}})

# --- Helpers. ---

denials(inp) := ds if {
	ds := fields.deny with input as inp
}

codes(inp) := {r.code | some r in denials(inp)}

# Denied for field f with code c, the message containing text.
denied(inp, c, f, text) if {
	some r in denials(inp)
	r.code == c
	r.field == f
	contains(r.message, text)
}

not_denied(inp, c) if {
	cs := codes(inp)
	not c in cs
}

forms(inp) := fs if {
	fs := fields.forms with input as inp
}

# --- The base job: nothing to refuse. ---

test_base_no_denials if {
	denials(base) == set()
	forms(base) == {"district": "raw", "income": "raw"}
}

# --- unknown_field ---

test_unknown_field_denied if {
	denied(referencing(["district", "shoe_size"]), "unknown_field", "shoe_size", "dataset population has no field shoe_size")
}

test_unknown_field_not_for_catalogued_fields if {
	inp := referencing(["id_number", "name", "district", "income", "birth_date", "salary", "region", "disabled"])
	not_denied(inp, "unknown_field")
}

test_unknown_field_not_also_not_granted if {
	# A field the dataset lacks is unknown, not outside the agreement.
	codes(referencing(["shoe_size"])) == {"unknown_field"}
}

# --- field_not_granted ---

test_field_not_granted_denied if {
	denied(
		referencing(["district", "name"]), "field_not_granted", "name",
		"field name is outside agreement 7, which covers birth_date, disabled, district, id_number, income, region, salary",
	)
}

test_field_not_granted_not_for_granted_fields if {
	not_denied(referencing(["district", "income", "id_number"]), "field_not_granted")
}

test_field_not_granted_not_without_an_agreement if {
	# With no agreement the admission reasons (no_agreement, ...) say why.
	inp := object.union(referencing(["name"]), {"agreements": []})
	not_denied(inp, "field_not_granted")
}

# --- field_personal_sensitive ---

test_field_personal_sensitive_raw_refused if {
	inp := agreeing(referencing(["id_number"]), "id_number", "raw")
	denied(inp, "field_personal_sensitive", "id_number", "field id_number is personal-sensitive (个人敏感信息) and is never served raw")
}

test_field_personal_sensitive_hashed_allowed if {
	inp := referencing(["id_number"])
	not_denied(inp, "field_personal_sensitive")
	denials(inp) == set()
	forms(inp) == {"id_number": "hashed"}
}

test_field_personal_sensitive_masked_or_generalised_allowed if {
	not_denied(agreeing(referencing(["id_number"]), "id_number", "masked"), "field_personal_sensitive")
	not_denied(agreeing(referencing(["id_number"]), "id_number", "generalised"), "field_personal_sensitive")
}

test_field_personal_sensitive_without_an_agreement if {
	inp := object.union(referencing(["id_number", "district"]), {"agreements": []})
	denied(inp, "field_personal_sensitive", "id_number", "never served raw")
	every r in denials(inp) {
		r.field == "id_number"
	}
}

test_field_personal_sensitive_not_for_other_sensitivities if {
	# income is sensitive (not personal-sensitive) and agreed raw.
	not_denied(referencing(["income"]), "field_personal_sensitive")

	# name is personal and direct, but not personal-sensitive.
	not_denied(agreeing(referencing(["name"]), "name", "raw"), "field_personal_sensitive")
}

# --- form_not_applicable ---

test_form_not_applicable_boolean_generalised if {
	inp := agreeing(referencing(["disabled"]), "disabled", "generalised")
	denied(inp, "form_not_applicable", "disabled", "field disabled of type BOOLEAN cannot be generalised")
}

test_form_generalised_applicable_types if {
	# DATE, DECIMAL(10,2) and VARCHAR (region codes) generalise.
	inp := referencing(["birth_date", "salary", "region"])
	denials(inp) == set()
	forms(inp) == {"birth_date": "generalised", "salary": "generalised", "region": "generalised"}
}

test_form_generalised_other_applicable_types if {
	every t in ["DATE", "TIMESTAMP", "INTEGER", "BIGINT", "DOUBLE", "VARCHAR", "DECIMAL(18,3)"] {
		inp := json.patch(agreeing(referencing(["disabled"]), "disabled", "generalised"), [{"op": "replace", "path": "/dataset/fields/7/type", "value": t}])
		not_denied(inp, "form_not_applicable")
	}
}

test_form_not_applicable_only_when_generalised if {
	# A BOOLEAN raw, masked or hashed is fine.
	not_denied(referencing(["disabled"]), "form_not_applicable")
	not_denied(agreeing(referencing(["disabled"]), "disabled", "masked"), "form_not_applicable")
	not_denied(agreeing(referencing(["disabled"]), "disabled", "hashed"), "form_not_applicable")
}

# --- direct_identifier_output ---

test_direct_identifier_output_denied if {
	inp := outputting(referencing(["id_number", "district"]), [
		{"name": "who", "fields": ["id_number"], "aggregated": false},
		{"name": "district", "fields": ["district"], "aggregated": false},
	])
	denied(inp, "direct_identifier_output", "id_number", "output column who carries id_number, a direct identifier")
	count(denials(inp)) == 1
}

test_direct_identifier_output_any_direct_identifier if {
	# name is direct too; a column derived from several fields carries each.
	inp := outputting(agreeing(referencing(["name", "district"]), "name", "masked"), [{"name": "label", "fields": ["district", "name"], "aggregated": false}])
	denied(inp, "direct_identifier_output", "name", "output column label carries name")
	codes(inp) == {"direct_identifier_output"}
}

test_direct_identifier_output_aggregated_allowed if {
	# count(DISTINCT id_number) by district.
	inp := outputting(referencing(["id_number", "district"]), [
		{"name": "district", "fields": ["district"], "aggregated": false},
		{"name": "people", "fields": ["id_number"], "aggregated": true},
	])
	denials(inp) == set()
	forms(inp) == {"id_number": "hashed", "district": "raw"}
}

test_direct_identifier_output_not_for_quasi_identifiers if {
	inp := outputting(base, [{"name": "district", "fields": ["district"], "aggregated": false}])
	not_denied(inp, "direct_identifier_output")
}

# --- forms ---

test_forms_only_referenced_granted_fields if {
	# id_number is granted but not referenced; name is referenced but not
	# granted; shoe_size does not exist.
	forms(referencing(["district", "name", "shoe_size"])) == {"district": "raw"}
}

test_forms_the_agreed_form if {
	forms(referencing(["id_number", "birth_date", "district"])) == {"id_number": "hashed", "birth_date": "generalised", "district": "raw"}
}

test_forms_empty_without_agreement if {
	forms(object.union(base, {"agreements": []})) == {}
}
