package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/manifold-paas/manifold/reconciler/metrics"
)

func newMetricsCmd() *cobra.Command {
	var app, env string
	var since time.Duration
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "metrics -a APP [-e ENV] [--since 1h]",
		Short: "Print an app's figures per minute: response times, requests by status, memory, restarts",
		Long: `Print an app's figures per minute for the last hour (or --since, up to 24h), as Heroku's
dashboard shows them: response time p50/p95/p99 and max (ms), requests by status class,
router errors (H codes), the largest dyno's memory against its quota, and dyno restarts.
The daemon keeps them itself: no Prometheus needed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			history, err := apiClient(cmd).Metrics(cmd.Context(), app, env, since)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(history)
			}
			fmt.Fprintf(out, "=== %s (%s) per minute\n", history.App, history.Env)
			return writeMinutes(out, history.Minutes)
		},
	}
	appFlags(cmd, &app, &env)
	cmd.Flags().DurationVar(&since, "since", time.Hour, "how far back (up to 24h)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// writeMinutes prints one row per minute.
func writeMinutes(out io.Writer, minutes []metrics.Minute) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "minute\tp50 ms\tp95 ms\tp99 ms\tmax ms\t2xx\t3xx\t4xx\t5xx\terrors\tmemory\trestarts\t")
	for _, m := range minutes {
		memory := "-"
		if m.MemoryBytes > 0 {
			memory = fmt.Sprintf("%dM", m.MemoryBytes>>20)
			if m.MemoryLimitBytes > 0 {
				memory += fmt.Sprintf("/%dM", m.MemoryLimitBytes>>20)
			}
		}
		var errs []string
		for _, code := range slices.Sorted(maps.Keys(m.Errors)) {
			errs = append(errs, fmt.Sprintf("%s=%d", code, m.Errors[code]))
		}
		if len(errs) == 0 {
			errs = []string{"-"}
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%.0f\t%.0f\t%d\t%d\t%d\t%d\t%s\t%s\t%d\t\n", m.Start.Local().Format("15:04"),
			m.P50*1000, m.P95*1000, m.P99*1000, m.Max*1000, m.Requests["2xx"], m.Requests["3xx"], m.Requests["4xx"],
			m.Requests["5xx"], strings.Join(errs, " "), memory, m.Restarts)
	}
	return tw.Flush()
}
