// Command manifold is a self-hosted, Git-driven Heroku: `manifold up` runs the daemon
// that makes running dynos match a config repo; the other subcommands are its CLI.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// exitError carries a process exit code out of a subcommand without printing anything
// more (plan's exit 2 for "changes", run's pass-through exit code).
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func main() {
	ctx, stop := signalContext()
	code := execute(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

// signalContext is cancelled by SIGINT or SIGTERM, so the daemon shuts down cleanly.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// execute runs the CLI with args and returns the process exit code.
func execute(ctx context.Context, args []string) int {
	root := newRootCmd()
	root.SetArgs(args)
	return exitCode(root.ExecuteContext(ctx), os.Stderr)
}

// exitCode turns a subcommand's error into the exit code, printing it to stderr
// unless it is an exitError (which has said what it had to).
func exitCode(err error, stderr io.Writer) int {
	var exit exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit):
		return exit.code
	default:
		fmt.Fprintln(stderr, "manifold:", err)
		return 1
	}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "manifold",
		Short:         "A self-hosted, Git-driven Heroku",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().String("api", "", "the daemon's API: unix:///path/manifold.sock or https://host:port (env MANIFOLD_API; default: the socket of --state)")
	root.PersistentFlags().String("state", defaultStateDir, "the daemon's state directory, where the CLI finds its socket")
	root.AddCommand(subcommands()...)
	return root
}
