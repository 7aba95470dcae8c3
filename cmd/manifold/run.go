package main

import (
	"strings"

	"github.com/spf13/cobra"

	"github.com/manifold-paas/manifold/reconciler/api"
)

func newRunCmd() *cobra.Command {
	var app, env string
	cmd := &cobra.Command{
		Use:   "run -a APP [-e ENV] -- COMMAND...",
		Short: "Run a one-off dyno of the app's current release; its exit code is passed through",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			code, err := apiClient(cmd).Run(cmd.Context(), app, api.RunRequest{Env: env, Command: strings.Join(args, " ")},
				cmd.OutOrStdout(), cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if code != 0 {
				return exitError{code: code}
			}
			return nil
		},
	}
	appFlags(cmd, &app, &env)
	return cmd
}
