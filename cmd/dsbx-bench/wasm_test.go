package main

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
)

// TestWasmBenchSmall runs the -wasm benchmark at a small size: the guest is
// built and run, all three sides agree, and the table is printed.
func TestWasmBenchSmall(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	o, err := parseFlags([]string{"-wasm", "-rows", "200000", "-runs", "1"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	rep, err := runWasm(ctx, o, &out)
	if err != nil {
		t.Fatalf("%v\noutput:\n%s", err, out.String())
	}
	t.Logf("output:\n%s", out.String())
	want := resultOf(inMemory(mustAmounts(200_000)))
	if rep.Result != want || want.Rows != 200_000 || want.Null {
		t.Errorf("result %+v, want %+v", rep.Result, want)
	}
	if rep.Batches != 4 || len(rep.InMemory) != 1 || len(rep.OverIPC) != 1 || len(rep.Wasm) != 1 || len(rep.WasmWall) != 1 {
		t.Errorf("%d batches, %d/%d/%d/%d times; want 4 batches and one time per side", rep.Batches, len(rep.InMemory), len(rep.OverIPC), len(rep.Wasm), len(rep.WasmWall))
	}
	if rep.Compile <= 0 || rep.Wasm[0] < rep.WasmWall[0] || rep.InMemory[0] <= 0 {
		t.Errorf("compile %v, wasm %v, guest %v, in memory %v: implausible times", rep.Compile, rep.Wasm[0], rep.WasmWall[0], rep.InMemory[0])
	}
	for _, line := range []string{
		"run 1/1: native in memory",
		"sums agree",
		"native Go, in memory",
		"native Go, over IPC",
		"Wasm job, Go guest (wasm.Run)",
		"guest run alone",
		"/ native in memory",
		"/ native over IPC",
		"sums agree on every side: 200000 rows",
		"compilation (first wasm.Check, cold cache)",
		"CPUs",
	} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("output lacks %q", line)
		}
	}
	if _, err := exec.LookPath("clang-14"); err == nil && !strings.Contains(out.String(), "Wasm job, C guest (wasm.Run)") {
		t.Error("clang-14 is installed but the C guest was not measured")
	}
}

func mustAmounts(n int64) []arrow.RecordBatch {
	_, b := amounts(n)
	return b
}

// TestRepoRoot finds the repository from a subdirectory and refuses a
// directory that is not it.
func TestRepoRoot(t *testing.T) {
	root, err := repoRoot("")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := repoRoot(root); err != nil {
		t.Errorf("-repo %s: %v", root, err)
	}
	if _, err := repoRoot(t.TempDir()); err == nil {
		t.Error("an empty directory accepted as the repository")
	}
}
