package reconciler

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"

	"github.com/manifold-paas/manifold/reconciler/source"
	"github.com/manifold-paas/manifold/spec"
)

func (r *Reconciler) sourceDir(app *spec.App, snapshot source.Snapshot) string {
	if app.Source.Git != "" {
		return r.gitSourceDir(app)
	}
	return filepath.Join(snapshot.Dir, filepath.FromSlash(app.Source.Path))
}

func (r *Reconciler) gitSourceDir(app *spec.App) string {
	sum := sha256.Sum256([]byte(app.Source.Git + "\x00" + app.Source.Ref))
	return filepath.Join(r.opts.StateDir, "sources", app.Name+"-"+hex.EncodeToString(sum[:6]))
}

// resolveGitSource fetches an app's git source and sets its digest to the commit.
func (r *Reconciler) resolveGitSource(ctx context.Context, app *spec.App) error {
	rev, err := source.Clone(ctx, app.Source.Git, app.Source.Ref, r.gitSourceDir(app))
	if err != nil {
		return fmt.Errorf("fetch source of %s (%s) from %s: %w", app.Name, app.Env, app.Source.Git, err)
	}
	app.Source.Digest = "git:" + rev.ID
	return nil
}
