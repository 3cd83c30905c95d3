# Unit tests of the field rules FuzzAdmissionInput (fuzz_test.go) showed
# were missing; they share the fixtures and helpers of fields_test.rego.
package dsbx.fields_test

import rego.v1

# --- form_unknown ---

test_form_unknown_denied if {
	denied(agreeing(base, "district", "RAW"), "form_unknown", "district", "names form RAW for field district")
	denied(agreeing(base, "district", ""), "form_unknown", "district", "not one of raw, masked, hashed, generalised")
	denied(agreeing(base, "income", true), "form_unknown", "income", "names form true")
}

test_form_unknown_not_for_the_four_forms if {
	not_denied(base, "form_unknown")
	not_denied(agreeing(referencing(["id_number"]), "id_number", "masked"), "form_unknown")
	not_denied(agreeing(referencing(["id_number"]), "id_number", "hashed"), "form_unknown")
	not_denied(agreeing(base, "district", "generalised"), "form_unknown")
}

test_form_unknown_not_for_fields_the_job_does_not_read if {
	not_denied(agreeing(base, "name", "RAW"), "form_unknown")
}
