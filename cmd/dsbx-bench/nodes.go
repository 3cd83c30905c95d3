package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/datasandbox/dsbx/client"
	"github.com/datasandbox/dsbx/operators"
	"github.com/datasandbox/dsbx/server"
	"github.com/datasandbox/dsbx/state"
)

// runNodes measures how small-job throughput scales with job nodes: one
// server running no jobs itself, on a new PostgreSQL database on the server
// o.state names, and 1, 2, … nodes (server.OpenNode, in this process; each
// job still runs in a sandbox worker process of its own), each running one
// job at a time, under the same 8 clients submitting the lookup job.
func runNodes(ctx context.Context, o options, w io.Writer) ([]NodeFigure, error) {
	b := &bench{w: w, start: time.Now()}
	dir, done, err := workDir(o.keep, "dsbx-bench-nodes-")
	if err != nil {
		return nil, err
	}
	defer done()
	b.dir = dir
	dbURL, drop, err := state.CreateDatabase(ctx, o.state, "dsbx_bench_")
	if err != nil {
		return nil, err
	}
	defer drop()
	b.say("dsbx-bench -nodes %v: %d clients for %s per node count, %d CPUs (GOMAXPROCS %d); state %s",
		o.nodes, o.smallClients, o.smallSeconds, runtime.NumCPU(), runtime.GOMAXPROCS(0), state.Redact(dbURL))

	files := filepath.Join(b.dir, "files")
	if err := os.MkdirAll(files, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", files, err)
	}
	paths := map[string]string{"people": filepath.Join(files, "people.parquet"), "lookup": filepath.Join(files, "lookup.parquet")}
	for _, p := range paths {
		if err := b.generate(ctx, p, o.lookupRows); err != nil {
			return nil, err
		}
	}
	b.data = filepath.Join(b.dir, "data")
	srv, err := server.Open(ctx, server.Config{Data: b.data, State: dbURL, Workers: -1})
	if err != nil {
		return nil, fmt.Errorf("open the platform: %w", err)
	}
	defer srv.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go srv.Serve(sctx, l)
	b.base = "http://" + l.Addr().String()
	if err := b.setup(ctx, paths); err != nil {
		return nil, err
	}
	tok, err := os.ReadFile(filepath.Join(b.data, server.AdminTokenFile))
	if err != nil {
		return nil, err
	}
	admin := client.New(b.base, strings.TrimSpace(string(tok)))
	lookup := QueryTimes{Name: "lookup", Dataset: "lookup", Rows: o.lookupRows,
		SQL: "SELECT district, count(*) AS n FROM lookup WHERE income > 5000 GROUP BY district"}

	var figs []NodeFigure
	for _, count := range o.nodes {
		var nodes []*server.Node
		for i := range count {
			name := fmt.Sprintf("bench-node-%d", i+1)
			token, err := nodeToken(ctx, admin, name)
			if err != nil {
				return nil, err
			}
			n, err := server.OpenNode(ctx, server.NodeConfig{Name: name, Data: b.data, State: dbURL, Workers: 1, Server: client.New(b.base, token)})
			if err != nil {
				return nil, err
			}
			nodes = append(nodes, n)
		}
		b.say("== %d node(s), one job at a time each", count)
		before := cpuTimes()
		lat, elapsed, err := b.smallJobs(ctx, &lookup, o.smallClients, o.smallSeconds)
		busy := before.busySince()
		for _, n := range nodes {
			n.Close()
		}
		if err != nil {
			return nil, err
		}
		f := NodeFigure{Nodes: count, Jobs: len(lat), PerSecond: float64(len(lat)) / elapsed.Seconds(), P50MS: msf(percentile(lat, 50)), P99MS: msf(percentile(lat, 99)), CPUBusy: busy}
		figs = append(figs, f)
		b.say("  %d jobs in %s: %.1f jobs/s, p50 %.0f ms, p99 %.0f ms, CPUs %.0f%% busy", f.Jobs, elapsed.Round(10*time.Millisecond), f.PerSecond, f.P50MS, f.P99MS, 100*f.CPUBusy)
	}
	fmt.Fprintf(w, "\n%-6s %8s %10s %10s %10s %12s %10s\n", "nodes", "jobs", "jobs/s", "p50 ms", "p99 ms", "vs 1 node", "CPUs busy")
	for _, f := range figs {
		fmt.Fprintf(w, "%-6d %8d %10.1f %10.0f %10.0f %11.2f× %9.0f%%\n", f.Nodes, f.Jobs, f.PerSecond, f.P50MS, f.P99MS, f.PerSecond/figs[0].PerSecond, 100*f.CPUBusy)
	}
	fmt.Fprintf(w, "\n%d CPUs: the nodes share them, as nodes on one machine do; each node on a machine of its own would bring its own.\n", runtime.NumCPU())
	return figs, nil
}

// NodeFigure is the small-job throughput with a number of job nodes.
type NodeFigure struct {
	Nodes     int     `json:"nodes"`
	Jobs      int     `json:"jobs"`
	PerSecond float64 `json:"jobs_per_s"`
	P50MS     float64 `json:"p50_ms"`
	P99MS     float64 `json:"p99_ms"`
	CPUBusy   float64 `json:"cpu_busy"` // the machine's CPUs' busy share during the run, 0 to 1 (Linux; 0 elsewhere)
}

// cpuSample is the machine's CPU time so far, from /proc/stat.
type cpuSample struct{ busy, total float64 }

// cpuTimes reads /proc/stat's first line (all CPUs); zero elsewhere.
func cpuTimes() cpuSample {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuSample{}
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	var s cpuSample
	for i, v := range f[1:] {
		n, _ := strconv.ParseFloat(v, 64)
		s.total += n
		if i != 3 && i != 4 { // idle and iowait
			s.busy += n
		}
	}
	return s
}

// busySince is the share of CPU time spent busy since c was read.
func (c cpuSample) busySince() float64 {
	now := cpuTimes()
	if now.total <= c.total {
		return 0
	}
	return (now.busy - c.busy) / (now.total - c.total)
}

// nodeToken returns a token of the job node principal name, adding it on
// first use.
func nodeToken(ctx context.Context, admin *client.Client, name string) (string, error) {
	if _, issued, err := admin.AddPrincipal(ctx, operators.NewPrincipal{Name: name, Roles: []string{operators.RoleNode}}); err == nil {
		return issued.Token, nil
	}
	issued, err := admin.IssueToken(ctx, name, "bench", "")
	if err != nil {
		return "", fmt.Errorf("token for node %s: %w", name, err)
	}
	return issued.Token, nil
}
