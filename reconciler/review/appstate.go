package review

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/manifold-paas/manifold/spec"
)

// appstate.go keeps the memory of each app source's Tracker across a daemon restart,
// as state.go does the config repo's: in Dir/tracker-<app>.json (never an
// environment's name: those have no dot), so that a restart neither counts the ttl
// anew nor revives what the ttl destroyed.

const appStatePrefix, appStateSuffix = "tracker-", ".json"

func (m *Manager) appStatePath(app string) string {
	return filepath.Join(m.Dir, appStatePrefix+app+appStateSuffix)
}

// restoreApp loads app's state file into its new tracker, and tells whether there
// was one that read (one listing that succeeds then settles it, as for the config
// repo's).
func (m *Manager) restoreApp(app string, src *appSource) bool {
	if m.Dir == "" {
		return false
	}
	data, err := os.ReadFile(m.appStatePath(app))
	if err != nil {
		return false
	}
	if err := src.tracker.restoreState(data); err != nil {
		m.logger().Error("review state does not read: the review environments that run stay until two listings succeed",
			"file", m.appStatePath(app), "err", err)
		return false
	}
	for _, env := range src.tracker.envs {
		env.App = app
	}
	src.saved = data
	return true
}

// saveApp writes app's tracker state when it changed (atomically, mode 0600).
func (m *Manager) saveApp(app string, src *appSource) {
	if m.Dir == "" {
		return
	}
	data, err := src.tracker.encodeState()
	if err == nil && bytes.Equal(data, src.saved) {
		return
	}
	if err == nil {
		err = writeAtomic(m.appStatePath(app), data)
	}
	if err != nil {
		// Worst case, a restart counts the ttl from then, as without the file.
		m.logger().Error("save review state", "file", m.appStatePath(app), "err", err)
		return
	}
	src.saved = data
}

// restoreApps loads every app source's state file into m.apps, once: before the
// config repo's tracker fills slots (the environments those files know of hold
// slots of the shared max), and so that an app that stopped saying review = true
// while the daemon was down has its environments destroyed, predestroy first, as
// when it stops while the daemon runs. A file that does not read still makes an
// (empty) entry, which the listings fill as on a first start.
func (m *Manager) restoreApps(settings spec.Review) {
	if m.appsRestored {
		return
	}
	m.appsRestored = true
	for _, app := range m.stateApps() {
		if m.apps[app] != nil {
			continue
		}
		src := &appSource{tracker: NewTracker(settings), running: map[string]Running{}, loaded: map[string]string{}}
		src.tracker.app = app
		if m.restoreApp(app, src) {
			src.listed = missingListings - 1
		}
		if m.apps == nil {
			m.apps = map[string]*appSource{}
		}
		m.apps[app] = src
	}
}

// stateApps returns the apps that have a state file under Dir, sorted.
func (m *Manager) stateApps() []string {
	if m.Dir == "" {
		return nil
	}
	entries, err := os.ReadDir(m.Dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		m.logger().Error("read review state", "err", err)
	}
	var apps []string
	for _, e := range entries {
		app, ok := strings.CutPrefix(e.Name(), appStatePrefix)
		app, isState := strings.CutSuffix(app, appStateSuffix)
		if ok && isState && app != "" && !e.IsDir() {
			apps = append(apps, app)
		}
	}
	return apps
}

// forgetApps removes the state files of every app but those of keep that say
// review = true: the others have no review environment to remember (SyncApps has
// destroyed those they had: restoreApps put every file's app in m.apps).
func (m *Manager) forgetApps(keep []spec.App) {
	for _, app := range m.stateApps() {
		if slices.ContainsFunc(keep, func(a spec.App) bool { return a.Name == app && a.Review && a.Source.Git != "" }) {
			continue
		}
		if err := os.Remove(m.appStatePath(app)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			m.logger().Error("remove review state", "err", err)
		}
	}
}
