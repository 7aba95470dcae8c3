package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/manifold-paas/manifold/reconciler"
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
			var stalled []string
			for _, s := range status.Apps {
				if app != "" && s.App != app {
					continue
				}
				line := fmt.Sprintf("%s (%s): %s, v%d", s.App, s.Env, s.State, s.Release)
				if s.Reason != "" {
					line += ": " + s.Reason
				}
				fmt.Fprintln(cmd.OutOrStdout(), line)
				if s.State == reconciler.StateStalled {
					stalled = append(stalled, s.App+" ("+s.Env+")")
				}
			}
			if status.Error != "" {
				return fmt.Errorf("the newest revision does not load:\n%s", status.Error)
			}
			if len(stalled) > 0 {
				// As `flux reconcile`: a script learns from the exit code that it did not converge.
				return fmt.Errorf("not converged: %s stalled", strings.Join(stalled, ", "))
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&app, "app", "a", "", "only this app")
	return cmd
}
