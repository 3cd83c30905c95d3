package main

import (
	"fmt"
	"strconv"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/datasandbox/dsbx/jobs"
)

func reviewCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "review", Short: "Output checking: held results waiting for review, approve, reject"}

	list := &cobra.Command{
		Use:   "list",
		Short: "List the held results you may review, oldest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			queue, err := g.client().ReviewQueue(cmd.Context())
			if err != nil {
				return err
			}
			return g.emit(cmd, queue, func() {
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tOPERATOR\tDATASET\tAPPROVALS\tWHY HELD\tJUSTIFICATION")
				for _, j := range queue {
					var approvals, required int
					var justification string
					if r := j.Review; r != nil {
						for _, d := range r.Decisions {
							if d.Approve {
								approvals++
							}
						}
						required, justification = r.Required, r.Justification
					}
					fmt.Fprintf(tw, "%d\t%s\t%s@%s\t%d of %d\t%s\t%s\n", j.ID, j.Operator, j.Dataset, shortVersion(j.Version),
						approvals, required, oneLine(heldBecause(j), 60), oneLine(justification, 40))
				}
				tw.Flush()
			})
		},
	}

	decide := func(approve bool) *cobra.Command {
		use, short := "approve JOB --reason TEXT", "Approve a held result for release"
		if !approve {
			use, short = "reject JOB --reason TEXT", "Reject a held result: it is never released"
		}
		var reason string
		c := &cobra.Command{
			Use:   use,
			Short: short,
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				id, err := strconv.ParseInt(args[0], 10, 64)
				if err != nil {
					return fmt.Errorf("job id %q is not a number", args[0])
				}
				j, err := g.client().Review(cmd.Context(), id, jobs.ReviewRequest{Approve: approve, Reason: reason})
				if err != nil {
					return err
				}
				return g.emit(cmd, j, func() { printJob(cmd.OutOrStdout(), j) })
			},
		}
		c.Flags().StringVar(&reason, "reason", "", "why, for the record (required)")
		c.MarkFlagRequired("reason")
		return c
	}
	var format string
	show := &cobra.Command{
		Use:   "show JOB",
		Short: "Print the file a held result would release (after suppression and rounding), to decide on it",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil {
				return fmt.Errorf("job id %q is not a number", args[0])
			}
			return g.client().Inspect(cmd.Context(), id, format, cmd.OutOrStdout())
		},
	}
	show.Flags().StringVar(&format, "format", "csv", "csv, parquet or arrow")
	guestLog := &cobra.Command{
		Use:   "guest-log JOB",
		Short: "Print what a WebAssembly job's guest wrote to its log (kept in quarantine, never shown to the submitter)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil {
				return fmt.Errorf("job id %q is not a number", args[0])
			}
			b, err := g.client().GuestLog(cmd.Context(), id)
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(b)
			return err
		},
	}
	cmd.AddCommand(list, show, guestLog, decide(true), decide(false))
	return cmd
}

// heldBecause is why a held job is held, from its release decision.
func heldBecause(j jobs.Job) string {
	if j.Release == nil {
		return ""
	}
	s := ""
	for i, r := range j.Release.Reasons {
		if i > 0 {
			s += "; "
		}
		s += r.Code
	}
	return s
}

func privacyCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "privacy", Short: "Differential privacy: budgets spent and remaining"}
	cmd.AddCommand(&cobra.Command{
		Use:   "budgets",
		Short: "List privacy budgets (yours; everyone's for reviewers, regulators and the admin)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			list, err := g.client().Budgets(cmd.Context())
			if err != nil {
				return err
			}
			return g.emit(cmd, list, func() {
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "OPERATOR\tDATASET\tAGREEMENT\tMECHANISM\tε TOTAL\tε PER JOB\tε SPENT\tε LEFT\tJOBS")
				for _, b := range list {
					fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%g\t%g\t%g\t%g\t%d\n", b.Operator, b.Dataset, b.Agreement, b.Mechanism,
						b.Epsilon, b.PerJob.Epsilon, b.Spent.Epsilon, b.Remaining.Epsilon, b.Jobs)
				}
				tw.Flush()
			})
		},
	})
	return cmd
}
