// Package promote turns the release an environment runs into a promotion: it decides
// whether that release may go (it succeeded, soaked long enough, was built with the
// same build-time config) and commits the pin on a new branch of the config repo.
package promote

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/manifold-paas/manifold/reconciler/ledger"
	"github.com/manifold-paas/manifold/spec"
)

// ErrRefused wraps every reason Check refuses a promotion for.
var ErrRefused = errors.New("promotion refused")

// Request is a promotion of one app from one environment to another.
type Request struct {
	App, From, To string
	// Releases are the app's releases in From, newest first (the daemon's ledger).
	Releases []ledger.Release
	// Source and Target are the app in From and To, as the config repo declares them:
	// Target's soak and both build_config lists gate the promotion.
	Source, Target *spec.App
	Now            time.Time
}

// Promotion is what Check allows: the release to promote and the pin that runs it.
type Promotion struct {
	Release ledger.Release
	Pin     spec.ReleasePin
	// Branch is the config repo branch that carries the pin: promote/APP-FROM-vN.
	Branch string
}

// Check decides whether the newest release of the app in From may run in To. It
// refuses (errors wrapping ErrRefused) a release that is pending or failed, one that
// has not run for To's soak, and one whose build-time config differs between the two
// environments: those values may be baked into the slug. Refusals name config vars,
// never their values.
func Check(req Request) (Promotion, error) {
	refuse := func(format string, args ...any) (Promotion, error) {
		return Promotion{}, fmt.Errorf("%w: %s", ErrRefused, fmt.Sprintf(format, args...))
	}
	if len(req.Releases) == 0 {
		return refuse("%s has no release in %s", req.App, req.From)
	}
	newest := req.Releases[0]
	name := fmt.Sprintf("%s v%d", req.From, newest.Version)
	switch newest.Status {
	case ledger.StatusPending:
		return refuse("%s of %s is still deploying", name, req.App)
	case ledger.StatusFailed:
		return refuse("%s of %s failed (%s): promote what %s runs once a release there succeeds", name, req.App, newest.StatusReason, req.From)
	}
	soak := time.Duration(req.Target.SoakSeconds) * time.Second
	if ran := req.Now.Sub(newest.CreatedAt); ran < soak {
		return refuse("%s of %s has run for %s; %s's soak is %s: promote it after %s",
			name, req.App, ran.Truncate(time.Second), req.To, soak, newest.CreatedAt.Add(soak).UTC().Format(time.RFC3339))
	}
	if differ := buildConfigDiff(newest.Config, req.Source, req.Target); len(differ) > 0 {
		return refuse("build-time config of %s differs between %s and %s: %s (the slug may hold %s's values; make them equal, or leave them out of build_config)",
			req.App, req.From, req.To, strings.Join(differ, ", "), req.From)
	}
	return Promotion{
		Release: newest,
		Pin:     spec.ReleasePin{Slug: newest.SlugKey, From: name},
		Branch:  fmt.Sprintf("promote/%s-%s-v%d", req.App, req.From, newest.Version),
	}, nil
}

// buildConfigDiff names the build-time config vars whose values differ between the
// release's config (what the slug was built with) and the target's. Build-time
// vars are those either environment's build_config lists, or every var when one of
// them sets no build_config (then every var reached its buildpacks).
func buildConfigDiff(built map[string]string, source, target *spec.App) []string {
	names := map[string]bool{}
	for _, n := range slices.Concat(source.BuildConfig, target.BuildConfig) {
		names[n] = true
	}
	if source.BuildConfig == nil || target.BuildConfig == nil {
		for n := range built {
			names[n] = true
		}
		for n := range target.Config {
			names[n] = true
		}
	}
	var differ []string
	for _, n := range slices.Sorted(maps.Keys(names)) {
		a, inBuilt := built[n]
		b, inTarget := target.Config[n]
		if inBuilt != inTarget || a != b {
			differ = append(differ, n)
		}
	}
	return differ
}
