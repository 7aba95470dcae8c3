package reconciler

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/manifold-paas/manifold/drivers"
	"github.com/manifold-paas/manifold/logs"
	"github.com/manifold-paas/manifold/reconciler/ledger"
	"github.com/manifold-paas/manifold/reconciler/notify"
	"github.com/manifold-paas/manifold/reconciler/plan"
	"github.com/manifold-paas/manifold/spec"
)

// ErrUnknownApp is returned for an app or environment that the loaded spec lacks.
var ErrUnknownApp = errors.New("no such app")

// lookup returns the loaded spec of an app; env may be empty when the app runs in one
// environment only.
func (r *Reconciler) lookup(name, env string) (spec.App, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var found []spec.App
	for _, app := range slices.Concat(r.desired, r.reviews) {
		if app.Name == name && (env == "" || app.Env == env) && r.wantsEnv(app.Env) {
			found = append(found, app)
		}
	}
	switch len(found) {
	case 0:
		if env == "" {
			return spec.App{}, fmt.Errorf("%w: %s", ErrUnknownApp, name)
		}
		return spec.App{}, fmt.Errorf("%w: %s in environment %s", ErrUnknownApp, name, env)
	case 1:
		return found[0], nil
	default:
		return spec.App{}, fmt.Errorf("app %s runs in several environments: name one with -e", name)
	}
}

// Dynos returns the dynos of an app (ps), with the resolved environment.
func (r *Reconciler) Dynos(ctx context.Context, name, env string) (spec.App, []drivers.Dyno, error) {
	app, err := r.lookup(name, env)
	if err != nil {
		return app, nil, err
	}
	if release := r.current(plan.KeyOf(&app)); release != nil {
		// ps shows the formation and commands of the release that runs.
		app.Processes = formation(&app, *release)
		for i, p := range app.Processes {
			if command := release.ProcessTypes[p.Type]; command != "" {
				app.Processes[i].Command = command
			}
		}
	}
	dynos, err := r.appDynos(ctx, plan.KeyOf(&app))
	for i := range dynos {
		dynos[i].Spec = maskDynoSpec(dynos[i].Spec, app.Sensitive)
	}
	return app, dynos, err
}

// Releases returns an app's releases, newest first.
func (r *Reconciler) Releases(name, env string) (spec.App, []ledger.Release, error) {
	app, err := r.lookup(name, env)
	if err != nil {
		if kept, ok := r.keptReviewReleases(name, env); ok {
			return spec.App{Name: name, Env: env}, kept, nil
		}
		return app, nil, err
	}
	releases, err := r.opts.Ledger.List(app.Name, app.Env)
	for i := range releases {
		releases[i] = maskRelease(releases[i], app.Sensitive)
	}
	return app, releases, err
}

// errNoRelease is returned by Run for an app that has never been released.
var errNoRelease = errors.New("no release to run")

// Rollback appends a copy of release `to` and rolls the formation onto it. The app
// stays pinned there until a commit changes it.
func (r *Reconciler) Rollback(ctx context.Context, name, env string, to int, author string) (ledger.Release, error) {
	r.passMu.Lock()
	defer r.passMu.Unlock()
	app, err := r.lookup(name, env)
	if err != nil {
		return ledger.Release{}, err
	}
	if app.Source.Git != "" {
		if err := r.resolveGitSource(ctx, &app); err != nil {
			return ledger.Release{}, err
		}
	}
	if err := r.slugCollected(app.Name, app.Env, to); err != nil {
		return ledger.Release{}, fmt.Errorf("roll back %s (%s) to v%d: %w", app.Name, app.Env, to, err)
	}
	release, err := r.opts.Ledger.Rollback(ctx, app.Name, app.Env, to, author, plan.Fingerprint(&app))
	if err != nil {
		return ledger.Release{}, fmt.Errorf("roll back %s (%s) to v%d: %w", app.Name, app.Env, to, err)
	}
	r.publish(&app, logs.SourceAPI, "api", fmt.Sprintf("Rollback to v%d by %s (v%d)", to, author, release.Version))
	// Heroku runs the release phase of a rollback too: the old code may need its
	// migrations undone, and a failing one leaves the current release serving.
	err = nil
	if release.ReleaseCommand != "" {
		err = r.releasePhase(ctx, &app, release)
	}
	if err == nil {
		err = r.converge(ctx, &app, release)
	}
	if err != nil {
		// Recorded even when the caller went away (ctx): a release left pending looks
		// like one cut short by a restart, and the pin would outlive the rollback.
		record := context.WithoutCancel(ctx)
		r.opts.Metrics.Release(app.Name, app.Env, release.Version, release.SlugKey, string(ledger.StatusFailed))
		if serr := r.opts.Ledger.SetStatus(record, app.Name, app.Env, release.Version, ledger.StatusFailed, err.Error()); serr != nil {
			r.log.Error("mark rollback failed", "app", app.Name, "env", app.Env, "release", release.Version, "err", serr)
		}
		if uerr := r.opts.Ledger.Unpin(record, app.Name, app.Env); uerr != nil {
			r.log.Error("unpin failed rollback", "app", app.Name, "env", app.Env, "release", release.Version, "err", uerr)
		}
		r.publish(&app, logs.SourceAPI, "api", fmt.Sprintf("Release v%d failed: %s", release.Version, err))
		return maskRelease(release, app.Sensitive), fmt.Errorf("roll back %s (%s) to v%d: %w", app.Name, app.Env, to, err)
	}
	if release.Status != ledger.StatusSucceeded {
		if err := r.opts.Ledger.SetStatus(ctx, app.Name, app.Env, release.Version, ledger.StatusSucceeded, ""); err != nil {
			return maskRelease(release, app.Sensitive), err
		}
		release.Status = ledger.StatusSucceeded
	}
	r.opts.Metrics.Release(app.Name, app.Env, release.Version, release.SlugKey, string(ledger.StatusSucceeded))
	r.opts.Metrics.Running(app.Name, app.Env, release.Version, release.SlugKey)
	r.setAppStatus(plan.KeyOf(&app), func(s *AppStatus) {
		s.Release, s.PinnedTo, s.State, s.Reason = release.Version, release.Version, StateReady, ""
	})
	r.notify(ctx, notify.RollbackEvent(app.Name, app.Env, to, release.Version, author))
	_ = r.refreshRoutes(ctx)
	return maskRelease(release, app.Sensitive), nil
}

// OneOff is a `manifold run`: a command in a one-off dyno of the app's current release.
type OneOff struct {
	App, Env string
	Command  string
	Stdin    io.Reader
	Stdout   io.Writer
	Stderr   io.Writer
	// Terminal runs the one-off on a pseudo-terminal of that size (its output all
	// goes to Stdout); Term is then its TERM (default xterm).
	Terminal *drivers.TerminalSize
	Term     string
	// Author is who asked for it (an API token's name or a local user), for the log.
	Author string
}

// CommandLine turns the arguments a user typed into the command line a dyno's shell
// runs, as Heroku's CLI does: one argument is the command line itself (`manifold run
// "rake db:migrate && rake seed"`), several are each kept whole: an argument that is
// not plain (spaces, quotes, $, ;, globs, an empty string) is single-quoted, so the
// dyno's shell sees exactly the words the user's shell produced.
func CommandLine(args []string) string {
	if len(args) == 1 {
		return args[0]
	}
	words := make([]string, len(args))
	for i, arg := range args {
		words[i] = shellQuote(arg)
	}
	return strings.Join(words, " ")
}

// shellQuote quotes arg for a POSIX shell unless every byte is one no shell treats
// specially.
func shellQuote(arg string) string {
	plain := arg != ""
	for _, c := range []byte(arg) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-_./:=@%+,", c) >= 0) {
			plain = false
			break
		}
	}
	if plain {
		return arg
	}
	return "'" + strings.ReplaceAll(arg, "'", `'\''`) + "'"
}

// RunOneOff runs a one-off dyno (run.N) of the current release and returns its exit code.
// It never restarts.
func (r *Reconciler) RunOneOff(ctx context.Context, oneOff OneOff) (int, error) {
	app, err := r.lookup(oneOff.App, oneOff.Env)
	if err != nil {
		return 0, err
	}
	release := r.current(plan.KeyOf(&app))
	if release == nil {
		return 0, fmt.Errorf("%w: %s (%s) has no release yet", errNoRelease, app.Name, app.Env)
	}
	r.mu.Lock()
	r.oneOffs++
	index := r.oneOffs
	r.mu.Unlock()
	dynoSpec, err := r.dynoSpec(&app, *release, "run", index, oneOff.Command, spec.Process{Size: defaultSize(&app)})
	if err != nil {
		return 0, err
	}
	name := dynoSpec.Name()
	r.publish(&app, logs.SourceAPI, "api", fmt.Sprintf("Starting process with command `%s` (%s) on v%d%s", oneOff.Command, name, release.Version, byAuthor(oneOff.Author)))
	if oneOff.Terminal != nil {
		term := cmp.Or(oneOff.Term, "xterm")
		dynoSpec.Config = maps.Clone(dynoSpec.Config)
		if dynoSpec.Config == nil {
			dynoSpec.Config = map[string]string{}
		}
		dynoSpec.Config["TERM"] = term
	}
	code, err := r.opts.Driver.Run(ctx, drivers.OneOff{DynoSpec: dynoSpec, Stdin: oneOff.Stdin, Stdout: oneOff.Stdout, Stderr: oneOff.Stderr, Terminal: oneOff.Terminal})
	if err != nil {
		return code, fmt.Errorf("run %s of %s (%s) v%d: %w", name, app.Name, app.Env, release.Version, err)
	}
	r.publish(&app, logs.SourceHeroku, name, fmt.Sprintf("Process exited with status %d", code))
	return code, nil
}

// byAuthor is " by author", or nothing when nobody is named.
func byAuthor(author string) string {
	if author == "" {
		return ""
	}
	return " by " + author
}
