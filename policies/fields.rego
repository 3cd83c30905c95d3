# Fields: for each field a job references, the form it is seen in (raw,
# masked, hashed with the agreement's own key, generalised), or why it is
# denied. The agreement names a form per field; these rules only refuse,
# they never widen what was agreed.
package dsbx.fields

import rego.v1

import data.dsbx.admission.agreement

meta[f.name] := f if some f in input.dataset.fields

# What a job may not do with a field.
deny contains {"code": "unknown_field", "field": f, "message": msg} if {
	some f in input.job.fields
	not meta[f]
	msg := sprintf("dataset %s has no field %s", [input.dataset.name, f])
}

deny contains {"code": "field_not_granted", "field": f, "message": msg} if {
	some f in input.job.fields
	meta[f]
	not agreement.fields[f]
	msg := sprintf("field %s is outside agreement %d, which covers %s", [f, agreement.id, concat(", ", sort(object.keys(agreement.fields)))])
}

# A form the agreement names must be one of the four; any other value (a
# typo, "RAW", "") would pass every rule above that compares it with "raw"
# and reach the decision. Found by FuzzAdmissionInput.
known_forms := {"raw", "masked", "hashed", "generalised"}

deny contains {"code": "form_unknown", "field": f, "message": msg} if {
	some f in input.job.fields
	form := agreement.fields[f]
	not form in known_forms
	msg := sprintf("agreement %d names form %v for field %s, which is not one of raw, masked, hashed, generalised; the platform must record it again", [agreement.id, form, f])
}

# Personal-sensitive information (个人敏感信息) is never seen raw, whatever
# the agreement says.
deny contains {"code": "field_personal_sensitive", "field": f, "message": msg} if {
	some f in input.job.fields
	meta[f].sensitivity == "personal-sensitive"
	agreement.fields[f] == "raw"
	msg := sprintf("field %s is personal-sensitive (个人敏感信息) and is never served raw; the agreement must name it masked, hashed or generalised", [f])
}

deny contains {"code": "field_personal_sensitive", "field": f, "message": msg} if {
	some f in input.job.fields
	meta[f].sensitivity == "personal-sensitive"
	not agreement
	msg := sprintf("field %s is personal-sensitive (个人敏感信息) and is never served raw", [f])
}

# Generalising has a meaning for dates, times, numbers and region codes
# (VARCHAR); other types would only come out empty.
generalisable(t) if t in {
	"DATE", "VARCHAR", "FLOAT", "DOUBLE",
	"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT",
	"UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT",
}

generalisable(t) if startswith(t, "DECIMAL")

generalisable(t) if startswith(t, "TIMESTAMP")

deny contains {"code": "form_not_applicable", "field": f, "message": msg} if {
	some f in input.job.fields
	agreement.fields[f] == "generalised"
	not generalisable(meta[f].type)
	msg := sprintf("field %s of type %s cannot be generalised; ask the provider for another form", [f, meta[f].type])
}

# Direct identifiers never leave, in any form: an output column may use one
# only inside an aggregate (count(DISTINCT id_number)) or a filter.
deny contains {"code": "direct_identifier_output", "field": f, "message": msg} if {
	some o in input.job.outputs
	not o.aggregated
	some f in o.fields
	meta[f].identifier == "direct"
	msg := sprintf("output column %s carries %s, a direct identifier; identifiers may be joined, filtered and counted, never output", [o.name, f])
}

# The form of each referenced field.
forms[f] := agreement.fields[f] if {
	some f in input.job.fields
	agreement.fields[f]
}
