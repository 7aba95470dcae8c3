package review

import (
	"context"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/manifold-paas/manifold/reconciler/source"
	"github.com/manifold-paas/manifold/spec"
)

// appsource.go runs the review environments of apps' own git sources: an app that
// says `review = true` has its source repository's refs listed as the config repo's
// are, and each matching ref makes an environment with that app only, built from the
// ref, its spec the config repo's HEAD with the review overlay.

// appEnvSeparator joins an app's name and the name its source's ref makes
// (hello--pr-7). EnvName folds every run of other characters than letters and digits
// into one dash, so no review environment of the config repo holds "--": the two
// kinds never share a name, and the app is what comes before the last "--".
const appEnvSeparator = "--"

// maxEnvName is a DNS label's length: an environment's name is one.
const maxEnvName = 63

// AppEnvName returns the review environment that a ref of app's source makes, from
// the name the review settings give the ref (EnvName: pr-7): hello--pr-7, the ref's
// part trimmed so that the whole stays a DNS label. It reports false when the app's
// name leaves no room for the ref's.
func AppEnvName(app, refEnv string) (string, bool) {
	name := app + appEnvSeparator + refEnv
	if len(name) > maxEnvName {
		name = strings.TrimRight(name[:maxEnvName], "-")
	}
	if len(name) <= len(app)+len(appEnvSeparator) {
		return "", false
	}
	return name, true
}

// AppOf returns the app whose source's ref made review environment env (AppEnvName),
// and false for any other environment.
func AppOf(env string) (string, bool) {
	i := strings.LastIndex(env, appEnvSeparator)
	if i <= 0 || i+len(appEnvSeparator) == len(env) {
		return "", false
	}
	return env[:i], true
}

// envName is the environment a listed ref makes: its EnvName for the config repo's
// tracker, AppEnvName of it for an app source's.
func (t *Tracker) envName(ref string) (string, bool) {
	name, ok := t.settings.EnvName(ref)
	if !ok || t.app == "" {
		return name, ok
	}
	return AppEnvName(t.app, name)
}

// AppSync is what SyncApps returns.
type AppSync struct {
	// Running holds every active review environment of an app source, with its one
	// app. Its source's digest is the listed commit, so that a failed listing, or
	// one without the ref, does not make the daemon fetch a ref it cannot.
	Running []Running
	// Destroy holds those to tear down (predestroy first), with why.
	Destroy []Destroyed
	// Unsettled names the apps whose source has not been listed successfully twice
	// since the Manager started (or since the app said review = true): the daemon
	// must leave their review environments that run alone, as it does the config
	// repo's until Decisions.Settled.
	Unsettled []string
	// Undecided says which apps want review environments could not be told this pass
	// (the overlay does not load at HEAD, nothing has loaded yet): the daemon must
	// leave every app source's review environment that runs alone, those of apps
	// only a restored state file knows of too.
	Undecided bool
}

// appSource is the review state of one app's git source.
type appSource struct {
	tracker *Tracker
	listed  int                // successful listings since it was added
	running map[string]Running // by env name: the last that loaded
	loaded  map[string]string  // by env name: the config revision and commit it loaded from
	saved   []byte             // its state file's content as last written (appstate.go)
}

// SyncApps lists the git source of every app that says review = true in the config
// repo at config (its HEAD, the one the daemon runs), with the same review settings
// as the config repo's refs, and returns every active review environment of them.
// Every environment of the config repo and of the apps counts towards settings.Max.
// A failed listing of an app's source destroys none of its environments; an app
// that stops saying review = true (or leaves the repo) has its environments
// destroyed. Call it after Sync, in the same pass.
func (m *Manager) SyncApps(ctx context.Context, settings *spec.Review, config source.Snapshot, now time.Time) AppSync {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out AppSync
	if settings == nil {
		// No review block: no review environment is wanted.
		m.restoreApps(spec.Review{})
		out.Destroy = m.dropApps(nil)
		m.apps = nil
		m.forgetApps(nil)
		return out
	}
	m.restoreApps(*settings)
	if config.Dir == "" {
		out.Undecided = true // nothing has loaded yet
		return out
	}
	tree := os.DirFS(config.Dir)
	reviewed, err := Apps(tree, OverlayEnv)
	if err != nil {
		// The overlay does not load at HEAD: nothing changes, nothing is destroyed
		// (after a restart m.apps knows the apps of the state files only).
		out.Unsettled = slices.Sorted(maps.Keys(m.apps))
		out.Undecided = true
		return out
	}
	wanted := map[string]spec.App{}
	for _, app := range reviewed {
		if app.Review && app.Source.Git != "" {
			wanted[app.Name] = app
		}
	}
	out.Destroy = m.dropApps(wanted)
	m.forgetApps(reviewed)
	if m.apps == nil {
		m.apps = map[string]*appSource{}
	}
	for _, name := range slices.Sorted(maps.Keys(wanted)) {
		src := m.apps[name]
		if src == nil {
			src = &appSource{tracker: NewTracker(*settings), running: map[string]Running{}, loaded: map[string]string{}}
			src.tracker.app = name
			if m.restoreApp(name, src) {
				src.listed = missingListings - 1
			}
			m.apps[name] = src
		}
		src.tracker.settings = *settings
		if src.tracker.settings.Max <= 0 {
			src.tracker.settings.Max = spec.DefaultReviewMax
		}
		src.tracker.taken = m.activeBesides(name)
		refs, err := GitLister{URL: wanted[name].Source.Git}.List(ctx)
		decisions := src.tracker.Observe(now, refs, err)
		if err == nil {
			src.listed++
			m.saveApp(name, src)
		}
		if src.listed < missingListings {
			out.Unsettled = append(out.Unsettled, name)
		}
		for _, d := range decisions.Destroy {
			delete(src.running, d.Env.Name)
			delete(src.loaded, d.Env.Name)
			// Its postdeploy mark goes with it.
			_ = os.RemoveAll(filepath.Join(m.Dir, d.Env.Name))
		}
		out.Destroy = append(out.Destroy, decisions.Destroy...)
		for _, env := range src.tracker.Envs() {
			if env.State == StateActive {
				out.Running = append(out.Running, m.appRun(src, tree, config, env))
			}
		}
	}
	return out
}

// dropApps destroys the review environments of every app of m.apps that wanted
// does not hold (those restored from a state file too: the app stopped saying
// review = true while the daemon was down), removes their folders (checkouts and
// postdeploy marks) and forgets the apps.
func (m *Manager) dropApps(wanted map[string]spec.App) []Destroyed {
	var out []Destroyed
	for _, name := range slices.Sorted(maps.Keys(m.apps)) {
		if _, ok := wanted[name]; ok {
			continue
		}
		for _, env := range m.apps[name].tracker.Envs() {
			if env.State == StateActive {
				out = append(out, Destroyed{Env: env, Reason: name + " no longer says review = true"})
			}
			_ = os.RemoveAll(filepath.Join(m.Dir, env.Name))
		}
		delete(m.apps, name)
	}
	return out
}

// appRun returns the review environment env of an app source, its app loaded again
// when the config repo or the ref moved. A spec that does not load keeps the last
// good one running.
func (m *Manager) appRun(src *appSource, tree fs.FS, config source.Snapshot, env Env) Running {
	key := config.Rev.ID + " " + env.Commit
	prev, ok := src.running[env.Name]
	if !ok || src.loaded[env.Name] != key {
		next := Running{Env: env, Snapshot: source.Snapshot{
			// The release's commit is the app source's: that is what moved.
			Rev: source.Revision{ID: env.Commit, Message: env.App + " " + env.Ref},
			Dir: config.Dir, Root: config.Root,
		}}
		next.Apps, next.Err = appOfEnv(tree, env)
		if next.Err != nil && ok {
			prev.Err = next.Err
			next = prev
		}
		src.running[env.Name], src.loaded[env.Name] = next, key
	}
	if !env.Postdeployed {
		if _, err := os.Stat(m.postdeployMark(env.Name)); err == nil {
			src.tracker.envs[env.Name].Postdeployed = true // it ran before a restart
			env.Postdeployed = true
		}
	}
	run := src.running[env.Name]
	run.Env = env
	return run
}

// appOfEnv loads the app of an app source's review environment: the config repo's
// spec of it in env (the review overlay's), built from the environment's ref.
func appOfEnv(tree fs.FS, env Env) ([]spec.App, error) {
	apps, err := Apps(tree, env.Name)
	if err != nil {
		return nil, err
	}
	for _, app := range apps {
		if app.Name == env.App {
			// The listed commit: the daemon fetches the ref only when its checkout
			// of the source is elsewhere (source.CloneAt).
			app.Source.Ref, app.Source.Digest = env.Ref, "git:"+env.Commit
			return []spec.App{app}, nil
		}
	}
	return nil, fmt.Errorf("review %s: app %s is not in the config repo", env.Name, env.App)
}

// activeBesides counts the active review environments of the config repo and of
// every app source but owner's ("" for the config repo's own tracker): they take
// slots of the review block's max.
func (m *Manager) activeBesides(owner string) int {
	n := 0
	if m.tracker != nil && owner != "" {
		n += m.tracker.active()
	}
	for name, src := range m.apps {
		if name != owner {
			n += src.tracker.active()
		}
	}
	return n
}

// active counts the tracker's active environments.
func (t *Tracker) active() int {
	n := 0
	for _, env := range t.envs {
		if env.State == StateActive {
			n++
		}
	}
	return n
}

// appEnvs returns the review environments of every app source, by app then name.
func (m *Manager) appEnvs() []Env {
	var out []Env
	for _, name := range slices.Sorted(maps.Keys(m.apps)) {
		out = append(out, m.apps[name].tracker.Envs()...)
	}
	return out
}

// appListErrors returns why the last listing of each app's source failed, by app;
// nil when none did.
func (m *Manager) appListErrors() map[string]string {
	var out map[string]string
	for name, src := range m.apps {
		if src.tracker.ListError != "" {
			if out == nil {
				out = map[string]string{}
			}
			out[name] = src.tracker.ListError
		}
	}
	return out
}

// markAppPostdeployed records that an app source's review environment ran its
// postdeploy commands (MarkPostdeployed); false when env is none of theirs.
func (m *Manager) markAppPostdeployed(env string) bool {
	app, ok := AppOf(env)
	if !ok || m.apps[app] == nil || m.apps[app].tracker.envs[env] == nil {
		return false
	}
	m.apps[app].tracker.envs[env].Postdeployed = true
	mark := m.postdeployMark(env)
	if err := os.MkdirAll(filepath.Dir(mark), 0o755); err == nil {
		// Worst case, when the mark cannot be written: a restart runs postdeploy again.
		_ = os.WriteFile(mark, nil, 0o644)
	}
	m.saveApp(app, m.apps[app])
	return true
}
