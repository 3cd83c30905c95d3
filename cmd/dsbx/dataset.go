package main

import (
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/datasandbox/dsbx/datasets"
)

func datasetCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "dataset", Short: "Import and browse catalog entries"}
	var spec datasets.Spec
	var file, fields string
	imp := &cobra.Command{
		Use:   "import",
		Short: "Import a CSV or Parquet file as a new immutable version of a dataset",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := os.Open(fields)
			if err != nil {
				return fmt.Errorf("fields file: %w", err)
			}
			defer f.Close()
			if spec.Labels, err = datasets.ParseLabels(f); err != nil {
				return fmt.Errorf("%s: %w", fields, err)
			}
			got, err := g.client().ImportDataset(cmd.Context(), spec, file)
			if err != nil {
				return err
			}
			return g.emit(cmd, got, func() {
				verb := "imported"
				if got.Existing {
					verb = "already present:"
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s %s@%s (%d rows, %d fields, open=%s, grade=%s)\n",
					verb, got.Entry.Name, got.Version.ID[:12], got.Version.Rows, len(got.Entry.Fields), got.Entry.Open, got.Entry.Grade)
			})
		},
	}
	imp.Flags().StringVar(&spec.Name, "name", "", "dataset name (lower-case, used as the SQL table name)")
	imp.Flags().StringVar(&file, "file", "", "data file (.csv with a header row, or .parquet)")
	imp.Flags().StringVar(&spec.Open, "open", datasets.OpenConditional, "open attribute: conditional, unconditional or closed")
	imp.Flags().StringVar(&spec.Grade, "grade", datasets.GradeGeneral, "grade: general, important or core")
	imp.Flags().StringVar(&fields, "fields", "", "fields.yaml labelling every column (sensitivity, identifier)")
	for _, f := range []string{"name", "file", "fields"} {
		imp.MarkFlagRequired(f)
	}

	list := &cobra.Command{
		Use:   "list",
		Short: "List catalog entries",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			entries, err := g.client().Datasets(cmd.Context())
			if err != nil {
				return err
			}
			return g.emit(cmd, entries, func() {
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tOPEN\tGRADE\tFIELDS\tTITLE")
				for _, e := range entries {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", e.Name, e.Open, e.Grade, len(e.Fields), e.Title)
				}
				tw.Flush()
			})
		},
	}
	show := &cobra.Command{
		Use:   "show NAME",
		Short: "Show an entry's fields and versions",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := g.client().Dataset(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return g.emit(cmd, e, func() {
				w := cmd.OutOrStdout()
				fmt.Fprintf(w, "%s  %s\n  agency: %s\n  open: %s  share: %s  grade: %s\n", e.Name, e.Title, e.Agency, e.Open, e.Share, e.Grade)
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "  FIELD\tTYPE\tSENSITIVITY\tIDENTIFIER\tDESCRIPTION")
				for _, f := range e.Fields {
					fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", f.Name, f.Type, f.Sensitivity, f.Identifier, f.Description)
				}
				tw.Flush()
				fmt.Fprintln(w, "  versions:")
				for _, v := range e.Versions {
					fmt.Fprintf(w, "    %s  %d rows  %s  %s\n", v.ID, v.Rows, v.CreatedAt.Format("2006-01-02 15:04"), strings.TrimSpace(v.Source))
				}
			})
		},
	}
	cmd.AddCommand(imp, list, show)
	return cmd
}
