package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/datasandbox/dsbx/jobs"
	"github.com/datasandbox/dsbx/sandbox/wasm"
)

func jobCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "job", Short: "Submit and inspect jobs"}
	var req jobs.Request
	var wait bool
	var module string
	submit := &cobra.Command{
		Use:   "submit --dataset NAME (--sql QUERY | --wasm FILE.wasm) --purpose P",
		Short: "Submit a SQL or Wasm job over a dataset (as an operator or researcher)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if req.Agreement < 0 {
				return fmt.Errorf("--agreement %d is not an agreement ID; see 'dsbx agreement list'", req.Agreement)
			}
			if module != "" {
				b, err := os.ReadFile(module)
				if err != nil {
					return err
				}
				if _, err := wasm.Check(cmd.Context(), b); err != nil { // refuse here what the server would
					return fmt.Errorf("%s: %w", module, err)
				}
				req.Wasm = b
			}
			c := g.client()
			j, err := c.Submit(cmd.Context(), req)
			if err != nil {
				return err
			}
			if wait && !jobs.Final(j.State) {
				if j, err = c.Wait(cmd.Context(), j.ID); err != nil {
					return err
				}
			}
			if err := g.emit(cmd, j, func() { printJob(cmd.OutOrStdout(), j) }); err != nil {
				return err
			}
			if j.State == jobs.StateDenied || j.State == jobs.StateFailed || j.State == jobs.StateStopped {
				return &exitError{code: 3, err: fmt.Errorf("job %d %s", j.ID, j.State)}
			}
			return nil
		},
	}
	submit.Flags().StringVar(&req.Dataset, "dataset", "", "dataset as NAME or NAME@VERSION")
	submit.Flags().StringVar(&req.SQL, "sql", "", "one SELECT statement; the dataset is the table NAME")
	submit.Flags().StringVar(&module, "wasm", "", "a WebAssembly module (guest ABI v1; check it first with 'dsbx wasm check')")
	submit.Flags().StringVar(&req.Purpose, "purpose", "", "purpose, as named in your agreement")
	submit.Flags().Int64Var(&req.Agreement, "agreement", 0, "run under this agreement (default: the oldest usable one for the purpose)")
	submit.Flags().BoolVar(&wait, "wait", false, "wait until the job reaches a final state")
	for _, f := range []string{"dataset", "purpose"} {
		submit.MarkFlagRequired(f)
	}
	submit.MarkFlagsOneRequired("sql", "wasm")
	submit.MarkFlagsMutuallyExclusive("sql", "wasm")

	show := &cobra.Command{
		Use:   "show ID",
		Short: "Show a job's full record",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil {
				return fmt.Errorf("job id %q is not a number", args[0])
			}
			j, err := g.client().Job(cmd.Context(), id)
			if err != nil {
				return err
			}
			return g.emit(cmd, j, func() { printJob(cmd.OutOrStdout(), j) })
		},
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List jobs (an operator sees its own)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			list, err := g.client().Jobs(cmd.Context())
			if err != nil {
				return err
			}
			return g.emit(cmd, list, func() {
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tSTATE\tOPERATOR\tDATASET\tSUBMITTED\tCODE")
				for _, j := range list {
					fmt.Fprintf(tw, "%d\t%s\t%s\t%s@%s\t%s\t%s\n", j.ID, j.State, j.Operator, j.Dataset, shortVersion(j.Version), j.CreatedAt.Format("2006-01-02 15:04:05"), code(j, 60))
				}
				tw.Flush()
			})
		},
	}
	justify := &cobra.Command{
		Use:   "justify JOB TEXT",
		Short: "Argue for an exception for your held result, for the output checkers",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil {
				return fmt.Errorf("job id %q is not a number", args[0])
			}
			j, err := g.client().Justify(cmd.Context(), id, args[1])
			if err != nil {
				return err
			}
			return g.emit(cmd, j, func() { printJob(cmd.OutOrStdout(), j) })
		},
	}
	cmd.AddCommand(submit, show, list, justify, jobTryCmd())
	return cmd
}

// code is a job's SQL on one line, or its module's kind and hash.
func code(j jobs.Job, n int) string {
	if j.Kind == jobs.KindWasm {
		return "wasm " + shortVersion(j.CodeSHA256)
	}
	return oneLine(j.SQL, n)
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// printJob renders a job's record for people.
func printJob(w io.Writer, j jobs.Job) {
	fmt.Fprintf(w, "job %d: %s\n", j.ID, strings.ToUpper(j.State))
	fmt.Fprintf(w, "  dataset  %s@%s\n  purpose  %s\n  %-8s %s\n", j.Dataset, shortVersion(j.Version), j.Purpose, j.Kind, code(j, 100))
	if a := j.Analysis; a != nil && a.Module != nil {
		fmt.Fprintf(w, "  module   sha256 %s, %d bytes, output %s %v\n", a.Module.SHA256, a.Module.Bytes, a.Module.Output.Kind, a.Module.Output.GroupBy)
	}
	if r := j.Run; r != nil && r.Guest != nil {
		fmt.Fprintf(w, "  guest    seed %d, read %d rows, peak %d pages, %d ms; log kept in quarantine (%d bytes)\n", r.Guest.Seed, r.Guest.InputRows, r.Guest.PeakPages, r.Guest.GuestMS, r.Guest.LogBytes)
	}
	if a := j.Analysis; a != nil {
		fmt.Fprintf(w, "  fields   %s (aggregate: %v)\n", strings.Join(a.Fields, ", "), a.Aggregate)
	}
	if d := j.Decision; d != nil {
		verdict := "denied"
		if d.Allow {
			verdict = fmt.Sprintf("allowed under agreement %d", d.AgreementID)
		}
		fmt.Fprintf(w, "  policy   %s (bundle %s)\n", verdict, short(d.Bundle))
		for _, r := range d.Reasons {
			fmt.Fprintf(w, "    - %s: %s\n", r.Code, r.Message)
		}
	}
	if r := j.Run; r != nil {
		fmt.Fprintf(w, "  run      %d rows, %d bytes, %d ms (query %d ms, %d rows scanned, DuckDB peak %d KiB; worker CPU %d ms, peak RSS %d MiB)\n",
			r.Rows, r.Bytes, r.WallMS, r.QueryMS, r.RowsScanned, r.PeakMemory>>10, r.WorkerCPUMS, r.WorkerPeakRSS>>20)
	}
	if j.ResultKind != "" {
		fmt.Fprintf(w, "  result   %s\n", j.ResultKind)
	}
	for _, c := range j.Checks {
		fmt.Fprintf(w, "  check    %-6s %s: %s\n", c.Verdict, c.Check, c.Detail)
		for _, cell := range c.Cells {
			fmt.Fprintf(w, "             row %d%s: %s\n", cell.Row, prefixed(" ", cell.Column), cell.Reason)
		}
	}
	if n := len(j.Remedies); n > 0 {
		fmt.Fprintf(w, "  remedies %d values changed before release:\n", n)
		for _, c := range j.Remedies {
			fmt.Fprintf(w, "             row %d %s %s: %s\n", c.Row, c.Column, c.Action, c.Reason)
		}
	}
	if r := j.Review; r != nil {
		fmt.Fprintf(w, "  review   %d approval(s) required\n", r.Required)
		if r.Justification != "" {
			fmt.Fprintf(w, "    justification: %s\n", r.Justification)
		}
		for _, d := range r.Decisions {
			verb := "rejected"
			if d.Approve {
				verb = "approved"
			}
			fmt.Fprintf(w, "    - %s %s at %s: %s\n", d.Reviewer, verb, d.At.Format("2006-01-02 15:04"), d.Reason)
		}
		if j.State == jobs.StateHeld && j.Error == "" {
			fmt.Fprintf(w, "    the submitter may argue for an exception: dsbx job justify %d \"...\"\n", j.ID)
		}
	}
	if j.Result != nil && j.Result.ReleaseSeq > 0 {
		fmt.Fprintf(w, "  released sha256 %s (audit entry %d); fetch with: dsbx result fetch %d --out result.csv\n", short(j.Result.SHA256), j.Result.ReleaseSeq, j.ID)
	}
	if j.Error != "" {
		fmt.Fprintf(w, "  error    %s\n", j.Error)
	}
}

// prefixed is s after p, or "" when s is empty.
func prefixed(p, s string) string {
	if s == "" {
		return ""
	}
	return p + s
}

func short(h string) string {
	if i := strings.IndexByte(h, ':'); i >= 0 {
		h = h[i+1:]
	}
	if len(h) > 16 {
		return h[:16]
	}
	return h
}
