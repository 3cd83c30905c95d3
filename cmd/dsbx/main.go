// Command dsbx is DataSandbox: `dsbx serve` runs the platform, `dsbx demo`
// walks through one job lifecycle on generated data, and the other commands
// are clients of a running server's HTTP API.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/datasandbox/dsbx/client"
)

// globals are the flags every client command shares.
type globals struct {
	server string
	token  string
	json   bool
	ca     string
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRoot().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "dsbx:", err)
		os.Exit(exitCode(err))
	}
}

// exitError carries a specific exit status.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func exitCode(err error) int {
	if e, ok := err.(*exitError); ok {
		return e.code
	}
	return 1
}

func newRoot() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:           "dsbx",
		Short:         "DataSandbox: a trusted sandbox for conditionally open public data",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.server, "server", "http://127.0.0.1:8686", "URL of the dsbx server")
	root.PersistentFlags().StringVar(&g.token, "token", "", "API token (default $DSBX_TOKEN)")
	root.PersistentFlags().BoolVar(&g.json, "json", false, "print machine-readable JSON")
	root.PersistentFlags().StringVar(&g.ca, "ca", "", "PEM file of a CA to trust for an https:// --server with a self-signed certificate (default $DSBX_CA)")
	root.AddCommand(serveCmd(), demoCmd(), datasetCmd(g), objectionCmd(g), principalCmd(g), tokenCmd(g), applicationCmd(g), agreementCmd(g), policyCmd(g), wasmCmd(g), jobCmd(g), reviewCmd(g), privacyCmd(g), runCmd(g), resultCmd(g), auditCmd(g), workerCmd(g))
	return root
}

func (g *globals) client() *client.Client {
	token := g.token
	if token == "" {
		token = os.Getenv("DSBX_TOKEN")
	}
	ca := g.ca
	if ca == "" {
		ca = os.Getenv("DSBX_CA")
	}
	c := client.New(g.server, token)
	if ca != "" {
		c = c.WithCAFile(ca)
	}
	return c
}

// emit prints v as JSON when --json is set, else calls human.
func (g *globals) emit(cmd *cobra.Command, v any, human func()) error {
	if g.json {
		enc := json.NewEncoder(cmd.OutOrStdout())
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	human()
	return nil
}
