# Unit tests of the admission rules FuzzAdmissionInput (fuzz_test.go) showed
# were missing; they share the fixtures and helpers of admission_test.rego.
package dsbx.admission_test

import rego.v1

# --- no_principal ---

test_no_principal_denied if {
	denied(with_input({"principal": {"name": ""}}), "no_principal", "has no name")
	denied(with_input({"principal": {"name": " \t"}}), "no_principal", "has no name")
	denied(with_input({"principal": {"name": 7}}), "no_principal", "has no name")
	denied(json.remove(base, ["principal/name"]), "no_principal", "has no name")
}

test_no_principal_not_for_a_named_principal if {
	not_denied(base, "no_principal")
	allowed(with_input({"principal": {"name": "研究员 1"}}))
}
