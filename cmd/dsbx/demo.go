package main

import (
	"github.com/spf13/cobra"

	"github.com/datasandbox/dsbx/demo"
)

func demoCmd() *cobra.Command {
	var keep string
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Walk through the job lifecycle on generated registers, with nothing but this binary",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return demo.Run(cmd.Context(), cmd.OutOrStdout(), demo.Options{Keep: keep})
		},
	}
	cmd.Flags().StringVar(&keep, "keep", "", "keep the demo's data directory here instead of a removed temp dir")
	return cmd
}
