package datasets

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
	"unicode/utf8"

	"golang.org/x/text/encoding/simplifiedchinese"
)

// The fuzz targets import fuzzed bytes through the real catalog (state
// database, audit log, staging directory), one catalog per fuzzing process.

const fuzzCSVHeader = "id,名称\n"

// fuzzSpecs are the datasets the fuzzed files are imported into: every
// field typed, so a file matching the header only has to hold values that
// fit.
func fuzzSpecs() []Spec {
	return []Spec{
		{Name: "fzcsv", Grade: GradeGeneral, Open: OpenUnconditional, Keys: []string{"id"}, Fields: []Field{
			{Name: "id", Type: "VARCHAR", Sensitivity: "public", Identifier: IdentifierNone},
			{Name: "name", Column: "名称", Type: "VARCHAR", Sensitivity: "public", Identifier: IdentifierNone},
		}},
		{Name: "fzpq", Grade: GradeGeneral, Open: OpenUnconditional, Keys: []string{"id"}, Fields: []Field{
			{Name: "id", Type: "BIGINT", Sensitivity: "public", Identifier: IdentifierNone},
			{Name: "name", Type: "VARCHAR", Sensitivity: "public", Identifier: IdentifierNone},
		}},
	}
}

func fuzzCatalog(f *testing.F) *testCatalog {
	tc := openTestCatalog(f, f.TempDir())
	for _, s := range fuzzSpecs() {
		if _, err := tc.Create(context.Background(), "provider", s); err != nil {
			f.Fatalf("Create(%s): %v", s.Name, err)
		}
	}
	return tc
}

// truncations returns b cut at a few places and with a byte flipped.
func truncations(b []byte) [][]byte {
	flipped := bytes.Clone(b)
	flipped[len(b)/2] ^= 0x40
	return [][]byte{b[:len(b)/2], b[:len(b)-1], b[:4], flipped}
}

// checkImport imports data as dataset name from a file called file, and
// checks the outcome: an error with a message that leaves the catalog,
// its snapshot and staging directories and the audit log as they were; or
// a version of wantRows rows (when wantRows >= 0) whose snapshot holds as
// many rows as it says.
func checkImport(t *testing.T, tc *testCatalog, name, file string, data []byte, wantRows int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	before := tc.stateOf(t)
	got, err := tc.Import(ctx, "importer", name, Source{Name: file}, writeTestFile(t, file, data), nil)
	if ctx.Err() != nil {
		t.Fatalf("import did not finish in a minute: %v", err)
	}
	after := tc.stateOf(t) // also fails the test if the staging directory holds anything
	if err != nil {
		if err.Error() == "" {
			t.Fatal("import failed without a message")
		}
		if after != before {
			t.Fatalf("failed import (%v) changed the state:\nbefore %s\nafter  %s", err, before, after)
		}
		return
	}
	v := got.Version
	if v.Rows <= 0 {
		t.Fatalf("imported a version of %d rows", v.Rows)
	}
	if wantRows >= 0 && v.Rows != wantRows {
		t.Fatalf("imported %d rows, the file has %d", v.Rows, wantRows)
	}
	if got.Existing != (after == before) {
		t.Fatalf("existing = %v, but the state changed: %v", got.Existing, after != before)
	}
	rows := querySnapshot(t, tc.SnapshotPath(name, v), "SELECT count(*) FROM t")
	if rows[0][0] != strconv.FormatInt(v.Rows, 10) {
		t.Fatalf("version says %d rows, its snapshot holds %s", v.Rows, rows[0][0])
	}
}

// simpleCSVRows counts the data rows of a CSV file that no dialect can read
// in two ways: valid UTF-8, the expected header, no quotes, carriage
// returns or NULs, no blank line and exactly one comma per line. ok is false
// for any other file.
func simpleCSVRows(data []byte) (rows int64, ok bool) {
	if !utf8.Valid(data) || !bytes.HasPrefix(data, []byte(fuzzCSVHeader)) || bytes.ContainsAny(data, "\"\r\x00") {
		return 0, false
	}
	lines := bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n"))
	for _, l := range lines {
		if len(l) == 0 || bytes.Count(l, []byte(",")) != 1 {
			return 0, false
		}
	}
	return int64(len(lines) - 1), true
}

// FuzzImportCSV imports fuzzed bytes as a CSV upload (encoding detected:
// UTF-8 or GBK). Never a panic; an error leaves nothing behind; a version
// has as many rows as the file has data rows.
func FuzzImportCSV(f *testing.F) {
	good := []byte(fuzzCSVHeader + "1,张三\n2,李四\n3,\n4,欧阳娜娜\n")
	gbk, err := simplifiedchinese.GBK.NewEncoder().Bytes(good)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(gbk)
	for _, b := range truncations(good) {
		f.Add(b)
	}
	f.Add(gbk[:len(gbk)-2])
	f.Add([]byte(fuzzCSVHeader + "1,\"unbalanced\n"))
	f.Add([]byte(fuzzCSVHeader + "1,a,extra\n"))
	f.Add([]byte(fuzzCSVHeader))
	f.Add([]byte("\xff\xfe\x00garbage"))
	tc := fuzzCatalog(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		want, ok := simpleCSVRows(data)
		if !ok {
			want = -1
		}
		checkImport(t, tc, "fzcsv", "upload.csv", data, want)
	})
}

// FuzzImportParquet imports fuzzed bytes as a Parquet upload. Never a
// panic; an error leaves nothing behind; a version has as many rows as
// DuckDB reads from the file on its own.
func FuzzImportParquet(f *testing.F) {
	read := func(p string) []byte {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	good := read(writeTestParquet(f, "good.parquet", `SELECT i::BIGINT AS id, '名' || i AS name FROM range(5) r(i)`))
	f.Add(good)
	f.Add(read(writeTestParquet(f, "small.parquet", `SELECT 1::SMALLINT AS id, NULL::VARCHAR AS name`)))
	f.Add(read(writeTestParquet(f, "text.parquet", `SELECT 'x' AS id, 'y' AS name`)))
	for _, b := range truncations(good) {
		f.Add(b)
	}
	f.Add([]byte("PAR1PAR1"))
	tc := fuzzCatalog(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		want := int64(-1)
		p := filepath.Join(t.TempDir(), "in.parquet")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if n, ok := parquetRows(p); ok {
			want = n
		}
		checkImport(t, tc, "fzpq", "upload.parquet", data, want)
	})
}

// parquetRows is DuckDB's own count of the rows of the Parquet file at p,
// or false if it cannot read it.
func parquetRows(p string) (int64, bool) {
	db, err := benchDuckDB()
	if err != nil {
		return 0, false
	}
	defer db.Close()
	var n int64
	if err := db.QueryRow("SELECT count(*) FROM read_parquet(" + literal(p) + ")").Scan(&n); err != nil {
		return 0, false
	}
	return n, true
}

// TestFuzzSeedsImport makes sure the fuzz targets' datasets take their
// valid seeds, so fuzzing explores successful imports too.
func TestFuzzSeedsImport(t *testing.T) {
	tc := openTestCatalog(t, t.TempDir())
	for _, s := range fuzzSpecs() {
		tc.mustCreate(t, s)
	}
	ctx := context.Background()
	csv := []byte(fuzzCSVHeader + "1,张三\n2,李四\n")
	if got, err := tc.Import(ctx, "importer", "fzcsv", Source{}, writeTestFile(t, "a.csv", csv), nil); err != nil || got.Version.Rows != 2 {
		t.Errorf("CSV seed: %+v, %v", got.Version, err)
	}
	pq := writeTestParquet(t, "a.parquet", `SELECT i::BIGINT AS id, 'x' AS name FROM range(3) r(i)`)
	if got, err := tc.Import(ctx, "importer", "fzpq", Source{}, pq, nil); err != nil || got.Version.Rows != 3 {
		t.Errorf("Parquet seed: %+v, %v", got.Version, err)
	}
}

// FuzzCSVEncoding fuzzes the Go half of a CSV import alone, much faster
// than a whole import: detecting UTF-8 or GBK and transcoding GBK. Never a
// panic; UTF-8 is claimed only for valid UTF-8; a GBK file transcodes to
// valid UTF-8 with as many lines, or fails with an *InputError.
func FuzzCSVEncoding(f *testing.F) {
	good := []byte(fuzzCSVHeader + "1,张三\n2,李四\n")
	gbk, err := simplifiedchinese.GBK.NewEncoder().Bytes(good)
	if err != nil {
		f.Fatal(err)
	}
	for _, b := range append(truncations(gbk), good, gbk, []byte("\x80\xff\xfe"), []byte("\x81\x30\x81\x30")) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		src, dst := filepath.Join(dir, "in.csv"), filepath.Join(dir, "out.csv")
		if err := os.WriteFile(src, data, 0o600); err != nil {
			t.Fatal(err)
		}
		enc, err := detectEncoding(src, "in.csv")
		if err != nil {
			var ie *InputError
			if !errors.As(err, &ie) || ie.Msg == "" {
				t.Fatalf("detectEncoding: %v (%T), want an *InputError", err, err)
			}
			return
		}
		switch enc {
		case EncodingUTF8:
			if !utf8.Valid(data) {
				t.Fatal("invalid UTF-8 detected as UTF-8")
			}
			return
		case EncodingGBK:
		default:
			t.Fatalf("detected encoding %q", enc)
		}
		if err := transcodeGBK(context.Background(), src, dst, "in.csv", nil); err != nil {
			var ie *InputError
			if !errors.As(err, &ie) || ie.Msg == "" {
				t.Fatalf("transcodeGBK: %v (%T), want an *InputError", err, err)
			}
			return
		}
		out, err := os.ReadFile(dst)
		if err != nil {
			t.Fatal(err)
		}
		if !utf8.Valid(out) || bytes.Count(out, []byte("\n")) != bytes.Count(data, []byte("\n")) {
			t.Fatalf("GBK %q transcoded to %q", data, out)
		}
	})
}
