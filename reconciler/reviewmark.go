package reconciler

import (
	"maps"
	"slices"
	"strings"

	"github.com/manifold-paas/manifold/reconciler/ledger"
	"github.com/manifold-paas/manifold/reconciler/review"
	"github.com/manifold-paas/manifold/spec"
)

// reviewmark.go marks the releases of review environments in the ledger: the mark is
// written with the release and stays after the environment is torn down.

// reviewSourceConfig is a mark's Source for the refs of the config repo.
const reviewSourceConfig = "config"

// reviewSourceApp is a mark's Source for the refs of an app's own git source.
const reviewSourceApp = "app"

// setReviewMarks records the mark of each review environment this pass runs: the ref
// and the commit of the tree its apps were loaded from (for an app source's, the
// listed commit, which reviewMark replaces by the one built).
func (r *Reconciler) setReviewMarks(running []review.Running) {
	marks := make(map[string]ledger.Review, len(running))
	for _, run := range running {
		commit := run.Snapshot.Rev.ID
		if commit == "" {
			commit = run.Env.Commit
		}
		source := reviewSourceConfig
		if run.Env.App != "" {
			source = reviewSourceApp
		}
		marks[run.Env.Name] = ledger.Review{Ref: run.Env.Ref, Commit: commit, Source: source}
	}
	r.mu.Lock()
	r.reviewMarks = marks
	r.mu.Unlock()
}

// reviewMark is the mark of a release of app: nil unless its environment is a
// review environment the last pass ran. An app source's mark names the commit its
// source resolved to for this build (app.Source.Digest), not the listed one: when
// its checkout is elsewhere the ref is fetched, and it may have moved since the
// listing (source.CloneAt).
func (r *Reconciler) reviewMark(app *spec.App) *ledger.Review {
	r.mu.Lock()
	mark, ok := r.reviewMarks[app.Env]
	r.mu.Unlock()
	if !ok {
		return nil
	}
	if built, isGit := strings.CutPrefix(app.Source.Digest, "git:"); isGit && mark.Source == reviewSourceApp {
		mark.Commit = built
	}
	return &mark
}

// keptReviewReleases are the releases of an app of a review environment that was
// torn down (no spec names it any more): the ledger keeps them, marked, and
// `manifold releases -e pr-7` still lists them. Which config vars were sensitive is
// no longer known, so every config value is masked. ok is false unless the newest
// release carries a review mark.
func (r *Reconciler) keptReviewReleases(name, env string) (releases []ledger.Release, ok bool) {
	if env == "" {
		return nil, false
	}
	releases, err := r.opts.Ledger.List(name, env)
	if err != nil || len(releases) == 0 || releases[0].Review == nil {
		return nil, false
	}
	for i := range releases {
		releases[i] = maskRelease(releases[i], slices.Collect(maps.Keys(releases[i].Config)))
	}
	return releases, true
}
