package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/manifold-paas/manifold/reconciler/api"
)

func newRollbackCmd() *cobra.Command {
	var app, env string
	cmd := &cobra.Command{
		Use:   "rollback -a APP [-e ENV] vN",
		Short: "Append a copy of release vN and run it; the app stays there until a commit changes it",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			version, err := strconv.Atoi(strings.TrimPrefix(args[0], "v"))
			if err != nil || version < 1 {
				return fmt.Errorf("rollback: want a release like v3, got %q", args[0])
			}
			release, err := apiClient(cmd).Rollback(cmd.Context(), app, api.RollbackRequest{Env: env, Version: version})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Rolling back %s (%s) to v%d... done, v%d\n", app, release.Env, version, release.Version)
			fmt.Fprintf(cmd.OutOrStdout(), "%s stays on v%d until a commit changes it.\n", app, release.Version)
			return nil
		},
	}
	appFlags(cmd, &app, &env)
	return cmd
}
