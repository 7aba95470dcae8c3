package reconciler

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/manifold-paas/manifold/drivers"
	"github.com/manifold-paas/manifold/logs"
	"github.com/manifold-paas/manifold/reconciler/ledger"
	"github.com/manifold-paas/manifold/reconciler/plan"
	"github.com/manifold-paas/manifold/spec"
	"golang.org/x/sync/errgroup"
)

// upPollInterval is how often a rollout looks at the driver while it waits for new
// dynos to be up.
const upPollInterval = 50 * time.Millisecond

// converge rolls the app's formation onto release: per process type it starts the
// missing dynos, waits until they are up, takes the old ones out of the router and
// stops them. A new dyno that does not come up stops the rollout with the old ones
// still serving.
func (r *Reconciler) converge(ctx context.Context, app *spec.App, release ledger.Release) error {
	running, err := r.appDynos(ctx, plan.KeyOf(app))
	if err != nil {
		return err
	}
	byType := map[string][]drivers.Dyno{}
	for _, d := range running {
		byType[d.Spec.Type] = append(byType[d.Spec.Type], d)
	}
	wantTypes := map[string]bool{}
	// Web first: it is what users wait on.
	processes := formation(app, release)
	slices.SortStableFunc(processes, func(a, b spec.Process) int {
		return boolRank(b.Type == "web") - boolRank(a.Type == "web")
	})
	for _, p := range processes {
		wantTypes[p.Type] = true
		command := release.ProcessTypes[p.Type]
		if command == "" && p.Count > 0 {
			return fmt.Errorf("process type %s of v%d has no command", p.Type, release.Version)
		}
		if err := r.rollType(ctx, app, release, p, command, byType[p.Type]); err != nil {
			return err
		}
	}
	var extra []drivers.Dyno
	for processType, dynos := range byType {
		if !wantTypes[processType] {
			extra = append(extra, dynos...)
		}
	}
	return r.stopDynos(ctx, app, extra)
}

// formation is the app's process types: the spec's, plus the release's Procfile types
// the spec does not name (a git source's Procfile is known only once fetched), which
// run as Heroku runs them on a first deploy: web 1, the others 0.
func formation(app *spec.App, release ledger.Release) []spec.Process {
	processes := slices.Clone(app.Processes)
	for processType := range release.ProcessTypes {
		if slices.ContainsFunc(processes, func(p spec.Process) bool { return p.Type == processType }) {
			continue
		}
		p := spec.Process{Type: processType, Size: defaultSize(app), StopTimeoutSeconds: spec.DefaultStopTimeoutSeconds}
		if processType == "web" {
			p.Count = 1
		}
		processes = append(processes, p)
	}
	slices.SortFunc(processes, func(a, b spec.Process) int { return strings.Compare(a.Type, b.Type) })
	return processes
}

func boolRank(b bool) int {
	if b {
		return 1
	}
	return 0
}

// rollType converges one process type.
func (r *Reconciler) rollType(ctx context.Context, app *spec.App, release ledger.Release, p spec.Process, command string, dynos []drivers.Dyno) error {
	slices.SortFunc(dynos, func(a, b drivers.Dyno) int { return a.Spec.Index - b.Spec.Index })
	var stale []drivers.Dyno
	kept := map[int]bool{}
	for _, d := range dynos {
		// The plan's field table decides what replaces a dyno, so that a restart
		// happens exactly when `manifold plan` names one.
		current := d.Spec.Release == release.Version && d.Spec.Command == command && !plan.Restarts(runningProcess(d), p)
		if current && d.Spec.Index >= 1 && d.Spec.Index <= p.Count && !kept[d.Spec.Index] {
			kept[d.Spec.Index] = true
			continue
		}
		stale = append(stale, d)
	}
	var missing []int
	for index := 1; index <= p.Count; index++ {
		if !kept[index] {
			missing = append(missing, index)
		}
	}
	started, err := r.startDynos(ctx, app, release, p, command, missing)
	if err != nil {
		_ = r.stopDynos(ctx, app, started)
		return err
	}
	if len(started) > 0 {
		if err := r.waitUp(ctx, app, started); err != nil {
			_ = r.stopDynos(ctx, app, started)
			return err
		}
		r.publish(app, logs.SourceAPI, "api", fmt.Sprintf("Scaled %s to %d:%s on v%d", p.Type, p.Count, spec.SizeTitle(p.Size), release.Version))
	}
	return r.stopDynos(ctx, app, stale)
}

// defaultMaxConcurrentStarts is Options.MaxConcurrentStarts' default: a scale-up from
// 1 to 21 Docker dynos waits on the engine's container creation (BenchmarkDockerScaleUp).
const defaultMaxConcurrentStarts = 8

// startDynos starts the dynos of the given indexes concurrently (bounded) and returns
// those that started; on error it returns them too, for the caller to stop.
func (r *Reconciler) startDynos(ctx context.Context, app *spec.App, release ledger.Release, p spec.Process, command string, indexes []int) ([]drivers.Dyno, error) {
	started := make([]drivers.Dyno, len(indexes))
	ok := make([]bool, len(indexes))
	var group errgroup.Group
	group.SetLimit(r.opts.MaxConcurrentStarts)
	for i, index := range indexes {
		group.Go(func() error {
			dynoSpec, err := r.dynoSpec(app, release, p.Type, index, command, p)
			if err != nil {
				return err
			}
			dyno, err := r.opts.Driver.Start(ctx, dynoSpec)
			if err != nil {
				return fmt.Errorf("start %s of %s (%s) v%d: %w", drivers.DynoName(p.Type, index), app.Name, app.Env, release.Version, err)
			}
			started[i], ok[i] = dyno, true
			return nil
		})
	}
	err := group.Wait()
	var out []drivers.Dyno
	for i, dyno := range started {
		if ok[i] {
			out = append(out, dyno)
		}
	}
	return out, err
}

// runningProcess is the process a dyno runs, as the plan's field table compares it.
func runningProcess(d drivers.Dyno) spec.Process {
	return spec.Process{
		Type:               d.Spec.Type,
		Command:            d.Spec.Command,
		Size:               d.Spec.Size,
		HealthCheck:        d.Spec.HealthCheck,
		StopTimeoutSeconds: int(stopTimeoutOf(d.Spec) / time.Second),
	}
}

// stopTimeoutOf is the dyno's grace, with the drivers' default for a zero one.
func stopTimeoutOf(s drivers.DynoSpec) time.Duration {
	if s.StopTimeout == 0 {
		return time.Duration(spec.DefaultStopTimeoutSeconds) * time.Second
	}
	return s.StopTimeout
}

// waitUp waits until every dyno is up; a dyno that crashes with R10, or is not up by
// the boot timeout, fails the wait.
func (r *Reconciler) waitUp(ctx context.Context, app *spec.App, dynos []drivers.Dyno) error {
	deadline := time.Now().Add(r.opts.BootTimeout + 5*time.Second)
	ids := map[string]string{}
	for _, d := range dynos {
		ids[d.ID] = d.Name
	}
	for {
		listed, err := r.opts.Driver.List(ctx)
		if err != nil {
			return fmt.Errorf("list dynos: %w", err)
		}
		pending := 0
		for _, d := range listed {
			name, ours := ids[d.ID]
			if !ours {
				continue
			}
			switch d.State {
			case drivers.StateUp:
				continue
			case drivers.StateCrashed:
				if strings.Contains(d.Reason, "R10") || d.Spec.Type == "web" {
					return fmt.Errorf("%s of %s (%s) v%d crashed while booting: %s", name, app.Name, app.Env, d.Spec.Release, d.Reason)
				}
			}
			pending++
		}
		if seen := countIDs(listed, ids); seen < len(ids) {
			return fmt.Errorf("%d new dynos of %s (%s) vanished while booting", len(ids)-seen, app.Name, app.Env)
		}
		if pending == 0 {
			if err := r.refreshRoutes(ctx); err != nil {
				r.log.Warn("refresh routes", "err", err)
			}
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("boot timeout (R10): new dynos of %s (%s) were not up within %s", app.Name, app.Env, r.opts.BootTimeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(upPollInterval):
		}
	}
}

func countIDs(dynos []drivers.Dyno, ids map[string]string) int {
	n := 0
	for _, d := range dynos {
		if _, ok := ids[d.ID]; ok {
			n++
		}
	}
	return n
}

// stopDynos takes the dynos out of the router table first, so that no new request
// reaches them, then stops them all at once (each gets its SIGTERM grace).
func (r *Reconciler) stopDynos(ctx context.Context, app *spec.App, dynos []drivers.Dyno) error {
	if len(dynos) == 0 {
		return nil
	}
	r.mu.Lock()
	for _, d := range dynos {
		r.draining[d.ID] = true
	}
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		for _, d := range dynos {
			delete(r.draining, d.ID)
		}
		r.mu.Unlock()
	}()
	if err := r.refreshRoutes(ctx); err != nil {
		return err
	}
	var group errgroup.Group
	for _, d := range dynos {
		group.Go(func() error {
			if err := r.opts.Driver.Stop(ctx, d.ID); err != nil {
				return fmt.Errorf("stop %s of %s (%s) v%d: %w", d.Name, d.Spec.App, d.Spec.Env, d.Spec.Release, err)
			}
			return nil
		})
	}
	return group.Wait()
}

// appDynos lists the dynos of one app in one environment.
func (r *Reconciler) appDynos(ctx context.Context, key plan.AppKey) ([]drivers.Dyno, error) {
	all, err := r.opts.Driver.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("list dynos: %w", err)
	}
	var out []drivers.Dyno
	for _, d := range all {
		if d.Spec.App == key.App && d.Spec.Env == key.Env {
			out = append(out, d)
		}
	}
	return out, nil
}

// prune stops the dynos of apps that no spec wants any more (Flux's prune); their
// ledgers are kept.
func (r *Reconciler) prune(ctx context.Context, wanted map[plan.AppKey]bool) error {
	all, err := r.opts.Driver.List(ctx)
	if err != nil {
		return fmt.Errorf("list dynos: %w", err)
	}
	orphans := map[plan.AppKey][]drivers.Dyno{}
	for _, d := range all {
		key := plan.AppKey{Env: d.Spec.Env, App: d.Spec.App}
		if !wanted[key] && r.wantsEnv(key.Env) {
			orphans[key] = append(orphans[key], d)
		}
	}
	var errs []error
	for key, dynos := range orphans {
		app := &spec.App{Name: key.App, Env: key.Env}
		r.publish(app, logs.SourceAPI, "api", "App removed from the config repo: stopping its dynos (its releases are kept)")
		errs = append(errs, r.stopDynos(ctx, app, dynos))
		r.mu.Lock()
		delete(r.status.apps, key)
		r.mu.Unlock()
	}
	return errors.Join(errs...)
}

// dynoSpec is what the driver needs to start a dyno of release, its secrets opened
// anew (the plaintext lives only in memory and in the dyno's environment).
func (r *Reconciler) dynoSpec(app *spec.App, release ledger.Release, processType string, index int, command string, p spec.Process) (drivers.DynoSpec, error) {
	secrets, err := openSecrets(r.opts.Secrets, app.Name, app.Env, release.Secrets)
	if err != nil {
		return drivers.DynoSpec{}, fmt.Errorf("%s of %s (%s) v%d: %w", drivers.DynoName(processType, index), app.Name, app.Env, release.Version, err)
	}
	size, _ := spec.LookupSize(p.Size)
	return drivers.DynoSpec{
		App:         app.Name,
		Env:         app.Env,
		Type:        processType,
		Index:       index,
		Release:     release.Version,
		SlugKey:     release.SlugKey,
		SlugPath:    r.opts.Builder.SlugPath(release.SlugKey),
		Stack:       app.Stack,
		Command:     command,
		Config:      release.Config,
		Secrets:     secrets,
		Size:        p.Size,
		MemoryBytes: size.MemoryBytes,
		CPUShares:   size.CPUShares,
		HealthCheck: p.HealthCheck,
		StopTimeout: stopTimeout(p),

		SealedSecrets: sealedOf(release.Secrets),
		SealedFor:     sealedFor(release.Secrets),
	}, nil
}

func stopTimeout(p spec.Process) time.Duration {
	return time.Duration(p.StopTimeoutSeconds) * time.Second
}

func defaultSize(app *spec.App) string {
	for _, p := range app.Processes {
		if p.Size != "" {
			return p.Size
		}
	}
	return "standard-1x"
}
