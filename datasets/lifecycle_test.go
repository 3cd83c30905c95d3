package datasets

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// twoVersions makes people with two versions; the second, newest, has a
// type violation stored as NULL.
func twoVersions(t *testing.T, tc *testCatalog) (v1, v2 Version) {
	t.Helper()
	tc.mustCreate(t, peopleSpec())
	v1 = tc.mustImport(t, "people", peopleCSV).Version
	got, err := tc.Import(context.Background(), "importer", "people", Source{NullifyViolations: true},
		writeTestFile(t, "people.csv", []byte(peopleCSV+"330102197003033456,拱墅区,lots\n")), nil)
	if err != nil {
		t.Fatal(err)
	}
	v2 = got.Version
	if len(v2.Quality.Violations) != 1 || len(v2.Quality.Violations[0].Examples) != 1 {
		t.Fatalf("second version quality %+v", v2.Quality)
	}
	return v1, v2
}

func TestSealAndDestroy(t *testing.T) {
	ctx := context.Background()
	tc := newTestCatalog(t)
	v1, v2 := twoVersions(t, tc)
	ref2 := "people@" + v2.ID[:12]

	before := tc.stateOf(t)
	for _, f := range []func(actor, ref, reason string) error{
		func(a, r, why string) error { _, err := tc.Seal(ctx, a, r, why); return err },
		func(a, r, why string) error { _, err := tc.Destroy(ctx, a, r, why); return err },
	} {
		wantInputError(t, f("steward", ref2, " \n"), "reason")
		wantInputError(t, f("steward", "people", "retention period over"), "NAME@VERSION")
		if err := f("steward", "people@ffffff", "gone"); !errors.Is(err, ErrNotFound) {
			t.Errorf("unknown version: %v", err)
		}
		if err := f("steward", "nobody@"+v2.ID[:6], "gone"); !errors.Is(err, ErrNotFound) {
			t.Errorf("unknown dataset: %v", err)
		}
	}
	if after := tc.stateOf(t); after != before {
		t.Fatalf("refused seal/destroy changed state:\nbefore %s\nafter  %s", before, after)
	}

	// Seal: kept, resolvable when pinned, skipped otherwise.
	sealed, err := tc.Seal(ctx, "steward", ref2, "superseded by a corrected file")
	if err != nil {
		t.Fatal(err)
	}
	if sealed.Status != VersionSealed || sealed.StatusReason != "superseded by a corrected file" || sealed.StatusAt == nil || sealed.ID != v2.ID {
		t.Errorf("sealed %+v", sealed)
	}
	a := tc.lastAudit(t)
	if a.Kind != "dataset.sealed" || a.Principal != "steward" || !strings.Contains(string(a.Data), v2.ID) || !strings.Contains(string(a.Data), "superseded") {
		t.Errorf("audit %+v %s", a, a.Data)
	}
	if _, v, err := tc.Resolve(ctx, "people"); err != nil || v.ID != v1.ID {
		t.Errorf("Resolve(people) = %.12s, %v; want the older active version %.12s", v.ID, err, v1.ID)
	}
	_, v, err := tc.Resolve(ctx, ref2)
	if err != nil || v.ID != v2.ID || v.Status != VersionSealed || v.Serves() || v.StatusReason != sealed.StatusReason {
		t.Errorf("Resolve(%s) = %+v, %v", ref2, v, err)
	}
	if _, err := os.Stat(tc.SnapshotPath("people", v2)); err != nil {
		t.Errorf("sealed snapshot: %v", err)
	}
	if _, err := tc.Profile(ctx, ref2); err != nil {
		t.Errorf("profile of a sealed version: %v", err)
	}
	before = tc.stateOf(t)
	_, err = tc.Seal(ctx, "steward", ref2, "again")
	wantInputError(t, err, "already sealed")
	if after := tc.stateOf(t); after != before {
		t.Errorf("sealing twice changed state")
	}

	// Destroy: the file goes, and the views jobs built from it, the row
	// stays without the data's values.
	if err := os.MkdirAll(tc.ViewDir("people", v2), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tc.ViewDir("people", v2), "v.duckdb"), []byte("a built view"), 0o600); err != nil {
		t.Fatal(err)
	}
	destroyed, err := tc.Destroy(ctx, "steward", ref2, "retention period over")
	if err != nil {
		t.Fatal(err)
	}
	if destroyed.Status != VersionDestroyed || destroyed.StatusReason != "retention period over" {
		t.Errorf("destroyed %+v", destroyed)
	}
	a = tc.lastAudit(t)
	if a.Kind != "dataset.destroyed" || a.Principal != "steward" || !strings.Contains(string(a.Data), v2.ID) || !strings.Contains(string(a.Data), `"previous":"sealed"`) {
		t.Errorf("audit %+v %s", a, a.Data)
	}
	if _, err := os.Stat(tc.SnapshotPath("people", v2)); !os.IsNotExist(err) {
		t.Errorf("destroyed snapshot still there: %v", err)
	}
	if _, err := os.Stat(tc.ViewDir("people", v2)); !os.IsNotExist(err) {
		t.Errorf("views built from the destroyed snapshot still there: %v", err)
	}
	if _, err := os.Stat(tc.SnapshotPath("people", v1)); err != nil {
		t.Errorf("the other version's snapshot: %v", err)
	}
	e, err := tc.Get(ctx, "people")
	if err != nil || len(e.Versions) != 2 {
		t.Fatalf("versions after destroy: %+v, %v", e.Versions, err)
	}
	d := e.Versions[0]
	if d.ID != v2.ID || d.Status != VersionDestroyed || d.StatusReason != "retention period over" || d.StatusAt == nil ||
		d.Rows != v2.Rows || d.Bytes != v2.Bytes || d.Importer != v2.Importer {
		t.Errorf("destroyed version row %+v", d)
	}
	for _, s := range d.Stats {
		if s.Min != "" || s.Max != "" {
			t.Errorf("destroyed version keeps extremes of %s: %+v", s.Name, s)
		}
	}
	if len(d.Stats) != 3 || statsOf(t, d, "income").Nulls != 1 {
		t.Errorf("destroyed version lost its counts: %+v", d.Stats)
	}
	if len(d.Quality.Violations) != 1 || d.Quality.Violations[0].Examples != nil || d.Quality.Violations[0].Count != 1 {
		t.Errorf("destroyed version quality %+v", d.Quality)
	}
	if _, err := tc.Profile(ctx, ref2); !errors.Is(err, ErrNotFound) {
		t.Errorf("profile of a destroyed version: %v, want ErrNotFound", err)
	}
	var profile string
	if err := tc.db.QueryRowContext(context.Background(), `SELECT profile FROM dataset_versions WHERE version = ?`, v2.ID).Scan(&profile); err != nil || profile != "{}" {
		t.Errorf("stored profile of a destroyed version %q, %v", profile, err)
	}
	if e.Versions[1].Status != VersionActive || e.Versions[1].Stats[0].Min == "" {
		t.Errorf("the other version changed: %+v", e.Versions[1])
	}

	before = tc.stateOf(t)
	_, err = tc.Destroy(ctx, "steward", ref2, "again")
	wantInputError(t, err, "already destroyed")
	_, err = tc.Seal(ctx, "steward", ref2, "again")
	wantInputError(t, err, "destroyed")
	// The destroyed data is not imported again, under any file name.
	_, err = tc.Import(ctx, "importer", "people", Source{NullifyViolations: true, Name: "again.csv"},
		writeTestFile(t, "people.csv", []byte(peopleCSV+"330102197003033456,拱墅区,lots\n")), nil)
	wantInputError(t, err, "destroyed")
	if after := tc.stateOf(t); after != before {
		t.Errorf("refused operations on a destroyed version changed state:\nbefore %s\nafter  %s", before, after)
	}

	// With no active version left, the dataset does not resolve.
	if _, err := tc.Destroy(ctx, "steward", "people@"+v1.ID[:8], "withdrawn"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := tc.Resolve(ctx, "people"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "no active version") {
		t.Errorf("Resolve with every version destroyed: %v", err)
	}
	if got := tc.auditKinds(t, 0); !slices.Equal(got, []string{"dataset.created", "dataset.imported", "dataset.imported", "dataset.sealed", "dataset.destroyed", "dataset.destroyed"}) {
		t.Errorf("audit kinds %v", got)
	}
	if left, _ := os.ReadDir(tc.dir + "/people"); len(left) != 0 {
		t.Errorf("files left: %v", left)
	}
}

func TestObjections(t *testing.T) {
	ctx := context.Background()
	tc := newTestCatalog(t)
	tc.mustCreate(t, peopleSpec())
	other := peopleSpec()
	other.Name = "other"
	tc.mustCreate(t, other)

	before := tc.stateOf(t)
	_, err := tc.Object(ctx, "citizen", "people", "", "  ")
	wantInputError(t, err, "reason")
	_, err = tc.Object(ctx, "citizen", "people", "salary", "my salary is shown")
	wantInputError(t, err, "salary", "no field")
	_, err = tc.Object(ctx, "citizen", "people", "所属区县", "by header")
	wantInputError(t, err, "no field")
	if _, err := tc.Object(ctx, "citizen", "nobody", "", "why"); !errors.Is(err, ErrNotFound) {
		t.Errorf("objection to an unknown dataset: %v", err)
	}
	if after := tc.stateOf(t); after != before {
		t.Fatalf("refused objections changed state:\nbefore %s\nafter  %s", before, after)
	}

	size := tc.log.Size()
	whole, err := tc.Object(ctx, "citizen", "people", "", "我的身份证号被公开")
	if err != nil {
		t.Fatal(err)
	}
	if whole.ID != size || whole.Dataset != "people" || whole.Field != "" || whole.Filer != "citizen" ||
		whole.Status != ObjectionOpen || whole.Reason != "我的身份证号被公开" || whole.FiledAt.IsZero() || whole.DecidedAt != nil {
		t.Errorf("objection %+v (audit size before %d)", whole, size)
	}
	if a := tc.lastAudit(t); a.Kind != "dataset.objection_filed" || a.Principal != "citizen" || a.Subject != "dataset/people" || a.Seq != whole.ID {
		t.Errorf("audit %+v", a)
	}
	income, err := tc.Object(ctx, "firm", "people", "income", "trade secret")
	if err != nil {
		t.Fatal(err)
	}
	onOther, err := tc.Object(ctx, "citizen", "other", "district", "too precise")
	if err != nil {
		t.Fatal(err)
	}

	ids := func(os []Objection, err error) []int64 {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		var out []int64
		for _, o := range os {
			out = append(out, o.ID)
		}
		return out
	}
	if got := ids(tc.Objections(ctx, "", "")); !slices.Equal(got, []int64{onOther.ID, income.ID, whole.ID}) {
		t.Errorf("all objections %v", got)
	}
	if got := ids(tc.Objections(ctx, "people", "")); !slices.Equal(got, []int64{income.ID, whole.ID}) {
		t.Errorf("objections to people %v", got)
	}
	if got := ids(tc.Objections(ctx, "people", ObjectionOpen)); !slices.Equal(got, []int64{income.ID, whole.ID}) {
		t.Errorf("open objections to people %v", got)
	}
	if got := ids(tc.Objections(ctx, "", ObjectionUpheld)); len(got) != 0 {
		t.Errorf("upheld objections %v", got)
	}
	if got := ids(tc.Objections(ctx, "nobody", "")); len(got) != 0 {
		t.Errorf("objections to nobody %v", got)
	}

	before = tc.stateOf(t)
	_, _, err = tc.Decide(ctx, "regulator", income.ID, true, "")
	wantInputError(t, err, "reason")
	if _, _, err := tc.Decide(ctx, "regulator", 9999, true, "why"); !errors.Is(err, ErrNotFound) {
		t.Errorf("deciding an unknown objection: %v", err)
	}
	if after := tc.stateOf(t); after != before {
		t.Fatalf("refused decisions changed state")
	}

	// Upheld on a field: that field is suspended, the dataset stays active.
	o, e, err := tc.Decide(ctx, "regulator", income.ID, true, "收入属于商业秘密")
	if err != nil {
		t.Fatal(err)
	}
	if o.Status != ObjectionUpheld || o.Decider != "regulator" || o.Decision != "收入属于商业秘密" || o.DecidedAt == nil {
		t.Errorf("decided %+v", o)
	}
	if e.Status != StatusActive || !slices.Equal(e.SuspendedFields, []string{"income"}) {
		t.Errorf("entry after a field objection: %s %v", e.Status, e.SuspendedFields)
	}
	if a := tc.lastAudit(t); a.Kind != "dataset.objection_upheld" || a.Principal != "regulator" || !strings.Contains(string(a.Data), "income") {
		t.Errorf("audit %+v %s", a, a.Data)
	}
	stored, err := tc.Objection(ctx, income.ID)
	if err != nil || stored.Status != ObjectionUpheld || stored.Decider != "regulator" || stored.Decision != o.Decision || stored.DecidedAt == nil {
		t.Errorf("stored objection %+v, %v", stored, err)
	}
	if got, _ := tc.Get(ctx, "people"); got.Status != StatusActive || !slices.Equal(got.SuspendedFields, []string{"income"}) {
		t.Errorf("stored entry %s %v", got.Status, got.SuspendedFields)
	}
	if got := ids(tc.Objections(ctx, "", ObjectionUpheld)); !slices.Equal(got, []int64{income.ID}) {
		t.Errorf("upheld objections %v", got)
	}

	// Deciding twice is refused, either way.
	before = tc.stateOf(t)
	for _, uphold := range []bool{true, false} {
		_, _, err = tc.Decide(ctx, "regulator", income.ID, uphold, "again")
		wantInputError(t, err, "already upheld")
	}
	if after := tc.stateOf(t); after != before {
		t.Fatalf("deciding twice changed state")
	}

	// Dismissed: nothing is suspended.
	o, e, err = tc.Decide(ctx, "regulator", onOther.ID, false, "区县不足以识别个人")
	if err != nil {
		t.Fatal(err)
	}
	if o.Status != ObjectionDismissed || e.Status != StatusActive || len(e.SuspendedFields) != 0 {
		t.Errorf("dismissed: %+v %s %v", o, e.Status, e.SuspendedFields)
	}
	if a := tc.lastAudit(t); a.Kind != "dataset.objection_dismissed" {
		t.Errorf("audit %+v", a)
	}
	if got, _ := tc.Get(ctx, "other"); got.Status != StatusActive || len(got.SuspendedFields) != 0 {
		t.Errorf("other after dismissal: %s %v", got.Status, got.SuspendedFields)
	}
	_, _, err = tc.Decide(ctx, "regulator", onOther.ID, true, "changed my mind")
	wantInputError(t, err, "already dismissed")

	// Upheld on the dataset: suspended as a whole.
	_, e, err = tc.Decide(ctx, "regulator", whole.ID, true, "成立")
	if err != nil {
		t.Fatal(err)
	}
	if e.Status != StatusSuspended || !slices.Equal(e.SuspendedFields, []string{"income"}) {
		t.Errorf("entry after a dataset objection: %s %v", e.Status, e.SuspendedFields)
	}
	if got, _ := tc.Get(ctx, "people"); got.Status != StatusSuspended {
		t.Errorf("stored status %s", got.Status)
	}

	// Reinstate.
	before = tc.stateOf(t)
	_, err = tc.Reinstate(ctx, "steward", "people", "", "")
	wantInputError(t, err, "reason")
	_, err = tc.Reinstate(ctx, "steward", "people", "district", "fixed")
	wantInputError(t, err, "district", "not suspended")
	_, err = tc.Reinstate(ctx, "steward", "other", "", "fixed")
	wantInputError(t, err, "not suspended")
	if _, err := tc.Reinstate(ctx, "steward", "nobody", "", "fixed"); !errors.Is(err, ErrNotFound) {
		t.Errorf("reinstating an unknown dataset: %v", err)
	}
	if after := tc.stateOf(t); after != before {
		t.Fatalf("refused reinstatements changed state")
	}
	e, err = tc.Reinstate(ctx, "steward", "people", "", "身份证号已脱敏")
	if err != nil {
		t.Fatal(err)
	}
	if e.Status != StatusActive || !slices.Equal(e.SuspendedFields, []string{"income"}) {
		t.Errorf("after reinstating the dataset: %s %v", e.Status, e.SuspendedFields)
	}
	if a := tc.lastAudit(t); a.Kind != "dataset.reinstated" || a.Principal != "steward" || !strings.Contains(string(a.Data), "身份证号已脱敏") {
		t.Errorf("audit %+v %s", a, a.Data)
	}
	if _, err = tc.Reinstate(ctx, "steward", "people", "income", "收入已分段"); err != nil {
		t.Fatal(err)
	}
	got, _ := tc.Get(ctx, "people")
	if got.Status != StatusActive || got.SuspendedFields == nil || len(got.SuspendedFields) != 0 {
		t.Errorf("after reinstating the field: %s %#v", got.Status, got.SuspendedFields)
	}
	want := []string{"dataset.objection_filed", "dataset.objection_filed", "dataset.objection_filed", "dataset.objection_upheld",
		"dataset.objection_dismissed", "dataset.objection_upheld", "dataset.reinstated", "dataset.reinstated"}
	if kinds := tc.auditKinds(t, 2); !slices.Equal(kinds, want) {
		t.Errorf("audit kinds %v\nwant %v", kinds, want)
	}
}

func openDataSpec() Spec {
	return Spec{
		Name: "bus_stops", Title: "公交站点", Grade: GradeGeneral, Open: OpenUnconditional,
		Fields: []Field{
			field("stop_id", "站点编号", "public", IdentifierNone),
			field("name", "站点名称", "public", IdentifierNone),
			field("lines", "线路数", "public", IdentifierNone),
		},
	}
}

const busStopsCSV = "站点编号,站点名称,线路数\nS0001,武林广场,12\nS0002,\"西湖文化广场, 北\",7\nS0003,龙翔桥,\n"

func download(tc *testCatalog, ref, format string) ([]byte, error) {
	var b bytes.Buffer
	err := tc.Download(context.Background(), "visitor", ref, format, &b)
	return b.Bytes(), err
}

func TestDownload(t *testing.T) {
	ctx := context.Background()
	tc := newTestCatalog(t)
	tc.mustCreate(t, openDataSpec())
	v := tc.mustImport(t, "bus_stops", busStopsCSV).Version
	tc.mustCreate(t, peopleSpec())
	tc.mustImport(t, "people", peopleCSV)

	// Restarted: the staging directory is gone; CSV downloads need it.
	tc = tc.reopen(t)
	size := tc.log.Size()
	pq, err := download(tc, "bus_stops", FormatParquet)
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(pq); hex.EncodeToString(sum[:]) != v.ID {
		t.Errorf("downloaded Parquet hashes to %x, version is %s", sum, v.ID)
	}
	a := tc.lastAudit(t)
	if tc.log.Size() != size+1 || a.Kind != "dataset.downloaded" || a.Principal != "visitor" || a.Subject != "dataset/bus_stops" ||
		!strings.Contains(string(a.Data), v.ID) || !strings.Contains(string(a.Data), `"parquet"`) {
		t.Errorf("audit %+v %s", a, a.Data)
	}

	text, err := download(tc, "bus_stops@"+v.ID[:8], FormatCSV)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(bytes.NewReader(text)).ReadAll()
	if err != nil {
		t.Fatalf("downloaded CSV %q: %v", text, err)
	}
	want := [][]string{{"stop_id", "name", "lines"}, {"S0001", "武林广场", "12"}, {"S0002", "西湖文化广场, 北", "7"}, {"S0003", "龙翔桥", ""}}
	if !reflect.DeepEqual(recs, want) {
		t.Errorf("downloaded CSV %v\nwant %v", recs, want)
	}
	if a := tc.lastAudit(t); a.Kind != "dataset.downloaded" || !strings.Contains(string(a.Data), `"csv"`) || tc.log.Size() != size+2 {
		t.Errorf("audit %+v %s", a, a.Data)
	}
	if left, _ := os.ReadDir(tc.staging()); len(left) != 0 {
		t.Errorf("download left %v in staging", left)
	}

	notOpen := func(ref, format string) {
		t.Helper()
		before := tc.stateOf(t)
		out, err := download(tc, ref, format)
		if !errors.Is(err, ErrNotOpen) {
			t.Errorf("Download(%s, %s) = %v, want ErrNotOpen", ref, format, err)
		}
		if len(out) != 0 {
			t.Errorf("Download(%s, %s) wrote %d bytes", ref, format, len(out))
		}
		if after := tc.stateOf(t); after != before {
			t.Errorf("a refused download changed state")
		}
	}
	notOpen("people", FormatParquet)
	notOpen("people", FormatCSV)

	if _, err := download(tc, "bus_stops", "xlsx"); err == nil {
		t.Error("downloaded as xlsx")
	}
	if _, err := download(tc, "nobody", FormatCSV); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown dataset: %v", err)
	}

	// Suspended, as a whole or in a field: not downloadable until
	// reinstated.
	o, err := tc.Object(ctx, "citizen", "bus_stops", "name", "a stop is named after me")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := download(tc, "bus_stops", FormatParquet); err != nil {
		t.Errorf("an open objection stops downloads: %v", err)
	}
	if _, _, err := tc.Decide(ctx, "regulator", o.ID, true, "upheld"); err != nil {
		t.Fatal(err)
	}
	notOpen("bus_stops", FormatParquet)
	if _, err := tc.Reinstate(ctx, "steward", "bus_stops", "name", "renamed"); err != nil {
		t.Fatal(err)
	}
	o, _ = tc.Object(ctx, "citizen", "bus_stops", "", "all of it")
	if _, _, err := tc.Decide(ctx, "regulator", o.ID, true, "upheld"); err != nil {
		t.Fatal(err)
	}
	notOpen("bus_stops", FormatCSV)
	if _, err := tc.Reinstate(ctx, "steward", "bus_stops", "", "remedied"); err != nil {
		t.Fatal(err)
	}
	if _, err := download(tc, "bus_stops", FormatParquet); err != nil {
		t.Errorf("after reinstatement: %v", err)
	}

	// A sealed version is not downloadable, even pinned.
	if _, err := tc.Seal(ctx, "steward", "bus_stops@"+v.ID[:8], "superseded"); err != nil {
		t.Fatal(err)
	}
	notOpen("bus_stops@"+v.ID[:8], FormatParquet)
	if _, err := download(tc, "bus_stops", FormatParquet); !errors.Is(err, ErrNotFound) {
		t.Errorf("no active version: %v", err)
	}
}

func TestProfileKeepsNoRareValue(t *testing.T) {
	ctx := context.Background()
	tc := newTestCatalog(t)
	tc.mustCreate(t, Spec{Name: "visits", Grade: GradeGeneral, Open: OpenConditional, LegalBasis: "测试", Fields: []Field{
		field("id", "", "public", IdentifierDirect),
		field("district", "区县", "internal", IdentifierQuasi),
		field("ward", "", "internal", IdentifierQuasi),
		field("cost", "", "sensitive", IdentifierNone),
		field("day", "", "public", IdentifierNone),
		field("paid", "", "public", IdentifierNone),
	}})
	// district: 西湖区 60 times, 上城区 30, 稀有区 9, 孤岛区 once.
	// ward: 40 values, each 2 or 3 times.
	var b strings.Builder
	b.WriteString("id,区县,ward,cost,day,paid\n")
	districts := slices.Concat(slices.Repeat([]string{"西湖区"}, 60), slices.Repeat([]string{"上城区"}, 30), slices.Repeat([]string{"稀有区"}, 9), []string{"孤岛区"})
	for i, d := range districts {
		fmt.Fprintf(&b, "%d,%s,街道%02d,%d.5,2024-03-%02d,%v\n", i+1, d, i%40, 100+i*7, i%28+1, i%4 == 0)
	}
	b.WriteString("101,西湖区,街道01,987654.25,2024-03-01,true\n")
	got := tc.mustImport(t, "visits", b.String())

	p, err := tc.Profile(ctx, "visits")
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Columns) != len(got.Entry.Fields) {
		t.Fatalf("profile columns %+v, fields %+v", p.Columns, got.Entry.Fields)
	}
	for i, f := range got.Entry.Fields {
		if c := p.Columns[i]; c.Name != f.Name || c.Type != f.Type {
			t.Errorf("profile column %d = %s %s, field %s %s", i, c.Name, c.Type, f.Name, f.Type)
		}
	}
	if p.MinCount != ProfileMinCount || p.Rows != 100 {
		t.Errorf("profile rows %d, k %d", p.Rows, p.MinCount)
	}
	district := p.Columns[1]
	var values []string
	for _, c := range district.Categories {
		values = append(values, c.Value)
	}
	slices.Sort(values)
	if !slices.Equal(values, []string{"上城区", "西湖区"}) {
		t.Errorf("district categories %v, want only the values seen at least %d times", values, ProfileMinCount)
	}
	raw, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, rare := range []string{"稀有区", "孤岛区", "街道", "987654"} {
		if strings.Contains(string(raw), rare) {
			t.Errorf("the profile holds the rare value %q: %s", rare, raw)
		}
	}
	// The same profile by pinned version; none for unknown ones.
	if pinned, err := tc.Profile(ctx, "visits@"+got.Version.ID[:8]); err != nil || !reflect.DeepEqual(pinned, p) {
		t.Errorf("pinned profile %+v, %v", pinned, err)
	}
	if _, err := tc.Profile(ctx, "visits@0000"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown version: %v", err)
	}
	if _, err := tc.Profile(ctx, "nobody"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown dataset: %v", err)
	}
}

// A closed dataset has no dummy data: its profile would still describe the
// distributions of data that is never opened.
func TestClosedDatasetHasNoProfile(t *testing.T) {
	tc := newTestCatalog(t)
	tc.mustCreate(t, Spec{Name: "secret", Grade: GradeCore, Open: OpenClosed, LegalBasis: "国家秘密", Fields: []Field{
		field("district", "", "internal", IdentifierQuasi),
	}})
	var b strings.Builder
	b.WriteString("district\n")
	for i := 0; i < 50; i++ {
		b.WriteString("西湖区\n")
	}
	tc.mustImport(t, "secret", b.String())
	if _, err := tc.Profile(context.Background(), "secret"); !errors.Is(err, ErrNotOpen) {
		t.Fatalf("profile of a closed dataset: %v, want ErrNotOpen", err)
	}
}
