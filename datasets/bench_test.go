package datasets

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"
)

// benchRows makes a CSV file of about 160 MB.
const benchRows = 3_000_000

var benchFiles struct {
	once         sync.Once
	csv, parquet string
	err          error
}

// benchInputs returns a generated CSV file of benchRows rows and the same
// data as Parquet (typed by DuckDB's own detection), made once per process
// and kept in the system temporary directory between runs.
func benchInputs(b *testing.B) (csvPath, parquetPath string) {
	b.Helper()
	benchFiles.once.Do(func() {
		dir := filepath.Join(os.TempDir(), "dsbx-bench")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			benchFiles.err = err
			return
		}
		csvPath := filepath.Join(dir, fmt.Sprintf("import-%d.csv", benchRows))
		if _, err := os.Stat(csvPath); err != nil {
			tmp := csvPath + ".tmp"
			f, err := os.Create(tmp)
			if err != nil {
				benchFiles.err = err
				return
			}
			_, err = writeBigCSV(f, benchRows)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err == nil {
				err = os.Rename(tmp, csvPath)
			}
			if err != nil {
				benchFiles.err = err
				return
			}
		}
		pqPath := filepath.Join(dir, fmt.Sprintf("import-%d.parquet", benchRows))
		if _, err := os.Stat(pqPath); err != nil {
			db, err := benchDuckDB()
			if err != nil {
				benchFiles.err = err
				return
			}
			defer db.Close()
			tmp := pqPath + ".tmp"
			if _, err := db.Exec("COPY (SELECT * FROM read_csv(" + literal(csvPath) + ")) TO " + literal(tmp) + " (FORMAT parquet)"); err != nil {
				benchFiles.err = err
				return
			}
			if err := os.Rename(tmp, pqPath); err != nil {
				benchFiles.err = err
				return
			}
		}
		benchFiles.csv, benchFiles.parquet = csvPath, pqPath
	})
	if benchFiles.err != nil {
		b.Fatal(benchFiles.err)
	}
	return benchFiles.csv, benchFiles.parquet
}

// benchDuckDB opens a DuckDB with the threads an import gets.
func benchDuckDB() (*sql.DB, error) {
	db, err := sql.Open("duckdb", "")
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(fmt.Sprintf("SET threads = %d", min(runtime.NumCPU(), 4))); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// BenchmarkImport times Catalog.Import of a generated file against DuckDB
// converting the same file to Parquet on its own, alternating the two, and
// reports both throughputs (MB of input per second), their ratio and the
// seconds an import spends in each phase. Both use the same number of
// threads; the DuckDB conversion writes Parquet with its default
// compression (snappy), the import zstd.
func BenchmarkImport(b *testing.B) {
	csvPath, parquetPath := benchInputs(b)
	for _, c := range []struct {
		name, path, reader string
	}{
		{"csv", csvPath, "read_csv"},
		{"parquet", parquetPath, "read_parquet"},
	} {
		b.Run(c.name, func(b *testing.B) {
			st, err := os.Stat(c.path)
			if err != nil {
				b.Fatal(err)
			}
			mb := float64(st.Size()) / 1e6
			tc := openTestCatalog(b, b.TempDir())
			duck, err := benchDuckDB()
			if err != nil {
				b.Fatal(err)
			}
			defer duck.Close()
			out := filepath.Join(b.TempDir(), "duckdb.parquet")
			ctx := context.Background()
			var dsbx, duckdb time.Duration
			phases := map[string]time.Duration{}
			n := 0
			for b.Loop() {
				// A new dataset each time, so every import is a first one
				// that infers its types.
				name := fmt.Sprintf("bench_%d", n)
				n++
				if _, err := tc.Create(ctx, "bench", bigSpec(name)); err != nil {
					b.Fatal(err)
				}
				start := time.Now()
				phase, phaseStart := "", start
				if _, err := tc.Import(ctx, "bench", name, Source{}, c.path, func(s Step) {
					if s.Phase != phase {
						phases[phase] += time.Since(phaseStart)
						phase, phaseStart = s.Phase, time.Now()
					}
				}); err != nil {
					b.Fatal(err)
				}
				phases[phase] += time.Since(phaseStart)
				dsbx += time.Since(start)

				start = time.Now()
				if _, err := duck.Exec("COPY (SELECT * FROM " + c.reader + "(" + literal(c.path) + ")) TO " + literal(out) + " (FORMAT parquet)"); err != nil {
					b.Fatal(err)
				}
				duckdb += time.Since(start)
			}
			b.ReportMetric(mb*float64(n)/dsbx.Seconds(), "dsbx_MB/s")
			b.ReportMetric(mb*float64(n)/duckdb.Seconds(), "duckdb_MB/s")
			b.ReportMetric(duckdb.Seconds()/dsbx.Seconds(), "ratio")
			b.ReportMetric(mb, "input_MB")
			// Where an import spends its time, in seconds per import.
			for p, d := range phases {
				if p != "" {
					b.ReportMetric(d.Seconds()/float64(n), p+"_s")
				}
			}
		})
	}
}
