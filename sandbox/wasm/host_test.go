package wasm

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestHostLogAndProgress(t *testing.T) {
	var seen []Progress
	var out strings.Builder
	rep, err := Run(context.Background(), Spec{
		Module: guest(t, "hostcalls"), Output: &out,
		Progress: func(done, total int64) { seen = append(seen, Progress{Done: done, Total: total}) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(rep.Log, "hello from dsbx.log\n") {
		t.Errorf("log %q lacks the dsbx.log line", rep.Log)
	}
	if rep.Progress != (Progress{Done: 10, Total: 10, Calls: 2}) {
		t.Errorf("progress %+v, want the last of two calls", rep.Progress)
	}
	if len(seen) != 2 || seen[0].Done != 5 || seen[1].Done != 10 {
		t.Errorf("progress callbacks %+v", seen)
	}
	if out.String() != "done" {
		t.Errorf("output %q", out.String())
	}
}

// A guest that hands dsbx.log a pointer outside its memory traps; the host
// reads nothing and the job fails with a clear reason.
func TestHostLogOutOfBounds(t *testing.T) {
	rep, _, err := run(t, guest(t, "hostcalls"), strings.NewReader("oob"), Limits{}, 1)
	var g *GuestError
	if !errors.As(err, &g) || !strings.Contains(g.Trap, "outside the guest's memory") {
		t.Fatalf("err %v, want a trap naming the bad pointer", err)
	}
	if strings.Contains(rep.Log, "\x00") {
		t.Errorf("log holds bytes read from outside the guest: %q", rep.Log)
	}
}

func TestOutputSection(t *testing.T) {
	base := guest(t, "echo", "region", "income")
	agg, err := DeclareOutput(base, Output{Kind: OutputAggregate, GroupBy: []string{"region"}})
	if err != nil {
		t.Fatal(err)
	}
	m, err := Check(context.Background(), agg)
	if err != nil || m.Output.Kind != OutputAggregate || strings.Join(m.Output.GroupBy, ",") != "region" {
		t.Fatalf("declared aggregate: %+v %v", m, err)
	}
	if m, err := Check(context.Background(), base); err != nil || m.Output.Kind != OutputRows {
		t.Fatalf("a module declaring no output is row-level: %+v %v", m, err)
	}
	for name, payload := range map[string]string{
		"unknown kind":       `{"kind":"model"}`,
		"group by non-field": `{"kind":"aggregate","group_by":["name"]}`,
		"group by twice":     `{"kind":"aggregate","group_by":["region","region"]}`,
		"rows with group_by": `{"kind":"rows","group_by":["region"]}`,
		"unknown key":        `{"kind":"rows","extra":1}`,
		"not an object":      `["region"]`,
		"trailing":           `{"kind":"rows"} {}`,
	} {
		mod := append(append([]byte(nil), base...), customSection(OutputSection, []byte(payload))...)
		_, err := Check(context.Background(), mod)
		var e *Error
		if !errors.As(err, &e) || e.Code != CodeBadOutput {
			t.Errorf("%s: %v, want %s", name, err, CodeBadOutput)
		}
	}
	twice := append(append([]byte(nil), agg...), customSection(OutputSection, []byte(`{"kind":"rows"}`))...)
	if _, err := Check(context.Background(), twice); err == nil {
		t.Error("two dsbx.output sections accepted")
	}
	if _, err := DeclareOutput(agg, Output{Kind: OutputRows}); err == nil {
		t.Error("DeclareOutput on a module that declares its output accepted")
	}
	if _, err := DeclareOutput(base, Output{Kind: OutputAggregate, GroupBy: []string{"nope"}}); err == nil {
		t.Error("DeclareOutput grouping by an undeclared field accepted")
	}
}

// Only the two documented functions of the dsbx module may be imported.
func TestHostModuleAllowList(t *testing.T) {
	_, err := Check(context.Background(), withFields(importModule(HostModule, "secret"), []string{"x"}))
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeForbiddenImport || !strings.Contains(e.Msg, "dsbx.log") {
		t.Fatalf("dsbx.secret: %v, want forbidden_import listing the allowed functions", err)
	}
}
