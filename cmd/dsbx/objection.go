package main

import (
	"fmt"
	"strconv"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

func objectionCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "objection", Short: "Objections (异议) to opened data: file, list, decide"}

	var dataset, field, reason string
	file := &cobra.Command{
		Use:   "file",
		Short: "Object to a dataset, or one field of it, that infringes privacy or trade secrets",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			o, err := g.client().Object(cmd.Context(), dataset, field, reason)
			if err != nil {
				return err
			}
			return g.emit(cmd, o, func() {
				fmt.Fprintf(cmd.OutOrStdout(), "objection %d filed against %s%s; it is %s\n", o.ID, o.Dataset, fieldSuffix(o.Field), o.Status)
			})
		},
	}
	file.Flags().StringVar(&dataset, "dataset", "", "dataset objected to")
	file.Flags().StringVar(&field, "field", "", "only this field of it")
	file.Flags().StringVar(&reason, "reason", "", "which privacy or trade secret it infringes, and how")
	file.MarkFlagRequired("dataset")
	file.MarkFlagRequired("reason")

	var listDataset, listStatus string
	list := &cobra.Command{
		Use:   "list",
		Short: "List objections (yours, or all for the platform)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			list, err := g.client().Objections(cmd.Context(), listDataset, listStatus)
			if err != nil {
				return err
			}
			return g.emit(cmd, list, func() {
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tDATASET\tSTATUS\tFILER\tFILED\tREASON")
				for _, o := range list {
					fmt.Fprintf(tw, "%d\t%s%s\t%s\t%s\t%s\t%s\n", o.ID, o.Dataset, fieldSuffix(o.Field), o.Status, o.Filer, o.FiledAt.Format("2006-01-02 15:04"), o.Reason)
				}
				tw.Flush()
			})
		},
	}
	list.Flags().StringVar(&listDataset, "dataset", "", "only objections to this dataset")
	list.Flags().StringVar(&listStatus, "status", "", "only open, upheld or dismissed ones")

	var uphold, dismiss bool
	var decision string
	decide := &cobra.Command{
		Use:   "decide ID (--uphold | --dismiss) --reason TEXT",
		Short: "Uphold an objection (suspends the dataset or field at once) or dismiss it",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil {
				return fmt.Errorf("objection id %q is not a number", args[0])
			}
			if uphold == dismiss {
				return fmt.Errorf("say --uphold or --dismiss")
			}
			d, err := g.client().Decide(cmd.Context(), id, uphold, decision)
			if err != nil {
				return err
			}
			return g.emit(cmd, d, func() {
				w := cmd.OutOrStdout()
				fmt.Fprintf(w, "objection %d %s; %s is %s\n", d.Objection.ID, d.Objection.Status, d.Dataset.Name, status(d.Dataset))
				if d.Objection.Status == "upheld" {
					fmt.Fprintf(w, "  queued jobs stopped: %v\n  results released earlier that used it: %v (dsbx objection released %d)\n", d.Stopped, d.Released, d.Objection.ID)
				}
			})
		},
	}
	decide.Flags().BoolVar(&uphold, "uphold", false, "uphold it: suspend what it objects to")
	decide.Flags().BoolVar(&dismiss, "dismiss", false, "dismiss it")
	decide.Flags().StringVar(&decision, "reason", "", "the reason for the decision")
	decide.MarkFlagRequired("reason")

	released := &cobra.Command{
		Use:   "released ID",
		Short: "List results released before an upheld objection that used what it suspended",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil {
				return fmt.Errorf("objection id %q is not a number", args[0])
			}
			list, err := g.client().Released(cmd.Context(), id)
			if err != nil {
				return err
			}
			return g.emit(cmd, list, func() {
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "JOB\tOPERATOR\tPURPOSE\tRESULT SHA-256\tDOWNLOADS")
				for _, j := range list {
					fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\n", j.ID, j.Operator, j.Purpose, j.Result.SHA256, j.Downloads)
				}
				tw.Flush()
			})
		},
	}
	cmd.AddCommand(file, list, decide, released)
	return cmd
}

func fieldSuffix(f string) string {
	if f == "" {
		return ""
	}
	return "." + f
}
