package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/datasandbox/dsbx/state/statetest"
)

// TestNodesSmall runs -nodes at a tiny size against the PostgreSQL server
// of the test run, so the tool keeps working.
func TestNodesSmall(t *testing.T) {
	pg := os.Getenv(statetest.Env)
	if pg == "" {
		t.Skip("needs PostgreSQL: set " + statetest.Env + " (make test does)")
	}
	var out bytes.Buffer
	_, err := run(context.Background(), []string{"-nodes", "1,2", "-state", pg, "-lookup-rows", "300", "-small-seconds", "1", "-small-clients", "2"}, &out)
	if err != nil {
		t.Fatalf("%v\n%s", err, tail(out.String(), 20))
	}
	for _, want := range []string{"== 1 node(s)", "== 2 node(s)", "vs 1 node", "1.00×"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, tail(out.String(), 20))
		}
	}
}

func TestNodesFlags(t *testing.T) {
	o, err := parseFlags([]string{"-nodes", "1, 3", "-state", "postgres://u@h/db"}, &bytes.Buffer{})
	if err != nil || len(o.nodes) != 2 || o.nodes[1] != 3 {
		t.Fatalf("%+v %v", o.nodes, err)
	}
	for _, args := range [][]string{{"-nodes", "1,0", "-state", "postgres://u@h/db"}, {"-nodes", "x", "-state", "postgres://u@h/db"}, {"-nodes", "1", "-state", "/tmp/x"}, {"-nodes", "1", "-state", "postgres://u@h/db", "-all"}} {
		if _, err := parseFlags(args, &bytes.Buffer{}); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}
