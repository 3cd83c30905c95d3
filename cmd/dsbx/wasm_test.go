package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestWasmDeclareAndCheck builds a Go guest for wasip1, declares its fields
// and checks it, as a guest author would before submitting.
func TestWasmDeclareAndCheck(t *testing.T) {
	dir := t.TempDir()
	mod := filepath.Join(dir, "echo.wasm")
	build := exec.Command("go", "build", "-o", mod, "../../sandbox/wasm/testdata/echo")
	build.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "GOFLAGS=")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build guest: %v\n%s", err, out)
	}
	c := &e2e{ctx: context.Background()}
	srv := []string{"--server", "http://127.0.0.1:1"}
	if _, _, err := c.cli(t, append([]string{"wasm", "check", mod}, srv...)...); err == nil || !strings.Contains(err.Error(), "dsbx.fields") {
		t.Fatalf("check of an undeclared module: %v, want it to ask for dsbx.fields", err)
	}
	out := filepath.Join(dir, "declared.wasm")
	if _, _, err := c.cli(t, append([]string{"wasm", "declare", mod, "--fields", "district, income", "--out", out}, srv...)...); err != nil {
		t.Fatal(err)
	}
	got, _, err := c.cli(t, append([]string{"wasm", "check", out}, srv...)...)
	if err != nil || !strings.Contains(got, "reads fields: district, income") || !strings.Contains(got, "all allowed") {
		t.Fatalf("check: %v\n%s", err, got)
	}
	if _, _, err := c.cli(t, append([]string{"wasm", "declare", out, "--fields", "x"}, srv...)...); err == nil || !strings.Contains(err.Error(), "already declares") {
		t.Fatalf("declaring twice: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "junk.wasm"), []byte("not wasm"), 0o644)
	if _, _, err := c.cli(t, append([]string{"wasm", "check", filepath.Join(dir, "junk.wasm")}, srv...)...); err == nil || !strings.Contains(err.Error(), "malformed") {
		t.Fatalf("check of junk: %v", err)
	}
}
