package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
)

func resultCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "result", Short: "Fetch released results"}
	var out, format string
	fetch := &cobra.Command{
		Use:   "fetch ID",
		Short: "Download a released result (CSV, Parquet or Arrow, from --out's extension)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil {
				return fmt.Errorf("job id %q is not a number", args[0])
			}
			if format == "" {
				format = strings.TrimPrefix(strings.ToLower(filepath.Ext(out)), ".")
				if format == "" {
					format = "csv"
				}
			}
			tmp, err := os.CreateTemp(filepath.Dir(out), ".dsbx-fetch-*")
			if err != nil {
				return err
			}
			defer os.Remove(tmp.Name())
			if err := g.client().FetchResult(cmd.Context(), id, format, tmp); err != nil {
				tmp.Close()
				return err
			}
			if err := tmp.Close(); err != nil {
				return err
			}
			if err := os.Rename(tmp.Name(), out); err != nil {
				return err
			}
			st, _ := os.Stat(out)
			return g.emit(cmd, map[string]any{"job": id, "out": out, "format": format, "bytes": st.Size()}, func() {
				fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (%s, %d bytes)\n", out, format, st.Size())
			})
		},
	}
	fetch.Flags().StringVar(&out, "out", "", "file to write")
	fetch.Flags().StringVar(&format, "format", "", "csv, parquet or arrow (default from --out's extension)")
	fetch.MarkFlagRequired("out")
	cmd.AddCommand(fetch)
	return cmd
}
