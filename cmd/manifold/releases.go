package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/manifold-paas/manifold/reconciler/ledger"
)

func newReleasesCmd() *cobra.Command {
	var app, env string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "releases",
		Short: "List an app's releases, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			releases, err := apiClient(cmd).Releases(cmd.Context(), app, env)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(releases.Releases)
			}
			fmt.Fprintf(out, "=== %s (%s) Releases\n", releases.App, releases.Env)
			return ledger.FormatTable(out, releases.Releases, time.Now())
		},
	}
	appFlags(cmd, &app, &env)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
