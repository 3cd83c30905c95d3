package server

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/datasandbox/dsbx/datasets"
	"github.com/datasandbox/dsbx/jobs"
	"github.com/datasandbox/dsbx/operators"
)

func TestObjectionOverHTTP(t *testing.T) {
	p := start(t)
	ctx := context.Background()
	released := p.run(t, "SELECT district, count(*) AS n FROM people WHERE district <> '临安区' GROUP BY district")
	if released.State != jobs.StateReleased {
		t.Fatalf("job %s", released.State)
	}
	citizen := p.add(t, "zhang-san", "", operators.RoleResearcher)

	_, err := citizen.Object(ctx, "people", "", "  ")
	expect(t, "objection without reason", err, http.StatusBadRequest, "needs a reason")
	_, err = citizen.Object(ctx, "people", "shoe_size", "x")
	expect(t, "objection to unknown field", err, http.StatusBadRequest, "shoe_size")
	o, err := citizen.Object(ctx, "people", "", "my income can be singled out")
	if err != nil || o.Status != datasets.ObjectionOpen || o.Filer != "zhang-san" {
		t.Fatalf("file objection: %+v %v", o, err)
	}

	// The filer sees their objection; another operator does not, nor may it decide.
	if list, err := citizen.Objections(ctx, "", ""); err != nil || len(list) != 1 {
		t.Fatalf("filer's list: %v %v", list, err)
	}
	if list, err := p.operator.Objections(ctx, "", ""); err != nil || len(list) != 0 {
		t.Fatalf("another principal sees %v %v", list, err)
	}
	_, err = p.operator.Decide(ctx, o.ID, true, "no")
	expect(t, "operator decides", err, http.StatusForbidden, "admin")
	_, err = p.admin.Decide(ctx, o.ID, true, "")
	expect(t, "decision without reason", err, http.StatusBadRequest, "reason")

	d, err := p.admin.Decide(ctx, o.ID, true, "verified with the provider")
	if err != nil {
		t.Fatal(err)
	}
	if d.Objection.Status != datasets.ObjectionUpheld || d.Dataset.Status != datasets.StatusSuspended || !slices.Equal(d.Released, []int64{released.ID}) {
		t.Fatalf("decision: %+v", d)
	}
	_, err = p.admin.Decide(ctx, o.ID, false, "again")
	expect(t, "second decision", err, http.StatusBadRequest, "already upheld")

	list, err := p.admin.Released(ctx, o.ID)
	if err != nil || len(list) != 1 || list[0].ID != released.ID {
		t.Fatalf("released list: %v %v", list, err)
	}
	err = p.operator.FetchResult(ctx, released.ID, "csv", &bytes.Buffer{})
	expect(t, "fetch withdrawn result", err, http.StatusConflict, "withheld: dataset people was suspended")
	j, err := p.operator.Submit(ctx, jobs.Request{Dataset: "people", SQL: "SELECT district, count(*) AS n FROM people GROUP BY district", Purpose: purpose})
	if err != nil || j.State != jobs.StateDenied || j.Decision == nil || j.Decision.Reasons[0].Code != "dataset_suspended" {
		t.Fatalf("job on suspended dataset: %+v", j)
	}

	if _, err := p.admin.Reinstate(ctx, "people", "", "remedied"); err != nil {
		t.Fatal(err)
	}
	if err := p.operator.FetchResult(ctx, released.ID, "csv", &bytes.Buffer{}); err != nil {
		t.Fatalf("fetch after reinstatement: %v", err)
	}
}

func TestCatalogRedactsDataForNonAdmins(t *testing.T) {
	p := start(t)
	ctx := context.Background()
	full, err := p.admin.Dataset(ctx, "people")
	if err != nil {
		t.Fatal(err)
	}
	seen, err := p.operator.Dataset(ctx, "people")
	if err != nil {
		t.Fatal(err)
	}
	stats := func(e datasets.Entry, field string) datasets.ColumnStats {
		for _, s := range e.Versions[0].Stats {
			if s.Name == field {
				return s
			}
		}
		t.Fatalf("no stats for %s", field)
		return datasets.ColumnStats{}
	}
	if s := stats(full, "income"); s.Max != "90000" {
		t.Fatalf("admin sees income max %q, want 90000", s.Max)
	}
	if s := stats(seen, "income"); s.Max != "" || s.Min != "" || s.Nulls != 0 {
		t.Fatalf("operator sees income extremes %+v", s)
	}
	list, err := p.operator.Datasets(ctx)
	if err != nil || len(list) != 1 || stats(list[0], "id_number").Max != "" {
		t.Fatalf("operator's list leaks extremes: %+v %v", list, err)
	}
}

func TestSandboxModeDummyData(t *testing.T) {
	p := start(t)
	ctx := context.Background()
	var out bytes.Buffer
	if err := p.operator.Dummy(ctx, "people", "", 300, 7, "csv", &out); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&out).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 301 || !slices.Equal(rows[0], []string{"id_number", "district", "income"}) {
		t.Fatalf("dummy: %d rows, header %v", len(rows), rows[0])
	}
	for _, r := range rows[1:] {
		if r[1] == "临安区" { // seen once in the real data
			t.Fatalf("dummy data copied a rare value: %v", r)
		}
	}
	prof, err := p.operator.Profile(ctx, "people", "")
	if err != nil || len(prof.Columns) != 3 {
		t.Fatalf("profile: %+v %v", prof, err)
	}
	// Once an objection against a field is upheld, its distribution is
	// not served as dummy data either.
	o, err := p.operator.Object(ctx, "people", "income", "identifiable")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.admin.Decide(ctx, o.ID, true, "confirmed"); err != nil {
		t.Fatal(err)
	}
	_, err = p.operator.Profile(ctx, "people", "")
	expect(t, "profile of a suspended dataset", err, http.StatusForbidden, "suspended")
	err = p.operator.Dummy(ctx, "people", "", 10, 7, "csv", &bytes.Buffer{})
	expect(t, "dummy data of a suspended dataset", err, http.StatusForbidden, "suspended")
	if _, err := p.admin.Reinstate(ctx, "people", "income", "remedied"); err != nil {
		t.Fatal(err)
	}
	err = p.operator.Dummy(ctx, "people", "", -1, 7, "csv", &bytes.Buffer{})
	expect(t, "negative rows", err, http.StatusBadRequest, "rows")
	err = p.operator.Dummy(ctx, "nosuch", "", 10, 7, "csv", &bytes.Buffer{})
	expect(t, "unknown dataset", err, http.StatusNotFound, "nosuch")
}

func TestDownloadOnlyUnconditionallyOpenData(t *testing.T) {
	p := start(t)
	ctx := context.Background()
	err := p.operator.Download(ctx, "people", "", "parquet", &bytes.Buffer{})
	expect(t, "conditional dataset", err, http.StatusForbidden, "conditional")

	spec := datasets.Spec{Name: "parks", Grade: datasets.GradeGeneral, Open: datasets.OpenUnconditional, Fields: []datasets.Field{
		{Name: "park", Sensitivity: "public", Identifier: datasets.IdentifierNone},
		{Name: "area_ha", Sensitivity: "public", Identifier: datasets.IdentifierNone},
	}}
	if _, err := p.admin.CreateDataset(ctx, spec); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(t.TempDir(), "parks.csv")
	os.WriteFile(src, []byte("park,area_ha\n西湖,6.5\n太子湾,0.8\n"), 0o600)
	imp, err := p.admin.ImportVersion(ctx, "parks", datasets.Source{}, src, nil)
	if err != nil {
		t.Fatal(err)
	}
	var pq, csvOut bytes.Buffer
	if err := p.operator.Download(ctx, "parks", "", "parquet", &pq); err != nil {
		t.Fatal(err)
	}
	if int64(pq.Len()) != imp.Version.Bytes {
		t.Fatalf("parquet download %d bytes, version has %d", pq.Len(), imp.Version.Bytes)
	}
	if err := p.operator.Download(ctx, "parks", imp.Version.ID[:8], "csv", &csvOut); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(csvOut.String(), "太子湾,0.8") {
		t.Fatalf("csv download: %q", csvOut.String())
	}
	if _, err := p.admin.Seal(ctx, "parks", imp.Version.ID[:8], "replaced"); err != nil {
		t.Fatal(err)
	}
	err = p.operator.Download(ctx, "parks", imp.Version.ID[:8], "parquet", &bytes.Buffer{})
	expect(t, "sealed version", err, http.StatusForbidden, "sealed")
}

func TestImportStreamsProgressAndVersionLifecycle(t *testing.T) {
	p := start(t)
	ctx := context.Background()
	var b strings.Builder
	b.WriteString("id_number,district,income\n")
	for i := 0; i < 5000; i++ {
		fmt.Fprintf(&b, "33010219900101%04d,西湖区,%d\n", i, 1000+i)
	}
	src := filepath.Join(t.TempDir(), "people-v2.csv")
	os.WriteFile(src, []byte(b.String()), 0o600)
	var phases []string
	var uploaded int64
	imp, err := p.admin.ImportVersion(ctx, "people", datasets.Source{}, src, func(st datasets.Step) {
		if len(phases) == 0 || phases[len(phases)-1] != st.Phase {
			phases = append(phases, st.Phase)
		}
		if st.Phase == "upload" {
			uploaded = st.Done
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if uploaded != int64(b.Len()) || phases[0] != "upload" || !slices.Contains(phases, "parse") || phases[len(phases)-1] != "store" {
		t.Fatalf("progress phases %v, uploaded %d of %d", phases, uploaded, b.Len())
	}
	e, _ := p.admin.Dataset(ctx, "people")
	if len(e.Versions) != 2 || e.Versions[0].ID != imp.Version.ID {
		t.Fatalf("versions %+v", e.Versions)
	}
	// An error while streaming comes back as an API error.
	_, err = p.admin.ImportVersion(ctx, "people", datasets.Source{}, writeTemp(t, "bad.csv", "id_number,district\n1,a\n"), nil)
	expect(t, "schema mismatch", err, http.StatusBadRequest, "lacks [income]")
	_, err = p.operator.ImportVersion(ctx, "people", datasets.Source{}, src, nil)
	expect(t, "operator imports", err, http.StatusForbidden, "admin")

	_, err = p.admin.Seal(ctx, "people", imp.Version.ID[:10], "")
	expect(t, "seal without reason", err, http.StatusBadRequest, "reason")
	v, err := p.admin.Destroy(ctx, "people", imp.Version.ID[:10], "retention period over")
	if err != nil || v.Status != datasets.VersionDestroyed {
		t.Fatalf("destroy: %+v %v", v, err)
	}
	// Jobs fall back to the older active version.
	j := p.run(t, "SELECT district, count(*) AS n FROM people WHERE district <> '临安区' GROUP BY district")
	if j.Version == imp.Version.ID || j.State != jobs.StateReleased {
		t.Fatalf("job after destroy: version %s state %s", j.Version, j.State)
	}
}

func writeTemp(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
