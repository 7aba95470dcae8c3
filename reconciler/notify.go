package reconciler

import (
	"context"
	"slices"

	"github.com/manifold-paas/manifold/reconciler/notify"
	"github.com/manifold-paas/manifold/spec"
)

// Notifier takes the loop's events (reconciler/notify.Notifier): deploys, rollbacks,
// dyno state changes, a config repo that does not load. Notify must not wait on a
// receiver; Configure is given each spec that loads (the receivers are in it) and
// says which receivers it cannot use (a sealed key that does not open), for status.
type Notifier interface {
	Notify(ctx context.Context, events ...notify.Event)
	Configure(desired *spec.Desired) error
}

// notify hands events to the Notifier, if there is one.
func (r *Reconciler) notify(ctx context.Context, events ...notify.Event) {
	if r.opts.Notifier != nil {
		r.opts.Notifier.Notify(ctx, events...)
	}
}

// configureNotify gives a spec that loaded to the Notifier, if there is one, with
// only the environments this daemon runs (another daemon tells of the others).
func (r *Reconciler) configureNotify(desired *spec.Desired) {
	if r.opts.Notifier == nil {
		return
	}
	if len(r.opts.Envs) > 0 {
		ours := *desired
		ours.Environments = slices.DeleteFunc(slices.Clone(desired.Environments), func(env string) bool { return !r.wantsEnv(env) })
		ours.Apps = slices.DeleteFunc(slices.Clone(desired.Apps), func(app spec.App) bool { return !r.wantsEnv(app.Env) })
		desired = &ours
	}
	err := r.opts.Notifier.Configure(desired)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.status.NotifyError = ""
	if err != nil {
		r.status.NotifyError = err.Error()
	}
}
