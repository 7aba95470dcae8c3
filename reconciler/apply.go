package reconciler

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/manifold-paas/manifold/logs"
	"github.com/manifold-paas/manifold/reconciler/ledger"
	"github.com/manifold-paas/manifold/reconciler/plan"
	"github.com/manifold-paas/manifold/reconciler/source"
	"github.com/manifold-paas/manifold/spec"
)

// reconcileApp converges one app in one environment: it makes a release when the
// app's code or config changed (build, release phase), then rolls its formation.
// Every failure is recorded in the app's status; what runs keeps running.
func (r *Reconciler) reconcileApp(ctx context.Context, app *spec.App, snapshot source.Snapshot, force bool) {
	key := plan.KeyOf(app)
	if app.Suspend {
		r.setAppStatus(key, func(s *AppStatus) {
			s.State, s.Reason, s.Suspended = StateSuspended, "suspend = true in the spec", true
		})
		if err := r.applied.suspend(app); err != nil {
			r.log.Error("record suspended app", "app", app.Name, "env", app.Env, "err", err)
		}
		return
	}
	r.setAppStatus(key, func(s *AppStatus) { s.State, s.Suspended = StateReconciling, false })

	target, stall := r.ensureRelease(ctx, app, snapshot, force)
	if err := r.setDrains(app, snapshot.Dir); err != nil && stall == nil {
		stall = err
	}
	if target != nil {
		if err := r.converge(ctx, app, *target); err != nil && stall == nil {
			stall = err
		}
	}
	if stall == nil && target != nil {
		if err := r.applied.set(*app); err != nil {
			r.log.Error("record applied spec", "app", app.Name, "env", app.Env, "err", err)
		}
	}
	if target != nil {
		r.opts.Metrics.Running(app.Name, app.Env, target.Version, target.SlugKey)
	}
	r.setAppStatus(key, func(s *AppStatus) {
		if target != nil {
			s.Release = target.Version
			s.Commit = target.Commit
		}
		s.PinnedTo, _ = r.opts.Ledger.Pinned(app.Name, app.Env)
		if stall != nil {
			s.State, s.Reason = StateStalled, stall.Error()
		} else {
			s.State, s.Reason = StateReady, ""
		}
	})
}

// setDrains hands the app's drains to the logplex, which changes only what changed:
// no dyno restarts for a drain change.
func (r *Reconciler) setDrains(app *spec.App, repoDir string) error {
	drains := make([]logs.DrainConfig, 0, len(app.Drains))
	for _, d := range app.Drains {
		cfg := logs.DrainConfig{Name: d.Name, URL: d.URL}
		if d.CA != "" {
			pem, err := os.ReadFile(filepath.Join(repoDir, filepath.FromSlash(d.CA)))
			if err != nil {
				return fmt.Errorf("drain %s of %s (%s): read ca: %w", d.Name, app.Name, app.Env, err)
			}
			cfg.CAPEM = pem
		}
		drains = append(drains, cfg)
	}
	if err := r.opts.Logs.SetDrains(app.Name, app.Env, drains); err != nil {
		return fmt.Errorf("drains of %s (%s): %w", app.Name, app.Env, err)
	}
	return nil
}

func (r *Reconciler) current(key plan.AppKey) *ledger.Release {
	releases, err := r.opts.Ledger.List(key.App, key.Env)
	if err != nil {
		return nil
	}
	return currentOf(releases)
}

func currentOf(releases []ledger.Release) *ledger.Release {
	for i := range releases {
		if releases[i].Status == ledger.StatusSucceeded {
			return &releases[i]
		}
	}
	return nil
}
