package reconciler

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/manifold-paas/manifold/spec"
)

// SourcesDir is the folder under the state dir that holds the checkouts of apps' git
// sources, one per app, URL and ref (gitSourceDir).
func (r *Reconciler) SourcesDir() string { return filepath.Join(r.opts.StateDir, "sources") }

// GitSourceDirs are the checkouts the loaded spec's git sources use, and the review
// environments' (one per app source's ref): a collector removes the others under
// SourcesDir (apps removed, refs moved on, review environments gone).
func (r *Reconciler) GitSourceDirs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var dirs []string
	for _, apps := range [][]spec.App{r.desired, r.reviews} {
		for i := range apps {
			if app := &apps[i]; app.Source.Git != "" {
				dirs = append(dirs, r.gitSourceDir(app))
			}
		}
	}
	return dirs
}

// slugCollected says why release v<to> of app cannot run again when its slug has left
// the store (collection keeps the slugs of the newest keep_releases releases); nil
// when the slug is there or the release does not exist (the ledger says so then).
func (r *Reconciler) slugCollected(app, env string, to int) error {
	releases, err := r.opts.Ledger.List(app, env)
	if err != nil {
		return err
	}
	for _, release := range releases {
		if release.Version != to {
			continue
		}
		path := r.opts.Builder.SlugPath(release.SlugKey)
		if _, err := os.Stat(path); path == "" || err != nil {
			return fmt.Errorf("its slug %s was collected: only the newest %d releases of an app keep theirs (keep_releases in manifold.hcl)",
				release.SlugKey, r.Platform().KeepReleases)
		}
	}
	return nil
}
