package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// TestBenchSmall runs the whole benchmark at a tiny size, so the tool keeps
// working: both queries are released, timed on both sides, and reported.
func TestBenchSmall(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out bytes.Buffer
	rep, err := run(ctx, []string{"-rows", "20000", "-lookup-rows", "1000", "-runs", "1", "-keep", t.TempDir()}, &out)
	if err != nil {
		t.Fatalf("%v\noutput:\n%s", err, out.String())
	}
	if len(rep.Queries) != 2 {
		t.Fatalf("report has %d queries, want group-by and lookup", len(rep.Queries))
	}
	for i, name := range []string{"group-by", "lookup"} {
		q := rep.Queries[i]
		if q.Name != name {
			t.Errorf("query %d is %q, want %q", i, q.Name, name)
		}
		if len(q.Platform) != 1 || len(q.Raw) != 1 || len(q.Run) != 1 || len(q.Server) != 1 {
			t.Fatalf("%s: %d platform, %d raw, %d run, %d server times, want 1 each", name, len(q.Platform), len(q.Raw), len(q.Run), len(q.Server))
		}
		if q.Platform[0] <= 0 || q.Raw[0] <= 0 || q.Server[0] <= 0 {
			t.Errorf("%s: platform %v, raw %v, server %v; want positive times", name, q.Platform[0], q.Raw[0], q.Server[0])
		}
		if q.Server[0] > q.Platform[0] || q.Run[0] > q.Server[0] {
			t.Errorf("%s: run %v ≤ server %v ≤ platform %v does not hold", name, q.Run[0], q.Server[0], q.Platform[0])
		}
		if q.Ratio() <= 0 || q.MinRatio() <= 0 || q.PairedRatio() <= 0 {
			t.Errorf("%s: ratios %v %v %v, want positive", name, q.MinRatio(), q.Ratio(), q.PairedRatio())
		}
		if !strings.Contains(out.String(), "run 1/1") || !strings.Contains(out.String(), name) {
			t.Errorf("output does not name %s", name)
		}
	}
	for _, want := range []string{"platform min", "raw DuckDB min", "ratio min", "sandbox run", "server lifecycle", "client side", "×"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
	if rep.Threads <= 0 || rep.Memory == "" {
		t.Errorf("job limits not learned: threads %d memory %q", rep.Threads, rep.Memory)
	}
}

// TestFlags rejects settings that cannot give a released result.
func TestFlags(t *testing.T) {
	for _, args := range [][]string{{"-rows", "10"}, {"-lookup-rows", "5"}, {"-runs", "0"}, {"extra"}} {
		if _, err := parseFlags(args, &bytes.Buffer{}); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
	o, err := parseFlags(nil, &bytes.Buffer{})
	if err != nil || o.rows != 10_000_000 || o.lookupRows != 1000 || o.runs != 5 {
		t.Errorf("defaults %+v, %v", o, err)
	}
}

func TestMedian(t *testing.T) {
	if m := median([]time.Duration{3, 1, 2}); m != 2 {
		t.Errorf("median of 3,1,2 = %v", m)
	}
	if m := median([]time.Duration{4, 1, 2, 3}); m != 2 {
		t.Errorf("median of 4,1,2,3 = %v", m)
	}
}
