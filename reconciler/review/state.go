package review

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
)

// state.go keeps the Tracker's memory across a daemon restart, in Dir/tracker.json:
// each review environment's ref, commit, state, creation and last push, and the
// commits the ttl expired. Without it a restart would count the ttl anew and revive
// what the ttl destroyed. A listing's "missing" count is not kept: a restart's first
// listing never destroys anything.

// stateFile is the file under Manager.Dir (never an environment's name: those are
// DNS labels, without a dot).
const stateFile = "tracker.json"

// stateFormat names the file's layout, so that a later one is told apart.
const stateFormat = "manifold-review-tracker/1"

// trackerState is what the file holds.
type trackerState struct {
	Format string `json:"format"`
	Envs   []Env  `json:"envs"`
	// Expired maps an environment the ttl destroyed to its commit then.
	Expired map[string]string `json:"expired,omitempty"`
}

// encodeState is the tracker's state as the file holds it.
func (t *Tracker) encodeState() ([]byte, error) {
	st := trackerState{Format: stateFormat, Envs: t.Envs(), Expired: t.expired}
	return json.MarshalIndent(st, "", "  ")
}

// restoreState replaces the tracker's environments and expiries by the file's.
func (t *Tracker) restoreState(data []byte) error {
	var st trackerState
	if err := json.Unmarshal(data, &st); err != nil {
		return err
	}
	if st.Format != stateFormat {
		return fmt.Errorf("format %q, want %q", st.Format, stateFormat)
	}
	envs := make(map[string]*Env, len(st.Envs))
	for _, env := range st.Envs {
		if env.Name == "" || env.Ref == "" || env.Commit == "" || (env.State != StateActive && env.State != StateWaiting) {
			return fmt.Errorf("environment %+v is incomplete", env)
		}
		envs[env.Name] = &env
	}
	t.envs = envs
	t.expired = map[string]string{}
	maps.Copy(t.expired, st.Expired)
	return nil
}

// restore loads the state file into the tracker, and tells whether there was one
// that read. One that does not read is as none (the caller then waits for two
// listings before it trusts the tracker, as on a first start).
func (m *Manager) restore() bool {
	if m.Dir == "" {
		return false
	}
	data, err := os.ReadFile(filepath.Join(m.Dir, stateFile))
	if err != nil {
		return false
	}
	if err := m.tracker.restoreState(data); err != nil {
		m.logger().Error("review state does not read: the review environments that run stay until two listings succeed",
			"file", filepath.Join(m.Dir, stateFile), "err", err)
		return false
	}
	m.saved = data
	return true
}

// save writes the tracker's state when it changed: to a temporary file, synced, then
// renamed over the old one, so that a crash leaves the old state or the new, mode
// 0600 (refs and commits of the config repo are not for every local user).
func (m *Manager) save() {
	if m.Dir == "" || m.tracker == nil {
		return
	}
	data, err := m.tracker.encodeState()
	if err == nil && bytes.Equal(data, m.saved) {
		return
	}
	if err == nil {
		err = writeAtomic(filepath.Join(m.Dir, stateFile), data)
	}
	if err != nil {
		// Worst case, a restart counts the ttl from then, as without the file.
		m.logger().Error("save review state", "file", filepath.Join(m.Dir, stateFile), "err", err)
		return
	}
	m.saved = data
}

// forget removes the state file: no review block, no review environment to remember.
func (m *Manager) forget() {
	m.saved = nil
	if m.Dir == "" {
		return
	}
	if err := os.Remove(filepath.Join(m.Dir, stateFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		m.logger().Error("remove review state", "err", err)
	}
}

func writeAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename, there is nothing to remove
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// logger is Log, or one that discards.
func (m *Manager) logger() *slog.Logger {
	if m.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return m.Log
}
