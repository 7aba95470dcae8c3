package main

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/manifold-paas/manifold/reconciler/api"
	"golang.org/x/term"
)

func newRunCmd() *cobra.Command {
	var app, env string
	var noStdin, noTTY bool
	cmd := &cobra.Command{
		Use:   "run -a APP [-e ENV] [--no-stdin] [--no-tty] -- COMMAND...",
		Short: "Run a one-off dyno of the app's current release; its exit code is passed through",
		Long: `Run a one-off dyno (run.N) of the app's current release, as heroku run does: the
command's output comes back as it is written, its exit code becomes manifold's, and
manifold's standard input is the command's (pipe a script or data into it), unless
--no-stdin. From a terminal the one-off gets a terminal of the same size (so
manifold run -a APP -- bash is interactive), unless --no-tty.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			// The words as typed: the daemon quotes them for the dyno's shell.
			req := api.RunRequest{Env: env, Args: args}
			var stdin io.Reader
			if !noStdin {
				stdin = cmd.InOrStdin()
			}
			in, inFile := stdin.(*os.File)
			out, outFile := cmd.OutOrStdout().(*os.File)
			if !noTTY && inFile && outFile && term.IsTerminal(int(in.Fd())) && term.IsTerminal(int(out.Fd())) {
				cols, rows, err := term.GetSize(int(out.Fd()))
				if err != nil {
					return fmt.Errorf("terminal size: %w", err)
				}
				state, err := term.MakeRaw(int(in.Fd()))
				if err != nil {
					return fmt.Errorf("raw terminal: %w", err)
				}
				defer func() { _ = term.Restore(int(in.Fd()), state) }()
				req.TTY, req.Rows, req.Cols, req.Term = true, rows, cols, os.Getenv("TERM")
			}
			code, err := apiClient(cmd).Run(cmd.Context(), app, req, stdin, cmd.OutOrStdout(), cmd.ErrOrStderr())
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
	cmd.Flags().BoolVar(&noTTY, "no-tty", false, "no terminal for the command even when manifold runs on one")
	return cmd
}
