package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/datasandbox/dsbx/jobs"
	"github.com/datasandbox/dsbx/policies"
)

func policyCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "policy", Short: "See, reload and try the Rego policies"}

	var out string
	show := &cobra.Command{
		Use:   "show [HASH]",
		Short: "Show the bundle in force, or any bundle the server ever ran, by hash",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			hash := ""
			if len(args) == 1 {
				hash = args[0]
			}
			b, err := g.client().Policy(cmd.Context(), hash)
			if err != nil {
				return err
			}
			if out != "" {
				if err := os.MkdirAll(out, 0o755); err != nil {
					return err
				}
				for name, src := range b.Files {
					if err := os.WriteFile(filepath.Join(out, filepath.Base(name)), []byte(src), 0o644); err != nil {
						return err
					}
				}
			}
			return g.emit(cmd, b, func() {
				state := "not in force"
				if b.InForce {
					state = "in force"
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s (%s)\n", b.Hash, state)
				names := make([]string, 0, len(b.Files))
				for n := range b.Files {
					names = append(names, n)
				}
				sort.Strings(names)
				for _, n := range names {
					fmt.Fprintf(cmd.OutOrStdout(), "  %s  %d bytes\n", n, len(b.Files[n]))
				}
			})
		},
	}
	show.Flags().StringVar(&out, "out", "", "also write the bundle's files into this directory")

	reload := &cobra.Command{
		Use:   "reload",
		Short: "Have the server read its --policies bundle again (admin); a bundle that fails to compile or breaks the examples is refused and the old one stays",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			hash, err := g.client().ReloadPolicy(cmd.Context())
			if err != nil {
				return err
			}
			return g.emit(cmd, map[string]string{"bundle": hash}, func() {
				fmt.Fprintf(cmd.OutOrStdout(), "policies in force: %s\n", hash)
			})
		},
	}

	var req jobs.Request
	explain := &cobra.Command{
		Use:   "explain",
		Short: "Dry run: what admission would decide for a job, field by field, without submitting it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ex, err := g.client().Explain(cmd.Context(), req)
			if err != nil {
				return err
			}
			if err := g.emit(cmd, ex, func() { printDecision(cmd.OutOrStdout(), ex.Decision) }); err != nil {
				return err
			}
			if !ex.Decision.Allow {
				return &exitError{code: 3, err: fmt.Errorf("the job would be denied")}
			}
			return nil
		},
	}
	explain.Flags().StringVar(&req.Dataset, "dataset", "", "dataset as NAME or NAME@VERSION")
	explain.Flags().StringVar(&req.SQL, "sql", "", "one SELECT statement")
	explain.Flags().StringVar(&req.Purpose, "purpose", "", "purpose, as named in your agreement")
	explain.Flags().Int64Var(&req.Agreement, "agreement", 0, "the agreement to run under (default: the policy's choice)")
	for _, f := range []string{"dataset", "sql", "purpose"} {
		explain.MarkFlagRequired(f)
	}

	var input, bundle string
	var release bool
	eval := &cobra.Command{
		Use:   "eval --input FILE",
		Short: "Evaluate a policy input document locally (no server) with the built-in bundle or --policies",
		Long: "Evaluate a policy input document locally with the built-in bundle or --policies DIR|TGZ. " +
			"The input is an admission input (see policies/input.schema.json), or with --release a release input; " +
			"'dsbx policy explain --json' prints the admission input the server built for a job.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var r io.Reader = cmd.InOrStdin()
			if input != "-" {
				f, err := os.Open(input)
				if err != nil {
					return err
				}
				defer f.Close()
				r = f
			}
			var e *policies.Engine
			var err error
			if bundle == "" {
				e, err = policies.Default(cmd.Context())
			} else {
				e, err = policies.LoadPath(cmd.Context(), bundle)
			}
			if err != nil {
				return err
			}
			dec := json.NewDecoder(r)
			dec.DisallowUnknownFields()
			if release {
				var in policies.ReleaseInput
				if err := dec.Decode(&in); err != nil {
					return fmt.Errorf("%s is not a release input: %w", input, err)
				}
				d, err := e.Release(cmd.Context(), in)
				if err != nil {
					return err
				}
				return g.emit(cmd, d, func() {
					fmt.Fprintf(cmd.OutOrStdout(), "%s (bundle %s)\n", strings.ToUpper(d.Outcome), d.Bundle)
					for _, r := range d.Reasons {
						fmt.Fprintf(cmd.OutOrStdout(), "  %s: %s\n", r.Code, r.Message)
					}
				})
			}
			var in policies.AdmissionInput
			if err := dec.Decode(&in); err != nil {
				return fmt.Errorf("%s is not an admission input: %w", input, err)
			}
			d, err := e.Admit(cmd.Context(), in)
			if err != nil {
				return err
			}
			return g.emit(cmd, d, func() { printDecision(cmd.OutOrStdout(), d) })
		},
	}
	eval.Flags().StringVar(&input, "input", "", "the input document (JSON; - for stdin)")
	eval.Flags().StringVar(&bundle, "policies", "", "a bundle directory or .tar.gz (default: the built-in bundle)")
	eval.Flags().BoolVar(&release, "release", false, "the input is a release input")
	eval.MarkFlagRequired("input")

	cmd.AddCommand(show, reload, explain, eval)
	return cmd
}

// printDecision shows an admission decision: the outcome, each field's form
// and every reason.
func printDecision(w io.Writer, d policies.Decision) {
	if d.Allow {
		fmt.Fprintf(w, "ALLOWED under agreement %d (bundle %s)\n", d.AgreementID, d.Bundle)
	} else {
		fmt.Fprintf(w, "DENIED (bundle %s)\n", d.Bundle)
	}
	fields := make([]string, 0, len(d.Fields))
	for f := range d.Fields {
		fields = append(fields, f)
	}
	sort.Strings(fields)
	for _, f := range fields {
		fmt.Fprintf(w, "  field %s: %s\n", f, d.Fields[f])
	}
	for _, r := range d.Reasons {
		fmt.Fprintf(w, "  %s: %s\n", r.Code, r.Message)
	}
}
