package source

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// Source is where desired state comes from: a git repository or a local folder.
// The reconciler calls Fetch when Watch notifies (and on its own schedule), loads
// the spec from Snapshot.Dir and plans against what runs.
type Source interface {
	// Fetch brings the local copy up to date and returns it. On error the previous
	// snapshot's directory stays on disk and unchanged, so the last good state
	// keeps running. Fetch is safe to call concurrently with Watch.
	Fetch(ctx context.Context) (Snapshot, error)
	// Watch blocks until ctx is done (then it returns nil) and calls notify, from
	// one goroutine at a time, when the source has moved past what Fetch last
	// returned. It returns an error only when it cannot watch at all.
	Watch(ctx context.Context, notify func(reason string)) error
	// Trigger asks Watch to check at once (a webhook, `manifold reconcile`). It
	// never blocks; triggers that arrive while one is pending are merged.
	Trigger(reason string)
}

// Snapshot is the config repository at one revision on local disk.
type Snapshot struct {
	// Rev identifies the commit (or folder content) the tree holds.
	Rev Revision `json:"rev"`
	// Dir holds the config repository tree at Rev: the checkout, or its Path
	// subdirectory. Read it with os.DirFS(Dir). For git sources the directory is
	// never modified after Fetch returns it and stays on disk until two later
	// Fetch calls have returned other commits, so a reconcile may read it while
	// newer commits arrive. A folder source's Dir is the live folder.
	Dir string `json:"dir"`
	// Root is the whole checkout (or folder); Dir is Root when Path is empty.
	// Spec paths that climb out of Path ("../apps/hello") resolve against it.
	Root string `json:"root"`
}

// defaults for the watched sources.
const (
	// DefaultInterval is how often a git source polls when GitOptions.Interval is 0.
	DefaultInterval = time.Minute
	// DefaultDebounce is the quiet period a folder source waits for after a change.
	DefaultDebounce = 200 * time.Millisecond
	// jitterFraction spreads polls ±10% so many daemons do not hit a server at once.
	jitterFraction = 0.1
)

// jittered returns d spread uniformly over ±10%.
func jittered(d time.Duration) time.Duration {
	f := 1 - jitterFraction + 2*jitterFraction*rand.Float64()
	return time.Duration(float64(d) * f)
}

// cleanSubPath validates a Path option: relative, slash-separated, inside the tree.
// It returns "" for the whole tree.
func cleanSubPath(p string) (string, error) {
	if p == "" || p == "." {
		return "", nil
	}
	p = filepath.ToSlash(p)
	clean := path.Clean(p)
	if path.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, "../") {
		return "", fmt.Errorf("path %q must be relative and inside the repository", p)
	}
	if clean == "." {
		return "", nil
	}
	return clean, nil
}
