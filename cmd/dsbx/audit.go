package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/datasandbox/dsbx/audit"
	"github.com/datasandbox/dsbx/client"
)

func auditCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Verify and export the tamper-evident audit log"}
	var logDir, keyFlag, since string
	verify := &cobra.Command{
		Use:   "verify [--log DIR] [--since SAVED-CHECKPOINT]",
		Short: "Verify a live server's log (--server) or an exported one (--log DIR), offline; with --since, prove it only grew since a checkpoint you saved",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var records [][]byte
			var checkpoint []byte
			var key string
			var err error
			if logDir != "" {
				records, checkpoint, key, err = audit.ReadExport(logDir)
			} else {
				records, checkpoint, key, err = fetchLog(cmd.Context(), g.client())
			}
			if err != nil {
				return err
			}
			if keyFlag != "" {
				// A key the regulator pinned beats the one shipped with the log.
				if key, err = readKey(keyFlag); err != nil {
					return err
				}
			}
			var rep audit.Report
			var saved audit.Checkpoint
			if since != "" {
				old, err := os.ReadFile(since)
				if err != nil {
					return fmt.Errorf("--since: %w", err)
				}
				if saved, err = audit.ParseCheckpoint(old, key); err != nil {
					return &exitError{code: 2, err: fmt.Errorf("the saved checkpoint %s: %w", since, err)}
				}
				rep, err = audit.VerifyGrowth(records, old, checkpoint, key)
				if err == nil && logDir == "" {
					// The server's own proof must agree with what was recomputed.
					err = serverConsistency(cmd.Context(), g.client(), saved, checkpoint, key)
				}
			} else {
				rep, err = audit.Verify(records, checkpoint, key)
			}
			if err != nil {
				var te *audit.TamperError
				if errors.As(err, &te) {
					return &exitError{code: 2, err: fmt.Errorf("audit log TAMPERED: first bad entry %d: %s", te.Seq, te.Reason)}
				}
				return &exitError{code: 2, err: fmt.Errorf("audit log NOT VERIFIED: %w", err)}
			}
			return g.emit(cmd, rep, func() {
				fmt.Fprintf(cmd.OutOrStdout(), "audit log intact: %d entries, root %s, signed by %s\n", rep.Size, rep.Root, rep.Origin)
				if since != "" {
					fmt.Fprintf(cmd.OutOrStdout(), "it only grew since the saved checkpoint of %d entries (%s)\n", saved.Size, since)
				}
			})
		},
	}
	verify.Flags().StringVar(&logDir, "log", "", "verify the export in this directory, without a server")
	verify.Flags().StringVar(&since, "since", "", "a checkpoint saved earlier (dsbx audit checkpoint --out FILE): prove the log is that one, grown")
	verify.Flags().StringVar(&keyFlag, "key", "", "verifier key (or a file holding it) to trust instead of the one shipped with the log")

	var out string
	export := &cobra.Command{
		Use:   "export",
		Short: "Export the server's log with a signed checkpoint, for offline verification, and as Parquet for analysis",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			records, checkpoint, key, err := fetchLog(cmd.Context(), g.client())
			if err != nil {
				return err
			}
			if _, err := audit.Verify(records, checkpoint, key); err != nil {
				return fmt.Errorf("refusing to export a log that does not verify: %w", err)
			}
			if err := audit.WriteExport(out, records, checkpoint, key); err != nil {
				return err
			}
			rows, err := exportParquet(cmd.Context(), out)
			if err != nil {
				return err
			}
			if rows != int64(len(records)) {
				return fmt.Errorf("parquet export holds %d rows for %d entries", rows, len(records))
			}
			return g.emit(cmd, map[string]any{"out": out, "entries": len(records), "parquet": filepath.Join(out, ParquetFile)}, func() {
				fmt.Fprintf(cmd.OutOrStdout(), "exported %d entries to %s (JSON Lines, and %s for analysis); verify with: dsbx audit verify --log %s\n", len(records), out, ParquetFile, out)
			})
		},
	}
	export.Flags().StringVar(&out, "out", "", "directory to write")
	export.MarkFlagRequired("out")

	key := &cobra.Command{
		Use:   "key",
		Short: "Print the server's audit verifier key (pin it to verify exports)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			k, err := g.client().AuditKey(cmd.Context())
			if err != nil {
				return err
			}
			return g.emit(cmd, map[string]string{"key": k}, func() { fmt.Fprintln(cmd.OutOrStdout(), k) })
		},
	}
	var cpOut string
	checkpoint := &cobra.Command{
		Use:   "checkpoint [--out FILE]",
		Short: "Print (or save) the log's current signed checkpoint, to prove later that the log only grew",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cp, err := g.client().AuditCheckpoint(cmd.Context())
			if err != nil {
				return err
			}
			if cpOut == "" {
				_, err = cmd.OutOrStdout().Write(cp)
				return err
			}
			if err := os.WriteFile(cpOut, cp, 0o644); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "saved the checkpoint to %s; later: dsbx audit verify --since %s\n", cpOut, cpOut)
			return nil
		},
	}
	checkpoint.Flags().StringVar(&cpOut, "out", "", "save it to this file")
	prove := &cobra.Command{
		Use:   "prove SEQ",
		Short: "Fetch entry SEQ with its inclusion proof and check it against the signed checkpoint (admin, regulator)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			seq, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil {
				return fmt.Errorf("entry %q is not a number", args[0])
			}
			c := g.client()
			key, err := c.AuditKey(cmd.Context())
			if err != nil {
				return err
			}
			signed, err := c.AuditCheckpoint(cmd.Context())
			if err != nil {
				return err
			}
			cp, err := audit.ParseCheckpoint(signed, key)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			p, err := c.AuditInclusion(cmd.Context(), seq, cp.Size)
			if err != nil {
				return err
			}
			hs, err := p.Proof()
			if err != nil {
				return err
			}
			if err := audit.VerifyInclusion(cp, seq, []byte(p.Record), hs); err != nil {
				return &exitError{code: 2, err: fmt.Errorf("entry %d is NOT proven in the log of %d entries: %w", seq, cp.Size, err)}
			}
			return g.emit(cmd, p, func() {
				fmt.Fprintf(cmd.OutOrStdout(), "entry %d is in the log of %d entries signed by %s (%d proof hashes):\n%s\n", seq, cp.Size, cp.Origin, len(hs), p.Record)
			})
		},
	}
	cmd.AddCommand(verify, export, key, checkpoint, prove, auditLogCmd(g), auditReplayCmd(g), auditAlertsCmd(g))
	return cmd
}

// serverConsistency asks the server to prove that saved is a prefix of the
// log signed in current, and checks the proof.
func serverConsistency(ctx context.Context, c *client.Client, saved audit.Checkpoint, current []byte, key string) error {
	cur, err := audit.ParseCheckpoint(current, key)
	if err != nil {
		return err
	}
	p, err := c.AuditConsistency(ctx, saved.Size, cur.Size)
	if err != nil {
		return err
	}
	hs, err := p.Proof()
	if err != nil {
		return err
	}
	return audit.VerifyConsistency(saved, cur, hs)
}

// fetchLog reads a consistent view from a server: a checkpoint, then exactly
// the records it covers.
func fetchLog(ctx context.Context, c *client.Client) ([][]byte, []byte, string, error) {
	key, err := c.AuditKey(ctx)
	if err != nil {
		return nil, nil, "", err
	}
	checkpoint, err := c.AuditCheckpoint(ctx)
	if err != nil {
		return nil, nil, "", err
	}
	cp, err := audit.ParseCheckpoint(checkpoint, key)
	if err != nil {
		return nil, nil, "", err
	}
	records, err := c.AuditRecords(ctx, cp.Size)
	if err != nil {
		return nil, nil, "", err
	}
	return records, checkpoint, key, nil
}

func readKey(v string) (string, error) {
	if data, err := os.ReadFile(v); err == nil {
		return strings.TrimSpace(string(data)), nil
	}
	if strings.Count(v, "+") < 2 {
		return "", fmt.Errorf("--key %q is neither a readable file nor a verifier key (NAME+HASH+KEY)", v)
	}
	return v, nil
}
