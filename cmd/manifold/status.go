package main

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

func newStatusCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show every app: Ready, Reconciling, Stalled (and why), its release and commit",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			status, err := apiClient(cmd).Status(cmd.Context())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			rev := status.Revision
			if rev.ID == "" {
				fmt.Fprintln(out, "Config repo: nothing has loaded yet")
			} else {
				fmt.Fprintf(out, "Config repo: %s %q by %s\n", rev.Short(), rev.Message, orDash(rev.Author))
			}
			if status.Error != "" {
				fmt.Fprintf(out, "Newest revision %s does not load; the last good one keeps running:\n%s\n",
					status.ErrorRevision.Short(), indent(status.Error))
			}
			if status.NotifyError != "" {
				fmt.Fprintf(out, "Notification receivers not used (the others deliver):\n%s\n", indent(status.NotifyError))
			}
			fmt.Fprintln(out)
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "APP\tENV\tSTATE\tRELEASE\tCOMMIT\tNOTE")
			for _, app := range status.Apps {
				note := app.Reason
				if app.PinnedTo > 0 {
					note = fmt.Sprintf("pinned to v%d by a rollback until the app changes in a commit. %s", app.PinnedTo, note)
				}
				release := "-"
				if app.Release > 0 {
					release = fmt.Sprintf("v%d", app.Release)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", app.App, app.Env, app.State, release, shortCommit(app.Commit), note)
			}
			return tw.Flush()
		},
	}
}

// shortCommit is a commit id's first 7 characters, or a folder revision's first 16.
func shortCommit(id string) string {
	switch {
	case id == "":
		return "-"
	case strings.Contains(id, ":"):
		return id[:min(len(id), 16)]
	default:
		return id[:min(len(id), 7)]
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
