package review

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/manifold-paas/manifold/reconciler/source"
	"github.com/manifold-paas/manifold/spec"
)

// Lister lists a repository's refs (GitLister).
type Lister interface {
	List(ctx context.Context) (map[string]string, error)
}

// Running is a review environment to run: its config repo tree at the ref, and its
// apps (or why they do not load: the environment's last apps keep running then).
type Running struct {
	Env      Env
	Snapshot source.Snapshot
	Apps     []spec.App
	Err      error
}

// Manager runs the review side of each reconcile pass: it lists the config repo's
// refs, keeps the Tracker, and checks each active review environment's commit out
// under Dir. Sync is safe for concurrent use, one call at a time.
type Manager struct {
	// URL is the config repo (what git fetch reaches); Lister lists its refs
	// (default GitLister{URL}).
	URL    string
	Lister Lister
	// Path is the config repo's folder inside the repository ("" for its root).
	Path string
	// Dir holds one checkout per review environment and commit, and the
	// Tracker's state (state.go).
	Dir string
	// Log receives what the Manager cannot return (its state file's errors); nil
	// discards.
	Log *slog.Logger

	mu      sync.Mutex
	listed  int // successful listings since the start
	tracker *Tracker
	running map[string]Running    // by env name: the last that loaded
	apps    map[string]*appSource // by app name: apps' own git sources (appsource.go)

	restored     bool   // the state file was read (once, at the first Sync)
	appsRestored bool   // the app sources' state files were read (restoreApps)
	saved        []byte // the state file's content as last written
}

// Sync lists the refs, decides, and returns every active review environment with
// its tree and apps. settings nil (no review block) runs none. A failed listing
// returns the environments of the last good one: it never destroys.
func (m *Manager) Sync(ctx context.Context, settings *spec.Review, now time.Time) ([]Running, Decisions) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if settings == nil {
		// No review block: no review environment is wanted.
		m.tracker, m.running, m.listed = nil, nil, 0
		m.forget()
		return nil, Decisions{Settled: true}
	}
	if m.tracker == nil || m.tracker.settings.Max != settings.Max || m.tracker.settings.TTLSeconds != settings.TTLSeconds {
		old := m.tracker
		m.tracker = NewTracker(*settings)
		if old != nil {
			m.tracker.envs, m.tracker.expired = old.envs, old.expired
		}
	}
	m.tracker.settings = *settings
	if !m.restored {
		m.restored = true
		if m.restore() {
			// The tracker knows what ran before the restart: one listing that
			// succeeds (its checkouts fetched again if need be) settles it. Until
			// then what runs stays, as a failed listing must never destroy.
			m.listed = missingListings - 1
		}
	}
	if m.running == nil {
		m.running = map[string]Running{}
	}
	lister := m.Lister
	if lister == nil {
		lister = GitLister{URL: m.URL}
	}
	refs, err := lister.List(ctx)
	// The app sources' environments that ran before a restart hold slots too:
	// SyncApps, later in the pass, would restore them too late.
	m.restoreApps(*settings)
	m.tracker.taken = m.activeBesides("")
	decisions := m.tracker.Observe(now, refs, err)
	if err == nil {
		m.listed++
		m.save()
	}
	decisions.Settled = m.listed >= missingListings
	for _, d := range decisions.Destroy {
		delete(m.running, d.Env.Name)
		// Its checkouts and its postdeploy mark go with it.
		_ = os.RemoveAll(filepath.Join(m.Dir, d.Env.Name))
	}
	var out []Running
	for _, env := range m.tracker.Envs() {
		if env.State != StateActive {
			continue
		}
		prev, ok := m.running[env.Name]
		if !ok || prev.Env.Commit != env.Commit {
			next := m.checkout(ctx, env)
			if next.Err != nil && ok {
				// The new commit does not load: the last good apps keep running.
				prev.Err = next.Err
				next = prev
			}
			next.Env = env
			m.running[env.Name] = next
		}
		if !env.Postdeployed {
			if _, err := os.Stat(m.postdeployMark(env.Name)); err == nil {
				m.tracker.envs[env.Name].Postdeployed = true // it ran before a restart
				env.Postdeployed = true
			}
		}
		run := m.running[env.Name]
		run.Env = env
		out = append(out, run)
	}
	return out, decisions
}

// MarkPostdeployed records that env's postdeploy commands ran, in a file beside its
// checkouts too, so that a restart does not run them again.
func (m *Manager) MarkPostdeployed(env string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.tracker == nil || m.markAppPostdeployed(env) {
		return
	}
	if e, ok := m.tracker.envs[env]; ok {
		e.Postdeployed = true
		if err := os.WriteFile(m.postdeployMark(env), nil, 0o644); err != nil {
			// Worst case: a restart runs postdeploy again.
			_ = err
		}
		m.save()
	}
}

func (m *Manager) postdeployMark(env string) string {
	return filepath.Join(m.Dir, env, "postdeployed")
}

// Envs returns the review environments the last Sync knew, and why its listing
// failed ("" when it did not).
func (m *Manager) Envs() ([]Env, string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.tracker == nil {
		return nil, ""
	}
	return append(m.tracker.Envs(), m.appEnvs()...), m.tracker.ListError
}

// checkout fetches env's commit into its own folder (kept: a commit's tree never
// changes) and loads its apps.
func (m *Manager) checkout(ctx context.Context, env Env) Running {
	run := Running{Env: env}
	dir := filepath.Join(m.Dir, env.Name, env.Commit)
	if _, err := os.Stat(filepath.Join(dir, ".git")); err != nil {
		tmp := dir + ".tmp"
		_ = os.RemoveAll(tmp)
		steps := [][]string{
			{"init", "-q", tmp},
			{"-C", tmp, "fetch", "-q", "--depth", "1", m.URL, env.Ref},
			{"-C", tmp, "checkout", "-q", "--detach", env.Commit},
		}
		for _, args := range steps {
			cmd := exec.CommandContext(ctx, "git", args...)
			cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				run.Err = fmt.Errorf("review %s: git %s: %w: %s", env.Name, args[2], err, strings.TrimSpace(string(out)))
				return run
			}
		}
		if err := os.Rename(tmp, dir); err != nil && !errors.Is(err, os.ErrExist) {
			run.Err = fmt.Errorf("review %s: %w", env.Name, err)
			return run
		}
	}
	configDir := filepath.Join(dir, filepath.FromSlash(m.Path))
	run.Snapshot = source.Snapshot{Rev: source.Revision{ID: env.Commit, Message: env.Ref}, Dir: configDir, Root: dir}
	run.Apps, run.Err = Apps(os.DirFS(configDir), env.Name)
	return run
}

// List is the answer of GET /v1/review: every review environment, and why the last
// listing of refs failed.
type List struct {
	Envs      []Env  `json:"envs"`
	ListError string `json:"list_error,omitempty"`
	// AppListErrors says, by app, why the last listing of an app's git source failed.
	AppListErrors map[string]string `json:"app_list_errors,omitempty"`
}

// Handler serves List as JSON (the daemon mounts it at GET /v1/review).
func (m *Manager) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		envs, listErr := m.Envs()
		if envs == nil {
			envs = []Env{}
		}
		m.mu.Lock()
		appErrs := m.appListErrors()
		m.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(List{Envs: envs, ListError: listErr, AppListErrors: appErrs})
	})
}
