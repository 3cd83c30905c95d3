package datasets

import (
	"io"
	"regexp"
	"slices"

	"go.yaml.in/yaml/v3"
)

// Labels is the content of a fields file (fields.yaml): optional catalog
// text and one label per column.
type Labels struct {
	Title       string  `yaml:"title" json:"title,omitempty"`
	Description string  `yaml:"description" json:"description,omitempty"`
	Agency      string  `yaml:"agency" json:"agency,omitempty"`
	Share       string  `yaml:"share" json:"share,omitempty"`
	Frequency   string  `yaml:"update_frequency" json:"update_frequency,omitempty"`
	Fields      []Field `yaml:"fields" json:"fields"`
}

// ParseLabels reads a fields file and checks every label.
func ParseLabels(r io.Reader) (Labels, error) {
	var l Labels
	dec := yaml.NewDecoder(r)
	dec.KnownFields(true)
	if err := dec.Decode(&l); err != nil {
		if err == io.EOF {
			return Labels{}, inputErrorf("fields file is empty; it needs a 'fields:' list with name, sensitivity and identifier for every column")
		}
		return Labels{}, inputErrorf("fields file: %v", err)
	}
	if err := checkFields(l.Fields); err != nil {
		return Labels{}, err
	}
	return l, nil
}

var identRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// checkFields validates labels: names, sensitivities, identifier roles, no
// duplicates.
func checkFields(fields []Field) error {
	if len(fields) == 0 {
		return inputErrorf("fields: no field labels given; label every column with name, sensitivity and identifier")
	}
	seen := map[string]bool{}
	for i, f := range fields {
		if !identRE.MatchString(f.Name) {
			return inputErrorf("fields[%d]: name %q must be lower-case letters, digits and _ (at most 63), starting with a letter or _", i, f.Name)
		}
		if seen[f.Name] {
			return inputErrorf("fields: %q is labelled twice", f.Name)
		}
		seen[f.Name] = true
		if !slices.Contains(Sensitivities, f.Sensitivity) {
			return inputErrorf("field %s: sensitivity %q is not one of %v", f.Name, f.Sensitivity, Sensitivities)
		}
		switch f.Identifier {
		case IdentifierDirect, IdentifierQuasi, IdentifierNone:
		case "":
			return inputErrorf("field %s: identifier is missing; use direct, quasi or none", f.Name)
		default:
			return inputErrorf("field %s: identifier %q is not one of direct, quasi, none", f.Name, f.Identifier)
		}
	}
	return nil
}

// checkName validates a dataset name; jobs use it as their SQL table name.
func checkName(name string) error {
	if !identRE.MatchString(name) {
		return inputErrorf("dataset name %q must be lower-case letters, digits and _ (at most 63), starting with a letter or _", name)
	}
	return nil
}

func oneOf(what, v string, allowed ...string) error {
	if !slices.Contains(allowed, v) {
		return inputErrorf("%s %q is not one of %v", what, v, allowed)
	}
	return nil
}
