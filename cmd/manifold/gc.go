package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/manifold-paas/manifold/reconciler/gc"
	"github.com/manifold-paas/manifold/reconciler/slug"
)

// newGCCmd is `manifold gc [--dry-run]`: the daemon's collection now (it also runs
// every gcInterval by itself).
func newGCCmd() *cobra.Command {
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "gc [--dry-run]",
		Short: "Collect slugs older than each app's last keep_releases releases, and build caches of removed apps",
		Long: `gc asks the daemon to remove the slugs that neither the newest keep_releases releases
of an app and environment (manifold.hcl, default 20), a pinned release nor a dyno
uses, and the build caches of apps gone from the spec. With --dry-run it only lists
them. The daemon also collects by itself every 10 minutes.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			client := apiClient(cmd)
			url := client.BaseURL + "/v1/gc"
			if dryRun {
				url += "?dry_run=1"
			}
			req, err := http.NewRequestWithContext(cmd.Context(), http.MethodPost, url, nil)
			if err != nil {
				return err
			}
			resp, err := client.HTTP.Do(req)
			if err != nil {
				return fmt.Errorf("gc: %w", err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				msg, _ := io.ReadAll(resp.Body)
				return fmt.Errorf("gc: %s", strings.TrimSpace(string(msg)))
			}
			var report gc.Report
			if err := json.NewDecoder(resp.Body).Decode(&report); err != nil {
				return fmt.Errorf("gc: bad answer: %w", err)
			}
			return printGC(cmd.OutOrStdout(), report)
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "list what would be removed, remove nothing")
	return cmd
}

func printGC(out io.Writer, report gc.Report) error {
	verb := "Removed"
	if report.DryRun {
		verb = "Would remove"
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	if len(report.Items) > 0 {
		fmt.Fprintln(tw, "KIND\tAPP\tSLUG\tSIZE")
		for _, item := range report.Items {
			key := item.Key
			if len(key) > 19 {
				key = key[:19]
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", item.Kind, orDash(item.App), orDash(key), slug.FormatSize(item.Bytes))
		}
	}
	fmt.Fprintf(tw, "%s %d item(s), %s; %d slug(s) kept.\n", verb, len(report.Items), slug.FormatSize(report.Bytes), report.KeptSlugs)
	return tw.Flush()
}
