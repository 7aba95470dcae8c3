package main

import "github.com/spf13/cobra"

// subcommands lists every subcommand; each lives in its own file.
func subcommands() []*cobra.Command {
	return []*cobra.Command{
		newUpCmd(),
		newValidateCmd(),
		newPlanCmd(),
		newBuildCmd(),
		newStatusCmd(),
		newPsCmd(),
		newReleasesCmd(),
		newRollbackCmd(),
		newRunCmd(),
		newReconcileCmd(),
		newLogsCmd(),
		newMetricsCmd(),
		newGCCmd(),
		newSecretCmd(),
		newTokenCmd(),
		newPromoteCmd(),
		newReviewCmd(),
	}
}
