package main

import (
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/manifold-paas/manifold/reconciler/api"
)

func newRunCmd() *cobra.Command {
	var app, env string
	var noStdin bool
	cmd := &cobra.Command{
		Use:   "run -a APP [-e ENV] [--no-stdin] -- COMMAND...",
		Short: "Run a one-off dyno of the app's current release; its exit code is passed through",
		Long: `Run a one-off dyno (run.N) of the app's current release, as heroku run does: the
command's output comes back as it is written, its exit code becomes manifold's, and
manifold's standard input is the command's (pipe a script or data into it), unless
--no-stdin. There is no terminal: programs that need one (an editor) will not work.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var stdin io.Reader
			if !noStdin {
				stdin = cmd.InOrStdin()
			}
			code, err := apiClient(cmd).Run(cmd.Context(), app, api.RunRequest{Env: env, Command: strings.Join(args, " ")},
				stdin, cmd.OutOrStdout(), cmd.ErrOrStderr())
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
	cmd.Flags().BoolVar(&noStdin, "no-stdin", false, "give the command an empty standard input instead of manifold's")
	return cmd
}
