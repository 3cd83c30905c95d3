package datasets

import (
	"context"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
)

// Two imports of the same data at once: whatever each returns, the version
// is stored once and its snapshot is there.
func TestImportSameDataConcurrently(t *testing.T) {
	ctx := context.Background()
	tc := newTestCatalog(t)
	tc.mustCreate(t, inferSpec())
	src := writeTestFile(t, "infer.csv", []byte(inferCSV(300)))
	for round := 0; round < 3; round++ {
		var wg sync.WaitGroup
		errs := make([]error, 2)
		got := make([]Imported, 2)
		for i := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got[i], errs[i] = tc.Import(ctx, "importer", "infer", Source{}, src, nil)
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("round %d, import %d: %v", round, i, err)
			}
		}
		if round == 0 && got[0].Existing == got[1].Existing {
			t.Errorf("existing: %v, %v; want one new version and one existing", got[0].Existing, got[1].Existing)
		}
		if round > 0 && !(got[0].Existing && got[1].Existing) {
			t.Errorf("round %d: not existing", round)
		}
		e, err := tc.Get(ctx, "infer")
		if err != nil || len(e.Versions) != 1 {
			t.Fatalf("versions %v, %v", e.Versions, err)
		}
		if _, err := os.Stat(tc.SnapshotPath("infer", e.Versions[0])); err != nil {
			t.Fatalf("round %d: the stored version has no snapshot: %v", round, err)
		}
	}
}

// Two first imports at once whose columns would be typed differently: the
// catalogued schema is that of every stored version.
func TestImportFirstVersionsConcurrently(t *testing.T) {
	ctx := context.Background()
	tc := newTestCatalog(t)
	tc.mustCreate(t, Spec{Name: "race", Grade: GradeGeneral, Open: OpenUnconditional,
		Fields: []Field{field("x", "", "public", IdentifierNone)}})
	files := []string{
		writeTestFile(t, "numbers.csv", []byte("x\n"+strings.Repeat("1\n", 20000))),
		writeTestFile(t, "words.csv", []byte("x\n"+strings.Repeat("a\n", 20000))),
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = tc.Import(ctx, "importer", "race", Source{}, files[i], nil)
		}()
	}
	wg.Wait()
	e, err := tc.Get(ctx, "race")
	if err != nil {
		t.Fatal(err)
	}
	if errs[0] != nil && errs[1] != nil {
		t.Fatalf("both refused: %v; %v", errs[0], errs[1])
	}
	if len(e.Versions) == 0 || e.Fields[0].Type == "" {
		t.Fatalf("no version stored: %+v", e)
	}
	for _, v := range e.Versions {
		s := snapshotSchema(t, tc.SnapshotPath("race", v))
		if !slices.Equal(s, []string{"x " + e.Fields[0].Type}) {
			t.Errorf("version %.12s has schema %v; the catalog says x is %s (errors: %v; %v)", v.ID, s, e.Fields[0].Type, errs[0], errs[1])
		}
	}
}
