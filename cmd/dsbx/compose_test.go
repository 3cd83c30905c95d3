package main

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestComposeExampleCommands: every dsbx command line in the deployment
// example (deploy/compose.yaml) names a real command with real flags, so
// the example cannot drift from the binary unnoticed.
func TestComposeExampleCommands(t *testing.T) {
	b, err := os.ReadFile("../../deploy/compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Services map[string]struct {
			Entrypoint any `yaml:"entrypoint"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("deploy/compose.yaml: %v", err)
	}
	var lines [][]string
	for name, s := range doc.Services {
		switch e := s.Entrypoint.(type) {
		case []any:
			var args []string
			for _, a := range e {
				args = append(args, a.(string))
			}
			if args[0] == "dsbx" {
				lines = append(lines, args[1:])
				continue
			}
			if args[0] == "sh" {
				lines = append(lines, scriptCommands(args[len(args)-1])...)
				continue
			}
			t.Errorf("service %s: entrypoint %v is neither dsbx nor sh", name, args)
		case nil:
		default:
			t.Errorf("service %s: entrypoint %T", name, e)
		}
	}
	want := map[string]bool{"serve": false, "worker": false, "principal add": false}
	for _, args := range lines {
		root := newRoot()
		cmd, rest, err := root.Find(args)
		if err != nil || cmd == root {
			t.Errorf("dsbx %v: no such command (%v)", args, err)
			continue
		}
		if err := cmd.ParseFlags(rest); err != nil {
			t.Errorf("dsbx %s: %v", strings.Join(args, " "), err)
		}
		want[strings.TrimPrefix(cmd.CommandPath(), "dsbx ")] = true
	}
	for c, seen := range want {
		if !seen {
			t.Errorf("the example runs no dsbx %s", c)
		}
	}
}

var dsbxLine = regexp.MustCompile(`(?:^|\s)dsbx\s+(.*)$`)

// scriptCommands returns the arguments of each dsbx command in a shell
// script: continuation lines joined, expansions ($…) standing for an
// argument, redirections and what follows left out.
func scriptCommands(script string) [][]string {
	var out [][]string
	joined := strings.ReplaceAll(script, "\\\n", " ")
	for _, line := range strings.Split(joined, "\n") {
		m := dsbxLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		var args []string
		for _, f := range strings.Fields(m[1]) {
			if strings.ContainsAny(f, ">|;") {
				break // a redirection or the next command
			}
			if strings.Contains(f, "$") {
				f = "VALUE" // a shell expansion: an argument
			}
			args = append(args, f)
		}
		out = append(out, args)
	}
	return out
}
