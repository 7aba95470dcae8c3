package reconciler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/manifold-paas/manifold/drivers"
	"github.com/manifold-paas/manifold/logs"
	"github.com/manifold-paas/manifold/reconciler/ledger"
	"github.com/manifold-paas/manifold/reconciler/notify"
	"github.com/manifold-paas/manifold/reconciler/plan"
	"github.com/manifold-paas/manifold/reconciler/secret"
	"github.com/manifold-paas/manifold/reconciler/slug"
	"github.com/manifold-paas/manifold/reconciler/source"
	"github.com/manifold-paas/manifold/router"
	"github.com/manifold-paas/manifold/spec"
)

// Source yields snapshots of the config repo (reconciler/source's git and folder sources).
type Source interface {
	Fetch(ctx context.Context) (source.Snapshot, error)
}

// Builder builds slugs, at most once per slug key, finds stored ones, and says where
// a slug's tarball is (reconciler/slug).
type Builder interface {
	Build(ctx context.Context, req slug.Request) (slug.Slug, error)
	SlugPath(key string) string
	// Lookup returns a slug of the store without building (a pinned release); its
	// errors wrap slug.ErrUnknownSlug when the store does not hold it.
	Lookup(key string) (slug.Slug, error)
}

// Ledger is the append-only release ledger (reconciler/ledger).
type Ledger interface {
	Append(ctx context.Context, release ledger.Release) (ledger.Release, error)
	SetStatus(ctx context.Context, app, env string, version int, status ledger.Status, reason string) error
	List(app, env string) ([]ledger.Release, error)
	Rollback(ctx context.Context, app, env string, to int, author, specDigest string) (ledger.Release, error)
	Pinned(app, env string) (version int, ok bool)
	Unpin(ctx context.Context, app, env string) error
}

// Router takes a new routing table atomically (router.Router).
type Router interface {
	Swap(table router.Table)
}

// Logs is the logplex: it takes every line and the drains of each app.
type Logs interface {
	Publish(line logs.Line)
	SetDrains(app, env string, drains []logs.DrainConfig) error
}

// Metrics records what the loop does (reconciler/metrics); nil records nothing.
type Metrics interface {
	Build(took time.Duration)
	Pass(took time.Duration)
	// Release counts a release's outcome: "succeeded" or "failed".
	Release(app, env string, version int, slug, status string)
	// Running records the release an app runs, after every pass and rollback.
	Running(app, env string, version int, slug string)
	DynoEvent(ev drivers.Event)
}

type noMetrics struct{}

func (noMetrics) Build(time.Duration)                         {}
func (noMetrics) Pass(time.Duration)                          {}
func (noMetrics) Release(string, string, int, string, string) {}
func (noMetrics) Running(string, string, int, string)         {}
func (noMetrics) DynoEvent(drivers.Event)                     {}

// Options configure a Reconciler. Source, Driver, Builder, Ledger, Router and Logs are
// required.
type Options struct {
	Source  Source
	Driver  drivers.Driver
	Builder Builder
	Ledger  Ledger
	Router  Router
	Logs    Logs
	// Metrics records builds, passes, releases and dyno events (optional).
	Metrics Metrics
	// Envs limits the environments this daemon runs; empty means all.
	Envs []string
	// Interval is how often the source is fetched and drift corrected (default 1 m, ±10%
	// jitter). A webhook or `manifold reconcile` triggers a pass at once.
	Interval time.Duration
	// BootTimeout is how long a new web dyno may take to be up (default 60 s) before
	// the deploy stops with the old dynos serving.
	BootTimeout time.Duration
	// ReleaseTimeout bounds the release phase (default 1 h, Heroku's limit): a release
	// command that hangs fails its release instead of holding every pass.
	ReleaseTimeout time.Duration
	// MaxConcurrentStarts bounds how many dynos of one process type start at once in a
	// scale-up or a rollout (default 8): a container engine creates them well in
	// parallel, but not without limit on a small host.
	MaxConcurrentStarts int
	// Secrets opens the apps' sealed secrets when a release is made and when a dyno
	// starts; nil has no identity, so an app with secrets stalls saying so.
	Secrets Secrets
	// Reviews runs the review environments of the config repo's refs
	// (reconciler/review.Manager); nil runs none.
	Reviews Reviews
	// StateDir holds the app sources cloned from git.
	StateDir string
	Logger   *slog.Logger
	// Notifier, when set, gets the loop's events (reconciler/notify).
	Notifier Notifier
}

// Reconciler keeps the running world equal to the config repo. Run owns its loop;
// the other methods are safe to call concurrently from the API.
type Reconciler struct {
	opts    Options
	log     *slog.Logger
	trigger chan request
	applied *appliedStore // what each app last converged to, for LivePlan

	// passMu serialises the loop's passes with rollbacks from the API.
	passMu sync.Mutex

	mu       sync.Mutex
	status   Status
	desired  []spec.App    // the last spec that loaded
	platform spec.Platform // its platform settings
	reviews  []spec.App    // the apps of the review environments the last pass ran
	snapshot source.Snapshot
	draining map[string]bool         // dyno ids leaving the router table before they stop
	failed   map[plan.AppKey]failure // specs whose deploy failed: not retried until they change or a forced pass
	oneOffs  int                     // run.N counter

	// reviewMarks are the ledger marks of the review environments the last pass
	// ran, by environment name (reviewmark.go).
	reviewMarks map[string]ledger.Review

	// routesAsked numbers route refreshes as they start; routesSwapped is the newest
	// one swapped in (see refreshRoutes).
	routesAsked, routesSwapped uint64
}

// request asks the loop for a pass: of every app, or one app forced past a failure.
type request struct {
	reason string
	app    string
	force  bool
	done   chan struct{}
}

// New returns a Reconciler; Run starts it.
func New(opts Options) (*Reconciler, error) {
	if opts.Source == nil || opts.Driver == nil || opts.Builder == nil || opts.Ledger == nil ||
		opts.Router == nil || opts.Logs == nil {
		return nil, errors.New("reconciler: Source, Driver, Builder, Ledger, Router and Logs are required")
	}
	if opts.Interval <= 0 {
		opts.Interval = time.Minute
	}
	if opts.BootTimeout <= 0 {
		opts.BootTimeout = 60 * time.Second
	}
	if opts.MaxConcurrentStarts <= 0 {
		opts.MaxConcurrentStarts = defaultMaxConcurrentStarts
	}
	if opts.ReleaseTimeout <= 0 {
		opts.ReleaseTimeout = time.Hour
	}
	if opts.Secrets == nil {
		opts.Secrets = (*secret.Keyring)(nil)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Metrics == nil {
		opts.Metrics = noMetrics{}
	}
	if opts.StateDir == "" {
		dir, err := os.MkdirTemp("", "manifold-reconciler-")
		if err != nil {
			return nil, err
		}
		opts.StateDir = dir
	}
	applied, err := openApplied(opts.StateDir)
	if err != nil {
		return nil, err
	}
	return &Reconciler{
		applied:  applied,
		opts:     opts,
		log:      opts.Logger,
		trigger:  make(chan request, 16),
		draining: map[string]bool{},
		failed:   map[plan.AppKey]failure{},
	}, nil
}

// Trigger asks for a pass now (a webhook, a source change). It never blocks: passes
// asked for while one runs are merged into the next.
func (r *Reconciler) Trigger(reason string) {
	select {
	case r.trigger <- request{reason: reason}:
	default:
	}
}

// Reconcile runs a pass now and waits for it; app, when set, is retried even after a
// failed rollout of the same spec (`manifold reconcile -a APP`).
func (r *Reconciler) Reconcile(ctx context.Context, app string) error {
	req := request{reason: "manifold reconcile", app: app, force: app != "", done: make(chan struct{})}
	select {
	case r.trigger <- req:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-req.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	if app != "" && !slices.ContainsFunc(r.Apps(), func(a spec.App) bool { return a.Name == app }) {
		// A typo would otherwise "reconcile" nothing and say it did.
		return fmt.Errorf("%w: %s", ErrUnknownApp, app)
	}
	return nil
}

// Run reconciles until ctx ends: at start, on every Trigger, on every driver event
// that changes what the router should see, and on the interval.
func (r *Reconciler) Run(ctx context.Context) error {
	events := r.opts.Driver.Events()
	timer := time.NewTimer(0)
	defer timer.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.watchEvents(ctx, events)
	}()
	for {
		var req request
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
			req = request{reason: "interval"}
		case req = <-r.trigger:
		}
		r.passMu.Lock()
		r.pass(ctx, req)
		r.passMu.Unlock()
		if req.done != nil {
			close(req.done)
		}
		// Jitter spreads the fetches of many daemons watching one repo.
		timer.Reset(jitter(r.opts.Interval))
	}
}

func jitter(d time.Duration) time.Duration {
	return d + time.Duration((rand.Float64()*0.2-0.1)*float64(d))
}

// watchEvents keeps the router table current as dynos come up and crash between passes.
func (r *Reconciler) watchEvents(ctx context.Context, events <-chan drivers.Event) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				return
			}
			r.opts.Metrics.DynoEvent(ev)
			r.log.Debug("dyno event", "app", ev.Dyno.Spec.App, "env", ev.Dyno.Spec.Env,
				"dyno", ev.Dyno.Name, "from", ev.From, "to", ev.To, "code", ev.Code)
			r.notify(ctx, notify.DynoEvents(ev)...)
			if err := r.refreshRoutes(ctx); err != nil {
				r.log.Warn("refresh routes", "err", err)
			}
		}
	}
}

// pass is one reconcile: fetch, load, and converge every app.
func (r *Reconciler) pass(ctx context.Context, req request) {
	started := time.Now()
	desired, snapshot, loadErr := r.load(ctx)
	r.mu.Lock()
	if loadErr != nil {
		r.status.Error = loadErr.Error()
		r.status.ErrorRevision = snapshot.Rev
		desired = r.desired // the last good spec keeps running
		snapshot = r.snapshot
	} else {
		r.status.Error = ""
		r.status.ErrorRevision = source.Revision{}
		r.desired, r.snapshot = desired, snapshot
	}
	r.status.Revision = r.snapshot.Rev
	r.mu.Unlock()
	if loadErr != nil {
		r.log.Error("load config repo", "err", loadErr)
	}
	r.notify(ctx, notify.SpecLoadedEvent(snapshot.Rev.ID, loadErr))
	if r.snapshot.Dir == "" {
		// Nothing has ever loaded: the pass ends here, and says so.
		r.mu.Lock()
		r.status.LastPass, r.status.LastPassReason = time.Now(), req.reason
		r.mu.Unlock()
		return
	}
	wanted := map[plan.AppKey]bool{}
	for i := range desired {
		// A copy: the pass writes a git source's commit into it, while the API reads
		// r.desired (the same array) under r.mu.
		app := &spec.App{}
		*app = desired[i]
		if !r.wantsEnv(app.Env) {
			continue
		}
		wanted[plan.KeyOf(app)] = true
		if req.app != "" && req.app != app.Name && req.force {
			continue
		}
		if err := ctx.Err(); err != nil {
			return
		}
		r.reconcileApp(ctx, app, snapshot, req.force && req.app == app.Name)
	}
	r.syncReviews(ctx, wanted)
	if err := r.prune(ctx, wanted); err != nil {
		r.log.Error("prune", "err", err)
	}
	if err := r.refreshRoutes(ctx); err != nil {
		r.log.Error("refresh routes", "err", err)
	}
	if err := r.applied.keep(func(key plan.AppKey) bool { return wanted[key] || !r.wantsEnv(key.Env) }); err != nil {
		r.log.Error("forget removed apps", "err", err)
	}
	r.mu.Lock()
	for key := range r.status.apps {
		if !wanted[key] {
			delete(r.status.apps, key) // gone from the spec (prune drops those with dynos)
		}
	}
	r.status.LastPass = time.Now()
	r.status.LastPassReason = req.reason
	r.mu.Unlock()
	r.opts.Metrics.Pass(time.Since(started))
	r.log.Debug("pass done", "reason", req.reason, "took", time.Since(started))
}

func (r *Reconciler) wantsEnv(env string) bool {
	return len(r.opts.Envs) == 0 || slices.Contains(r.opts.Envs, env)
}

// Platform returns the platform settings of the last spec that loaded (the zero
// Platform before one has).
func (r *Reconciler) Platform() spec.Platform {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.platform
}

// load fetches the config repo and loads its spec; an error names the commit and
// every file:line:col problem.
func (r *Reconciler) load(ctx context.Context) ([]spec.App, source.Snapshot, error) {
	snapshot, err := r.opts.Source.Fetch(ctx)
	if err != nil {
		return nil, snapshot, fmt.Errorf("fetch config repo: %w", err)
	}
	desired, diags := spec.Load(os.DirFS(snapshot.Dir), spec.LoadOptions{})
	if len(diags) > 0 {
		return nil, snapshot, fmt.Errorf("config repo at %s does not load:\n%w", snapshot.Rev.Short(), diags)
	}
	r.mu.Lock()
	r.platform = desired.Platform
	r.mu.Unlock()
	r.configureNotify(desired)
	return desired.Apps, snapshot, nil
}
