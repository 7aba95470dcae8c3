package reconciler

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/manifold-paas/manifold/drivers"
	"github.com/manifold-paas/manifold/logs"
	"github.com/manifold-paas/manifold/reconciler/ledger"
	"github.com/manifold-paas/manifold/reconciler/slug"
	"github.com/manifold-paas/manifold/reconciler/source"
	"github.com/manifold-paas/manifold/spec"
)

// upPollInterval is how often a rollout looks at the driver while it waits for new
// dynos to be up.
const upPollInterval = 50 * time.Millisecond

// reconcileApp converges one app in one environment: it makes a release when the
// app's code or config changed (build, release phase), then rolls its formation.
// Every failure is recorded in the app's status; what runs keeps running.
func (r *Reconciler) reconcileApp(ctx context.Context, app *spec.App, snapshot source.Snapshot, force bool) {
	key := keyOf(app)
	if app.Suspend {
		r.setAppStatus(key, func(s *AppStatus) {
			s.State, s.Reason, s.Suspended = StateSuspended, "suspend = true in the spec", true
		})
		return
	}
	r.setAppStatus(key, func(s *AppStatus) { s.State, s.Suspended = StateReconciling, false })

	target, stall := r.ensureRelease(ctx, app, snapshot, force)
	if err := r.setDrains(app, snapshot.Dir); err != nil && stall == nil {
		stall = err
	}
	if target != nil {
		if err := r.converge(ctx, app, *target); err != nil && stall == nil {
			stall = err
		}
	}
	if stall == nil && target != nil {
		if err := r.applied.set(*app); err != nil {
			r.log.Error("record applied spec", "app", app.Name, "env", app.Env, "err", err)
		}
	}
	r.setAppStatus(key, func(s *AppStatus) {
		if target != nil {
			s.Release = target.Version
			s.Commit = target.Commit
		}
		s.PinnedTo, _ = r.opts.Ledger.Pinned(app.Name, app.Env)
		if stall != nil {
			s.State, s.Reason = StateStalled, stall.Error()
		} else {
			s.State, s.Reason = StateReady, ""
		}
	})
}

// ensureRelease returns the release the app should run, making a new one when the
// spec's code or config differs from the newest release. A non-nil error says why the
// app is stalled; the returned release (the last good one, then) still converges.
func (r *Reconciler) ensureRelease(ctx context.Context, app *spec.App, snapshot source.Snapshot, force bool) (*ledger.Release, error) {
	key := keyOf(app)
	if app.Source.Git != "" {
		if err := r.resolveGitSource(ctx, app); err != nil {
			return r.current(key), err
		}
	}
	fingerprint := fingerprintOf(app)
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
	build, err := r.opts.Builder.Build(ctx, slug.Request{
		App:          app.Name,
		SourceDir:    r.sourceDir(app, snapshot),
		SourceDigest: app.Source.Digest,
		Buildpacks:   app.Buildpacks,
		Stack:        app.Stack,
		Config:       app.Config,
		Output:       r.lineWriter(app, logs.SourceHeroku, "build"),
	})
	if err != nil {
		r.publish(app, logs.SourceHeroku, "build", "Build failed: "+err.Error())
		return nil, fmt.Errorf("build %s (%s): %w", app.Name, app.Env, err)
	}
	author := authorOf(snapshot.Rev)
	release, err := r.opts.Ledger.Append(ctx, ledger.Release{
		App:            app.Name,
		Env:            app.Env,
		SlugKey:        build.Key,
		Config:         app.Config,
		ProcessTypes:   processTypes(app, build),
		ReleaseCommand: releaseCommand(app, build),
		Description:    describe(app, current, build.Key, snapshot.Rev),
		Commit:         snapshot.Rev.ID,
		Author:         author,
		SpecDigest:     fingerprint,
		Status:         ledger.StatusPending,
	})
	if err != nil {
		return nil, fmt.Errorf("append release of %s (%s): %w", app.Name, app.Env, err)
	}
	r.publish(app, logs.SourceAPI, "api", fmt.Sprintf("Release v%d created by %s: %s", release.Version, author, release.Description))

	fail := func(err error) (*ledger.Release, error) {
		reason := err.Error()
		if serr := r.opts.Ledger.SetStatus(ctx, app.Name, app.Env, release.Version, ledger.StatusFailed, reason); serr != nil {
			r.log.Error("mark release failed", "app", app.Name, "env", app.Env, "release", release.Version, "err", serr)
		}
		r.publish(app, logs.SourceAPI, "api", fmt.Sprintf("Release v%d failed: %s", release.Version, reason))
		return nil, fmt.Errorf("v%d: %w", release.Version, err)
	}
	if release.ReleaseCommand != "" {
		if err := r.releasePhase(ctx, app, release); err != nil {
			return fail(err)
		}
	}
	if err := r.converge(ctx, app, release); err != nil {
		return fail(err)
	}
	if err := r.opts.Ledger.SetStatus(ctx, app.Name, app.Env, release.Version, ledger.StatusSucceeded, ""); err != nil {
		return nil, err
	}
	release.Status = ledger.StatusSucceeded
	r.publish(app, logs.SourceAPI, "api", fmt.Sprintf("Deployed v%d (%s) by %s", release.Version, release.Description, author))
	return &release, nil
}

// releasePhase runs the release command once, as a one-off dyno; a non-zero exit
// fails the release and the previous one keeps serving.
func (r *Reconciler) releasePhase(ctx context.Context, app *spec.App, release ledger.Release) error {
	dynoSpec := r.dynoSpec(app, release, "release", 1, release.ReleaseCommand, spec.Process{Size: defaultSize(app)})
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

// converge rolls the app's formation onto release: per process type it starts the
// missing dynos, waits until they are up, takes the old ones out of the router and
// stops them. A new dyno that does not come up stops the rollout with the old ones
// still serving.
func (r *Reconciler) converge(ctx context.Context, app *spec.App, release ledger.Release) error {
	running, err := r.appDynos(ctx, keyOf(app))
	if err != nil {
		return err
	}
	byType := map[string][]drivers.Dyno{}
	for _, d := range running {
		byType[d.Spec.Type] = append(byType[d.Spec.Type], d)
	}
	wantTypes := map[string]bool{}
	// Web first: it is what users wait on.
	processes := formation(app, release)
	slices.SortStableFunc(processes, func(a, b spec.Process) int {
		return boolRank(b.Type == "web") - boolRank(a.Type == "web")
	})
	for _, p := range processes {
		wantTypes[p.Type] = true
		command := release.ProcessTypes[p.Type]
		if command == "" && p.Count > 0 {
			return fmt.Errorf("process type %s of v%d has no command", p.Type, release.Version)
		}
		if err := r.rollType(ctx, app, release, p, command, byType[p.Type]); err != nil {
			return err
		}
	}
	var extra []drivers.Dyno
	for processType, dynos := range byType {
		if !wantTypes[processType] {
			extra = append(extra, dynos...)
		}
	}
	return r.stopDynos(ctx, app, extra)
}

// formation is the app's process types: the spec's, plus the release's Procfile types
// the spec does not name (a git source's Procfile is known only once fetched), which
// run as Heroku runs them on a first deploy: web 1, the others 0.
func formation(app *spec.App, release ledger.Release) []spec.Process {
	processes := slices.Clone(app.Processes)
	for processType := range release.ProcessTypes {
		if slices.ContainsFunc(processes, func(p spec.Process) bool { return p.Type == processType }) {
			continue
		}
		p := spec.Process{Type: processType, Size: defaultSize(app), StopTimeoutSeconds: spec.DefaultStopTimeoutSeconds}
		if processType == "web" {
			p.Count = 1
		}
		processes = append(processes, p)
	}
	slices.SortFunc(processes, func(a, b spec.Process) int { return strings.Compare(a.Type, b.Type) })
	return processes
}

func boolRank(b bool) int {
	if b {
		return 1
	}
	return 0
}

// rollType converges one process type.
func (r *Reconciler) rollType(ctx context.Context, app *spec.App, release ledger.Release, p spec.Process, command string, dynos []drivers.Dyno) error {
	slices.SortFunc(dynos, func(a, b drivers.Dyno) int { return a.Spec.Index - b.Spec.Index })
	var stale []drivers.Dyno
	kept := map[int]bool{}
	for _, d := range dynos {
		current := d.Spec.Release == release.Version && d.Spec.Size == p.Size && d.Spec.Command == command &&
			d.Spec.HealthCheck == p.HealthCheck && d.Spec.StopTimeout == stopTimeout(p)
		if current && d.Spec.Index >= 1 && d.Spec.Index <= p.Count && !kept[d.Spec.Index] {
			kept[d.Spec.Index] = true
			continue
		}
		stale = append(stale, d)
	}
	var started []drivers.Dyno
	for index := 1; index <= p.Count; index++ {
		if kept[index] {
			continue
		}
		dyno, err := r.opts.Driver.Start(ctx, r.dynoSpec(app, release, p.Type, index, command, p))
		if err != nil {
			_ = r.stopDynos(ctx, app, started)
			return fmt.Errorf("start %s of %s (%s) v%d: %w", drivers.DynoName(p.Type, index), app.Name, app.Env, release.Version, err)
		}
		started = append(started, dyno)
	}
	if len(started) > 0 {
		if err := r.waitUp(ctx, app, started); err != nil {
			_ = r.stopDynos(ctx, app, started)
			return err
		}
		r.publish(app, logs.SourceAPI, "api", fmt.Sprintf("Scaled %s to %d:%s on v%d", p.Type, p.Count, spec.SizeTitle(p.Size), release.Version))
	}
	return r.stopDynos(ctx, app, stale)
}

// waitUp waits until every dyno is up; a dyno that crashes with R10, or is not up by
// the boot timeout, fails the wait.
func (r *Reconciler) waitUp(ctx context.Context, app *spec.App, dynos []drivers.Dyno) error {
	deadline := time.Now().Add(r.opts.BootTimeout + 5*time.Second)
	ids := map[string]string{}
	for _, d := range dynos {
		ids[d.ID] = d.Name
	}
	for {
		listed, err := r.opts.Driver.List(ctx)
		if err != nil {
			return fmt.Errorf("list dynos: %w", err)
		}
		pending := 0
		for _, d := range listed {
			name, ours := ids[d.ID]
			if !ours {
				continue
			}
			switch d.State {
			case drivers.StateUp:
				continue
			case drivers.StateCrashed:
				if strings.Contains(d.Reason, "R10") || d.Spec.Type == "web" {
					return fmt.Errorf("%s of %s (%s) v%d crashed while booting: %s", name, app.Name, app.Env, d.Spec.Release, d.Reason)
				}
			}
			pending++
		}
		if seen := countIDs(listed, ids); seen < len(ids) {
			return fmt.Errorf("%d new dynos of %s (%s) vanished while booting", len(ids)-seen, app.Name, app.Env)
		}
		if pending == 0 {
			if err := r.refreshRoutes(ctx); err != nil {
				r.log.Warn("refresh routes", "err", err)
			}
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("boot timeout (R10): new dynos of %s (%s) were not up within %s", app.Name, app.Env, r.opts.BootTimeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(upPollInterval):
		}
	}
}

func countIDs(dynos []drivers.Dyno, ids map[string]string) int {
	n := 0
	for _, d := range dynos {
		if _, ok := ids[d.ID]; ok {
			n++
		}
	}
	return n
}

// stopDynos takes the dynos out of the router table first, so that no new request
// reaches them, then stops them all at once (each gets its SIGTERM grace).
func (r *Reconciler) stopDynos(ctx context.Context, app *spec.App, dynos []drivers.Dyno) error {
	if len(dynos) == 0 {
		return nil
	}
	r.mu.Lock()
	for _, d := range dynos {
		r.draining[d.ID] = true
	}
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		for _, d := range dynos {
			delete(r.draining, d.ID)
		}
		r.mu.Unlock()
	}()
	if err := r.refreshRoutes(ctx); err != nil {
		return err
	}
	var group errgroup.Group
	for _, d := range dynos {
		group.Go(func() error {
			if err := r.opts.Driver.Stop(ctx, d.ID); err != nil {
				return fmt.Errorf("stop %s of %s (%s) v%d: %w", d.Name, d.Spec.App, d.Spec.Env, d.Spec.Release, err)
			}
			return nil
		})
	}
	return group.Wait()
}

// appDynos lists the dynos of one app in one environment.
func (r *Reconciler) appDynos(ctx context.Context, key AppKey) ([]drivers.Dyno, error) {
	all, err := r.opts.Driver.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("list dynos: %w", err)
	}
	var out []drivers.Dyno
	for _, d := range all {
		if d.Spec.App == key.App && d.Spec.Env == key.Env {
			out = append(out, d)
		}
	}
	return out, nil
}

// prune stops the dynos of apps that no spec wants any more (Flux's prune); their
// ledgers are kept.
func (r *Reconciler) prune(ctx context.Context, wanted map[AppKey]bool) error {
	all, err := r.opts.Driver.List(ctx)
	if err != nil {
		return fmt.Errorf("list dynos: %w", err)
	}
	orphans := map[AppKey][]drivers.Dyno{}
	for _, d := range all {
		key := AppKey{Env: d.Spec.Env, App: d.Spec.App}
		if !wanted[key] && r.wantsEnv(key.Env) {
			orphans[key] = append(orphans[key], d)
		}
	}
	var errs []error
	for key, dynos := range orphans {
		app := &spec.App{Name: key.App, Env: key.Env}
		r.publish(app, logs.SourceAPI, "api", "App removed from the config repo: stopping its dynos (its releases are kept)")
		errs = append(errs, r.stopDynos(ctx, app, dynos))
		r.mu.Lock()
		delete(r.status.apps, key)
		r.mu.Unlock()
	}
	return errors.Join(errs...)
}

func (r *Reconciler) dynoSpec(app *spec.App, release ledger.Release, processType string, index int, command string, p spec.Process) drivers.DynoSpec {
	size, _ := spec.LookupSize(p.Size)
	return drivers.DynoSpec{
		App:         app.Name,
		Env:         app.Env,
		Type:        processType,
		Index:       index,
		Release:     release.Version,
		SlugKey:     release.SlugKey,
		SlugPath:    r.opts.Builder.SlugPath(release.SlugKey),
		Stack:       app.Stack,
		Command:     command,
		Config:      release.Config,
		Size:        p.Size,
		MemoryBytes: size.MemoryBytes,
		CPUShares:   size.CPUShares,
		HealthCheck: p.HealthCheck,
		StopTimeout: stopTimeout(p),
	}
}

func stopTimeout(p spec.Process) time.Duration {
	return time.Duration(p.StopTimeoutSeconds) * time.Second
}

func defaultSize(app *spec.App) string {
	for _, p := range app.Processes {
		if p.Size != "" {
			return p.Size
		}
	}
	return "standard-1x"
}

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
	slices.Sort(set)
	slices.Sort(removed)
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

// fingerprintOf hashes what makes a release: the code (source digest, buildpacks,
// stack) and the config and commands. Equal fingerprints need no new release.
func fingerprintOf(app *spec.App) string {
	commands := map[string]string{}
	for _, p := range app.Processes {
		commands[p.Type] = p.Command
	}
	payload, _ := json.Marshal(struct {
		Source         spec.Source
		Buildpacks     []string
		Stack          string
		Config         map[string]string
		Commands       map[string]string
		ReleaseCommand string
	}{app.Source, app.Buildpacks, app.Stack, app.Config, commands, app.ReleaseCommand})
	sum := sha256.Sum256(payload)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func currentOf(releases []ledger.Release) *ledger.Release {
	for i := range releases {
		if releases[i].Status == ledger.StatusSucceeded {
			return &releases[i]
		}
	}
	return nil
}

func (r *Reconciler) current(key AppKey) *ledger.Release {
	releases, err := r.opts.Ledger.List(key.App, key.Env)
	if err != nil {
		return nil
	}
	return currentOf(releases)
}

// setDrains hands the app's drains to the logplex, which changes only what changed:
// no dyno restarts for a drain change.
func (r *Reconciler) setDrains(app *spec.App, repoDir string) error {
	drains := make([]logs.DrainConfig, 0, len(app.Drains))
	for _, d := range app.Drains {
		cfg := logs.DrainConfig{Name: d.Name, URL: d.URL}
		if d.CA != "" {
			pem, err := os.ReadFile(filepath.Join(repoDir, filepath.FromSlash(d.CA)))
			if err != nil {
				return fmt.Errorf("drain %s of %s (%s): read ca: %w", d.Name, app.Name, app.Env, err)
			}
			cfg.CAPEM = pem
		}
		drains = append(drains, cfg)
	}
	if err := r.opts.Logs.SetDrains(app.Name, app.Env, drains); err != nil {
		return fmt.Errorf("drains of %s (%s): %w", app.Name, app.Env, err)
	}
	return nil
}
