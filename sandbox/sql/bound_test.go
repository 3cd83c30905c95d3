package sql

import (
	"path/filepath"
	"strings"
	"testing"
)

// Contribution bounding keeps at most MaxRows rows per person and clamps
// summed columns, whatever the job asks.
func TestBoundedContributions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "visits.parquet")
	// Person P1 has 6 visits of 100000 each; P2 one of 300; P3 two of -50.
	_, err := openPlain(t).Exec(`COPY (SELECT * FROM (VALUES
		('P1', 'east', 100000), ('P1', 'east', 100000), ('P1', 'east', 100000),
		('P1', 'east', 100000), ('P1', 'east', 100000), ('P1', 'east', 100000),
		('P2', 'east', 300), ('P3', 'west', -50), ('P3', 'west', -50)
	) v(person, district, amount)) TO ` + literal(path) + ` (FORMAT parquet)`)
	if err != nil {
		t.Fatal(err)
	}
	run := func(b *Bounding) string {
		t.Helper()
		spec := Spec{
			Query:  `SELECT district, count(*) AS n, sum(amount) AS total FROM visits GROUP BY district ORDER BY district`,
			Tables: []Table{{Name: "visits", Parquet: path, Columns: []Column{{"district", FormRaw}, {"amount", FormRaw}}, Bound: b}},
			Limits: testSpec(t, path, "").Limits,
			Out:    filepath.Join(t.TempDir(), "result.parquet"),
		}
		if _, err := RunIsolated(ctx(t), spec); err != nil {
			t.Fatal(err)
		}
		var got string
		if err := openPlain(t).QueryRow(`SELECT string_agg(concat_ws(':', district, n, total), ' ') FROM read_parquet(` + literal(spec.Out) + `)`).Scan(&got); err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got, want := run(nil), "east:7:600300 west:2:-100"; got != want {
		t.Fatalf("unbounded %q, want %q", got, want)
	}
	// Two rows per person: P1 keeps 2 of 6, each clamped to 5000; P3's -50 to 0.
	if got, want := run(&Bounding{PersonKey: "person", MaxRows: 2, Clamp: map[string][2]float64{"amount": {0, 5000}}}), "east:3:10300 west:2:0"; got != want {
		t.Fatalf("bounded %q, want %q", got, want)
	}
	for _, bad := range []*Bounding{
		{PersonKey: "nobody", MaxRows: 1},
		{PersonKey: "person", MaxRows: 0},
		{PersonKey: "person", MaxRows: 1, Clamp: map[string][2]float64{"amount": {10, 0}}},
	} {
		spec := testSpec(t, path, `SELECT count(*) FROM visits`)
		spec.Tables = []Table{{Name: "visits", Parquet: path, Columns: []Column{{"amount", FormRaw}}, Bound: bad}}
		if _, err := Run(ctx(t), spec); err == nil || !strings.Contains(err.Error(), "load table visits") {
			t.Errorf("bounding %+v: %v", bad, err)
		}
	}
}
