package process

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/manifold-paas/manifold/drivers"
)

// stateFile is a dyno's record on disk, <StateDir>/<id>.json: what a daemon started
// after this one needs to adopt the dyno (or to restart it when its process is gone).
type stateFile struct {
	ID   string           `json:"id"`
	Spec drivers.DynoSpec `json:"spec"`
	// PID is the process group leader (0 while crashed, waiting for the cool-off) and
	// StartTime its start time, field 22 of /proc/<pid>/stat: a pid reused by another
	// process has another start time and is never adopted.
	PID       int    `json:"pid"`
	StartTime uint64 `json:"start_time"`
	Port      int    `json:"port"`
	// LogOffset is where the output file's follower resumes: every byte before it was
	// published. Saved about once a second, so a kill -9 of the daemon may publish up
	// to a second of lines twice, never lose one.
	LogOffset      int64         `json:"log_offset"`
	State          drivers.State `json:"state"`
	Reason         string        `json:"reason,omitempty"`
	StartedAt      time.Time     `json:"started_at"`
	StateChangedAt time.Time     `json:"state_changed_at"`
	Restarts       int           `json:"restarts"`
	// Crashes counts consecutive crashes (the cool-off's n); NextRestartAt is when a
	// crashed dyno starts again.
	Crashes       int       `json:"crashes"`
	NextRestartAt time.Time `json:"next_restart_at,omitzero"`
}

// writeState replaces path atomically: a daemon killed mid-write leaves the old file.
func writeState(path string, st stateFile) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("encode state of dyno %s: %w", st.ID, err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("write state of dyno %s: %w", st.ID, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write state of dyno %s: %w", st.ID, err)
	}
	return nil
}

// readStates reads every state file of dir; a file that does not parse is reported
// in bad and left in place for a human to look at.
func readStates(dir string) (states []stateFile, bad map[string]error, err error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, nil, err
	}
	bad = make(map[string]error)
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			bad[path] = err
			continue
		}
		var st stateFile
		if err := json.Unmarshal(data, &st); err != nil {
			bad[path] = fmt.Errorf("%s: %w", path, err)
			continue
		}
		if st.ID+".json" != filepath.Base(path) {
			bad[path] = fmt.Errorf("%s: holds dyno id %q", path, st.ID)
			continue
		}
		if err := validateSpec(st.Spec, false); err != nil {
			bad[path] = fmt.Errorf("%s: %w", path, err)
			continue
		}
		states = append(states, st)
	}
	return states, bad, nil
}
