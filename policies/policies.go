// Package policies evaluates the platform's Rego bundle: admission (may a job
// run, and which fields may it see in which form) and release (may a result
// leave). Go gathers facts and enforces decisions; the rules live in the
// .rego files of this directory, and every decision carries the bundle's hash.
package policies

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
)

//go:embed *.rego
var bundle embed.FS

// Engine holds the prepared queries of one bundle; it is safe for concurrent
// use.
type Engine struct {
	admission rego.PreparedEvalQuery
	release   rego.PreparedEvalQuery
	params    rego.PreparedEvalQuery
	hash      string
	files     map[string][]byte
}

// Default returns the engine for the bundle built into the binary.
func Default(ctx context.Context) (*Engine, error) {
	return Load(ctx, bundle)
}

// Load compiles every .rego file at the top of fsys (Rego v1 syntax).
func Load(ctx context.Context, fsys fs.FS) (*Engine, error) {
	all, err := fs.Glob(fsys, "*.rego")
	if err != nil {
		return nil, fmt.Errorf("policies: %w", err)
	}
	var names []string // the rules; *_test.rego files are tests, run by make test and opa test
	for _, n := range all {
		if !strings.HasSuffix(n, "_test.rego") {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("policies: no .rego files in the bundle")
	}
	sort.Strings(names)
	h := sha256.New()
	files := map[string][]byte{}
	var opts []func(*rego.Rego)
	for _, name := range names {
		src, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("policies: read %s: %w", name, err)
		}
		sum := sha256.Sum256(src)
		fmt.Fprintf(h, "%s %x\n", path.Clean(name), sum)
		files[path.Clean(name)] = src
		opts = append(opts, rego.Module(name, string(src)))
	}
	e := &Engine{hash: "sha256:" + hex.EncodeToString(h.Sum(nil)), files: files}
	prepare := func(query string) (rego.PreparedEvalQuery, error) {
		args := append([]func(*rego.Rego){rego.Query(query), rego.SetRegoVersion(ast.RegoV1)}, opts...)
		pq, err := rego.New(args...).PrepareForEval(ctx)
		if err != nil {
			return rego.PreparedEvalQuery{}, fmt.Errorf("policies: compile bundle for %s: %w", query, err)
		}
		return pq, nil
	}
	if e.admission, err = prepare("data.dsbx.admission.decision"); err != nil {
		return nil, err
	}
	if e.release, err = prepare("data.dsbx.release.decision"); err != nil {
		return nil, err
	}
	if e.params, err = prepare("data.dsbx.release.params"); err != nil {
		return nil, err
	}
	return e, nil
}

// BundleHash identifies the bundle: SHA-256 over each file's name and hash.
func (e *Engine) BundleHash() string { return e.hash }

// Files returns the bundle's rule files by name; callers must not modify
// them.
func (e *Engine) Files() map[string][]byte { return e.files }

// eval runs pq on input and decodes its single value into out.
func eval(ctx context.Context, pq rego.PreparedEvalQuery, what string, input, out any) error {
	// OPA round-trips the input through JSON itself, so the policy sees
	// exactly the documented shape (struct tags), with numbers kept exact.
	rs, err := pq.Eval(ctx, rego.EvalInput(input))
	if err != nil {
		return fmt.Errorf("policies: evaluate %s: %w", what, err)
	}
	if len(rs) != 1 || len(rs[0].Expressions) != 1 {
		return fmt.Errorf("policies: %s produced no decision; the bundle must define data.dsbx.%s.decision for every input", what, what)
	}
	val, err := json.Marshal(rs[0].Expressions[0].Value)
	if err != nil {
		return fmt.Errorf("policies: %s decision: %w", what, err)
	}
	dec := json.NewDecoder(strings.NewReader(string(val)))
	if err := dec.Decode(out); err != nil {
		return fmt.Errorf("policies: %s decision has the wrong shape: %w", what, err)
	}
	return nil
}
