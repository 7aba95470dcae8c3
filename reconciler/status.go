package reconciler

import (
	"cmp"
	"slices"
	"time"

	"github.com/manifold-paas/manifold/reconciler/plan"
	"github.com/manifold-paas/manifold/reconciler/source"
	"github.com/manifold-paas/manifold/spec"
)

// The states of an app, as Flux names them.
const (
	StateReady       = "Ready"       // converged on its release
	StateReconciling = "Reconciling" // a pass is working on it
	StateStalled     = "Stalled"     // it cannot converge; Reason says why, the last good release serves
	StateSuspended   = "Suspended"   // suspend = true: left as it is
)

// AppStatus is the state of one app in one environment.
type AppStatus struct {
	App    string `json:"app"`
	Env    string `json:"env"`
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"`
	// Release is the version that runs; Commit the config repo commit it came from.
	Release int    `json:"release"`
	Commit  string `json:"commit,omitempty"`
	// PinnedTo is the release a rollback pinned the app to (0: not pinned). The pin
	// holds until a commit changes the app.
	PinnedTo  int       `json:"pinned_to,omitempty"`
	Suspended bool      `json:"suspended,omitempty"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Status is the daemon's view: the commit it runs, whether the newest one loaded, and
// every app.
type Status struct {
	// Revision is the config repo revision that runs (the last that loaded).
	Revision source.Revision `json:"revision"`
	// Error is why the newest revision (ErrorRevision) did not load, with every
	// file:line:col problem; empty when it loaded.
	Error         string          `json:"error,omitempty"`
	ErrorRevision source.Revision `json:"error_revision,omitzero"`
	LastPass      time.Time       `json:"last_pass"`
	// LastPassReason says what started the last pass: interval, a webhook, a change.
	LastPassReason string `json:"last_pass_reason,omitempty"`
	// NotifyError names the notification receivers not used because their sealed
	// key or token does not open, each with its file:line:col and why (never a
	// value); empty when every receiver is used.
	NotifyError string      `json:"notify_error,omitempty"`
	Apps        []AppStatus `json:"apps"`

	apps map[plan.AppKey]*AppStatus
}

// Status returns a copy of the current status, apps sorted by env then name.
func (r *Reconciler) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.status
	out.apps = nil
	out.Apps = make([]AppStatus, 0, len(r.status.apps))
	for _, s := range r.status.apps {
		out.Apps = append(out.Apps, *s)
	}
	slices.SortFunc(out.Apps, func(a, b AppStatus) int {
		return cmp.Or(cmp.Compare(a.Env, b.Env), cmp.Compare(a.App, b.App))
	})
	return out
}

func (r *Reconciler) setAppStatus(key plan.AppKey, update func(*AppStatus)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.status.apps == nil {
		r.status.apps = map[plan.AppKey]*AppStatus{}
	}
	s, ok := r.status.apps[key]
	if !ok {
		s = &AppStatus{App: key.App, Env: key.Env}
		r.status.apps[key] = s
	}
	update(s)
	s.UpdatedAt = time.Now()
}

// failure remembers a spec whose deploy failed so that the loop does not rebuild and
// redeploy it on every pass; a new commit of the app or a forced reconcile retries.
type failure struct {
	fingerprint string
	reason      string
}

func (r *Reconciler) markFailed(key plan.AppKey, fingerprint string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failed[key] = failure{fingerprint: fingerprint, reason: err.Error()}
}

func (r *Reconciler) clearFailed(key plan.AppKey) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.failed, key)
}

func (r *Reconciler) failedFingerprint(key plan.AppKey) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f, ok := r.failed[key]
	return f.fingerprint, ok
}

func (r *Reconciler) failureReason(key plan.AppKey) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failed[key].reason + " (not retried until the app changes; `manifold reconcile -a " + key.App + "` retries now)"
}

// Apps returns the apps of the last spec that loaded, in the environments this
// daemon runs.
func (r *Reconciler) Apps() []spec.App {
	r.mu.Lock()
	defer r.mu.Unlock()
	var apps []spec.App
	for _, app := range r.desired {
		if r.wantsEnv(app.Env) {
			apps = append(apps, app)
		}
	}
	return apps
}
