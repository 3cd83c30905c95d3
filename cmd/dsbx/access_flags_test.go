package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/datasandbox/dsbx/operators"
)

func TestDatasetAndFieldsFlags(t *testing.T) {
	var l datasetList
	ds, fs := datasetFlag{&l}, fieldsFlag{&l}
	steps := []struct {
		flag interface{ Set(string) error }
		v    string
	}{{ds, "people"}, {fs, " district, income "}, {ds, "houses@abc123:size,rent"}, {ds, "firms@9f"}, {fs, "sector"}}
	for _, s := range steps {
		if err := s.flag.Set(s.v); err != nil {
			t.Fatalf("Set(%q): %v", s.v, err)
		}
	}
	got := fmt.Sprint(l.items)
	if want := "[{people  [district income]} {houses abc123 [size rent]} {firms 9f [sector]}]"; got != want {
		t.Errorf("datasets %s, want %s", got, want)
	}
	for _, c := range []struct {
		steps []string // alternating flag name and value
		want  string
	}{
		{[]string{"fields", "a"}, "comes before any --dataset"},
		{[]string{"dataset", "people:a", "fields", "b"}, "already lists its fields"},
		{[]string{"dataset", "people", "fields", "a", "fields", "b"}, "one --fields"},
		{[]string{"dataset", ":a"}, "names no dataset"},
		{[]string{"dataset", "people@"}, "empty version"},
		{[]string{"dataset", "people:"}, "lists no fields"},
		{[]string{"dataset", "people", "fields", " , "}, "names no field"},
	} {
		var l datasetList
		var err error
		for i := 0; i+1 < len(c.steps) && err == nil; i += 2 {
			if c.steps[i] == "dataset" {
				err = datasetFlag{&l}.Set(c.steps[i+1])
			} else {
				err = fieldsFlag{&l}.Set(c.steps[i+1])
			}
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want one mentioning %q", c.steps, err, c.want)
		}
	}
}

func TestParseGrantedFields(t *testing.T) {
	got, err := parseGrantedFields([]string{"people:district,income=generalised", "houses: rent=masked "})
	if err != nil {
		t.Fatal(err)
	}
	if s := fmt.Sprint(got); s != "map[houses:map[rent:masked] people:map[district:raw income:generalised]]" {
		t.Errorf("fields %s", s)
	}
	if got, err := parseGrantedFields(nil); got != nil || err != nil {
		t.Errorf("no --fields: %v, %v; want nil (every requested field raw)", got, err)
	}
	for _, c := range []struct{ in, want string }{
		{"district", "DATASET:field=form"},
		{"people:district=blurred", `form "blurred"`},
		{"people:", "grants no field"},
		{"people:=raw", "names no field"},
		{"people:a,a=masked", "twice"},
	} {
		if _, err := parseGrantedFields([]string{c.in}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want one mentioning %q", c.in, err, c.want)
		}
	}
	if _, err := parseGrantedFields([]string{"people:a", "people:b"}); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("a dataset in two --fields: %v", err)
	}
}

func TestReadRequest(t *testing.T) {
	dir := t.TempDir()
	yml := filepath.Join(dir, "r.yaml")
	os.WriteFile(yml, []byte(`kind: authorized-operation
datasets:
  - dataset: people
    version: 890a4b
    fields: [district, income]
purpose: rent index
valid_from: 2027-01-01
valid_until: 2027-12-31T18:00:00+08:00
`), 0o600)
	r, err := readRequest(yml, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Kind != operators.KindAuthorizedOperation || r.Purpose != "rent index" || r.ValidFrom != "2027-01-01" || r.ValidUntil != "2027-12-31T18:00:00+08:00" ||
		len(r.Datasets) != 1 || r.Datasets[0].Version != "890a4b" || strings.Join(r.Datasets[0].Fields, ",") != "district,income" {
		t.Errorf("request from YAML: %+v", r)
	}
	js := filepath.Join(dir, "r.json")
	os.WriteFile(js, []byte(`{"datasets":[{"dataset":"people","fields":["district"]}],"purpose":"p","valid_until":"2027-12-31"}`), 0o600)
	if r, err := readRequest(js, nil); err != nil || r.ValidUntil != "2027-12-31" || r.Datasets[0].Dataset != "people" {
		t.Errorf("request from JSON: %+v, %v", r, err)
	}
	if _, err := readRequest("-", strings.NewReader("purpose: p\nvalid_untill: 2027-01-01\n")); err == nil || !strings.Contains(err.Error(), "valid_untill") {
		t.Errorf("misspelt key: %v", err)
	}
	if _, err := readRequest(filepath.Join(dir, "missing.yaml"), nil); err == nil {
		t.Error("a missing file was read")
	}
}

func TestUntilText(t *testing.T) {
	z := operators.Zone
	if got := untilText(time.Date(2028, 1, 1, 0, 0, 0, 0, z).UTC()); got != "2027-12-31" {
		t.Errorf("midnight end: %s, want the last covered day", got)
	}
	if got := untilText(time.Date(2027, 12, 31, 18, 30, 0, 0, z)); got != "2027-12-31 18:30" {
		t.Errorf("end at a time: %s", got)
	}
	if got := termEnd("2028-01-01T00:00:00+08:00"); got != "through 2027-12-31" {
		t.Errorf("termEnd: %s", got)
	}
}
