package policies

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeTarball writes files (name → content) into a .tar.gz at path.
func writeTarball(t *testing.T, path string, files map[string][]byte) {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for name, data := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write(data)
	}
	tw.Close()
	zw.Close()
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func builtinFiles(t *testing.T, prefix string) map[string][]byte {
	t.Helper()
	names, _ := fs.Glob(bundle, "*.rego")
	files := map[string][]byte{}
	for _, n := range names {
		if strings.HasSuffix(n, "_test.rego") {
			continue
		}
		src, _ := bundle.ReadFile(n)
		files[prefix+n] = src
	}
	return files
}

func TestLoadPathTarballAndDirectory(t *testing.T) {
	ctx := context.Background()
	want := engine(t).BundleHash()
	dir := t.TempDir()

	for _, prefix := range []string{"", "bundle/", "./bundle/"} {
		path := filepath.Join(dir, "b.tar.gz")
		files := builtinFiles(t, prefix)
		files[prefix+"README.md"] = []byte("not a policy")
		files["../escape.rego"] = []byte("package evil\n\nx := {")
		files["a/b/deep.rego"] = []byte("package evil\n\nx := {")
		writeTarball(t, path, files)
		e, err := LoadPath(ctx, path)
		if err != nil {
			t.Fatalf("tarball with prefix %q: %v", prefix, err)
		}
		if e.BundleHash() != want {
			t.Errorf("tarball with prefix %q: hash %s, want the built-in %s (escaping and deep files ignored)", prefix, e.BundleHash(), want)
		}
	}

	plain := filepath.Join(dir, "plain")
	os.Mkdir(plain, 0o755)
	for name, src := range builtinFiles(t, "") {
		os.WriteFile(filepath.Join(plain, name), src, 0o644)
	}
	if e, err := LoadPath(ctx, plain); err != nil || e.BundleHash() != want {
		t.Fatalf("directory: %v", err)
	}

	for name, setup := range map[string]func() string{
		"neither a directory nor a .tar.gz": func() string {
			p := filepath.Join(dir, "x.zip")
			os.WriteFile(p, []byte("PK"), 0o644)
			return p
		},
		"no such file": func() string { return filepath.Join(dir, "missing.tgz") },
		"gzip": func() string {
			p := filepath.Join(dir, "bad.tgz")
			os.WriteFile(p, []byte("not gzip"), 0o644)
			return p
		},
		"appears twice": func() string {
			p := filepath.Join(dir, "twice.tgz")
			files := builtinFiles(t, "")
			files["other/admission.rego"] = files["admission.rego"]
			writeTarball(t, p, files)
			return p
		},
		"larger than": func() string {
			p := filepath.Join(dir, "big.tgz")
			files := builtinFiles(t, "")
			files["huge.rego"] = bytes.Repeat([]byte("#"), MaxBundle+1)
			writeTarball(t, p, files)
			return p
		},
	} {
		if _, err := LoadPath(ctx, setup()); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
}

// TestLoadPathOverlaysTheBuiltInBundle: a deployment adds a rule in its own
// file, or replaces a built-in file, without copying the rest.
func TestLoadPathOverlaysTheBuiltInBundle(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "local.rego"), []byte(`package dsbx.admission

import rego.v1

deny contains {"code": "night_freeze", "message": "no jobs during the year-end freeze"} if {
	startswith(input.now, "2026-12-31")
}
`), 0o644)
	e, err := LoadPath(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := e.Files()["fields.rego"]; !ok || len(e.Files()) != 4 {
		t.Fatalf("overlay files: %v", len(e.Files()))
	}
	in := baseInput()
	if d, _ := e.Admit(ctx, in); !d.Allow {
		t.Fatalf("an ordinary day is denied: %+v", d.Reasons)
	}
	in.Now = time.Date(2026, 12, 31, 9, 0, 0, 0, time.UTC)
	if d, _ := e.Admit(ctx, in); d.Allow || codes(d)[0] != "night_freeze" {
		t.Fatalf("the added rule did not deny: %+v", d)
	}
	// Replacing release.rego with an empty file removes it: the bundle no
	// longer decides release, which CheckExamples reports.
	os.WriteFile(filepath.Join(dir, "release.rego"), nil, 0o644)
	if _, err := LoadPath(ctx, dir); err == nil || !strings.Contains(err.Error(), "release") {
		t.Fatalf("bundle without release rules: %v", err)
	}
}
