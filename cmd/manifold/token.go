package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/manifold-paas/manifold/reconciler/api"
	"github.com/manifold-paas/manifold/reconciler/api/tokens"
)

func newTokenCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Make, list and revoke the bearer tokens of the TCP API (--api)",
	}
	cmd.AddCommand(newTokenCreateCmd(), newTokenListCmd(), newTokenRevokeCmd())
	return cmd
}

func newTokenCreateCmd() *cobra.Command {
	var req api.TokenRequest
	var scope string
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:   "create --name NAME --scope read|deploy|run|admin [--app APP]... [--ttl 720h]",
		Short: "Make a token and print it, once: only its digest is kept",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req.Scope = tokens.Scope(scope)
			if ttl > 0 {
				req.TTL = ttl.String()
			}
			created, err := apiClient(cmd).CreateToken(cmd.Context(), req)
			if err != nil {
				return err
			}
			// The secret alone on stdout, so that `$(manifold token create ...)` works.
			fmt.Fprintln(cmd.OutOrStdout(), created.Secret)
			fmt.Fprintf(cmd.ErrOrStderr(), "Token %s (%s) created. It is shown only now: keep it in your CI's secrets.\n",
				created.Token.Name, describeToken(created.Token))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.Name, "name", "", "the token's name: the author of what it changes (required)")
	f.StringVar(&scope, "scope", "", "read (status, ps, releases, logs), deploy (+ reconcile, rollback), run (+ one-offs) or admin (everything, tokens too)")
	f.StringSliceVar(&req.Apps, "app", nil, "limit the token to this app (repeatable; default: every app)")
	f.DurationVar(&ttl, "ttl", 0, "how long the token works (e.g. 720h; default: until revoked)")
	_ = cmd.MarkFlagRequired("name")
	_ = cmd.MarkFlagRequired("scope")
	return cmd
}

func newTokenListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the tokens (names, scopes, apps, expiry; never the secrets)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			list, err := apiClient(cmd).Tokens(cmd.Context())
			if err != nil {
				return err
			}
			if len(list) == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "No tokens. Make one with `manifold token create --name ci --scope deploy`.")
				return nil
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tSCOPE\tAPPS\tCREATED\tEXPIRES\tBY")
			now := time.Now()
			for _, t := range list {
				apps := "all"
				if len(t.Apps) > 0 {
					apps = strings.Join(t.Apps, ",")
				}
				expires := "never"
				switch {
				case t.ExpiresAt.IsZero():
				case !now.Before(t.ExpiresAt):
					expires = "expired " + t.ExpiresAt.Local().Format(time.DateTime)
				default:
					expires = t.ExpiresAt.Local().Format(time.DateTime)
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", t.Name, t.Scope, apps, t.CreatedAt.Local().Format(time.DateTime), expires, t.CreatedBy)
			}
			return w.Flush()
		},
	}
}

func newTokenRevokeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "revoke NAME",
		Short: "Revoke a token: it stops working at once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := apiClient(cmd).RevokeToken(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Token %s revoked.\n", args[0])
			return nil
		},
	}
}

// describeToken is "scope deploy, apps hello, expires ...".
func describeToken(t tokens.Token) string {
	parts := []string{"scope " + string(t.Scope)}
	if len(t.Apps) > 0 {
		parts = append(parts, "apps "+strings.Join(t.Apps, ", "))
	}
	if !t.ExpiresAt.IsZero() {
		parts = append(parts, "expires "+t.ExpiresAt.Local().Format(time.DateTime))
	}
	return strings.Join(parts, ", ")
}
