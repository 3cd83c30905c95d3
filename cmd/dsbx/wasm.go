package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/datasandbox/dsbx/sandbox/wasm"
)

func wasmCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "wasm", Short: "Prepare and check WebAssembly job modules (guest ABI v1, sandbox/wasm/ABI.md)"}

	check := &cobra.Command{
		Use:   "check FILE.wasm",
		Short: "Validate a module locally before submitting it: size, imports, _start and the declared fields",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			m, err := wasm.Check(cmd.Context(), b)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			return g.emit(cmd, m, func() {
				fmt.Fprintf(cmd.OutOrStdout(), "%s: ABI v%d module, %d bytes, sha256 %s\n", args[0], wasm.ABIVersion, m.Size, m.SHA256)
				fmt.Fprintf(cmd.OutOrStdout(), "  reads fields: %s\n", strings.Join(m.Fields, ", "))
				fmt.Fprintf(cmd.OutOrStdout(), "  imports: %d, all allowed\n", len(m.Imports))
			})
		},
	}

	var fields, out string
	declare := &cobra.Command{
		Use:   "declare FILE.wasm --fields a,b [--out FILE.wasm]",
		Short: "Declare the dataset fields a module reads (adds the dsbx.fields section; needed for Go guests)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			var names []string
			for _, f := range strings.Split(fields, ",") {
				if f = strings.TrimSpace(f); f != "" {
					names = append(names, f)
				}
			}
			if len(names) == 0 {
				return fmt.Errorf("--fields names no field; list the dataset fields the module reads, like --fields district,income")
			}
			declared, err := wasm.DeclareFields(b, names)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			if out == "" {
				out = args[0]
			}
			if err := os.WriteFile(out, declared, 0o644); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "%s declares %s\n", out, strings.Join(names, ", "))
			return nil
		},
	}
	declare.Flags().StringVar(&fields, "fields", "", "comma-separated dataset fields the module reads")
	declare.Flags().StringVar(&out, "out", "", "write the module here (default: in place)")
	declare.MarkFlagRequired("fields")

	cmd.AddCommand(check, declare)
	return cmd
}
