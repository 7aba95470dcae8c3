package main

import (
	"bufio"
	"os"

	"github.com/spf13/cobra"

	"github.com/manifold-paas/manifold/logs"
	"github.com/manifold-paas/manifold/reconciler/api"
)

func newLogsCmd() *cobra.Command {
	var app string
	var req api.LogsRequest
	cmd := &cobra.Command{
		Use:   "logs",
		Short: "Print an app's log stream (app, router, platform and deploy lines); --tail follows it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := bufio.NewWriter(cmd.OutOrStdout())
			defer out.Flush()
			color := cmd.OutOrStdout() == os.Stdout && isTerminal(os.Stdout)
			return apiClient(cmd).Logs(cmd.Context(), app, req, func(line logs.Line) {
				_ = logs.Format(out, line, color)
				if req.Tail {
					_ = out.Flush()
				}
			})
		},
	}
	cmd.Flags().StringVarP(&app, "app", "a", "", "the app (required)")
	_ = cmd.MarkFlagRequired("app")
	cmd.Flags().StringVarP(&req.Env, "env", "e", "", "the environment (all when left out)")
	cmd.Flags().BoolVarP(&req.Tail, "tail", "t", false, "keep streaming new lines")
	cmd.Flags().IntVarP(&req.Num, "num", "n", 100, "how many recent lines")
	cmd.Flags().StringVarP(&req.Ps, "ps", "p", "", "only this dyno (web.1) or process type (web)")
	cmd.Flags().StringVarP(&req.Source, "source", "s", "", "only this source: app, heroku or api")
	return cmd
}
