package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/datasandbox/dsbx/client"
	"github.com/datasandbox/dsbx/datasets"
)

func datasetCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "dataset", Short: "Catalog entries: create, import versions, seal, destroy, download, dummy data"}
	cmd.AddCommand(datasetCreateCmd(g), datasetImportCmd(g), datasetListCmd(g), datasetShowCmd(g),
		datasetVersionCmd(g, "seal", "Seal a version (封存): no new jobs, kept for audit re-runs"),
		datasetVersionCmd(g, "destroy", "Destroy a version (销毁): its files are removed, its hash and history kept"),
		datasetReinstateCmd(g), datasetDownloadCmd(g), datasetDummyCmd(g), datasetProfileCmd(g))
	return cmd
}

// specFlags are the catalog attributes a command line may give next to, or
// instead of, a dataset file.
type specFlags struct {
	file                    string
	grade, open, legalBasis string
}

func (f *specFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.file, "spec", "", "dataset file (YAML): title, agency, grade, open, share, legal_basis, tags, keys and a label for every field")
	cmd.Flags().StringVar(&f.grade, "grade", "", "grade: general, important or core (overrides the file)")
	cmd.Flags().StringVar(&f.open, "open", "", "open attribute: conditional, unconditional or closed (overrides the file)")
	cmd.Flags().StringVar(&f.legalBasis, "legal-basis", "", "legal basis for restricting the data (overrides the file)")
}

func (f *specFlags) spec(name string) (datasets.Spec, error) {
	r, err := os.Open(f.file)
	if err != nil {
		return datasets.Spec{}, fmt.Errorf("dataset file: %w", err)
	}
	defer r.Close()
	s, err := datasets.ParseSpec(r)
	if err != nil {
		return datasets.Spec{}, fmt.Errorf("%s: %w", f.file, err)
	}
	if s.Name != "" && name != "" && s.Name != name {
		return datasets.Spec{}, fmt.Errorf("%s names the dataset %q, the command line %q", f.file, s.Name, name)
	}
	if name != "" {
		s.Name = name
	}
	for _, o := range []struct {
		flag string
		dst  *string
	}{{f.grade, &s.Grade}, {f.open, &s.Open}, {f.legalBasis, &s.LegalBasis}} {
		if o.flag != "" {
			*o.dst = o.flag
		}
	}
	if s.Grade == "" {
		s.Grade = datasets.GradeGeneral
	}
	if s.Open == "" {
		s.Open = datasets.OpenConditional
	}
	return s, nil
}

func datasetCreateCmd(g *globals) *cobra.Command {
	var f specFlags
	cmd := &cobra.Command{
		Use:   "create [NAME]",
		Short: "Add a catalog entry from a dataset file (its versions come from import)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			spec, err := f.spec(strings.Join(args, ""))
			if err != nil {
				return err
			}
			e, err := g.client().CreateDataset(cmd.Context(), spec)
			if err != nil {
				return err
			}
			return g.emit(cmd, e, func() {
				fmt.Fprintf(cmd.OutOrStdout(), "created %s (%d fields, open=%s, grade=%s); import its data with: dsbx dataset import %s FILE\n",
					e.Name, len(e.Fields), e.Open, e.Grade, e.Name)
			})
		},
	}
	f.register(cmd)
	cmd.MarkFlagRequired("spec")
	return cmd
}

func datasetImportCmd(g *globals) *cobra.Command {
	var f specFlags
	var src datasets.Source
	var schema []string
	var progress string
	cmd := &cobra.Command{
		Use:   "import NAME FILE",
		Short: "Import a CSV, Parquet or Arrow IPC file as a new immutable version (with --spec, create the entry first if needed)",
		Long: `Import a CSV (UTF-8 or GBK), Parquet or Arrow IPC file as a new immutable
version of a dataset. Every column is typed from all of its values (or by
--schema), values that do not fit their type are reported, and the version
records its row count, schema, column statistics and quality report.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, file := args[0], args[1]
			c := g.client()
			if f.file != "" {
				if err := ensureEntry(cmd, c, &f, name); err != nil {
					return err
				}
			}
			for _, kv := range schema {
				field, typ, ok := strings.Cut(kv, "=")
				if !ok {
					return fmt.Errorf("--schema %q is not FIELD=TYPE", kv)
				}
				if src.Schema == nil {
					src.Schema = map[string]string{}
				}
				src.Schema[strings.TrimSpace(field)] = strings.TrimSpace(typ)
			}
			bar := newProgressBar(cmd.ErrOrStderr(), progress)
			got, err := c.ImportVersion(cmd.Context(), name, src, file, bar.step)
			bar.done()
			if err != nil {
				return err
			}
			return g.emit(cmd, got, func() {
				w := cmd.OutOrStdout()
				verb := "imported"
				if got.Existing {
					verb = "already present:"
				}
				fmt.Fprintf(w, "%s %s@%s (%d rows, %d fields, open=%s, grade=%s)\n",
					verb, got.Entry.Name, got.Version.ID[:12], got.Version.Rows, len(got.Entry.Fields), got.Entry.Open, got.Entry.Grade)
				printQuality(w, got.Version)
			})
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&src.Format, "format", "", "csv, parquet or arrow (default: from the file name)")
	cmd.Flags().StringVar(&src.Encoding, "encoding", "", "CSV text encoding: utf-8 or gbk (default: detected)")
	cmd.Flags().StringArrayVar(&schema, "schema", nil, "override a field's type, FIELD=TYPE (repeatable); only on the first version")
	cmd.Flags().BoolVar(&src.NullifyViolations, "nullify-violations", false, "store values that do not fit their type as NULL (counted in the quality report) instead of refusing the file")
	cmd.Flags().StringVar(&progress, "progress", "auto", "progress bar on stderr: auto (when a terminal), always or never")
	return cmd
}

// ensureEntry creates the entry from the dataset file unless it exists; an
// existing entry must have the attributes the file gives.
func ensureEntry(cmd *cobra.Command, c *client.Client, f *specFlags, name string) error {
	spec, err := f.spec(name)
	if err != nil {
		return err
	}
	e, err := c.Dataset(cmd.Context(), name)
	var api *client.APIError
	switch {
	case errors.As(err, &api) && api.Status == 404:
		_, err = c.CreateDataset(cmd.Context(), spec)
		return err
	case err != nil:
		return err
	}
	share := spec.Share
	if share == "" {
		share = datasets.ShareConditional
	}
	if e.Open != spec.Open || e.Grade != spec.Grade || e.Share != share {
		return fmt.Errorf("dataset %s is catalogued as open=%s grade=%s share=%s; %s says open=%s grade=%s share=%s; an import does not change a catalog entry",
			name, e.Open, e.Grade, e.Share, f.file, spec.Open, spec.Grade, share)
	}
	return nil
}

func printQuality(w io.Writer, v datasets.Version) {
	q := v.Quality
	for _, vi := range q.Violations {
		fmt.Fprintf(w, "  %s: %d values did not fit %s and were stored as NULL\n", vi.Field, vi.Count, vi.Type)
	}
	if len(q.Keys) > 0 {
		fmt.Fprintf(w, "  key (%s): %d duplicate, %d with NULL\n", strings.Join(q.Keys, ", "), q.DuplicateKeys, q.NullKeys)
	}
}

func datasetListCmd(g *globals) *cobra.Command {
	return &cobra.Command{
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
				fmt.Fprintln(tw, "NAME\tOPEN\tGRADE\tSTATUS\tFIELDS\tVERSIONS\tTITLE")
				for _, e := range entries {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\n", e.Name, e.Open, e.Grade, status(e), len(e.Fields), len(e.Versions), e.Title)
				}
				tw.Flush()
			})
		},
	}
}

func status(e datasets.Entry) string {
	if len(e.SuspendedFields) > 0 && e.Status == datasets.StatusActive {
		return "active, suspended: " + strings.Join(e.SuspendedFields, ",")
	}
	return e.Status
}

func datasetShowCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "show NAME",
		Short: "Show an entry's attributes, fields, versions and their quality",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := g.client().Dataset(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return g.emit(cmd, e, func() {
				w := cmd.OutOrStdout()
				fmt.Fprintf(w, "%s  %s\n  agency: %s\n  open: %s  share: %s  grade: %s  status: %s\n", e.Name, e.Title, e.Agency, e.Open, e.Share, e.Grade, status(e))
				if e.LegalBasis != "" {
					fmt.Fprintf(w, "  legal basis: %s\n", e.LegalBasis)
				}
				if len(e.Tags) > 0 {
					fmt.Fprintf(w, "  tags: %s\n", strings.Join(e.Tags, ", "))
				}
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "  FIELD\tTYPE\tSENSITIVITY\tIDENTIFIER\tDESCRIPTION")
				for _, f := range e.Fields {
					fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", f.Name, f.Type, f.Sensitivity, f.Identifier, f.Description)
				}
				tw.Flush()
				fmt.Fprintln(w, "  versions:")
				for _, v := range e.Versions {
					fmt.Fprintf(w, "    %s  %d rows  %s  %s  %s  by %s\n", v.ID, v.Rows, v.CreatedAt.Format("2006-01-02 15:04"), v.Status, strings.TrimSpace(v.Source), v.Importer)
					if v.StatusReason != "" {
						fmt.Fprintf(w, "      %s: %s\n", v.Status, v.StatusReason)
					}
					tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
					for _, s := range v.Stats {
						fmt.Fprintf(tw, "      %s\t%s\tnull %.1f%%\t~%d distinct\t%s\n", s.Name, s.Type, 100*s.NullRate, s.Distinct, extremes(s))
					}
					tw.Flush()
					printQuality(w, v)
				}
			})
		},
	}
}

func extremes(s datasets.ColumnStats) string {
	if s.Min == "" && s.Max == "" {
		return ""
	}
	return s.Min + " … " + s.Max
}

func datasetVersionCmd(g *globals, action, short string) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   action + " NAME@VERSION",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, version, ok := strings.Cut(args[0], "@")
			if !ok || version == "" {
				return fmt.Errorf("name the version as NAME@VERSION (a prefix of its ID is enough)")
			}
			c := g.client()
			change := c.Seal
			if action == "destroy" {
				change = c.Destroy
			}
			v, err := change(cmd.Context(), name, version, reason)
			if err != nil {
				return err
			}
			return g.emit(cmd, v, func() {
				fmt.Fprintf(cmd.OutOrStdout(), "%s@%s is %s\n", name, v.ID[:12], v.Status)
			})
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the record")
	cmd.MarkFlagRequired("reason")
	return cmd
}

func datasetReinstateCmd(g *globals) *cobra.Command {
	var reason, field string
	cmd := &cobra.Command{
		Use:   "reinstate NAME",
		Short: "Lift the suspension of a dataset, or of one field, after an upheld objection was remedied",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := g.client().Reinstate(cmd.Context(), args[0], field, reason)
			if err != nil {
				return err
			}
			return g.emit(cmd, e, func() {
				fmt.Fprintf(cmd.OutOrStdout(), "%s is %s\n", e.Name, status(e))
			})
		},
	}
	cmd.Flags().StringVar(&field, "field", "", "reinstate only this field")
	cmd.Flags().StringVar(&reason, "reason", "", "how the objection was remedied, for the record")
	cmd.MarkFlagRequired("reason")
	return cmd
}

// outFile opens path for writing, or stdout for "-"; the file is removed if
// the command fails, so no partial file is left looking complete.
func outFile(cmd *cobra.Command, path string) (io.Writer, func(error) error, error) {
	if path == "-" {
		return cmd.OutOrStdout(), func(err error) error { return err }, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, nil, err
	}
	return f, func(err error) error {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(path)
		}
		return err
	}, nil
}

func datasetDownloadCmd(g *globals) *cobra.Command {
	var out, format string
	cmd := &cobra.Command{
		Use:   "download NAME[@VERSION]",
		Short: "Download a whole unconditionally open (无条件开放) dataset",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, version, _ := strings.Cut(args[0], "@")
			if format == "" {
				format = formatOf(out, datasets.FormatParquet)
			}
			w, finish, err := outFile(cmd, out)
			if err != nil {
				return err
			}
			return finish(g.client().Download(cmd.Context(), name, version, format, w))
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "file to write, or - for stdout")
	cmd.Flags().StringVar(&format, "format", "", "parquet or csv (default: from --out)")
	cmd.MarkFlagRequired("out")
	return cmd
}

func formatOf(path, def string) string {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".csv":
		return datasets.FormatCSV
	case ".parquet":
		return datasets.FormatParquet
	}
	return def
}

func datasetDummyCmd(g *globals) *cobra.Command {
	var out, format, version string
	var rows int64
	var seed uint64
	cmd := &cobra.Command{
		Use:   "dummy NAME",
		Short: "Write synthetic rows with the dataset's exact schema, for developing jobs locally (sandbox mode)",
		Long: `Write synthetic rows with the exact schema of a dataset's version, drawn
independently per column from its profile (types, null rates, category sets
seen at least 10 times, robust ranges, text patterns); no real row or rare
value is copied. Develop your SQL against the file with the dataset's name
as the table name, then submit it unchanged.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if format == "" {
				format = formatOf(out, datasets.FormatCSV)
			}
			w, finish, err := outFile(cmd, out)
			if err != nil {
				return err
			}
			if err := finish(g.client().Dummy(cmd.Context(), args[0], version, rows, seed, format, w)); err != nil {
				return err
			}
			if out != "-" {
				fmt.Fprintf(cmd.ErrOrStderr(), "wrote %d synthetic rows of %s to %s\n", rows, args[0], out)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "file to write (.csv or .parquet), or - for stdout")
	cmd.Flags().Int64Var(&rows, "rows", 1000, "number of rows")
	cmd.Flags().Uint64Var(&seed, "seed", 1, "random seed; the same seed gives the same rows")
	cmd.Flags().StringVar(&format, "format", "", "csv or parquet (default: from --out)")
	cmd.Flags().StringVar(&version, "version", "", "version ID prefix (default: the latest active)")
	cmd.MarkFlagRequired("out")
	return cmd
}

func datasetProfileCmd(g *globals) *cobra.Command {
	var version string
	cmd := &cobra.Command{
		Use:   "profile NAME",
		Short: "Show the synthetic-data profile dummy rows are drawn from (JSON)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := g.client().Profile(cmd.Context(), args[0], version)
			if err != nil {
				return err
			}
			g.json = true
			return g.emit(cmd, p, nil)
		},
	}
	cmd.Flags().StringVar(&version, "version", "", "version ID prefix (default: the latest active)")
	return cmd
}
