package synthetic

import (
	"context"
	"database/sql"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// A version larger than SampleRows is profiled from a sample: the profile
// still counts the whole version's rows, keeps the common categories and
// no rare value.
func TestLargeVersionIsProfiledFromASample(t *testing.T) {
	old := SampleRows
	SampleRows = 2000
	t.Cleanup(func() { SampleRows = old })

	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	path := filepath.Join(t.TempDir(), "big.parquet")
	exec(t, db, `COPY (SELECT CASE WHEN i = 777 THEN '临安区' ELSE ['上城区', '西湖区', '滨江区'][1 + i % 3] END AS district,
		1000 + i % 5000 AS income FROM range(30000) t(i)) TO '`+path+`' (FORMAT parquet)`)

	p, err := Build(context.Background(), path, 10)
	if err != nil {
		t.Fatal(err)
	}
	if p.Rows != 30000 {
		t.Fatalf("rows %d, want the whole version's 30000", p.Rows)
	}
	c := column(t, p, "district")
	if len(c.Categories) != 3 {
		t.Fatalf("categories %+v, want the three common districts", c.Categories)
	}
	b, _ := json.Marshal(p)
	if strings.Contains(string(b), "临安区") {
		t.Fatalf("profile has the rare district: %s", b)
	}
	if r := column(t, p, "income").Range; r == nil || r.Min == "1000" || r.Max == "5999" {
		t.Fatalf("income range %+v touches the real extremes", r)
	}
}
