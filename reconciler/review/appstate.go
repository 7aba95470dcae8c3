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

// forgetApps removes the state files of every app but those of keep that say
// review = true: the others have no review environment to remember.
func (m *Manager) forgetApps(keep []spec.App) {
	if m.Dir == "" {
		return
	}
	entries, err := os.ReadDir(m.Dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		m.logger().Error("read review state", "err", err)
		return
	}
	for _, e := range entries {
		app, ok := strings.CutPrefix(e.Name(), appStatePrefix)
		app, isState := strings.CutSuffix(app, appStateSuffix)
		kept := slices.ContainsFunc(keep, func(a spec.App) bool { return a.Name == app && a.Review && a.Source.Git != "" })
		if !ok || !isState || kept {
			continue
		}
		if err := os.Remove(filepath.Join(m.Dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			m.logger().Error("remove review state", "err", err)
		}
	}
}
