package policies

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"sync/atomic"
	"testing/fstest"
)

// MaxBundle bounds the size of one policy file read from a tarball.
const MaxBundle = 4 << 20

// LoadPath loads the built-in bundle overlaid with the .rego files of a
// directory, or of a .tar.gz / .tgz tarball whose top level (or single top
// directory) holds them: a file replaces the built-in file of the same name
// (admission.rego, fields.rego, release.rego), any other file adds rules.
// An empty file of a built-in name removes that file's rules. The result
// must decide every bundled example as expected (CheckExamples).
func LoadPath(ctx context.Context, p string) (*Engine, error) {
	st, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("policies: %w", err)
	}
	var over fs.FS
	switch {
	case st.IsDir():
		over = os.DirFS(p)
	case strings.HasSuffix(p, ".tar.gz") || strings.HasSuffix(p, ".tgz"):
		if over, err = readTarball(p); err != nil {
			return nil, fmt.Errorf("policies: %s: %w", p, err)
		}
	default:
		return nil, fmt.Errorf("policies: %s is neither a directory nor a .tar.gz bundle", p)
	}
	merged, err := overlay(bundle, over)
	if err != nil {
		return nil, fmt.Errorf("policies: %s: %w", p, err)
	}
	e, err := Load(ctx, merged)
	if err != nil {
		return nil, err
	}
	if err := e.CheckExamples(ctx); err != nil {
		return nil, fmt.Errorf("policies: %s breaks the bundled examples: %w", p, err)
	}
	return e, nil
}

// overlay returns the top-level .rego files of base replaced and extended
// by those of over; empty files are left out.
func overlay(base, over fs.FS) (fs.FS, error) {
	out := fstest.MapFS{}
	for _, fsys := range []fs.FS{base, over} {
		names, err := fs.Glob(fsys, "*.rego")
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			if strings.HasSuffix(n, "_test.rego") {
				continue
			}
			src, err := fs.ReadFile(fsys, n)
			if err != nil {
				return nil, err
			}
			if len(strings.TrimSpace(string(src))) == 0 {
				delete(out, n)
				continue
			}
			out[n] = &fstest.MapFile{Data: src, Mode: 0o444}
		}
	}
	return out, nil
}

// readTarball reads the .rego files of a gzipped tarball into memory,
// flattening a single top directory.
func readTarball(p string) (fs.FS, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("not a gzip file: %w", err)
	}
	tr := tar.NewReader(zr)
	files := fstest.MapFS{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if h.Typeflag != tar.TypeReg || !strings.HasSuffix(h.Name, ".rego") {
			continue
		}
		name := path.Clean(strings.TrimPrefix(h.Name, "./"))
		dir, base := path.Split(name)
		if strings.HasPrefix(name, "..") || strings.Count(dir, "/") > 1 {
			continue // escaping, or deeper than one top directory: not part of the bundle
		}
		name = base
		if _, dup := files[name]; dup {
			return nil, fmt.Errorf("%s appears twice", name)
		}
		b, err := io.ReadAll(io.LimitReader(tr, MaxBundle+1))
		if err != nil {
			return nil, err
		}
		if len(b) > MaxBundle {
			return nil, fmt.Errorf("%s is larger than %d bytes", name, MaxBundle)
		}
		files[name] = &fstest.MapFile{Data: b, Mode: 0o444}
	}
	return files, nil
}

// Live is the engine in force, replaced whole when policies are reloaded;
// decisions taken by the engine in force carry its bundle hash. It is safe
// for concurrent use.
type Live struct{ e atomic.Pointer[Engine] }

// NewLive returns a Live holding e.
func NewLive(e *Engine) *Live {
	l := &Live{}
	l.e.Store(e)
	return l
}

// Engine returns the engine in force.
func (l *Live) Engine() *Engine { return l.e.Load() }

// Swap puts e in force and returns the engine it replaces.
func (l *Live) Swap(e *Engine) *Engine { return l.e.Swap(e) }

// Admit evaluates admission with the engine in force.
func (l *Live) Admit(ctx context.Context, in AdmissionInput) (Decision, error) {
	return l.Engine().Admit(ctx, in)
}

// Release evaluates release with the engine in force.
func (l *Live) Release(ctx context.Context, in ReleaseInput) (ReleaseDecision, error) {
	return l.Engine().Release(ctx, in)
}

// ReleaseParams evaluates the check parameters of the bundle in force.
func (l *Live) ReleaseParams(ctx context.Context, in ReleaseInput) (Params, error) {
	return l.Engine().ReleaseParams(ctx, in)
}
