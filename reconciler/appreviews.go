package reconciler

import (
	"context"
	"slices"
	"time"

	"github.com/manifold-paas/manifold/reconciler/review"
	"github.com/manifold-paas/manifold/spec"
)

// appreviews.go adds the review environments of apps' own git sources (an app that
// says review = true) to those of the config repo's refs, in the same pass.

// syncAppReviews asks the Manager for the review environments of apps' git sources,
// from the config repo the pass runs, and merges them with the config repo's
// (running, decisions). keep, when not nil, says which environments that run and
// that neither list names must be left alone: all of them until the config repo's
// listings settle, then those of the apps whose listings have not.
func (r *Reconciler) syncAppReviews(ctx context.Context, settings *spec.Review, running []review.Running, decisions review.Decisions) ([]review.Running, review.Decisions, func(env string) bool) {
	r.mu.Lock()
	config := r.snapshot
	r.mu.Unlock()
	apps := r.opts.Reviews.SyncApps(ctx, settings, config, time.Now())
	running = append(running, apps.Running...)
	decisions.Destroy = append(decisions.Destroy, apps.Destroy...)
	switch {
	case !decisions.Settled:
		return running, decisions, func(string) bool { return true }
	case apps.Undecided:
		return running, decisions, func(env string) bool {
			_, ok := review.AppOf(env)
			return ok
		}
	case len(apps.Unsettled) > 0:
		return running, decisions, func(env string) bool {
			app, ok := review.AppOf(env)
			return ok && slices.Contains(apps.Unsettled, app)
		}
	}
	return running, decisions, nil
}

// hooksFor returns the review block's postdeploy or predestroy commands that apply
// to env: all of them for a config repo's review environment, only its app's for an
// app source's (it runs that app only).
func hooksFor(commands map[string]string, env review.Env) map[string]string {
	if env.App == "" {
		return commands
	}
	if command, ok := commands[env.App]; ok {
		return map[string]string{env.App: command}
	}
	return nil
}
