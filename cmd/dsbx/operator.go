package main

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/datasandbox/dsbx/operators"
)

func operatorCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "operator", Short: "Manage operators and researchers"}
	var name, kind string
	add := &cobra.Command{
		Use:   "add",
		Short: "Add an operator (company) or researcher and print its token",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			p, token, err := g.client().AddOperator(cmd.Context(), name, kind)
			if err != nil {
				return err
			}
			return g.emit(cmd, map[string]any{"principal": p, "token": token}, func() {
				fmt.Fprintf(cmd.ErrOrStderr(), "added %s %q; its token (shown once):\n", p.Kind, p.Name)
				fmt.Fprintln(cmd.OutOrStdout(), token)
			})
		},
	}
	add.Flags().StringVar(&name, "name", "", "operator name")
	add.Flags().StringVar(&kind, "kind", operators.KindCompany, "company or researcher")
	add.MarkFlagRequired("name")
	cmd.AddCommand(add)
	return cmd
}

func agreementCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "agreement", Short: "Grant and list data use agreements"}
	var gr operators.Grant
	var fields string
	grant := &cobra.Command{
		Use:   "grant",
		Short: "Grant an operator a data use agreement on a dataset",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, f := range strings.Split(fields, ",") {
				if f = strings.TrimSpace(f); f != "" {
					gr.Fields = append(gr.Fields, f)
				}
			}
			a, err := g.client().Grant(cmd.Context(), gr)
			if err != nil {
				return err
			}
			return g.emit(cmd, a, func() {
				fmt.Fprintf(cmd.OutOrStdout(), "agreement %d: %s may use %s (%s) for %q from %s until %s\n",
					a.ID, a.Operator, a.Dataset, strings.Join(a.Fields, ", "), a.Purpose, a.ValidFrom, a.ValidUntil)
			})
		},
	}
	grant.Flags().StringVar(&gr.Operator, "operator", "", "operator name")
	grant.Flags().StringVar(&gr.Dataset, "dataset", "", "dataset name")
	grant.Flags().StringVar(&fields, "fields", "", "comma-separated fields the agreement covers")
	grant.Flags().StringVar(&gr.Purpose, "purpose", "", "purpose (scenario) of use")
	grant.Flags().StringVar(&gr.ValidFrom, "from", "", "first day, YYYY-MM-DD (default today)")
	grant.Flags().StringVar(&gr.ValidUntil, "until", "", "last day, YYYY-MM-DD (at most 3 years on)")
	for _, f := range []string{"operator", "dataset", "fields", "purpose", "until"} {
		grant.MarkFlagRequired(f)
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List agreements (the admin sees all, an operator its own)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			list, err := g.client().Agreements(cmd.Context())
			if err != nil {
				return err
			}
			return g.emit(cmd, list, func() {
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tOPERATOR\tDATASET\tSTATUS\tUNTIL\tPURPOSE\tFIELDS")
				for _, a := range list {
					fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", a.ID, a.Operator, a.Dataset, a.Status, a.ValidUntil, a.Purpose, strings.Join(a.Fields, ","))
				}
				tw.Flush()
			})
		},
	}
	cmd.AddCommand(grant, list)
	return cmd
}
