package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestAllSmall runs -all at a tiny scale and checks that the JSON file has
// every figure, each with a positive value, and the machine's facts.
func TestAllSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every benchmark (about a minute)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	path := filepath.Join(t.TempDir(), "out", "results.json")
	var out bytes.Buffer
	_, err := run(ctx, []string{"-all", "-json", path, "-rows", "50000", "-lookup-rows", "1000", "-runs", "1",
		"-scale", "2000", "-small-seconds", "1", "-small-clients", "2", "-append-seconds", "0.5",
		"-verify-entries", "20000", "-admissions", "200", "-keep", t.TempDir()}, &out)
	if err != nil {
		t.Fatalf("%v\noutput:\n%s", err, out.String())
	}
	t.Logf("output tail:\n%s", tail(out.String(), 30))
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rep AllReport
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	if rep.Machine.CPUs <= 0 || rep.Machine.GOMAXPROCS <= 0 || rep.Machine.MemTotal <= 0 || rep.Machine.Go == "" {
		t.Errorf("machine facts %+v", rep.Machine)
	}
	want := []string{
		"sql.group_by.ratio", "sql.lookup.ratio", "sql.join.bare_duckdb_ms",
		"small_jobs.throughput", "small_jobs.p50_ms", "small_jobs.p99_ms", "small_jobs.alone_p50_ms",
		"wasm.colsum.ratio", "admission.p50_ms", "admission.p99_ms",
		"audit.append.events_per_s", "audit.verify.seconds",
	}
	if _, err := exec.LookPath("clang-14"); err == nil || os.Getenv("DSBX_REQUIRE_GUEST_TOOLCHAINS") != "" {
		want = append(want, "wasm.colsum_c.ratio")
	}
	got := map[string]Figure{}
	for _, f := range rep.Figures {
		got[f.ID] = f
	}
	for _, id := range want {
		f, ok := got[id]
		if !ok {
			t.Errorf("figure %s missing", id)
			continue
		}
		if !(f.Value > 0) {
			t.Errorf("figure %s has value %v, want positive", id, f.Value)
		}
		if f.Name == "" || f.Platform == "" || f.Unit == "" {
			t.Errorf("figure %s undescribed: %+v", id, f)
		}
		if (f.Target == "") != (f.Met == nil) {
			t.Errorf("figure %s: target %q but met %v", id, f.Target, f.Met)
		}
		if !strings.Contains(out.String(), f.Name) {
			t.Errorf("table lacks %q", f.Name)
		}
	}
	if c, ok := got["wasm.colsum_c.ratio"]; ok && !slices.Contains(want, c.ID) && !strings.Contains(c.Platform, "clang-14") {
		t.Errorf("C guest figure without clang-14: %+v, want it to say why it was not measured", c)
	}
	if len(rep.Figures) != len(want) && len(rep.Figures) != len(want)+1 {
		t.Errorf("%d figures, want %d", len(rep.Figures), len(want))
	}
	for _, id := range []string{"sql.group_by.ratio", "wasm.colsum.ratio", "wasm.colsum_c.ratio", "admission.p99_ms", "audit.append.events_per_s", "audit.verify.seconds", "small_jobs.p50_ms"} {
		if got[id].Met == nil && slices.Contains(want, id) {
			t.Errorf("figure %s has no target", id)
		}
	}
	if j := got["sql.join.bare_duckdb_ms"]; j.Supported || !strings.Contains(j.Platform, "not supported") {
		t.Errorf("join figure %+v: the platform cannot join two datasets in one job", j)
	}
	for _, s := range []string{"figure", "platform", "baseline", "ratio or value", "target", "met", "CPUs", "GB memory"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("output lacks %q", s)
		}
	}
}

// TestAllFlags checks the -all defaults and refusals.
func TestAllFlags(t *testing.T) {
	o, err := parseFlags([]string{"-all"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if o.jsonPath != filepath.Join("bench", "results.json") || o.scale != 1_000_000 || o.admissions != 10_000 ||
		o.appendWriters != 32 || o.appendSeconds != 3*time.Second || o.verifyEntries != 1_000_000 ||
		o.smallClients != 8 || o.smallSeconds != 20*time.Second {
		t.Errorf("defaults %+v", o)
	}
	for _, args := range [][]string{{"-all", "-wasm"}, {"-all", "-scale", "1"}, {"-all", "-small-seconds", "0"}, {"-all", "-json", ""}} {
		if _, err := parseFlags(args, &bytes.Buffer{}); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
