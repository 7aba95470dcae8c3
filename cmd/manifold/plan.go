package main

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/manifold-paas/manifold/reconciler/plan"
	"github.com/manifold-paas/manifold/reconciler/source"
	"github.com/manifold-paas/manifold/spec"
)

func newPlanCmd() *cobra.Command {
	var repo, subdir, base, head, env, format string
	var live bool
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Print what a change to the config repo would do (exit 0: none, 2: changes, 1: error)",
		Long: `Plan compares the config repo at two git revisions (--base and --head, read from git
objects: nothing is checked out) and prints the changes per environment: apps created or
destroyed, builds, config vars, scaling, sizes, domains, drains, and whether each makes a
new release. Without --head the work tree is planned; without --base, against nothing.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			write, err := planWriter(format)
			if err != nil {
				return err
			}
			if live {
				return livePlan(cmd, write, env)
			}
			// One cache for both loads: the head parses and digests only what
			// changed since the base.
			cache := spec.NewCache()
			var observed []spec.App
			if base != "" {
				if observed, err = loadAppsAt(repo, subdir, base, env, cache); err != nil {
					return err
				}
			}
			desired, err := loadAppsAt(repo, subdir, head, env, cache)
			if err != nil {
				return err
			}
			planned := plan.Diff(desired, observed)
			if err := write(planned, out); err != nil {
				return err
			}
			if planned.HasChanges() {
				return exitError{code: 2}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&repo, "repo", ".", "the git repository (or folder) holding the config repo")
	cmd.Flags().StringVar(&subdir, "path", "", "the config repo's folder inside --repo")
	cmd.Flags().StringVar(&base, "base", "", "the revision to compare from (empty: nothing runs)")
	cmd.Flags().StringVar(&head, "head", "", "the revision to compare to (empty: the work tree)")
	cmd.Flags().StringVarP(&env, "env", "e", "", "only this environment")
	cmd.Flags().StringVar(&format, "format", "text", "text, markdown or json")
	cmd.Flags().BoolVar(&live, "live", false, "plan the daemon's newest spec against what runs (via --api)")
	return cmd
}

// livePlan prints the daemon's plan of its newest spec against what runs, and the apps
// a rollback pins.
func livePlan(cmd *cobra.Command, write func(plan.Plan, io.Writer) error, env string) error {
	live, err := apiClient(cmd).LivePlan(cmd.Context())
	if err != nil {
		return err
	}
	planned := live.Plan
	if env != "" {
		planned = planned.ForEnv(env)
	}
	if err := write(planned, cmd.OutOrStdout()); err != nil {
		return err
	}
	stderr := cmd.ErrOrStderr()
	for _, pinned := range live.Pinned {
		if env == "" || pinned.Env == env {
			fmt.Fprintf(stderr, "%s (%s) is pinned to v%d by a rollback: its code and config stay until a commit changes the app.\n",
				pinned.App, pinned.Env, pinned.PinnedTo)
		}
	}
	if live.Error != "" {
		fmt.Fprintf(stderr, "The newest revision does not load; this plan is of the last one that did:\n%s\n", indent(live.Error))
	}
	if planned.HasChanges() {
		return exitError{code: 2}
	}
	return nil
}

func planWriter(format string) (func(plan.Plan, io.Writer) error, error) {
	switch format {
	case "text", "":
		return plan.Plan.WriteText, nil
	case "markdown", "md":
		return plan.Plan.WriteMarkdown, nil
	case "json":
		return plan.Plan.WriteJSON, nil
	}
	return nil, fmt.Errorf("--format: want text, markdown or json, got %q", format)
}

// loadAppsAt loads the config repo at a revision ("": the work tree) and
// returns its apps, of one environment when env is set. Loads of git revisions that
// share cache reuse each other's parses and digests of unchanged files and folders.
func loadAppsAt(repo, subdir, rev, env string, cache *spec.Cache) ([]spec.App, error) {
	var fsys fs.FS
	where := filepath.Join(repo, subdir)
	if rev == "" {
		fsys = os.DirFS(where)
	} else {
		tree, revision, err := source.TreeAt(repo, rev)
		if err != nil {
			return nil, err
		}
		where = fmt.Sprintf("%s at %s (%s)", path.Join(repo, subdir), rev, revision.Short())
		if subdir != "" && subdir != "." {
			if tree, err = fs.Sub(tree, path.Clean(filepath.ToSlash(subdir))); err != nil {
				return nil, err
			}
		}
		fsys = tree
	}
	return loadApps(fsys, where, env, cache)
}

// loadApps loads a config repo; every problem is reported with its file:line:col.
func loadApps(fsys fs.FS, where, env string, cache *spec.Cache) ([]spec.App, error) {
	desired, diags := spec.Load(fsys, spec.LoadOptions{Cache: cache})
	if len(diags) > 0 {
		return nil, fmt.Errorf("the config repo %s does not load:\n%w", where, diags)
	}
	if desired.Platform.Review != nil && (env == "" || env == spec.ReviewEnvironment) {
		// The review overlay runs in no environment of its own but in every review
		// environment (pr-7, …): the plan shows it as "review", so that a pull request
		// changing review apps' formation, config or secrets shows what they get.
		overlay, diags := spec.Load(fsys, spec.LoadOptions{Cache: cache, Env: spec.ReviewEnvironment})
		if _, noFile := spec.EnvironmentFile(fsys, spec.ReviewEnvironment); len(diags) > 0 && noFile == nil {
			return nil, fmt.Errorf("the review overlay of %s does not load:\n%w", where, diags)
		}
		if len(diags) == 0 {
			desired.Apps = append(desired.Apps, overlay.Apps...)
		}
	}
	if env == "" {
		return desired.Apps, nil
	}
	var apps []spec.App
	for _, app := range desired.Apps {
		if app.Env == env {
			apps = append(apps, app)
		}
	}
	return apps, nil
}
