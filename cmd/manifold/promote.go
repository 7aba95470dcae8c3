package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/manifold-paas/manifold/reconciler/ledger"
	"github.com/manifold-paas/manifold/reconciler/plan"
	"github.com/manifold-paas/manifold/reconciler/promote"
	"github.com/manifold-paas/manifold/spec"
)

func newPromoteCmd() *cobra.Command {
	var app, from, to, repo, subdir string
	cmd := &cobra.Command{
		Use:   "promote",
		Short: "Pin an environment to the slug another one runs, as a commit on a new branch",
		Long: `Promote asks the daemon which release the app runs in --from, checks that it may
go (it succeeded, ran for --to's soak, and the build-time config is the same in both
environments), then commits a release pin in --to's environment file on a new branch
promote/APP-FROM-vN of the config repo (HEAD's tree; the work tree is left alone) and
prints the plan of that branch in markdown, ready for a pull request.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			cache := spec.NewCache() // HEAD and the branch share every file but one
			desired, err := loadAppsAt(repo, subdir, "HEAD", "", cache)
			if err != nil {
				return err
			}
			source, target := findApp(desired, app, from), findApp(desired, app, to)
			switch {
			case source == nil:
				return fmt.Errorf("the config repo has no app %q in environment %q", app, from)
			case target == nil:
				return fmt.Errorf("the config repo has no app %q in environment %q", app, to)
			}
			client := apiClient(cmd)
			releases, err := client.Releases(ctx, app, from)
			if err != nil {
				return fmt.Errorf("ask the daemon for %s's releases in %s: %w", app, from, err)
			}
			promotion, err := promote.Check(promote.Request{App: app, From: from, To: to,
				Releases: releases.Releases, Source: source, Target: target, Now: time.Now()})
			if err != nil {
				return err
			}
			commit, err := promote.Commit(ctx, repo, subdir, to, app, promotion)
			if err != nil {
				return err
			}
			observed, err := loadAppsAt(repo, subdir, "HEAD", to, cache)
			if err != nil {
				return err
			}
			pinned, err := loadAppsAt(repo, subdir, promotion.Branch, to, cache)
			if err != nil {
				return err
			}
			planned := plan.Diff(pinned, observed)
			// The plan's "from" is the slug the target runs, when the daemon knows it.
			if current, err := client.Releases(ctx, app, to); err == nil {
				if running := runningRelease(current.Releases); running != nil {
					for i, c := range planned.Changes {
						if c.Kind == plan.KindPromote && c.App == app && c.From == nil {
							planned.Changes[i].From = running.SlugKey
						}
					}
				}
			}
			if err := planned.WriteMarkdown(cmd.OutOrStdout()); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "Committed %s on branch %s (%s v%d, slug %s): push it and open a pull request.\n",
				commit[:min(len(commit), 12)], promotion.Branch, from, promotion.Release.Version, plan.ShortDigest(promotion.Pin.Slug))
			return nil
		},
	}
	cmd.Flags().StringVarP(&app, "app", "a", "", "the app (required)")
	cmd.Flags().StringVar(&from, "from", "", "the environment whose running release to promote (required)")
	cmd.Flags().StringVar(&to, "to", "", "the environment to pin it in (required)")
	cmd.Flags().StringVar(&repo, "repo", ".", "the config repo's git work tree")
	cmd.Flags().StringVar(&subdir, "path", "", "the config repo's folder inside --repo")
	for _, name := range []string{"app", "from", "to"} {
		_ = cmd.MarkFlagRequired(name)
	}
	return cmd
}

func findApp(apps []spec.App, name, env string) *spec.App {
	for i := range apps {
		if apps[i].Name == name && apps[i].Env == env {
			return &apps[i]
		}
	}
	return nil
}

// runningRelease is the newest release that went live, nil when none did.
func runningRelease(releases []ledger.Release) *ledger.Release {
	for i := range releases {
		if releases[i].Status == ledger.StatusSucceeded {
			return &releases[i]
		}
	}
	return nil
}
