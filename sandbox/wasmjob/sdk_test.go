package wasmjob

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	sqlbox "github.com/datasandbox/dsbx/sandbox/sql"
	"github.com/datasandbox/dsbx/sandbox/wasm"
)

// repoRoot is the module root, two levels up from this package.
func repoRoot(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// cGroupsum builds the C SDK's groupsum example, or skips (fails when
// DSBX_REQUIRE_GUEST_TOOLCHAINS=1) without clang-14 and wasi-libc.
func cGroupsum(t *testing.T) []byte {
	t.Helper()
	if _, err := exec.LookPath("clang-14"); err != nil {
		if os.Getenv("DSBX_REQUIRE_GUEST_TOOLCHAINS") == "1" {
			t.Fatal("clang-14 is missing; make test installs it (apt-get install clang-14 lld-14 wasi-libc libclang-rt-14-dev-wasm32)")
		}
		t.Skip("clang-14 is missing: apt-get install clang-14 lld-14 wasi-libc libclang-rt-14-dev-wasm32")
	}
	root := repoRoot(t)
	out := filepath.Join(t.TempDir(), "groupsum-c.wasm")
	cmd := exec.Command("clang-14", "--target=wasm32-wasi", "-O2", "-Wl,--strip-debug", "-I", filepath.Join(root, "sdk", "c"),
		"-o", out, filepath.Join(root, "sdk", "c", "examples", "groupsum.c"))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the C guest: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// goGroupsum builds the Go SDK's groupsum example for wasip1 and declares
// its fields and output, as 'dsbx wasm declare' does.
func goGroupsum(t *testing.T) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "groupsum-go.wasm")
	cmd := exec.Command("go", "build", "-o", out, "./sdk/go/examples/groupsum")
	cmd.Dir = repoRoot(t)
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "GOFLAGS=")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the Go guest: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if b, err = wasm.DeclareFields(b, []string{"region", "income"}); err != nil {
		t.Fatal(err)
	}
	if b, err = wasm.DeclareOutput(b, wasm.Output{Kind: wasm.OutputAggregate, GroupBy: []string{"region"}}); err != nil {
		t.Fatal(err)
	}
	return b
}

// registry writes n people over 57 regions with NULL incomes, a region whose
// incomes are all NULL and rows without a region.
func registry(t *testing.T, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "registry.parquet")
	_, err := openPlain(t).Exec(fmt.Sprintf(`COPY (SELECT
		CASE WHEN i %% 101 = 0 THEN NULL ELSE printf('33%%04d', (i * 7919) %% 57) END AS region,
		CASE WHEN i %% 13 = 0 OR (i * 7919) %% 57 = 5 THEN NULL ELSE (i * 2654435761) %% 100000 END AS income,
		printf('ID%%08d', i) AS id
		FROM range(%d) r(i)) TO '%s' (FORMAT parquet, ROW_GROUP_SIZE 20000)`, n, path))
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// The example guests in C and Go compute the grouped aggregate the SQL job
// computes: the released Parquet files are byte for byte the same.
func TestExampleGuestsMatchSQL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds two guests")
	}
	snapshot := registry(t, 200_000)
	table := sqlbox.Table{Name: "registry", Parquet: snapshot, Columns: []sqlbox.Column{{Name: "region", Form: sqlbox.FormRaw}, {Name: "income", Form: sqlbox.FormRaw}}}
	an, err := sqlbox.Analyze(ctx(t), `SELECT region, count(*) AS n, CAST(sum(income) AS BIGINT) AS total FROM registry GROUP BY region ORDER BY region`,
		map[string][]string{"registry": {"region", "income", "id"}})
	if err != nil {
		t.Fatal(err)
	}
	limits := sqlbox.Limits{Memory: "256MB", Threads: 2, Timeout: 30e9, MaxRows: 1000, MaxBytes: 8 << 20}
	limits.TempDir = filepath.Join(t.TempDir(), "tmp")
	want, err := sqlbox.Run(ctx(t), sqlbox.Spec{Query: an.SQL, Tables: []sqlbox.Table{table}, Limits: limits, Out: filepath.Join(t.TempDir(), "sql.parquet")})
	if err != nil {
		t.Fatal(err)
	}
	if want.Rows != 58 {
		t.Fatalf("the SQL job found %d groups, want 57 regions and NULL", want.Rows)
	}
	for name, module := range map[string][]byte{"C": cGroupsum(t), "Go": goGroupsum(t)} {
		t.Run(name, func(t *testing.T) {
			s := Spec{Module: module, Table: table, Seed: 1, Out: filepath.Join(t.TempDir(), "wasm.parquet"),
				Limits: Limits{Timeout: 30e9, Memory: "256MB", Threads: 2, MaxRows: 1000, MaxBytes: 8 << 20, TempDir: filepath.Join(t.TempDir(), "tmp")}}
			got, err := RunIsolated(ctx(t), s)
			if err != nil {
				var ge *wasm.GuestError
				if errors.As(err, &ge) && got != nil && got.Guest != nil {
					t.Logf("guest log: %s", got.Guest.Log)
				}
				t.Fatal(err)
			}
			if got.SHA256 != want.SHA256 || got.Rows != want.Rows {
				t.Fatalf("%s guest: %d rows sha %s; SQL job: %d rows sha %s", name, got.Rows, got.SHA256, want.Rows, want.SHA256)
			}
			if got.InputRows != 200_000 || got.Guest.Progress.Calls == 0 {
				t.Errorf("streamed %d rows, progress %+v", got.InputRows, got.Guest.Progress)
			}
			for i, c := range got.CellCounts { // the host's group sizes are the SQL count(*) column
				if c <= 0 {
					t.Errorf("row %d: host counted %d rows for a group the guest reported", i, c)
				}
			}
		})
	}
}
