package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/datasandbox/dsbx/audit"
	"github.com/datasandbox/dsbx/client"
	"github.com/datasandbox/dsbx/failpoint"
	"github.com/datasandbox/dsbx/jobs"
	"github.com/datasandbox/dsbx/state"
	"github.com/datasandbox/dsbx/state/statetest"
)

// node is a `dsbx worker` process of this test.
type node struct {
	name   string
	cmd    *exec.Cmd
	exited chan struct{}
	err    error
}

// startNode starts `dsbx worker` for the server at base with token, on the
// state at url and the data directory data, with env added.
func startNode(t *testing.T, name, base, token, url, data string, env []string) *node {
	t.Helper()
	n := &node{name: name, cmd: exec.Command(os.Args[0]), exited: make(chan struct{})}
	args := []string{"worker", "--server", base, "--token", token, "--state", url, "--data", data, "--workers", "1", "--lease", "2s", "--grace", "5s"}
	n.cmd.Env = append(append(os.Environ(), env...), mainEnv+"="+strings.Join(args, "\x1f"))
	n.cmd.Stdout, n.cmd.Stderr = os.Stderr, os.Stderr
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { n.err = n.cmd.Wait(); close(n.exited) }()
	t.Cleanup(func() { n.cmd.Process.Kill(); <-n.exited })
	return n
}

// TestClusterOneServerThreeNodes runs one server that runs no jobs itself
// and three job nodes on one PostgreSQL state and one data directory. One
// node is killed (SIGKILL) while the query of its first job runs. Every
// job is released exactly once: the killed node's job runs again, once, on
// another node after its lease ran out; the log, which the nodes wrote
// through the server, verifies as one sequence.
func TestClusterOneServerThreeNodes(t *testing.T) {
	url := statetest.URL(t, "cluster")
	if url == "" {
		t.Skip("needs PostgreSQL: set " + statetest.Env + " to a server's URL (make test does)")
	}
	if testing.Short() {
		t.Skip("starts a server and three nodes")
	}
	work := t.TempDir()
	data := filepath.Join(work, "data")
	csv, fields, _, _ := register(t, work)
	s := startServe(t, data, nil, "--state", url, "--workers", "0")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	e := &e2e{base: s.base, admin: s.token, ctx: ctx}
	admin := []string{"--token", e.admin}
	e.must(t, append(admin, "dataset", "import", "people", csv, "--spec", fields, "--progress", "never")...)
	provider := []string{"--token", strings.TrimSpace(e.must(t, append(admin, "principal", "add", "hz-civil", "--role", "provider", "--org", "Civil Affairs Bureau")...))}
	opToken := strings.TrimSpace(e.must(t, append(admin, "principal", "add", "acme", "--role", "operator")...))
	until := time.Now().UTC().AddDate(1, 0, 0).Format("2006-01-02")
	out := e.must(t, "--token", opToken, "application", "submit", "--dataset", "people:district,income", "--purpose", purpose, "--until", until)
	e.must(t, append(provider, "application", "approve", strings.Fields(out)[1])...)

	// A node's token may do nothing but record job steps.
	nodeTokens := map[string]string{}
	for _, name := range []string{"node-1", "node-2", "node-3"} {
		nodeTokens[name] = strings.TrimSpace(e.must(t, append(admin, "principal", "add", name, "--role", "node")...))
	}
	if _, err := e.dsbx(t, "--token", nodeTokens["node-1"], "dataset", "list"); err == nil {
		t.Fatal("a node's token listed the catalog")
	}

	// node-2 dies while the query of its first job runs.
	nodes := []*node{
		startNode(t, "node-1", s.base, nodeTokens["node-1"], url, data, nil),
		startNode(t, "node-2", s.base, nodeTokens["node-2"], url, data, []string{failpoint.Env + "=" + failpoint.Query}),
		startNode(t, "node-3", s.base, nodeTokens["node-3"], url, data, nil),
	}
	op := client.New(s.base, opToken)
	const n = 12
	var ids []int64
	for range n {
		j, err := op.Submit(ctx, jobs.Request{Dataset: "people", SQL: crashSQL, Purpose: purpose})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, j.ID)
	}
	select {
	case <-nodes[1].exited:
	case <-time.After(time.Minute):
		t.Fatal("node-2 did not die at its failpoint within a minute")
	}
	for _, id := range ids {
		j, err := op.Wait(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if j.State != jobs.StateReleased {
			t.Fatalf("job %d ended %s (%s), want released", id, j.State, j.Error)
		}
	}

	records := logState(ctx, t, s.admin)
	started := map[string][]string{} // job → the nodes that started it
	released := map[string]int{}
	requeued := map[string]int{}
	nodeOfCredential := map[string]string{}
	for name := range nodeTokens {
		nodeOfCredential[credentialID(t, s.admin, name)] = name
	}
	for _, rec := range records {
		var en audit.Entry
		if err := json.Unmarshal(rec, &en); err != nil {
			t.Fatal(err)
		}
		switch en.Kind {
		case "job.started":
			who, ok := nodeOfCredential[en.Credential]
			if !ok {
				t.Fatalf("%s of %s was recorded under credential %q, not a node's", en.Kind, en.Subject, en.Credential)
			}
			started[en.Subject] = append(started[en.Subject], who)
		case "result.released":
			released[en.Subject]++
		case "job.requeued":
			requeued[en.Subject]++
		}
	}
	ran := map[string]bool{}
	var retried []string
	for _, id := range ids {
		subject := "job/" + strconv.FormatInt(id, 10)
		if released[subject] != 1 {
			t.Errorf("%s released %d times, want once", subject, released[subject])
		}
		for _, who := range started[subject] {
			ran[who] = true
		}
		if len(started[subject]) > 1 {
			retried = append(retried, subject)
			if requeued[subject] != 1 || started[subject][0] != "node-2" || started[subject][1] == "node-2" {
				t.Errorf("%s started on %v, requeued %d times; want node-2 then another node, after one requeue", subject, started[subject], requeued[subject])
			}
		}
	}
	if len(retried) != 1 {
		t.Errorf("jobs that ran twice: %v; want exactly node-2's one", retried)
	}
	if !ran["node-1"] || !ran["node-3"] {
		t.Errorf("nodes that ran jobs: %v; want node-1 and node-3 both", ran)
	}

	// The state agrees: no job is left running or leased.
	db, err := state.Open(ctx, "", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var left int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM jobs WHERE state = ? OR lease_owner != ''`, jobs.StateRunning).Scan(&left); err != nil || left != 0 {
		t.Fatalf("%d jobs still running or leased (%v)", left, err)
	}
	for _, nd := range []*node{nodes[0], nodes[2]} {
		nd.cmd.Process.Signal(os.Interrupt)
		select {
		case <-nd.exited:
			if nd.err != nil {
				t.Errorf("%s exited with %v after SIGINT, want status 0", nd.name, nd.err)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("%s did not exit within 20s of SIGINT", nd.name)
		}
	}
}

// credentialID returns the ID of principal name's one token.
func credentialID(t *testing.T, admin *client.Client, name string) string {
	t.Helper()
	creds, err := admin.Tokens(context.Background(), name)
	if err != nil || len(creds) != 1 {
		t.Fatalf("tokens of %s: %v %v", name, creds, err)
	}
	return creds[0].ID
}
