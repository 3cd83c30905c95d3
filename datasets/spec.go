package datasets

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/datasandbox/dsbx/audit"
)

// Spec is a catalog entry as its provider describes it, in a dataset file
// (dataset.yaml) or as the JSON body of a create request.
type Spec struct {
	Name        string   `yaml:"name" json:"name"`
	Title       string   `yaml:"title" json:"title,omitempty"`
	Description string   `yaml:"description" json:"description,omitempty"`
	Agency      string   `yaml:"agency" json:"agency,omitempty"`
	Grade       string   `yaml:"grade" json:"grade"`
	Open        string   `yaml:"open" json:"open"`
	Share       string   `yaml:"share" json:"share,omitempty"`
	Frequency   string   `yaml:"update_frequency" json:"update_frequency,omitempty"`
	LegalBasis  string   `yaml:"legal_basis" json:"legal_basis,omitempty"`
	Tags        []string `yaml:"tags" json:"tags,omitempty"`
	Keys        []string `yaml:"keys" json:"keys,omitempty"`
	Fields      []Field  `yaml:"fields" json:"fields"`
}

// ParseSpec reads a dataset file. Unknown keys are errors, so a misspelt
// attribute is not silently dropped.
func ParseSpec(r io.Reader) (Spec, error) {
	var s Spec
	dec := yaml.NewDecoder(r)
	dec.KnownFields(true)
	if err := dec.Decode(&s); err != nil {
		if err == io.EOF {
			return Spec{}, inputErrorf("dataset file is empty; it needs grade, open and a 'fields:' list with name, sensitivity and identifier for every column")
		}
		return Spec{}, inputErrorf("dataset file: %v", err)
	}
	return s, nil
}

// check validates s and fills defaults.
func (s *Spec) check() error {
	if err := checkName(s.Name); err != nil {
		return err
	}
	if err := oneOf("grade", s.Grade, GradeCore, GradeImportant, GradeGeneral); err != nil {
		return err
	}
	if err := oneOf("open attribute", s.Open, OpenUnconditional, OpenConditional, OpenClosed); err != nil {
		return err
	}
	if s.Share == "" {
		s.Share = ShareConditional
	}
	if err := oneOf("share attribute", s.Share, ShareUnconditional, ShareConditional, ShareNone); err != nil {
		return err
	}
	s.LegalBasis = strings.TrimSpace(s.LegalBasis)
	if s.Open != OpenUnconditional && s.LegalBasis == "" {
		return inputErrorf("dataset %s is %s: give the legal basis (legal_basis) for restricting it", s.Name, s.Open)
	}
	s.Fields = slices.Clone(s.Fields) // checkFields canonicalises types
	if err := checkFields(s.Fields); err != nil {
		return err
	}
	for _, k := range s.Keys {
		if !slices.ContainsFunc(s.Fields, func(f Field) bool { return f.Name == k }) {
			return inputErrorf("keys: %q is not one of the fields", k)
		}
	}
	if s.Tags == nil {
		s.Tags = []string{}
	}
	if s.Keys == nil {
		s.Keys = []string{}
	}
	return nil
}

// Create adds an entry to the catalog; its versions come from Import. actor
// is the principal creating it.
func (c *Catalog) Create(ctx context.Context, actor string, s Spec) (Entry, error) {
	if err := s.check(); err != nil {
		return Entry{}, err
	}
	_, err := c.Get(ctx, s.Name)
	switch {
	case err == nil:
		return Entry{}, inputErrorf("dataset %s already exists; import new data as a version of it (dsbx dataset import %s FILE), or choose another name", s.Name, s.Name)
	case !errors.Is(err, ErrNotFound):
		return Entry{}, err
	}
	e := Entry{
		Name: s.Name, Title: s.Title, Description: s.Description, Agency: s.Agency,
		Grade: s.Grade, Open: s.Open, Share: s.Share, Frequency: s.Frequency, LegalBasis: s.LegalBasis,
		Tags: s.Tags, Keys: s.Keys, Fields: s.Fields, Status: StatusActive, SuspendedFields: []string{},
		CreatedBy: actor, CreatedAt: c.now().UTC(),
	}
	if _, err := c.log.Append(ctx, audit.Event{
		Kind: "dataset.created", Principal: actor, Subject: "dataset/" + e.Name, Data: e,
	}); err != nil {
		return Entry{}, fmt.Errorf("create %s: %w", e.Name, err)
	}
	fields, err := marshal(e.Fields)
	if err != nil {
		return Entry{}, err
	}
	tags, _ := marshal(e.Tags)
	keys, _ := marshal(e.Keys)
	if _, err := c.db.ExecContext(ctx, `INSERT INTO datasets(`+entryColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		e.Name, e.Title, e.Description, e.Agency, e.Grade, e.Open, e.Share, e.Frequency, e.LegalBasis,
		tags, keys, fields, e.Status, "[]", e.CreatedBy, e.CreatedAt.Format(time.RFC3339Nano)); err != nil {
		return Entry{}, fmt.Errorf("create %s: %w", e.Name, err)
	}
	return e, nil
}

var identRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// checkFields validates labels: names, types, sensitivities, identifier
// roles, no duplicates.
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
		if f.Type != "" {
			t, err := parseType(f.Type)
			if err != nil {
				return inputErrorf("field %s: %v", f.Name, err)
			}
			fields[i].Type = t // imports compare and store canonical names
		}
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
