package main

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/datasandbox/dsbx/operators"
)

// zoneTime shows an instant in the platform's zone.
func zoneTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.In(operators.Zone).Format("2006-01-02 15:04")
}

// untilText shows the end of a term as --until takes it: a date when the
// term ends at a midnight (covered through that day), else the first instant
// no longer covered.
func untilText(t time.Time) string {
	z := t.In(operators.Zone)
	if z.Hour() == 0 && z.Minute() == 0 && z.Second() == 0 && z.Nanosecond() == 0 {
		return z.AddDate(0, 0, -1).Format(operators.DateLayout)
	}
	return z.Format("2006-01-02 15:04")
}

// parseID reads the numeric ID of a what (job, application, agreement).
func parseID(what, s string) (int64, error) {
	id, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("%s id %q is not a positive number", what, s)
	}
	return id, nil
}

// oneOf checks that a flag's value, if set, is one of allowed.
func oneOf(flag, value string, allowed []string) error {
	if value == "" || slices.Contains(allowed, value) {
		return nil
	}
	return fmt.Errorf("--%s %q is not one of %s", flag, value, strings.Join(allowed, ", "))
}

// needReason checks a --reason flag that must say something.
func needReason(reason, what string) (string, error) {
	reason = strings.TrimSpace(reason)
	if reason == "" {
		return "", fmt.Errorf("--reason is empty; say why %s", what)
	}
	return reason, nil
}

// splitList reads a repeatable, comma-separated flag: trimmed, no empties.
func splitList(values []string) []string {
	var out []string
	for _, v := range values {
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}

// checkRoles validates --role values before they reach the server.
func checkRoles(roles []string) ([]string, error) {
	roles = splitList(roles)
	if len(roles) == 0 {
		return nil, fmt.Errorf("no --role given; choose from %s", strings.Join(operators.Roles, ", "))
	}
	for _, r := range roles {
		if !slices.Contains(operators.Roles, r) {
			return nil, fmt.Errorf("--role %q is not one of %s", r, strings.Join(operators.Roles, ", "))
		}
	}
	return roles, nil
}

func principalState(p operators.Principal) string {
	if p.DisabledAt != nil {
		return "disabled: " + p.DisabledReason
	}
	return "active"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func printPrincipal(w io.Writer, p operators.Principal) {
	fmt.Fprintf(w, "%s\n  roles         %s\n", p.Name, strings.Join(p.Roles, ", "))
	fmt.Fprintf(w, "  organization  %s\n  created       %s\n  status        %s\n", orDash(p.Organization), zoneTime(p.CreatedAt), principalState(p))
	if p.DisabledAt != nil {
		fmt.Fprintf(w, "  disabled at   %s\n", zoneTime(*p.DisabledAt))
	}
}

func principalCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "principal", Short: "Manage principals (users) and their roles"}

	var roles []string
	var org string
	add := &cobra.Command{
		Use:   "add NAME --role ROLE [--role ROLE | --role A,B] [--org ORGANIZATION]",
		Short: "Add a principal and print its first token (shown once)",
		Long: `Add a principal with one or more roles (` + strings.Join(operators.Roles, ", ") + `).
A provider speaks for an organization: give --org exactly as the agency is
written on its datasets. The new principal's token is printed once on stdout.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rs, err := checkRoles(roles)
			if err != nil {
				return err
			}
			p, issued, err := g.client().AddPrincipal(cmd.Context(), operators.NewPrincipal{Name: args[0], Roles: rs, Organization: org})
			if err != nil {
				return err
			}
			out := map[string]any{"principal": p, "token": issued.Token, "credential": issued.Credential}
			return g.emit(cmd, out, func() {
				of := ""
				if p.Organization != "" {
					of = " of " + p.Organization
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "added %s %q%s; its token %s (shown once):\n", strings.Join(p.Roles, "+"), p.Name, of, issued.Credential.ID)
				fmt.Fprintln(cmd.OutOrStdout(), issued.Token)
			})
		},
	}
	add.Flags().StringSliceVar(&roles, "role", nil, "role: "+strings.Join(operators.Roles, ", ")+" (repeat or comma-separate)")
	add.Flags().StringVar(&org, "org", "", "organization: the agency a provider speaks for, as named on its datasets")
	add.MarkFlagRequired("role")

	list := &cobra.Command{
		Use:   "list",
		Short: "List every principal (admin and regulators)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			list, err := g.client().Principals(cmd.Context())
			if err != nil {
				return err
			}
			return g.emit(cmd, list, func() {
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tROLES\tORGANIZATION\tCREATED\tSTATUS")
				for _, p := range list {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", p.Name, strings.Join(p.Roles, ","), orDash(p.Organization), zoneTime(p.CreatedAt), principalState(p))
				}
				tw.Flush()
			})
		},
	}

	show := &cobra.Command{
		Use:   "show NAME",
		Short: "Show a principal (yourself, or anyone for the admin and regulators)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := g.client().Principal(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return g.emit(cmd, p, func() { printPrincipal(cmd.OutOrStdout(), p) })
		},
	}

	var setRoles []string
	var setOrg string
	rolesCmd := &cobra.Command{
		Use:   "roles NAME --role ROLE [--role ROLE] [--org ORGANIZATION]",
		Short: "Replace a principal's roles and organization (admin)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rs, err := checkRoles(setRoles)
			if err != nil {
				return err
			}
			p, err := g.client().SetRoles(cmd.Context(), args[0], rs, setOrg)
			if err != nil {
				return err
			}
			return g.emit(cmd, p, func() {
				fmt.Fprintf(cmd.OutOrStdout(), "%s now holds %s", p.Name, strings.Join(p.Roles, ", "))
				if p.Organization != "" {
					fmt.Fprintf(cmd.OutOrStdout(), " for %s", p.Organization)
				}
				fmt.Fprintln(cmd.OutOrStdout())
			})
		},
	}
	rolesCmd.Flags().StringSliceVar(&setRoles, "role", nil, "role: "+strings.Join(operators.Roles, ", ")+" (repeat or comma-separate); replaces all roles")
	rolesCmd.Flags().StringVar(&setOrg, "org", "", "organization (replaces the current one; a provider needs one)")
	rolesCmd.MarkFlagRequired("role")

	var disableReason string
	disable := &cobra.Command{
		Use:   "disable NAME --reason TEXT",
		Short: "Disable a principal: its tokens are revoked and its queued jobs stopped (admin)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			reason, err := needReason(disableReason, args[0]+" is disabled")
			if err != nil {
				return err
			}
			p, stopped, err := g.client().DisablePrincipal(cmd.Context(), args[0], reason)
			if err != nil {
				return err
			}
			out := map[string]any{"principal": p, "stopped_jobs": stopped}
			return g.emit(cmd, out, func() {
				fmt.Fprintf(cmd.OutOrStdout(), "%s disabled (%s); its tokens are revoked\n", p.Name, p.DisabledReason)
				printStopped(cmd.OutOrStdout(), stopped)
			})
		},
	}
	disable.Flags().StringVar(&disableReason, "reason", "", "why the principal is disabled")
	disable.MarkFlagRequired("reason")

	enable := &cobra.Command{
		Use:   "enable NAME",
		Short: "Enable a disabled principal; it then needs a new token (admin)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := g.client().EnablePrincipal(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return g.emit(cmd, p, func() {
				fmt.Fprintf(cmd.OutOrStdout(), "%s enabled; its old tokens stay revoked: dsbx token issue --principal %s\n", p.Name, shellQuote(p.Name))
			})
		},
	}
	cmd.AddCommand(add, list, show, rolesCmd, disable, enable)
	return cmd
}

// shellQuote quotes s for a command line shown to the user, if needed.
func shellQuote(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t'\"\\$`!*?[]{}()<>|&;#~") {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func printStopped(w io.Writer, stopped []int64) {
	if len(stopped) == 0 {
		fmt.Fprintln(w, "  no queued jobs were stopped")
		return
	}
	ids := make([]string, len(stopped))
	for i, id := range stopped {
		ids[i] = strconv.FormatInt(id, 10)
	}
	fmt.Fprintf(w, "  queued jobs stopped: %s\n", strings.Join(ids, ", "))
}

func credentialState(c operators.Credential, now time.Time) string {
	switch {
	case c.RevokedAt != nil:
		by := ""
		if c.RevokedBy != "" {
			by = " by " + c.RevokedBy
		}
		return "revoked " + zoneTime(*c.RevokedAt) + by
	case c.ExpiresAt != nil && !now.Before(*c.ExpiresAt):
		return "expired"
	}
	return "active"
}

func expiryText(c operators.Credential) string {
	if c.ExpiresAt == nil {
		return "never"
	}
	return zoneTime(*c.ExpiresAt)
}

func tokenCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "List, issue, revoke and rotate API tokens"}

	var listFor string
	list := &cobra.Command{
		Use:   "list [--principal NAME]",
		Short: "List your tokens (or a principal's, for the admin and regulators); never the tokens themselves",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			list, err := g.client().Tokens(cmd.Context(), listFor)
			if err != nil {
				return err
			}
			return g.emit(cmd, list, func() {
				now := time.Now()
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tPRINCIPAL\tLABEL\tCREATED\tEXPIRES\tSTATUS")
				for _, c := range list {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", c.ID, c.Principal, orDash(c.Label), zoneTime(c.CreatedAt), expiryText(c), credentialState(c, now))
				}
				tw.Flush()
			})
		},
	}
	list.Flags().StringVar(&listFor, "principal", "", "whose tokens (default: yours)")

	var issueFor, label, expires string
	issue := &cobra.Command{
		Use:   "issue [--principal NAME] [--label TEXT] [--expires 90d|12h|DATE|TIME]",
		Short: "Issue a new token and print it once (for another principal: admin)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			issued, err := g.client().IssueToken(cmd.Context(), issueFor, label, expires)
			if err != nil {
				return err
			}
			return g.emit(cmd, issued, func() {
				fmt.Fprintf(cmd.ErrOrStderr(), "issued token %s for %s, expires %s (shown once):\n", issued.Credential.ID, issued.Credential.Principal, expiryText(issued.Credential))
				fmt.Fprintln(cmd.OutOrStdout(), issued.Token)
			})
		},
	}
	issue.Flags().StringVar(&issueFor, "principal", "", "for whom (default: yourself; others: admin only)")
	issue.Flags().StringVar(&label, "label", "", "a label to tell the token apart, such as the machine it is for")
	issue.Flags().StringVar(&expires, "expires", "", "when it expires: 90d, 12h, a date like 2027-12-31 or an RFC 3339 time (default: never)")

	revoke := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a token at once (yours, or anyone's for the admin)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client().RevokeToken(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return g.emit(cmd, c, func() {
				fmt.Fprintf(cmd.OutOrStdout(), "token %s of %s revoked\n", c.ID, c.Principal)
			})
		},
	}

	var rotateExpires string
	rotate := &cobra.Command{
		Use:   "rotate ID [--expires 90d|12h|DATE|TIME]",
		Short: "Replace a token with a new one, printed once; the old one is revoked",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			issued, err := g.client().RotateToken(cmd.Context(), args[0], rotateExpires)
			if err != nil {
				return err
			}
			return g.emit(cmd, map[string]any{"revoked": args[0], "credential": issued.Credential, "token": issued.Token}, func() {
				fmt.Fprintf(cmd.ErrOrStderr(), "token %s revoked; its replacement %s for %s, expires %s (shown once):\n", args[0], issued.Credential.ID, issued.Credential.Principal, expiryText(issued.Credential))
				fmt.Fprintln(cmd.OutOrStdout(), issued.Token)
			})
		},
	}
	rotate.Flags().StringVar(&rotateExpires, "expires", "", "when the new token expires: 90d, 12h, a date or an RFC 3339 time (default: never)")

	cmd.AddCommand(list, issue, revoke, rotate)
	return cmd
}
