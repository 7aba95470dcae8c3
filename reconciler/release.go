package reconciler

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/manifold-paas/manifold/drivers"
	"github.com/manifold-paas/manifold/logs"
	"github.com/manifold-paas/manifold/reconciler/ledger"
	"github.com/manifold-paas/manifold/reconciler/notify"
	"github.com/manifold-paas/manifold/reconciler/plan"
	"github.com/manifold-paas/manifold/reconciler/slug"
	"github.com/manifold-paas/manifold/reconciler/source"
	"github.com/manifold-paas/manifold/spec"
)

// ensureRelease returns the release the app should run, making a new one when the
// spec's code or config differs from the newest release. A non-nil error says why the
// app is stalled; the returned release (the last good one, then) still converges.
func (r *Reconciler) ensureRelease(ctx context.Context, app *spec.App, snapshot source.Snapshot, force bool) (*ledger.Release, error) {
	key := plan.KeyOf(app)
	if app.Source.Git != "" {
		if err := r.resolveGitSource(ctx, app); err != nil {
			return r.current(key), err
		}
	}
	fingerprint := plan.Fingerprint(app)
	releases, err := r.opts.Ledger.List(app.Name, app.Env)
	if err != nil {
		return nil, fmt.Errorf("read releases of %s (%s): %w", app.Name, app.Env, err)
	}
	current := currentOf(releases)
	interrupted := false
	if len(releases) > 0 && releases[0].Status == ledger.StatusPending {
		// Only this loop and Rollback make releases, one at a time: a pending one was
		// cut short by a restart. It never goes live, whatever the spec says now (a
		// commit may have changed it since), nor does a rollback's pin on it; the spec's
		// deploy is retried at once.
		latest := releases[0]
		reason := "interrupted: manifold stopped during the deploy"
		if err := r.opts.Ledger.SetStatus(ctx, app.Name, app.Env, latest.Version, ledger.StatusFailed, reason); err != nil {
			return current, err
		}
		if pinned, ok := r.opts.Ledger.Pinned(app.Name, app.Env); ok && pinned == latest.Version {
			if err := r.opts.Ledger.Unpin(ctx, app.Name, app.Env); err != nil {
				return current, err
			}
		}
		interrupted = true
		if current != nil && current.SpecDigest == fingerprint {
			return current, nil // what runs is what the spec wants: no new release
		}
	}
	if len(releases) > 0 && releases[0].SpecDigest == fingerprint && !interrupted {
		// The newest release was made for this very spec: a deploy, or a rollback
		// that stays until a commit changes the app.
		latest := releases[0]
		switch {
		case latest.Status == ledger.StatusSucceeded:
			return &latest, nil
		case !force:
			return current, fmt.Errorf("v%d failed: %s (fix the spec, or `manifold reconcile -a %s` to retry)",
				latest.Version, latest.StatusReason, app.Name)
		}
	}
	if _, pinned := r.opts.Ledger.Pinned(app.Name, app.Env); pinned && (len(releases) == 0 || releases[0].SpecDigest != fingerprint) {
		// A commit changed the app since its rollback: the pin ends.
		if err := r.opts.Ledger.Unpin(ctx, app.Name, app.Env); err != nil {
			return current, err
		}
	}
	if failed, ok := r.failedFingerprint(key); ok && failed == fingerprint && !force {
		return current, errors.New(r.failureReason(key))
	}
	release, err := r.deploy(ctx, app, snapshot, current, fingerprint)
	if err != nil {
		r.markFailed(key, fingerprint, err)
		return current, err
	}
	r.clearFailed(key)
	return release, nil
}

// deploy builds the slug, appends a pending release, runs the release phase and rolls
// the formation; the release succeeds once its dynos are up.
func (r *Reconciler) deploy(ctx context.Context, app *spec.App, snapshot source.Snapshot, current *ledger.Release, fingerprint string) (*ledger.Release, error) {
	// Secrets that do not open stop the deploy before anything is built or recorded:
	// the last good release keeps serving, and the error says where each one sits.
	secrets := ledgerSecrets(app)
	if _, err := openSecrets(r.opts.Secrets, app.Name, app.Env, secrets); err != nil {
		r.publish(app, logs.SourceAPI, "api", "Release failed: "+err.Error())
		return nil, err
	}
	r.notify(ctx, notify.DeployStartedEvent(app.Name, app.Env, snapshot.Rev.ID))
	build, err := r.slugOf(ctx, app, snapshot)
	if err != nil {
		r.notify(ctx, notify.DeployFailedEvent(app.Name, app.Env, snapshot.Rev.ID, 0, notify.PhaseBuild, err))
		return nil, err
	}
	author := authorOf(snapshot.Rev)
	release, err := r.opts.Ledger.Append(ctx, ledger.Release{
		App:            app.Name,
		Env:            app.Env,
		SlugKey:        build.Key,
		Config:         app.Config,
		Secrets:        secrets,
		ProcessTypes:   processTypes(app, build),
		ReleaseCommand: releaseCommand(app, build),
		Description:    describe(app, current, build.Key, snapshot.Rev),
		Commit:         snapshot.Rev.ID,
		Author:         author,
		SpecDigest:     fingerprint,
		Status:         ledger.StatusPending,
		Review:         r.reviewMark(app),
	})
	if err != nil {
		return nil, fmt.Errorf("append release of %s (%s): %w", app.Name, app.Env, err)
	}
	r.publish(app, logs.SourceAPI, "api", fmt.Sprintf("Release v%d created by %s: %s", release.Version, author, release.Description))

	fail := func(err error) (*ledger.Release, error) {
		reason := err.Error()
		r.opts.Metrics.Release(app.Name, app.Env, release.Version, release.SlugKey, string(ledger.StatusFailed))
		if serr := r.opts.Ledger.SetStatus(ctx, app.Name, app.Env, release.Version, ledger.StatusFailed, reason); serr != nil {
			r.log.Error("mark release failed", "app", app.Name, "env", app.Env, "release", release.Version, "err", serr)
		}
		r.publish(app, logs.SourceAPI, "api", fmt.Sprintf("Release v%d failed: %s", release.Version, reason))
		return nil, fmt.Errorf("v%d: %w", release.Version, err)
	}
	if release.ReleaseCommand != "" {
		if err := r.releasePhase(ctx, app, release); err != nil {
			r.notify(ctx, notify.DeployFailedEvent(app.Name, app.Env, snapshot.Rev.ID, release.Version, notify.PhaseRelease, err))
			return fail(err)
		}
	}
	if err := r.converge(ctx, app, release); err != nil {
		r.notify(ctx, notify.DeployFailedEvent(app.Name, app.Env, snapshot.Rev.ID, release.Version, notify.PhaseBoot, err))
		return fail(err)
	}
	if err := r.opts.Ledger.SetStatus(ctx, app.Name, app.Env, release.Version, ledger.StatusSucceeded, ""); err != nil {
		return nil, err
	}
	release.Status = ledger.StatusSucceeded
	r.opts.Metrics.Release(app.Name, app.Env, release.Version, release.SlugKey, string(ledger.StatusSucceeded))
	r.notify(ctx, notify.DeploySucceededEvent(app.Name, app.Env, snapshot.Rev.ID, release.Version))
	r.publish(app, logs.SourceAPI, "api", fmt.Sprintf("Deployed v%d (%s) by %s", release.Version, release.Description, author))
	return &release, nil
}

// slugOf returns the slug the release runs: the pinned one from the store (a
// promotion: never rebuilt, so the very bytes that ran elsewhere run here), or one
// built from the app's source with its build config.
func (r *Reconciler) slugOf(ctx context.Context, app *spec.App, snapshot source.Snapshot) (slug.Slug, error) {
	if app.Pin != nil {
		pinned, err := r.opts.Builder.Lookup(app.Pin.Slug)
		if err != nil {
			err = fmt.Errorf("release pinned to %s: %w (build it in the environment it comes from, or remove the pin)", app.Pin, err)
			r.publish(app, logs.SourceHeroku, "build", "Promotion failed: "+err.Error())
			return slug.Slug{}, err
		}
		r.publish(app, logs.SourceHeroku, "build", fmt.Sprintf("-----> Promoting slug %s: no build", app.Pin))
		return pinned, nil
	}
	buildStarted := time.Now()
	build, err := r.opts.Builder.Build(ctx, slug.Request{
		App:          app.Name,
		SourceDir:    r.sourceDir(app, snapshot),
		SourceDigest: app.Source.Digest,
		Buildpacks:   app.Buildpacks,
		Stack:        app.Stack,
		Config:       BuildConfig(app),
		NetEnv:       r.Platform().BuildEnv,
		Output:       r.lineWriter(app, logs.SourceHeroku, "build"),
	})
	r.opts.Metrics.Build(time.Since(buildStarted))
	if err != nil {
		r.publish(app, logs.SourceHeroku, "build", "Build failed: "+err.Error())
		return slug.Slug{}, fmt.Errorf("build %s (%s): %w", app.Name, app.Env, err)
	}
	return build, nil
}

// BuildConfig is the config that reaches an app's buildpacks: the vars its
// build_config names, or all of them when it sets none (Heroku's way).
func BuildConfig(app *spec.App) map[string]string {
	if app.BuildConfig == nil {
		return app.Config
	}
	out := map[string]string{}
	for _, name := range app.BuildConfig {
		if value, ok := app.Config[name]; ok {
			out[name] = value
		}
	}
	return out
}

// releasePhase runs the release command once, as a one-off dyno; a non-zero exit
// fails the release and the previous one keeps serving.
func (r *Reconciler) releasePhase(ctx context.Context, app *spec.App, release ledger.Release) error {
	dynoSpec, err := r.dynoSpec(app, release, "release", 1, release.ReleaseCommand, spec.Process{Size: defaultSize(app)})
	if err != nil {
		return err
	}
	out := r.lineWriter(app, logs.SourceApp, "release.1")
	defer out.Close()
	r.publish(app, logs.SourceHeroku, "release.1", fmt.Sprintf("Starting process with command `%s`", release.ReleaseCommand))
	runCtx, cancel := context.WithTimeout(ctx, r.opts.ReleaseTimeout)
	defer cancel()
	code, err := r.opts.Driver.Run(runCtx, drivers.OneOff{DynoSpec: dynoSpec, Stdout: out, Stderr: out})
	if errors.Is(runCtx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
		return fmt.Errorf("release command `%s` did not finish within %s", release.ReleaseCommand, r.opts.ReleaseTimeout)
	}
	if err != nil {
		return fmt.Errorf("release phase of %s (%s): %w", app.Name, app.Env, err)
	}
	r.publish(app, logs.SourceHeroku, "release.1", fmt.Sprintf("Process exited with status %d", code))
	if code != 0 {
		return fmt.Errorf("release command `%s` exited with status %d", release.ReleaseCommand, code)
	}
	return nil
}

// processTypes are the release's commands: the spec's (the Procfile's unless the spec
// overrides one), then the buildpack's defaults for types the spec does not know.
func processTypes(app *spec.App, build slug.Slug) map[string]string {
	types := map[string]string{}
	for name, command := range build.ProcessTypes {
		if name != "release" {
			types[name] = command
		}
	}
	for _, p := range app.Processes {
		if p.Command != "" {
			types[p.Type] = p.Command
		}
	}
	return types
}

func releaseCommand(app *spec.App, build slug.Slug) string {
	if app.ReleaseCommand != "" {
		return app.ReleaseCommand
	}
	return build.ProcessTypes["release"]
}

// describe says why a release was made, as Heroku does: "Deploy 1a2b3c4" for new
// code, "Set GREETING, PORT config vars" or "Remove X config vars" for config.
func describe(app *spec.App, current *ledger.Release, slugKey string, rev source.Revision) string {
	if app.Pin != nil && (current == nil || current.SlugKey != slugKey) {
		if app.Pin.From == "" {
			return "Promote " + plan.ShortDigest(app.Pin.Slug)
		}
		return "Promote " + plan.ShortDigest(app.Pin.Slug) + " from " + app.Pin.From
	}
	if current == nil || current.SlugKey != slugKey {
		return "Deploy " + rev.Short()
	}
	var set, removed []string
	for key, value := range app.Config {
		if old, ok := current.Config[key]; !ok || old != value {
			set = append(set, key)
		}
	}
	for key := range current.Config {
		if _, ok := app.Config[key]; !ok {
			removed = append(removed, key)
		}
	}
	// Secrets by name only: a resealed value counts as set.
	for key, s := range app.Secrets {
		if old, ok := current.Secrets[key]; !ok || old.Sealed != s.Sealed {
			set = append(set, key)
		}
	}
	for key := range current.Secrets {
		if _, ok := app.Secrets[key]; !ok {
			removed = append(removed, key)
		}
	}
	slices.Sort(set)
	set = slices.Compact(set)
	slices.Sort(removed)
	removed = slices.Compact(removed)
	var parts []string
	if len(set) > 0 {
		parts = append(parts, "Set "+strings.Join(set, ", ")+" config vars")
	}
	if len(removed) > 0 {
		parts = append(parts, "Remove "+strings.Join(removed, ", ")+" config vars")
	}
	if len(parts) == 0 {
		return "Update formation commands at " + rev.Short()
	}
	return strings.Join(parts, "; ")
}

func authorOf(rev source.Revision) string {
	if rev.Author != "" {
		return rev.Author
	}
	return "manifold"
}
