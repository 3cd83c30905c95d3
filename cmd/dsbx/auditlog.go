package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

// auditLogCmd is `dsbx audit log`: the regulator's view of the record.
func auditLogCmd(g *globals) *cobra.Command {
	var operator, dataset, kind, decision, from, to string
	var job, after int64
	var limit int
	cmd := &cobra.Command{
		Use:   "log [--operator NAME] [--dataset NAME] [--kind KIND|PREFIX.] [--decision denied|held|released|rejected|failed|stopped|refused] [--job ID] [--from T] [--to T]",
		Short: "Query the audit log (admin, regulator): filter by operator, dataset, time, kind and decision, or follow one job",
		Long: `Query the audit log. Entries come back oldest first, exactly as the log
holds them; --job ID follows one job from submission to download.
--from and --to take a date (China Standard Time) or an RFC 3339 time;
--after SEQ and --limit page through long answers.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			q := url.Values{}
			for k, v := range map[string]string{"operator": operator, "dataset": dataset, "kind": kind, "decision": decision, "from": from, "to": to} {
				if v != "" {
					q.Set(k, v)
				}
			}
			if job > 0 {
				q.Set("job", strconv.FormatInt(job, 10))
			}
			if after > 0 {
				q.Set("after", strconv.FormatInt(after, 10))
			}
			if limit > 0 {
				q.Set("limit", strconv.Itoa(limit))
			}
			es, err := g.client().AuditEvents(cmd.Context(), q)
			if err != nil {
				return err
			}
			return g.emit(cmd, es, func() {
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "SEQ\tTIME\tKIND\tPRINCIPAL\tSUBJECT\tDATA")
				for _, e := range es {
					fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", e.Seq, zoneTime(e.Time), e.Kind, e.Principal, e.Subject, oneLine(string(e.Data), 80))
				}
				tw.Flush()
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&operator, "operator", "", "only entries about this operator's jobs and agreements")
	f.StringVar(&dataset, "dataset", "", "only entries about this dataset")
	f.StringVar(&kind, "kind", "", "only this event kind, or kinds with this prefix ending in '.' (job.)")
	f.StringVar(&decision, "decision", "", "only decisions of this outcome")
	f.Int64Var(&job, "job", 0, "one job's whole history")
	f.StringVar(&from, "from", "", "entries at or after this date or time")
	f.StringVar(&to, "to", "", "entries before this date or time")
	f.Int64Var(&after, "after", 0, "entries after this sequence number (paging)")
	f.IntVar(&limit, "limit", 0, "at most this many entries (default and maximum 1000)")
	return cmd
}

// auditReplayCmd is `dsbx audit replay JOB`.
func auditReplayCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "replay JOB",
		Short: "Re-run a job from its recorded dataset version, code and decision, and confirm its result hashes as recorded (admin, regulator)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil {
				return fmt.Errorf("job id %q is not a number", args[0])
			}
			r, err := g.client().Replay(cmd.Context(), id)
			if err != nil {
				return err
			}
			if err := g.emit(cmd, r, func() {
				fmt.Fprintf(cmd.OutOrStdout(), "job %d replayed (audit entry %d): result sha256 %s %s\n", r.Job, r.Seq, r.ResultSHA256, matchWord(r.ResultMatches))
				if r.ReleasedSHA256 != "" {
					fmt.Fprintf(cmd.OutOrStdout(), "  released file after the recorded remedies: sha256 %s %s\n", r.ReleasedSHA256, matchWord(r.ReleasedMatches))
				}
			}); err != nil {
				return err
			}
			if !r.ResultMatches || !r.ReleasedMatches {
				return &exitError{code: 2, err: fmt.Errorf("job %d does not reproduce its recorded result", id)}
			}
			return nil
		},
	}
}

func matchWord(ok bool) string {
	if ok {
		return "matches the record"
	}
	return "DOES NOT MATCH the record"
}

// auditAlertsCmd is `dsbx audit alerts`.
func auditAlertsCmd(g *globals) *cobra.Command {
	var operator, dataset, from string
	cmd := &cobra.Command{
		Use:   "alerts [--operator NAME] [--dataset NAME] [--from T]",
		Short: "List the alerts raised from the audit log (admin, regulator): repeated denials, probing, held results, differencing, use outside agreed hours",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			q := url.Values{}
			for k, v := range map[string]string{"operator": operator, "dataset": dataset, "from": from} {
				if v != "" {
					q.Set(k, v)
				}
			}
			es, err := g.client().AuditAlerts(cmd.Context(), q)
			if err != nil {
				return err
			}
			return g.emit(cmd, es, func() {
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "SEQ\tTIME\tRULE\tOPERATOR\tMESSAGE")
				for _, e := range es {
					var a struct{ Rule, Operator, Message string }
					json.Unmarshal(e.Data, &a)
					fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", e.Seq, zoneTime(e.Time), a.Rule, a.Operator, a.Message)
				}
				tw.Flush()
			})
		},
	}
	cmd.Flags().StringVar(&operator, "operator", "", "only alerts about this operator")
	cmd.Flags().StringVar(&dataset, "dataset", "", "only alerts about this dataset")
	cmd.Flags().StringVar(&from, "from", "", "only alerts raised at or after this date or time")
	return cmd
}
