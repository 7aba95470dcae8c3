package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

func newReviewCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "review",
		Short: "Review environments made from the config repo's refs",
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
			if len(list.Envs) == 0 {
				fmt.Fprintln(out, "No review environments.")
				return nil
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ENV\tSTATE\tREF\tCOMMIT\tPUSHED\tNOTE")
			now := time.Now()
			for _, env := range list.Envs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", env.Name, env.State, env.Ref, shortCommit(env.Commit), ago(now, env.PushedAt), env.Reason)
			}
			return tw.Flush()
		},
	})
	return cmd
}
