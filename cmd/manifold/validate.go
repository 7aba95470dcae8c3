package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/manifold-paas/manifold/spec"
)

func newValidateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "validate [DIR]",
		Short: "Check a config repo: exit 0, or exit 1 with every problem as path:line:col: message",
		Long: `Validate loads the config repo in DIR (default: the current directory) the way the
daemon does: apps/, environments/, manifold.hcl|yaml and the Procfile of every app
source folder. It prints a one-line summary when all is well; otherwise every problem,
one per line, as path:line:col: message with paths relative to DIR, and exits 1.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := "."
			if len(args) == 1 {
				dir = args[0]
			}
			// os.DirFS of a missing folder reads as an empty, valid repo: refuse it.
			info, err := os.Stat(dir)
			if err != nil {
				return fmt.Errorf("validate: %w", err)
			}
			if !info.IsDir() {
				return fmt.Errorf("validate: %s is not a folder", dir)
			}
			desired, diags := spec.Load(os.DirFS(dir), spec.LoadOptions{})
			if len(diags) > 0 {
				for _, d := range diags {
					fmt.Fprintln(cmd.ErrOrStderr(), d.String())
				}
				return exitError{code: 1}
			}
			apps := len(desired.Apps) / max(len(desired.Environments), 1)
			fmt.Fprintf(cmd.OutOrStdout(), "OK: %s × %s (%s)\n",
				plural(apps, "app"), plural(len(desired.Environments), "environment"),
				strings.Join(desired.Environments, ", "))
			return nil
		},
	}
}

func plural(n int, noun string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", noun)
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
