package reconciler

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strings"

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

// resolveGitSource fetches an app's git source and sets its digest to the commit. A
// digest set already (a review app's: the listing of its source's refs gave the
// commit) spares the remote a round trip when the checkout is at that commit.
func (r *Reconciler) resolveGitSource(ctx context.Context, app *spec.App) error {
	var rev source.Revision
	var err error
	if known, ok := strings.CutPrefix(app.Source.Digest, "git:"); ok {
		rev, err = source.CloneAt(ctx, app.Source.Git, app.Source.Ref, known, r.gitSourceDir(app))
	} else {
		rev, err = source.Clone(ctx, app.Source.Git, app.Source.Ref, r.gitSourceDir(app))
	}
	if err != nil {
		return fmt.Errorf("fetch source of %s (%s) from %s: %w", app.Name, app.Env, app.Source.Git, err)
	}
	app.Source.Digest = "git:" + rev.ID
	return nil
}
