package reconciler

import "path/filepath"

// SourcesDir is the folder under the state dir that holds the checkouts of apps' git
// sources, one per app, URL and ref (gitSourceDir).
func (r *Reconciler) SourcesDir() string { return filepath.Join(r.opts.StateDir, "sources") }

// GitSourceDirs are the checkouts the loaded spec's git sources use: a collector
// removes the others under SourcesDir (apps removed, refs moved on).
func (r *Reconciler) GitSourceDirs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var dirs []string
	for i := range r.desired {
		if app := &r.desired[i]; app.Source.Git != "" {
			dirs = append(dirs, r.gitSourceDir(app))
		}
	}
	return dirs
}
