package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/datasandbox/dsbx/policies"
	"github.com/datasandbox/dsbx/server"
)

// TestServeReloadsPoliciesOnSIGHUP runs `dsbx serve --policies DIR`, edits
// the bundle and sends SIGHUP: the new bundle takes over; a broken one is
// refused and the old one stays.
func TestServeReloadsPoliciesOnSIGHUP(t *testing.T) {
	e, err := policies.Default(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	bundle, data := t.TempDir(), t.TempDir()
	for name, src := range e.Files() {
		os.WriteFile(filepath.Join(bundle, name), src, 0o644)
	}
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	root := newRoot()
	root.SetArgs([]string{"serve", "--data", data, "--addr", "127.0.0.1:0", "--policies", bundle})
	root.SetOut(pw)
	errOut := &lockedBuffer{}
	root.SetErr(errOut)
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx); pw.Close() }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Error("serve did not stop")
		}
	})
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("serve: %v", err)
	}
	go io.Copy(io.Discard, pr)
	base, _, _ := strings.Cut(strings.TrimPrefix(line, "dsbx serving "), " ")
	tok, _ := os.ReadFile(filepath.Join(data, server.AdminTokenFile))
	c := &e2e{base: base, admin: strings.TrimSpace(string(tok)), ctx: ctx}
	admin := []string{"--token", c.admin}

	hashOf := func() string {
		out := c.must(t, append(admin, "policy", "show")...)
		h, _, _ := strings.Cut(out, " ")
		return h
	}
	first := hashOf()
	if first != e.BundleHash() {
		t.Fatalf("bundle in force %s, want %s", first, e.BundleHash())
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("%s; stderr:\n%s", what, errOut.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	os.WriteFile(filepath.Join(bundle, "broken.rego"), []byte("package dsbx.x\n\ny := {"), 0o644)
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	waitFor("no refusal reported after SIGHUP", func() bool { return strings.Contains(errOut.String(), "broken.rego") })
	if h := hashOf(); h != first {
		t.Fatalf("a broken bundle took over: %s", h)
	}
	os.Remove(filepath.Join(bundle, "broken.rego"))

	src, _ := os.ReadFile(filepath.Join(bundle, "admission.rego"))
	os.WriteFile(filepath.Join(bundle, "admission.rego"), []byte(strings.Replace(string(src), "platform_min_cell_count := 10", "platform_min_cell_count := 15", 1)), 0o644)
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	waitFor("the edited bundle did not take over", func() bool { return hashOf() != first })
	if out := c.must(t, append(admin, "policy", "show", first)...); !strings.Contains(out, "not in force") || !strings.Contains(out, "admission.rego") {
		t.Fatalf("the first bundle is no longer shown by hash:\n%s", out)
	}
}

// TestPolicyEvalLocally evaluates the bundled examples' inputs with the CLI,
// without a server.
func TestPolicyEvalLocally(t *testing.T) {
	c := &e2e{ctx: context.Background()}
	dir := t.TempDir()
	in := filepath.Join(dir, "denied.json")
	raw, err := os.ReadFile(filepath.Join("..", "..", "policies", "examples", "admission", "denied-field.input"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(in, raw, 0o644)
	out, _, err := c.cli(t, "policy", "eval", "--input", in, "--server", "http://127.0.0.1:1")
	if err != nil || !strings.Contains(out, "DENIED") || !strings.Contains(out, "field_not_granted") {
		t.Fatalf("policy eval: %v\n%s", err, out)
	}
	os.WriteFile(in, []byte(`{"now": "2026-11-23T09:00:00Z", "bogus": 1}`), 0o644)
	if _, _, err := c.cli(t, "policy", "eval", "--input", in, "--server", "http://127.0.0.1:1"); err == nil || !strings.Contains(err.Error(), "not an admission input") {
		t.Fatalf("eval of a document with an unknown key: %v", err)
	}
}

// lockedBuffer is a bytes.Buffer safe for one writer and one reader.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
