package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newReconcileCmd() *cobra.Command {
	var app string
	cmd := &cobra.Command{
		Use:   "reconcile",
		Short: "Fetch the config repo and converge now (with -a, retry that app even after a failed deploy)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			status, err := apiClient(cmd).Reconcile(cmd.Context(), app)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Reconciled %s.\n", status.Revision.Short())
			for _, s := range status.Apps {
				if app != "" && s.App != app {
					continue
				}
				line := fmt.Sprintf("%s (%s): %s, v%d", s.App, s.Env, s.State, s.Release)
				if s.Reason != "" {
					line += ": " + s.Reason
				}
				fmt.Fprintln(cmd.OutOrStdout(), line)
			}
			if status.Error != "" {
				return fmt.Errorf("the newest revision does not load:\n%s", status.Error)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&app, "app", "a", "", "only this app")
	return cmd
}
