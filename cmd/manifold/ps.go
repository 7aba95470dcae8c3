package main

import (
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/manifold-paas/manifold/drivers"
	"github.com/manifold-paas/manifold/reconciler/api"
	"github.com/manifold-paas/manifold/spec"
)

func newPsCmd() *cobra.Command {
	var app, env string
	cmd := &cobra.Command{
		Use:   "ps",
		Short: "List an app's dynos by process type, with their state and release",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ps, err := apiClient(cmd).Ps(cmd.Context(), app, env)
			if err != nil {
				return err
			}
			writePs(cmd.OutOrStdout(), ps, time.Now())
			return nil
		},
	}
	appFlags(cmd, &app, &env)
	return cmd
}

// writePs prints Heroku's ps: a header per process type, then one line per dyno.
func writePs(w io.Writer, ps api.Ps, now time.Time) {
	fmt.Fprintf(w, "=== %s (%s)\n", ps.App, ps.Env)
	byType := map[string][]drivers.Dyno{}
	for _, d := range ps.Dynos {
		byType[d.Spec.Type] = append(byType[d.Spec.Type], d)
	}
	for _, p := range ps.Processes {
		dynos := byType[p.Type]
		if p.Count == 0 && len(dynos) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n=== %s (%s): %s (%d)\n", p.Type, spec.SizeTitle(p.Size), p.Command, p.Count)
		slices.SortFunc(dynos, func(a, b drivers.Dyno) int {
			return a.Spec.Index - b.Spec.Index
		})
		for _, d := range dynos {
			since := d.StateChangedAt
			if since.IsZero() {
				since = d.StartedAt
			}
			line := fmt.Sprintf("%s: %s %s (%s) v%d", d.Name, d.State, since.UTC().Format("2006/01/02 15:04:05 -0700"), ago(now, since), d.Spec.Release)
			if d.Reason != "" && d.State == drivers.StateCrashed {
				line += ": " + d.Reason
			}
			fmt.Fprintln(w, line)
		}
	}
}
