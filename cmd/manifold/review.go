package main

import (
	"fmt"
	"maps"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

func newReviewCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "review",
		Short: "Review environments made from the refs of the config repo and of apps' git sources",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List the review environments: active or waiting for a slot, their ref and commit",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			list, err := apiClient(cmd).Reviews(cmd.Context())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if list.ListError != "" {
				fmt.Fprintf(out, "The last listing of refs failed (nothing was destroyed):\n%s\n\n", indent(list.ListError))
			}
			for _, app := range slices.Sorted(maps.Keys(list.AppListErrors)) {
				fmt.Fprintf(out, "The last listing of %s's source refs failed (nothing was destroyed):\n%s\n\n", app, indent(list.AppListErrors[app]))
			}
			if len(list.Envs) == 0 {
				fmt.Fprintln(out, "No review environments.")
				return nil
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ENV\tSTATE\tREF\tCOMMIT\tPUSHED\tNOTE")
			now := time.Now()
			for _, env := range list.Envs {
				ref := env.Ref
				if env.App != "" {
					ref += " of " + env.App // a ref of the app's git source
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", env.Name, env.State, ref, shortCommit(env.Commit), ago(now, env.PushedAt), env.Reason)
			}
			return tw.Flush()
		},
	})
	return cmd
}
