package reconciler

import (
	"maps"
	"slices"

	"github.com/manifold-paas/manifold/reconciler/ledger"
	"github.com/manifold-paas/manifold/reconciler/review"
)

// reviewmark.go marks the releases of review environments in the ledger: the mark is
// written with the release and stays after the environment is torn down.

// reviewSourceConfig is a mark's Source for the refs of the config repo.
const reviewSourceConfig = "config"

// reviewSourceApp is a mark's Source for the refs of an app's own git source.
const reviewSourceApp = "app"

// setReviewMarks records the mark of each review environment this pass runs: the ref
// and the commit of the tree its apps were loaded from.
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

// reviewMark is the mark of a release made in env: nil unless env is a review
// environment the last pass ran.
func (r *Reconciler) reviewMark(env string) *ledger.Review {
	r.mu.Lock()
	defer r.mu.Unlock()
	mark, ok := r.reviewMarks[env]
	if !ok {
		return nil
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
