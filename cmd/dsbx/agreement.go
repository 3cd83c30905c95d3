package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/datasandbox/dsbx/operators"
)

var agreementStatuses = []string{operators.StatusActive, operators.StatusSuspended, operators.StatusRevoked, operators.StatusExpired}

func printAgreement(w io.Writer, a operators.Agreement) {
	status := strings.ToUpper(a.Status)
	if a.StatusReason != "" {
		status += ": " + a.StatusReason
	}
	fmt.Fprintf(w, "agreement %d: %s\n", a.ID, status)
	fmt.Fprintf(w, "  holder       %s\n  kind         %s\n  provider     %s\n", a.Holder, a.Kind, a.Provider)
	for _, p := range a.Purposes {
		fmt.Fprintf(w, "  purpose      %s\n", p)
	}
	for _, s := range a.Scope {
		name := s.Dataset
		if s.Version != "" {
			name += "@" + shortVersion(s.Version)
		} else {
			name += " (latest version)"
		}
		names := make([]string, 0, len(s.Fields))
		for f := range s.Fields {
			names = append(names, f)
		}
		sort.Strings(names)
		for i, f := range names {
			names[i] = f + " (" + s.Fields[f] + ")"
		}
		fmt.Fprintf(w, "  dataset      %s: %s\n", name, strings.Join(names, ", "))
	}
	fmt.Fprintf(w, "  term         %s to %s (%s); through %s\n", zoneTime(a.From), zoneTime(a.Until), operators.Zone, untilText(a.Until))
	outputs := "any"
	if a.Outputs.AggregatesOnly {
		outputs = "aggregates only"
	}
	if a.Outputs.MinCellCount > 0 {
		outputs += fmt.Sprintf(", at least %d records per cell", a.Outputs.MinCellCount)
	}
	fmt.Fprintf(w, "  outputs      %s\n", outputs)
	fmt.Fprintf(w, "  quotas       %s in all, %s a day\n", limitText(a.Quotas.MaxJobs), limitText(a.Quotas.JobsPerDay))
	if a.ApplicationID != 0 {
		fmt.Fprintf(w, "  application  %d\n", a.ApplicationID)
	}
	fmt.Fprintf(w, "  created      %s by %s\n", zoneTime(a.CreatedAt), a.CreatedBy)
	if len(a.History) > 0 {
		fmt.Fprintln(w, "  history:")
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, c := range a.History {
			by := c.By
			if by == "" {
				by = "(platform)"
			}
			fmt.Fprintf(tw, "    %s\t%s\t%s\t%s\taudit entry %d\n", zoneTime(c.At), c.Status, by, c.Reason, c.AuditSeq)
		}
		tw.Flush()
	}
}

func limitText(n int64) string {
	if n == 0 {
		return "unlimited jobs"
	}
	if n == 1 {
		return "1 job"
	}
	return fmt.Sprintf("%d jobs", n)
}

func agreementCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "agreement", Short: "Data use agreements: list, show, suspend, resume, revoke"}

	var f operators.AgreementFilter
	list := &cobra.Command{
		Use:   "list [--holder NAME] [--dataset NAME] [--status STATUS]",
		Short: "List the agreements you may see (yours, your organization's, or all for the admin)",
		Long: `List agreements. UNTIL is the end of the term as --until takes it: a date is
covered through that day, a time (` + operators.Zone.String() + `) is the first instant no longer covered.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := oneOf("status", f.Status, agreementStatuses); err != nil {
				return err
			}
			list, err := g.client().Agreements(cmd.Context(), f)
			if err != nil {
				return err
			}
			return g.emit(cmd, list, func() {
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tHOLDER\tKIND\tPROVIDER\tSTATUS\tUNTIL\tPURPOSES\tSCOPE")
				for _, a := range list {
					fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.ID, a.Holder, a.Kind, a.Provider, a.Status, untilText(a.Until), strings.Join(a.Purposes, "; "), scopeText(a.Scope))
				}
				tw.Flush()
			})
		},
	}
	list.Flags().StringVar(&f.Holder, "holder", "", "only agreements held by this principal")
	list.Flags().StringVar(&f.Dataset, "dataset", "", "only agreements covering this dataset")
	list.Flags().StringVar(&f.Status, "status", "", "only agreements with this status: "+strings.Join(agreementStatuses, ", "))

	show := &cobra.Command{
		Use:   "show ID",
		Short: "Show an agreement with its history",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseID("agreement", args[0])
			if err != nil {
				return err
			}
			a, err := g.client().Agreement(cmd.Context(), id)
			if err != nil {
				return err
			}
			return g.emit(cmd, a, func() { printAgreement(cmd.OutOrStdout(), a) })
		},
	}
	cmd.AddCommand(list, show,
		agreementChangeCmd(g, "suspend", "suspended", "Suspend an agreement: no new jobs run under it and its queued jobs stop (admin or its provider)"),
		agreementChangeCmd(g, "resume", "resumed", "Resume a suspended agreement (admin or its provider)"),
		agreementChangeCmd(g, "revoke", "revoked", "Revoke an agreement for good; its queued jobs stop (admin or its provider)"))
	return cmd
}

func agreementChangeCmd(g *globals, action, done, short string) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   action + " ID --reason TEXT",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseID("agreement", args[0])
			if err != nil {
				return err
			}
			why, err := needReason(reason, fmt.Sprintf("agreement %d is %s", id, done))
			if err != nil {
				return err
			}
			a, stopped, err := g.client().ChangeAgreement(cmd.Context(), id, action, why)
			if err != nil {
				return err
			}
			return g.emit(cmd, map[string]any{"agreement": a, "stopped_jobs": stopped}, func() {
				fmt.Fprintf(cmd.OutOrStdout(), "agreement %d of %s %s: %s\n", a.ID, a.Holder, done, a.StatusReason)
				if action != "resume" {
					printStopped(cmd.OutOrStdout(), stopped)
				}
			})
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why; recorded in the agreement's history and the audit log")
	cmd.MarkFlagRequired("reason")
	return cmd
}
