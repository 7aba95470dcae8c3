package reconciler

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/manifold-paas/manifold/logs"
	"github.com/manifold-paas/manifold/reconciler/plan"
	"github.com/manifold-paas/manifold/reconciler/review"
	"github.com/manifold-paas/manifold/reconciler/source"
	"github.com/manifold-paas/manifold/spec"
)

// Reviews yields the review environments to run, each with the config repo's tree
// at its ref (review.Manager). A failed listing must yield the last good set.
type Reviews interface {
	Sync(ctx context.Context, settings *spec.Review, now time.Time) ([]review.Running, review.Decisions)
	// SyncApps yields the review environments of apps' own git sources, after Sync
	// in the same pass, config being the config repo's snapshot the pass runs.
	SyncApps(ctx context.Context, settings *spec.Review, config source.Snapshot, now time.Time) review.AppSync
	// MarkPostdeployed records that a review environment's postdeploy commands ran.
	MarkPostdeployed(env string)
}

var _ Reviews = (*review.Manager)(nil)

// syncReviews reconciles the apps of every review environment, marking them wanted;
// those left out (their ref gone, their ttl past) are then pruned like any app that
// left the repo: dynos stopped, routes and drains dropped, the ledger kept.
func (r *Reconciler) syncReviews(ctx context.Context, wanted map[plan.AppKey]bool) {
	if r.opts.Reviews == nil {
		return
	}
	settings := r.Platform().Review
	running, decisions := r.opts.Reviews.Sync(ctx, settings, time.Now())
	running, decisions, keep := r.syncAppReviews(ctx, settings, running, decisions)
	r.setReviewMarks(running)
	var apps []spec.App
	if keep != nil {
		apps = r.keepRunningReviews(ctx, wanted, keep)
	}
	r.findableForPredestroy(decisions.Destroy)
	for _, d := range decisions.Destroy {
		r.log.Info("review environment destroyed", "env", d.Env.Name, "ref", d.Env.Ref, "why", d.Reason)
		if settings != nil {
			r.runReviewHooks(ctx, "predestroy", d.Env.Name, hooksFor(settings.Predestroy, d.Env))
		}
	}
	for _, run := range running {
		if run.Err != nil {
			r.log.Error("review environment does not load", "env", run.Env.Name, "ref", run.Env.Ref, "err", run.Err)
		}
		for i := range run.Apps {
			app := run.Apps[i]
			if !r.wantsEnv(app.Env) {
				continue
			}
			if wanted[plan.KeyOf(&app)] {
				// Kept from before a restart: the listing's copy replaces it.
				apps = slices.DeleteFunc(apps, func(a spec.App) bool { return plan.KeyOf(&a) == plan.KeyOf(&app) })
			}
			wanted[plan.KeyOf(&app)] = true
			apps = append(apps, app)
			if ctx.Err() != nil {
				continue
			}
			r.reconcileApp(ctx, &app, run.Snapshot, false)
		}
	}
	r.mu.Lock()
	r.reviews = apps
	r.mu.Unlock()
	for _, run := range running {
		if settings != nil && !run.Env.Postdeployed && len(run.Apps) > 0 && r.allReady(run.Env.Name, run.Apps) {
			r.runReviewHooks(ctx, "postdeploy", run.Env.Name, hooksFor(settings.Postdeploy, run.Env))
			r.opts.Reviews.MarkPostdeployed(run.Env.Name)
		}
	}
}

// keepRunningReviews marks wanted the apps of every environment that has dynos,
// that the spec does not declare and that keep holds: review environments that ran
// before this daemon started, which the Manager cannot yet tell from gone ones (a
// failed listing must never destroy). It returns their last applied specs, which
// keep them routed.
func (r *Reconciler) keepRunningReviews(ctx context.Context, wanted map[plan.AppKey]bool, keep func(env string) bool) []spec.App {
	dynos, err := r.opts.Driver.List(ctx)
	if err != nil {
		r.log.Error("list dynos", "err", err)
		return nil
	}
	declared := map[string]bool{}
	for _, app := range r.Apps() {
		declared[app.Env] = true
	}
	kept := map[plan.AppKey]bool{}
	for _, d := range dynos {
		if !declared[d.Spec.Env] && keep(d.Spec.Env) {
			kept[plan.AppKey{Env: d.Spec.Env, App: d.Spec.App}] = true
		}
	}
	var apps []spec.App
	for _, app := range r.applied.all() {
		if key := plan.KeyOf(&app); kept[key] {
			wanted[key] = true
			apps = append(apps, app)
		}
	}
	return apps
}

// findableForPredestroy adds to r.reviews, until the pass sets them anew, the last
// applied specs of the apps of environments about to be destroyed that it lacks:
// r.reviews holds the apps of the last pass, none at the first after a restart, and
// predestroy runs as a one-off of an app looked up there (an app that stopped saying
// review = true while the daemon was down is destroyed at that first pass).
func (r *Reconciler) findableForPredestroy(destroy []review.Destroyed) {
	if len(destroy) == 0 {
		return
	}
	applied := r.applied.all()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, d := range destroy {
		for _, app := range applied {
			key := plan.KeyOf(&app)
			if app.Env == d.Env.Name && !slices.ContainsFunc(r.reviews, func(a spec.App) bool { return plan.KeyOf(&a) == key }) {
				r.reviews = append(r.reviews, app)
			}
		}
	}
}

// allReady tells whether every app of a review environment runs a release.
func (r *Reconciler) allReady(env string, apps []spec.App) bool {
	status := r.Status()
	for _, app := range apps {
		ready := slices.ContainsFunc(status.Apps, func(s AppStatus) bool {
			return s.App == app.Name && s.Env == env && s.State == StateReady && s.Release > 0
		})
		if !ready {
			return false
		}
	}
	return true
}

// runReviewHooks runs a review block's postdeploy or predestroy commands, one
// one-off dyno per app that has one, on the app's current release, their output in
// the app's log. A hook that fails is reported and the lifecycle goes on, as
// Heroku's do.
func (r *Reconciler) runReviewHooks(ctx context.Context, hook, env string, commands map[string]string) {
	for _, name := range slices.Sorted(maps.Keys(commands)) {
		app, err := r.lookup(name, env)
		if err != nil {
			r.log.Error("review "+hook, "env", env, "app", name, "err", err)
			continue
		}
		out := r.lineWriter(&app, logs.SourceApp, hook)
		runCtx, cancel := context.WithTimeout(ctx, r.opts.ReleaseTimeout)
		code, err := r.RunOneOff(runCtx, OneOff{App: name, Env: env, Command: commands[name], Stdout: out, Stderr: out, Author: "review " + hook})
		cancel()
		out.Close()
		if err == nil && code != 0 {
			err = fmt.Errorf("%s exited with status %d", hook, code)
		}
		if err != nil {
			r.log.Error("review "+hook, "env", env, "app", name, "err", err)
			r.publish(&app, logs.SourceHeroku, hook, fmt.Sprintf("%s `%s` failed: %v", hook, commands[name], err))
		}
	}
}
