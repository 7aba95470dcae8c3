package reconciler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sync"

	"github.com/manifold-paas/manifold/reconciler/plan"
	"github.com/manifold-paas/manifold/spec"
)

// appliedStore remembers, per app and environment, the spec the reconciler last
// converged to (as kubectl's last-applied configuration does), so that a plan against
// the running system can say what a commit would change. It is kept in a JSON file of
// the state dir, written atomically after each change.
type appliedStore struct {
	path string
	mu   sync.Mutex
	apps map[string]spec.App
}

func openApplied(stateDir string) (*appliedStore, error) {
	s := &appliedStore{path: filepath.Join(stateDir, "applied.json"), apps: map[string]spec.App{}}
	data, err := os.ReadFile(s.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return s, nil
	case err != nil:
		return nil, fmt.Errorf("read applied specs: %w", err)
	}
	if err := json.Unmarshal(data, &s.apps); err != nil {
		return nil, fmt.Errorf("read applied specs %s: not a manifold file: %w", s.path, err)
	}
	return s, nil
}

func appliedKey(key plan.AppKey) string { return key.Env + "/" + key.App }

// set records app as applied; unchanged apps cost no write.
func (s *appliedStore) set(app spec.App) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := appliedKey(plan.KeyOf(&app))
	if old, ok := s.apps[key]; ok && reflect.DeepEqual(old, app) {
		return nil
	}
	s.apps[key] = app
	return s.save()
}

// suspend records that the app is suspended, keeping what it last converged to (an
// app suspended before it ever ran is recorded with nothing but its name).
func (s *appliedStore) suspend(app *spec.App) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := appliedKey(plan.KeyOf(app))
	old, ok := s.apps[key]
	if ok && old.Suspend {
		return nil
	}
	if !ok {
		old = spec.App{Name: app.Name, Env: app.Env}
	}
	old.Suspend = true
	s.apps[key] = old
	return s.save()
}

// keep forgets the apps for which wanted is false (removed from the repo).
func (s *appliedStore) keep(wanted func(plan.AppKey) bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	changed := false
	for key, app := range s.apps {
		if !wanted(plan.KeyOf(&app)) {
			delete(s.apps, key)
			changed = true
		}
	}
	if !changed {
		return nil
	}
	return s.save()
}

func (s *appliedStore) all() []spec.App {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]spec.App, 0, len(s.apps))
	for _, app := range s.apps {
		out = append(out, app)
	}
	return out
}

func (s *appliedStore) save() error {
	data, err := json.Marshal(s.apps)
	if err != nil {
		return err
	}
	tmp := s.path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("write applied specs: %w", err)
	}
	return os.Rename(tmp, s.path)
}

// LivePlan is what `manifold plan --live` shows: the plan from what runs to the newest
// spec that loaded, and the apps a rollback pins (their code and config stay until a
// commit changes them).
type LivePlan struct {
	Plan   plan.Plan   `json:"plan"`
	Pinned []AppStatus `json:"pinned,omitempty"`
	// Error is why the newest revision does not load (the plan is then against the
	// last one that did).
	Error string `json:"error,omitempty"`
}

// Observed returns what runs as spec.Apps: each app's last applied spec, with the
// formation the driver reports: per process type the count, and the restart fields
// (size, health check, stop timeout) of a dyno that runs, so that drift shows as the
// change that corrects it.
func (r *Reconciler) Observed(ctx context.Context) ([]spec.App, error) {
	dynos, err := r.opts.Driver.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("list dynos: %w", err)
	}
	type typeKey struct {
		app  plan.AppKey
		kind string
	}
	counts := map[typeKey]int{}
	running := map[typeKey]spec.Process{}
	for _, d := range dynos {
		k := typeKey{plan.AppKey{Env: d.Spec.Env, App: d.Spec.App}, d.Spec.Type}
		counts[k]++
		running[k] = runningProcess(d)
	}
	var observed []spec.App
	for _, app := range r.applied.all() {
		if !r.wantsEnv(app.Env) {
			continue
		}
		processes := make([]spec.Process, 0, len(app.Processes))
		for _, p := range app.Processes {
			k := typeKey{plan.KeyOf(&app), p.Type}
			p.Count = counts[k]
			if d, ok := running[k]; ok {
				p.Size, p.HealthCheck, p.StopTimeoutSeconds = d.Size, d.HealthCheck, d.StopTimeoutSeconds
			}
			processes = append(processes, p)
		}
		app.Processes = processes
		observed = append(observed, app)
	}
	return observed, nil
}

// LivePlan plans the newest spec that loaded against what runs.
func (r *Reconciler) LivePlan(ctx context.Context) (LivePlan, error) {
	observed, err := r.Observed(ctx)
	if err != nil {
		return LivePlan{}, err
	}
	out := LivePlan{Plan: plan.Diff(r.Apps(), observed)}
	status := r.Status()
	out.Error = status.Error
	for _, s := range status.Apps {
		if s.PinnedTo > 0 {
			out.Pinned = append(out.Pinned, s)
		}
	}
	return out, nil
}
