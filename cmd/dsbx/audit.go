package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/datasandbox/dsbx/audit"
	"github.com/datasandbox/dsbx/client"
)

func auditCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Verify and export the tamper-evident audit log"}
	var logDir, keyFlag string
	verify := &cobra.Command{
		Use:   "verify",
		Short: "Verify a live server's log (--server) or an exported one (--log DIR), offline",
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
			rep, err := audit.Verify(records, checkpoint, key)
			if err != nil {
				var te *audit.TamperError
				if errors.As(err, &te) {
					return &exitError{code: 2, err: fmt.Errorf("audit log TAMPERED: first bad entry %d: %s", te.Seq, te.Reason)}
				}
				return &exitError{code: 2, err: fmt.Errorf("audit log NOT VERIFIED: %w", err)}
			}
			return g.emit(cmd, rep, func() {
				fmt.Fprintf(cmd.OutOrStdout(), "audit log intact: %d entries, root %s, signed by %s\n", rep.Size, rep.Root, rep.Origin)
			})
		},
	}
	verify.Flags().StringVar(&logDir, "log", "", "verify the export in this directory, without a server")
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
	cmd.AddCommand(verify, export, key, auditLogCmd(g), auditReplayCmd(g), auditAlertsCmd(g))
	return cmd
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
