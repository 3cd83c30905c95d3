package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/datasandbox/dsbx/operators"
	"github.com/datasandbox/dsbx/privacy"
)

// datasetList collects the datasets of an application from --dataset and
// --fields in command-line order: each --fields belongs to the --dataset
// before it, unless that one named its fields inline (NAME:field,field).
type datasetList struct {
	items  []operators.DatasetRequest
	inline []bool // fields given inline, per item
}

// parseDatasetRequest reads NAME[@VERSION][:field,field].
func parseDatasetRequest(s string) (operators.DatasetRequest, bool, error) {
	spec, fields, hasFields := strings.Cut(s, ":")
	name, version, hasVersion := strings.Cut(strings.TrimSpace(spec), "@")
	var dr operators.DatasetRequest
	dr.Dataset, dr.Version = strings.TrimSpace(name), strings.TrimSpace(version)
	if dr.Dataset == "" {
		return dr, false, fmt.Errorf("--dataset %q names no dataset; write NAME, NAME@VERSION or NAME:field,field", s)
	}
	if hasVersion && dr.Version == "" {
		return dr, false, fmt.Errorf("--dataset %q has an empty version after @", s)
	}
	if hasFields {
		dr.Fields = splitList([]string{fields})
		if len(dr.Fields) == 0 {
			return dr, false, fmt.Errorf("--dataset %q lists no fields after ':'", s)
		}
	}
	return dr, hasFields, nil
}

type datasetFlag struct{ l *datasetList }

func (f datasetFlag) String() string { return "" }
func (f datasetFlag) Type() string   { return "NAME[@VERSION][:FIELDS]" }
func (f datasetFlag) Set(s string) error {
	dr, inline, err := parseDatasetRequest(s)
	if err != nil {
		return err
	}
	f.l.items = append(f.l.items, dr)
	f.l.inline = append(f.l.inline, inline)
	return nil
}

type fieldsFlag struct{ l *datasetList }

func (f fieldsFlag) String() string { return "" }
func (f fieldsFlag) Type() string   { return "FIELDS" }
func (f fieldsFlag) Set(s string) error {
	n := len(f.l.items)
	if n == 0 {
		return fmt.Errorf("--fields %s comes before any --dataset; give --dataset NAME first, then its --fields", s)
	}
	last := &f.l.items[n-1]
	if f.l.inline[n-1] {
		return fmt.Errorf("--fields %s follows --dataset %s, which already lists its fields after ':'", s, last.Dataset)
	}
	if len(last.Fields) > 0 {
		return fmt.Errorf("--fields %s: dataset %s already has --fields %s; give each --dataset one --fields", s, last.Dataset, strings.Join(last.Fields, ","))
	}
	last.Fields = splitList([]string{s})
	if len(last.Fields) == 0 {
		return fmt.Errorf("--fields %q names no field", s)
	}
	return nil
}

// readRequest reads an application from a JSON or YAML file ("-": stdin),
// with the field names of the API.
func readRequest(path string, stdin io.Reader) (operators.Request, error) {
	var data []byte
	var err error
	if path == "-" {
		data, err = io.ReadAll(stdin)
	} else {
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return operators.Request{}, fmt.Errorf("request file: %w", err)
	}
	if ext := strings.ToLower(filepath.Ext(path)); ext != ".json" {
		var doc yaml.Node
		if err := yaml.Unmarshal(data, &doc); err != nil {
			return operators.Request{}, fmt.Errorf("%s: %w", path, err)
		}
		v, err := yamlValue(&doc)
		if err != nil {
			return operators.Request{}, fmt.Errorf("%s: %w", path, err)
		}
		if data, err = json.Marshal(v); err != nil {
			return operators.Request{}, fmt.Errorf("%s: %w", path, err)
		}
	}
	var r operators.Request
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return operators.Request{}, fmt.Errorf("%s: %w (fields: kind, datasets [dataset, version, fields], purpose, scenario, valid_from, valid_until, outputs)", path, err)
	}
	return r, nil
}

// yamlValue turns a YAML node into plain values for JSON, keeping dates and
// times as written.
func yamlValue(n *yaml.Node) (any, error) {
	switch n.Kind {
	case 0:
		return nil, nil
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, nil
		}
		return yamlValue(n.Content[0])
	case yaml.AliasNode:
		return yamlValue(n.Alias)
	case yaml.SequenceNode:
		out := []any{}
		for _, c := range n.Content {
			v, err := yamlValue(c)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	case yaml.MappingNode:
		out := map[string]any{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			v, err := yamlValue(n.Content[i+1])
			if err != nil {
				return nil, err
			}
			out[n.Content[i].Value] = v
		}
		return out, nil
	}
	switch n.ShortTag() {
	case "!!timestamp":
		return n.Value, nil
	case "!!null":
		return nil, nil
	}
	var v any
	if err := n.Decode(&v); err != nil {
		return nil, fmt.Errorf("line %d: %w", n.Line, err)
	}
	return v, nil
}

var applicationStatuses = []string{operators.ApplicationPending, operators.ApplicationApproved, operators.ApplicationRefused, operators.ApplicationWithdrawn}

var kinds = []string{operators.KindDataUse, operators.KindAuthorizedOperation}

func describeDatasets(ds []operators.DatasetRequest) string {
	var parts []string
	for _, d := range ds {
		name := d.Dataset
		if d.Version != "" {
			name += "@" + shortVersion(d.Version)
		}
		parts = append(parts, name+":"+strings.Join(d.Fields, ","))
	}
	return strings.Join(parts, "; ")
}

func shortVersion(v string) string {
	if len(v) > 12 {
		return v[:12]
	}
	return v
}

func printApplication(w io.Writer, a operators.Application) {
	status := strings.ToUpper(a.Status)
	if a.Overdue {
		status += " (OVERDUE)"
	}
	fmt.Fprintf(w, "application %d: %s\n", a.ID, status)
	fmt.Fprintf(w, "  applicant  %s\n  provider   %s\n  kind       %s\n  purpose    %s\n", a.Applicant, a.Provider, a.Kind, a.Purpose)
	if a.Scenario != "" {
		fmt.Fprintf(w, "  scenario   %s\n", a.Scenario)
	}
	for _, d := range a.Datasets {
		name := d.Dataset
		if d.Version != "" {
			name += "@" + shortVersion(d.Version)
		} else {
			name += " (latest version)"
		}
		fmt.Fprintf(w, "  dataset    %s: %s\n", name, strings.Join(d.Fields, ", "))
	}
	fmt.Fprintf(w, "  term       from %s %s\n", termStart(a.ValidFrom), termEnd(a.ValidUntil))
	if a.Outputs != "" {
		fmt.Fprintf(w, "  outputs    %s\n", a.Outputs)
	}
	fmt.Fprintf(w, "  submitted  %s\n  due        %s\n", zoneTime(a.SubmittedAt), zoneTime(a.DueAt))
	if a.DecidedAt != nil {
		fmt.Fprintf(w, "  decided    %s by %s\n", zoneTime(*a.DecidedAt), a.DecidedBy)
	}
	if a.Reason != "" {
		fmt.Fprintf(w, "  reason     %s\n", a.Reason)
	}
	if a.AgreementID != 0 {
		fmt.Fprintf(w, "  agreement  %d (dsbx agreement show %d)\n", a.AgreementID, a.AgreementID)
	}
}

// termStart shows a requested start (RFC 3339, or "" for the approval).
func termStart(s string) string {
	if s == "" {
		return "approval"
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return zoneTime(t)
	}
	return s
}

// termEnd shows a requested end (RFC 3339) as --until takes it.
func termEnd(s string) string {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return "until " + s
	}
	if u := untilText(t); len(u) == len(operators.DateLayout) {
		return "through " + u
	}
	return "until " + zoneTime(t)
}

func applicationCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "application", Short: "Apply for data; providers approve or refuse applications"}
	cmd.AddCommand(applicationSubmitCmd(g), applicationListCmd(g), applicationShowCmd(g),
		applicationApproveCmd(g), applicationRefuseCmd(g), applicationWithdrawCmd(g))
	return cmd
}

func applicationSubmitCmd(g *globals) *cobra.Command {
	var ds datasetList
	var file string
	var r operators.Request
	cmd := &cobra.Command{
		Use:   "submit --dataset NAME[@VERSION] --fields F1,F2 [--dataset ... --fields ...] --purpose TEXT --until DATE",
		Short: "Apply for fields of datasets for a purpose (as an operator or researcher)",
		Long: `Apply for data. Name each dataset with --dataset NAME (or NAME@VERSION to pin
a version) followed by its --fields, or in one go as --dataset NAME:f1,f2;
repeat for several datasets of the same provider. --file reads the whole
request from JSON or YAML (kind, datasets: [{dataset, version, fields}],
purpose, scenario, valid_from, valid_until, outputs); flags given as well
override its values and add datasets.

The term runs --from (default: when approved) --until a date (covered
through that day) or an RFC 3339 time. The provider answers within its
deadline, shown as DUE.`,
		Example: `  dsbx application submit --dataset people --fields district,income \
      --purpose "housing affordability study" --until 2026-12-31
  dsbx application submit --dataset people:district,income --dataset households:size \
      --kind authorized-operation --purpose "rent index" --from 2026-01-01 --until 2028-12-31
  dsbx application submit --file request.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			req := operators.Request{}
			if file != "" {
				var err error
				if req, err = readRequest(file, cmd.InOrStdin()); err != nil {
					return err
				}
			}
			for _, o := range []struct {
				flag, value string
				dst         *string
			}{
				{"kind", r.Kind, &req.Kind}, {"purpose", r.Purpose, &req.Purpose}, {"scenario", r.Scenario, &req.Scenario},
				{"from", r.ValidFrom, &req.ValidFrom}, {"until", r.ValidUntil, &req.ValidUntil}, {"outputs", r.Outputs, &req.Outputs},
			} {
				if cmd.Flags().Changed(o.flag) {
					*o.dst = strings.TrimSpace(o.value)
				}
			}
			req.Datasets = append(req.Datasets, ds.items...)
			if err := oneOf("kind", req.Kind, kinds); err != nil {
				return err
			}
			switch {
			case len(req.Datasets) == 0:
				return fmt.Errorf("no --dataset given; name each dataset and its fields, like --dataset people --fields district,income")
			case strings.TrimSpace(req.Purpose) == "":
				return fmt.Errorf("no --purpose given; name the application scenario the data is for")
			case strings.TrimSpace(req.ValidUntil) == "":
				return fmt.Errorf("no --until given; every agreement ends: name its last day, like 2027-12-31")
			}
			seen := map[string]bool{}
			for _, d := range req.Datasets {
				if len(d.Fields) == 0 {
					return fmt.Errorf("dataset %s has no fields; follow --dataset %s with --fields F1,F2 (or write --dataset %s:F1,F2)", d.Dataset, d.Dataset, d.Dataset)
				}
				if seen[d.Dataset] {
					return fmt.Errorf("dataset %s is named twice; list all its fields once", d.Dataset)
				}
				seen[d.Dataset] = true
			}
			a, err := g.client().Apply(cmd.Context(), req)
			if err != nil {
				return err
			}
			return g.emit(cmd, a, func() {
				fmt.Fprintf(cmd.OutOrStdout(), "application %d submitted to %s: %s of %s for %q; answer due by %s\n",
					a.ID, a.Provider, a.Kind, describeDatasets(a.Datasets), a.Purpose, zoneTime(a.DueAt))
			})
		},
	}
	f := cmd.Flags()
	f.Var(datasetFlag{&ds}, "dataset", "a dataset applied for: NAME, NAME@VERSION, or NAME:f1,f2 with its fields (repeatable)")
	f.Var(fieldsFlag{&ds}, "fields", "comma-separated fields of the --dataset just before")
	f.StringVar(&file, "file", "", "read the request from a JSON or YAML file ('-': stdin)")
	f.StringVar(&r.Kind, "kind", "", "data-use (default) or authorized-operation (licensed operators; at most 3 years)")
	f.StringVar(&r.Purpose, "purpose", "", "the application scenario the data is for; jobs name it too")
	f.StringVar(&r.Scenario, "scenario", "", "describe the scenario and its compliance review")
	f.StringVar(&r.ValidFrom, "from", "", "first day (YYYY-MM-DD) or RFC 3339 time (default: when approved)")
	f.StringVar(&r.ValidUntil, "until", "", "last day (YYYY-MM-DD, covered through that day) or RFC 3339 end time")
	f.StringVar(&r.Outputs, "outputs", "", "the intended outputs (data products, statistics)")
	return cmd
}

func applicationListCmd(g *globals) *cobra.Command {
	var status string
	var overdue bool
	cmd := &cobra.Command{
		Use:   "list [--status STATUS] [--overdue]",
		Short: "List the applications you may see (yours, your organization's, or all for the admin)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := oneOf("status", status, applicationStatuses); err != nil {
				return err
			}
			list, err := g.client().Applications(cmd.Context(), status, overdue)
			if err != nil {
				return err
			}
			return g.emit(cmd, list, func() {
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tAPPLICANT\tPROVIDER\tKIND\tSTATUS\tDUE\tOVERDUE\tPURPOSE")
				for _, a := range list {
					late := ""
					if a.Overdue {
						late = "OVERDUE"
					}
					fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.ID, a.Applicant, a.Provider, a.Kind, a.Status, zoneTime(a.DueAt), late, oneLine(a.Purpose, 60))
				}
				tw.Flush()
			})
		},
	}
	cmd.Flags().StringVar(&status, "status", "", "only applications with this status: "+strings.Join(applicationStatuses, ", "))
	cmd.Flags().BoolVar(&overdue, "overdue", false, "only pending applications past their answer deadline")
	return cmd
}

func applicationShowCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "show ID",
		Short: "Show an application and its answer",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseID("application", args[0])
			if err != nil {
				return err
			}
			a, err := g.client().Application(cmd.Context(), id)
			if err != nil {
				return err
			}
			return g.emit(cmd, a, func() { printApplication(cmd.OutOrStdout(), a) })
		},
	}
}

// parseGrantedFields reads --fields DATASET:field=form,field2 (raw when no
// form is given) into an approval's fields.
func parseGrantedFields(values []string) (map[string]map[string]string, error) {
	if len(values) == 0 {
		return nil, nil
	}
	out := map[string]map[string]string{}
	for _, v := range values {
		ds, list, ok := strings.Cut(v, ":")
		ds = strings.TrimSpace(ds)
		if !ok || ds == "" {
			return nil, fmt.Errorf("--fields %q: write DATASET:field=form,field2=form (form: %s; default raw)", v, strings.Join(operators.Forms, ", "))
		}
		if _, dup := out[ds]; dup {
			return nil, fmt.Errorf("--fields names dataset %s twice; list all its fields in one --fields", ds)
		}
		fields := map[string]string{}
		for _, item := range splitList([]string{list}) {
			name, form, hasForm := strings.Cut(item, "=")
			name, form = strings.TrimSpace(name), strings.TrimSpace(form)
			if !hasForm {
				form = operators.FormRaw
			}
			switch {
			case name == "":
				return nil, fmt.Errorf("--fields %q: %q names no field", v, item)
			case !slices.Contains(operators.Forms, form):
				return nil, fmt.Errorf("--fields %q: form %q of %s is not one of %s", v, form, name, strings.Join(operators.Forms, ", "))
			}
			if _, dup := fields[name]; dup {
				return nil, fmt.Errorf("--fields %q names field %s twice", v, name)
			}
			fields[name] = form
		}
		if len(fields) == 0 {
			return nil, fmt.Errorf("--fields %q grants no field of %s; to grant nothing, refuse the application", v, ds)
		}
		out[ds] = fields
	}
	return out, nil
}

func applicationApproveCmd(g *globals) *cobra.Command {
	var fields, bounds, topCodes, bottomCodes []string
	var ap operators.Approval
	var dp privacy.Config
	cmd := &cobra.Command{
		Use:   "approve ID [--fields DATASET:field=form,...] [--from DATE] [--until DATE] [--aggregates-only] [--min-cell-count N] [--row-level] [--round-base N] [--dp-mechanism laplace|gaussian --dp-epsilon E --dp-epsilon-per-job E --dp-person-key F --dp-bound F=LO:HI] [--max-jobs N] [--jobs-per-day N] [--note TEXT]",
		Short: "Approve an application (as its provider), creating the agreement",
		Long: `Approve an application as a provider of the organization that owns its data.
The approval may narrow what was asked: --fields DATASET:field=form,field2
grants only the fields listed, each in a form (` + strings.Join(operators.Forms, ", ") + `;
raw when none is given); a dataset without --fields gets every requested
field raw. --from and --until may shorten the requested term, never extend
it. Output rules and quotas bound what the agreement allows.`,
		Example: `  dsbx application approve 42
  dsbx application approve 42 --fields people:district,income=generalised --until 2026-06-30 \
      --aggregates-only --min-cell-count 20 --jobs-per-day 10 --note "statistics only"`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseID("application", args[0])
			if err != nil {
				return err
			}
			if ap.Fields, err = parseGrantedFields(fields); err != nil {
				return err
			}
			if ap.Outputs.TopCode, err = parseCodes("top-code", topCodes); err != nil {
				return err
			}
			if ap.Outputs.BottomCode, err = parseCodes("bottom-code", bottomCodes); err != nil {
				return err
			}
			if dp.Mechanism != "" {
				if dp.Bounds, err = parseBounds(bounds); err != nil {
					return err
				}
				ap.Outputs.Privacy = &dp
			} else if cmd.Flags().Changed("dp-epsilon") || len(bounds) > 0 || dp.PersonKey != "" {
				return fmt.Errorf("differential privacy terms need --dp-mechanism laplace or gaussian")
			}
			for _, n := range []struct {
				flag string
				v    int64
			}{{"min-cell-count", ap.Outputs.MinCellCount}, {"round-base", ap.Outputs.RoundBase}, {"max-jobs", ap.Quotas.MaxJobs}, {"jobs-per-day", ap.Quotas.JobsPerDay}} {
				if n.v < 0 {
					return fmt.Errorf("--%s %d is negative; give 0 (no limit of its own) or more", n.flag, n.v)
				}
			}
			app, a, err := g.client().Approve(cmd.Context(), id, ap)
			if err != nil {
				return err
			}
			return g.emit(cmd, map[string]any{"application": app, "agreement": a}, func() {
				fmt.Fprintf(cmd.OutOrStdout(), "application %d approved: agreement %d lets %s use %s for %q from %s until %s\n",
					app.ID, a.ID, a.Holder, scopeText(a.Scope), strings.Join(a.Purposes, "; "), zoneTime(a.From), untilText(a.Until))
			})
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&fields, "fields", nil, "grant only these fields of a dataset, each in a form: DATASET:field=form,field2 (repeatable; default: all requested, raw)")
	f.StringVar(&ap.ValidFrom, "from", "", "start later than requested: a date or RFC 3339 time")
	f.StringVar(&ap.ValidUntil, "until", "", "end earlier than requested: a last day or RFC 3339 end time")
	f.BoolVar(&ap.Outputs.AggregatesOnly, "aggregates-only", false, "admit only jobs whose every output is an aggregate")
	f.Int64Var(&ap.Outputs.MinCellCount, "min-cell-count", 0, "raise the minimum count per released cell (0: the platform's)")
	f.BoolVar(&ap.Outputs.RowLevel, "row-level", false, "allow row-level extracts (of non-personal fields only)")
	f.Int64Var(&ap.Outputs.RoundBase, "round-base", 0, "round released counts to a multiple of this (0: no rounding)")
	f.StringArrayVar(&topCodes, "top-code", nil, "clamp a field's released values from above: FIELD=VALUE (repeatable)")
	f.StringArrayVar(&bottomCodes, "bottom-code", nil, "clamp a field's released values from below: FIELD=VALUE (repeatable)")
	f.StringVar(&dp.Mechanism, "dp-mechanism", "", "release counts and sums with differential privacy: laplace or gaussian")
	f.Float64Var(&dp.Epsilon, "dp-epsilon", 0, "the operator's total ε budget on each dataset")
	f.Float64Var(&dp.EpsilonPerJob, "dp-epsilon-per-job", 0, "the ε each job spends")
	f.Float64Var(&dp.Delta, "dp-delta", 0, "the total δ budget (gaussian)")
	f.Float64Var(&dp.DeltaPerJob, "dp-delta-per-job", 0, "the δ each job spends (gaussian)")
	f.StringVar(&dp.PersonKey, "dp-person-key", "", "the field identifying a person, for contribution bounding")
	f.IntVar(&dp.MaxContributions, "dp-max-contributions", 1, "rows kept per person in each job")
	f.StringArrayVar(&bounds, "dp-bound", nil, "clamp a summed field: FIELD=LO:HI (repeatable; only bounded fields may be summed)")
	f.Int64Var(&ap.Quotas.MaxJobs, "max-jobs", 0, "jobs allowed in all (0: unlimited)")
	f.Int64Var(&ap.Quotas.JobsPerDay, "jobs-per-day", 0, "jobs allowed a day (0: unlimited)")
	f.StringVar(&ap.Note, "note", "", "a note recorded with the approval")
	return cmd
}

// parseCodes reads --top-code or --bottom-code FIELD=VALUE flags; nil for none.
func parseCodes(flag string, flags []string) (map[string]float64, error) {
	if len(flags) == 0 {
		return nil, nil
	}
	out := map[string]float64{}
	for _, f := range flags {
		field, val, ok := strings.Cut(f, "=")
		v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if !ok || strings.TrimSpace(field) == "" || err != nil {
			return nil, fmt.Errorf("--%s %q is not FIELD=VALUE, e.g. income=200000", flag, f)
		}
		out[strings.TrimSpace(field)] = v
	}
	return out, nil
}

// parseBounds reads --dp-bound FIELD=LO:HI flags.
func parseBounds(flags []string) (map[string][2]float64, error) {
	out := map[string][2]float64{}
	for _, f := range flags {
		field, rng, ok := strings.Cut(f, "=")
		lo, hi, ok2 := strings.Cut(rng, ":")
		a, err1 := strconv.ParseFloat(strings.TrimSpace(lo), 64)
		b, err2 := strconv.ParseFloat(strings.TrimSpace(hi), 64)
		if !ok || !ok2 || strings.TrimSpace(field) == "" || err1 != nil || err2 != nil {
			return nil, fmt.Errorf("--dp-bound %q is not FIELD=LO:HI, e.g. income=0:50000", f)
		}
		out[strings.TrimSpace(field)] = [2]float64{a, b}
	}
	return out, nil
}

func applicationRefuseCmd(g *globals) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "refuse ID --reason TEXT",
		Short: "Refuse an application (as its provider), stating the reasons",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseID("application", args[0])
			if err != nil {
				return err
			}
			why, err := needReason(reason, "the application is refused")
			if err != nil {
				return err
			}
			a, err := g.client().Refuse(cmd.Context(), id, why)
			if err != nil {
				return err
			}
			return g.emit(cmd, a, func() {
				fmt.Fprintf(cmd.OutOrStdout(), "application %d of %s refused: %s\n", a.ID, a.Applicant, a.Reason)
			})
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "the reasons for the refusal, shown to the applicant")
	cmd.MarkFlagRequired("reason")
	return cmd
}

func applicationWithdrawCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "withdraw ID",
		Short: "Withdraw your pending application",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseID("application", args[0])
			if err != nil {
				return err
			}
			a, err := g.client().Withdraw(cmd.Context(), id)
			if err != nil {
				return err
			}
			return g.emit(cmd, a, func() {
				fmt.Fprintf(cmd.OutOrStdout(), "application %d withdrawn\n", a.ID)
			})
		},
	}
}

// scopeText shows an agreement's scope like people:district,income; a field
// seen in a form other than raw is shown as field=form.
func scopeText(scope []operators.Scope) string {
	var parts []string
	for _, s := range scope {
		names := make([]string, 0, len(s.Fields))
		for f := range s.Fields {
			names = append(names, f)
		}
		sort.Strings(names)
		for i, f := range names {
			if form := s.Fields[f]; form != operators.FormRaw {
				names[i] = f + "=" + form
			}
		}
		name := s.Dataset
		if s.Version != "" {
			name += "@" + shortVersion(s.Version)
		}
		parts = append(parts, name+":"+strings.Join(names, ","))
	}
	return strings.Join(parts, "; ")
}
