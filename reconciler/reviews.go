package reconciler

import (
	"context"
	"time"

	"github.com/manifold-paas/manifold/reconciler/plan"
	"github.com/manifold-paas/manifold/reconciler/review"
	"github.com/manifold-paas/manifold/spec"
)

// Reviews yields the review environments to run, each with the config repo's tree
// at its ref (review.Manager). A failed listing must yield the last good set.
type Reviews interface {
	Sync(ctx context.Context, settings *spec.Review, now time.Time) ([]review.Running, review.Decisions)
}

var _ Reviews = (*review.Manager)(nil)

// syncReviews reconciles the apps of every review environment, marking them wanted;
// those left out (their ref gone, their ttl past) are then pruned like any app that
// left the repo: dynos stopped, routes and drains dropped, the ledger kept.
func (r *Reconciler) syncReviews(ctx context.Context, wanted map[plan.AppKey]bool) {
	if r.opts.Reviews == nil {
		return
	}
	running, decisions := r.opts.Reviews.Sync(ctx, r.Platform().Review, time.Now())
	for _, d := range decisions.Destroy {
		r.log.Info("review environment destroyed", "env", d.Env.Name, "ref", d.Env.Ref, "why", d.Reason)
	}
	var apps []spec.App
	for _, run := range running {
		if run.Err != nil {
			r.log.Error("review environment does not load", "env", run.Env.Name, "ref", run.Env.Ref, "err", run.Err)
		}
		for i := range run.Apps {
			app := run.Apps[i]
			if !r.wantsEnv(app.Env) {
				continue
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
}
