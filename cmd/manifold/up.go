package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/manifold-paas/manifold/drivers"
	"github.com/manifold-paas/manifold/drivers/docker"
	"github.com/manifold-paas/manifold/logs"
	"github.com/manifold-paas/manifold/reconciler"
	"github.com/manifold-paas/manifold/reconciler/api"
	"github.com/manifold-paas/manifold/reconciler/api/tokens"
	"github.com/manifold-paas/manifold/reconciler/dashboard"
	"github.com/manifold-paas/manifold/reconciler/gc"
	"github.com/manifold-paas/manifold/reconciler/ledger"
	"github.com/manifold-paas/manifold/reconciler/metrics"
	"github.com/manifold-paas/manifold/reconciler/notify"
	"github.com/manifold-paas/manifold/reconciler/review"
	"github.com/manifold-paas/manifold/reconciler/secret"
	"github.com/manifold-paas/manifold/reconciler/slug"
	"github.com/manifold-paas/manifold/reconciler/source"
	"github.com/manifold-paas/manifold/router"
	"github.com/manifold-paas/manifold/spec"
)

// gcInterval is how often the daemon collects old slugs and build caches.
const gcInterval = 10 * time.Minute

// upOptions are the flags of `manifold up`.
type upOptions struct {
	repo, ref, path string
	envs            []string
	driver          string
	stateDir        string
	routerAddr      string
	apiAddr         string
	apiCert, apiKey string
	webhookAddr     string
	webhookSecret   string // a file's path
	interval        time.Duration
	bootTimeout     time.Duration
	tlsCert, tlsKey string
	tlsAddr         string
	stopDynosOnExit bool
	dockerInstance  string
	swarmSlugListen string
	swarmSlugURL    string
	// swarmRouterSources is ParseRouterSources' input: addresses, "none" or "".
	swarmRouterSources string
	metricsAddr        string
	dynoUser           string
	dashboardLogin     bool
	ageIdentity        string
	keyring            *secret.Keyring // loaded from ageIdentity by up
	verbose            bool
}

func newUpCmd() *cobra.Command {
	var o upOptions
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run the daemon: watch the config repo and keep dynos, router and drains equal to it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return up(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.repo, "repo", ".", "the config repo: a local folder (watched with fsnotify) or a git URL (file://, https://, ssh://)")
	f.StringVar(&o.ref, "ref", "", "the branch or tag to follow (git; default: the remote's HEAD)")
	f.StringVar(&o.path, "path", "", "the config repo's folder inside --repo")
	f.StringSliceVar(&o.envs, "env", nil, "run only these environments (repeatable; default: all)")
	f.StringVar(&o.driver, "driver", "process", "what runs dynos: process, docker or swarm")
	f.StringVar(&o.stateDir, "state", defaultStateDir, "the state directory (ledger, slugs, dynos, the API socket)")
	f.StringVar(&o.routerAddr, "router", "127.0.0.1:5000", "the router's HTTP address")
	f.StringVar(&o.tlsAddr, "router-tls", "", "the router's HTTPS address (HTTP/2), with --tls-cert and --tls-key")
	f.StringVar(&o.tlsCert, "tls-cert", "", "the router's TLS certificate (PEM)")
	f.StringVar(&o.tlsKey, "tls-key", "", "the router's TLS key (PEM)")
	f.StringVar(&o.apiAddr, "api", "", "also serve the API on this TCP address, bearer tokens required (default: only the socket <state>/manifold.sock)")
	f.StringVar(&o.apiCert, "api-tls-cert", "", "the TCP API's TLS certificate (PEM); required for a non-loopback --api")
	f.StringVar(&o.apiKey, "api-tls-key", "", "the TCP API's TLS key (PEM)")
	f.StringVar(&o.webhookAddr, "webhook", "", "serve the git webhook (POST /hooks/git) on this address, the one meant to be exposed")
	f.StringVar(&o.webhookSecret, "webhook-secret-file", "", "a file holding the webhook's shared secret; required for a non-loopback --webhook")
	f.DurationVar(&o.interval, "interval", time.Minute, "how often to fetch the repo and correct drift")
	f.DurationVar(&o.bootTimeout, "boot-timeout", 60*time.Second, "how long a web dyno has to bind $PORT (R10)")
	f.BoolVar(&o.stopDynosOnExit, "stop-dynos-on-exit", false, "stop every dyno when the daemon exits (default: leave them running, adopted on the next start)")
	f.StringVar(&o.dynoUser, "dyno-user", "", "process driver, daemon run as root: the user dynos run as (default manifold-dyno if it exists, else nobody; root keeps them root)")
	f.StringVar(&o.dockerInstance, "docker-instance", "default", "label value that keeps this daemon's containers apart from others on the engine")
	f.StringVar(&o.swarmSlugListen, "swarm-slug-listen", cmp.Or(os.Getenv("MANIFOLD_SWARM_SLUG_LISTEN"), defaultSwarmSlugListen), "swarm driver: where the slug server listens for the nodes (env MANIFOLD_SWARM_SLUG_LISTEN)")
	f.StringVar(&o.swarmSlugURL, "swarm-slug-url", os.Getenv("MANIFOLD_SWARM_SLUG_URL"), "swarm driver: the slug server's URL as the nodes reach it (env MANIFOLD_SWARM_SLUG_URL; default: the listen address, or for every interface this machine's address toward the manager)")
	f.StringVar(&o.swarmRouterSources, "swarm-router-sources", os.Getenv("MANIFOLD_SWARM_ROUTER_SOURCES"), "swarm driver: comma-separated addresses or prefixes the router reaches the nodes from; the nodes drop other connections to dynos' ports (env MANIFOLD_SWARM_ROUTER_SOURCES; default: the slug URL's host; none: set no firewall rules)")
	f.StringVar(&o.metricsAddr, "metrics", "", "serve Prometheus metrics at http://ADDR/metrics (default: off; the one-minute history for `manifold metrics` is always kept)")
	f.BoolVarP(&o.verbose, "verbose", "v", false, "debug logging")
	f.BoolVar(&o.dashboardLogin, "dashboard-login", false, "make a local deploy-scope token and print the dashboard's one-click login URL (needs --api)")
	f.StringVar(&o.ageIdentity, "age-identity", os.Getenv("MANIFOLD_AGE_IDENTITY"), "the age identity file that opens the config repo's secrets (env MANIFOLD_AGE_IDENTITY)")
	// `up` has its own --api and --state; hide the client's.
	cmd.SetHelpFunc(func(c *cobra.Command, args []string) {
		_ = c.InheritedFlags().MarkHidden("api")
		_ = c.InheritedFlags().MarkHidden("state")
		c.Parent().HelpFunc()(c, args)
	})
	return cmd
}

// up wires the packages together and runs until ctx ends.
func up(ctx context.Context, o upOptions, out io.Writer) error {
	level := slog.LevelInfo
	if o.verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	webhookSecret, err := checkListeners(o)
	if err != nil {
		return err
	}
	stateDir, err := filepath.Abs(o.stateDir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}

	if o.keyring, err = loadAgeIdentity(o.ageIdentity); err != nil {
		return err
	}
	plex := logs.New(logs.Options{Logger: logger})
	defer plex.Close()

	releases, err := ledger.Open(filepath.Join(stateDir, "ledger.db"))
	if err != nil {
		return err
	}
	defer releases.Close()

	store, err := slug.OpenStore(filepath.Join(stateDir, "slugs"))
	if err != nil {
		return err
	}
	builder := &slug.Builder{Store: store, Env: goCaches(stateDir)}

	driver, err := openDriver(ctx, o, stateDir, plex, logger)
	if err != nil {
		return err
	}
	defer driver.Close()
	if d, ok := driver.(*docker.Driver); ok {
		// Buildpacks run in offline build containers of the app's stack, not on the host.
		builder.Runner = d.BuildRunner()
	}

	src, err := openSource(o, stateDir, logger)
	if err != nil {
		return err
	}
	notifier, err := notify.Open(notify.Options{Path: filepath.Join(stateDir, "notify.db"), Logs: plex, Logger: logger, Secrets: o.keyring})
	if err != nil {
		return err
	}
	defer notifier.Close()
	reviews := &review.Manager{URL: reviewRepo(o.repo), Path: o.path, Dir: filepath.Join(stateDir, "review"), Log: logger}
	figures := metrics.New(metrics.Options{Dynos: driver, Drains: plex, Logger: logger})
	rt := router.New(router.Options{Logs: plex, Logger: logger, Metrics: figures})
	rec, err := reconciler.New(reconciler.Options{
		Source: src, Driver: driver, Builder: builder, Ledger: releases, Router: rt, Logs: plex, Metrics: figures,
		Envs: o.envs, Interval: o.interval, BootTimeout: o.bootTimeout, StateDir: stateDir, Logger: logger, Notifier: notifier,
		Secrets: o.keyring, Reviews: reviews,
	})
	if err != nil {
		return err
	}
	collector := &gc.Collector{Builder: builder, Ledger: releases, Dynos: driver, Spec: rec, Logger: logger}

	routerLn, err := net.Listen("tcp", o.routerAddr)
	if err != nil {
		return fmt.Errorf("router: %w", err)
	}
	defer routerLn.Close()
	cp, err := openControlPlane(o, webhookSecret, stateDir, api.Options{
		Daemon: rec, Logs: plex, Logger: logger,
		Routes: []api.Route{
			{Pattern: "GET /v1/apps/{app}/metrics", Scope: tokens.ScopeRead, Handler: figures.HistoryHandler()},
			{Pattern: "POST /v1/gc", Scope: tokens.ScopeAdmin, Handler: collector.Handler()},
			{Pattern: "GET /v1/review", Scope: tokens.ScopeRead, Handler: reviews.Handler()},
		},
	}, dashboard.Options{
		Daemon: rec, Dynos: driver, Logs: plex, History: figures, Logger: logger,
		DomainPort: routerPortSuffix(routerLn.Addr().String()),
	}, driver, func(reason string) {
		src.Trigger(reason)
		rec.Trigger(reason)
	}, notifier, figures)
	if err != nil {
		return err
	}
	defer cp.close()

	group, ctx := errgroup.WithContext(ctx)
	group.Go(func() error { return rt.Serve(ctx, routerLn) })
	if o.tlsAddr != "" {
		tlsLn, err := net.Listen("tcp", o.tlsAddr)
		if err != nil {
			return fmt.Errorf("router tls: %w", err)
		}
		group.Go(func() error { return rt.ServeTLS(ctx, tlsLn, o.tlsCert, o.tlsKey) })
	}
	cp.serve(ctx, group)
	group.Go(func() error { return src.Watch(ctx, rec.Trigger) })
	group.Go(func() error { return rec.Run(ctx) })
	group.Go(func() error { figures.Run(ctx); return nil })
	group.Go(func() error { collector.Run(ctx, gcInterval); return nil })
	if o.metricsAddr != "" {
		if err := serveMetrics(ctx, group, o.metricsAddr, figures.Handler()); err != nil {
			return err
		}
	}
	group.Go(func() error { return notifier.Run(ctx) })
	group.Go(func() error {
		printWelcome(ctx, out, rec, o, routerLn.Addr().String(), cp, stateDir)
		return nil
	})
	err = group.Wait()
	if o.stopDynosOnExit {
		stopAll(context.WithoutCancel(ctx), driver, logger)
	}
	return err
}

func openDriver(ctx context.Context, o upOptions, stateDir string, sink drivers.LogSink, logger *slog.Logger) (drivers.Driver, error) {
	switch o.driver {
	case "process":
		return openProcessDriver(ctx, o, filepath.Join(stateDir, "dynos"), sink, logger)
	case "docker":
		opts := docker.Options{
			Logs: sink, Logger: logger, BootTimeout: o.bootTimeout, Instance: o.dockerInstance,
			StateDir: filepath.Join(stateDir, "docker"),
		}
		// An engine that is down at start (booting with the machine, restarting) is
		// waited for, with the reason logged, instead of failing the daemon.
		for wait := time.Second; ; wait = min(2*wait, 30*time.Second) {
			driver, err := docker.New(ctx, opts)
			if !errors.Is(err, docker.ErrEngineUnreachable) {
				return driver, err
			}
			logger.Error("waiting for the Docker Engine", "err", err, "retry_in", wait)
			select {
			case <-ctx.Done():
				return nil, err
			case <-time.After(wait):
			}
		}
	case "swarm":
		return openSwarmDriver(ctx, o, sink, logger)
	}
	return nil, fmt.Errorf("--driver: want process, docker or swarm, got %q", o.driver)
}

// watchedSource is what up needs of a config repo source.
type watchedSource interface {
	reconciler.Source
	Watch(ctx context.Context, notify func(reason string)) error
	Trigger(reason string)
}

// reviewRepo is where review environments' refs are listed and fetched from: the
// config repo's URL, or its folder made absolute (git reads a local repository too).
func reviewRepo(repo string) string {
	if strings.Contains(repo, "://") || strings.HasPrefix(repo, "git@") {
		return repo
	}
	if abs, err := filepath.Abs(repo); err == nil {
		return abs
	}
	return repo
}

func openSource(o upOptions, stateDir string, logger *slog.Logger) (watchedSource, error) {
	if strings.Contains(o.repo, "://") || strings.HasPrefix(o.repo, "git@") {
		return source.NewGit(source.GitOptions{
			URL: o.repo, Ref: o.ref, Path: o.path, Dir: filepath.Join(stateDir, "config-repo"),
			Interval: o.interval, Logger: logger,
		})
	}
	dir, err := filepath.Abs(o.repo)
	if err != nil {
		return nil, err
	}
	return source.NewDir(source.DirOptions{Dir: dir, Path: o.path, Logger: logger})
}

// goCaches points the go buildpack at the machine's Go build cache, so that a first
// build reuses the standard library compiled for manifold itself instead of taking
// minutes per app, and at one module cache under the state dir shared by every app,
// so that a second app with the same dependencies downloads nothing. Both caches are
// content-addressed: sharing them is safe.
func goCaches(stateDir string) []string {
	modCache := "GOMODCACHE=" + filepath.Join(stateDir, "gomodcache")
	if dir := os.Getenv("GOCACHE"); dir != "" {
		return []string{"GOCACHE=" + dir, modCache}
	}
	if dir, err := os.UserCacheDir(); err == nil {
		return []string{"GOCACHE=" + filepath.Join(dir, "go-build"), modCache}
	}
	return []string{"GOCACHE=" + filepath.Join(stateDir, "gocache"), modCache}
}

// upHints are the commands printed once the repo has loaded, about one of its apps:
// the first web app (by environment, then name), else the first app.
func upHints(apps []spec.App) []string {
	hints := []string{"status"}
	if len(apps) > 0 {
		apps = slices.Clone(apps)
		slices.SortStableFunc(apps, func(a, b spec.App) int {
			return strings.Compare(a.Env+"\x00"+a.Name, b.Env+"\x00"+b.Name)
		})
		pick := apps[0]
		for _, app := range apps {
			if web, ok := app.Process("web"); ok && web.Count > 0 {
				pick = app
				break
			}
		}
		target := "-a " + pick.Name
		if pick.Env != spec.DefaultEnvironment {
			target += " -e " + pick.Env
		}
		hints = append(hints, "ps "+target, "logs "+target+" --tail", "releases "+target)
	}
	return append(hints, "plan --live")
}

// stopAll stops every dyno the driver runs (--stop-dynos-on-exit).
func stopAll(ctx context.Context, driver drivers.Driver, logger *slog.Logger) {
	dynos, err := driver.List(ctx)
	if err != nil {
		logger.Error("list dynos to stop", "err", err)
		return
	}
	var group errgroup.Group
	for _, d := range dynos {
		group.Go(func() error {
			if err := driver.Stop(ctx, d.ID); err != nil {
				logger.Error("stop dyno", "app", d.Spec.App, "env", d.Spec.Env, "dyno", d.Name, "err", err)
			}
			return nil
		})
	}
	_ = group.Wait()
}

// printWelcome says where to look once the first pass has loaded the repo.
func printWelcome(ctx context.Context, out io.Writer, rec *reconciler.Reconciler, o upOptions, routerAddr string, cp *controlPlane, stateDir string) {
	_, port, _ := net.SplitHostPort(routerAddr)
	fmt.Fprintf(out, "manifold is up: %s driver, state in %s\n", o.driver, stateDir)
	fmt.Fprintf(out, "  router  http://%s\n", routerAddr)
	for _, l := range cp.addrs() {
		fmt.Fprintf(out, "  %-7s %s\n", l[0], l[1])
	}
	fmt.Fprintf(out, "\nBuilding and starting the apps (a first build of a Go app takes a minute)...\n")
	deadline := time.NewTimer(15 * time.Minute)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		status := rec.Status()
		if !status.LastPass.IsZero() {
			if status.Error != "" {
				fmt.Fprintf(out, "\nThe config repo does not load:\n%s\n", indent(status.Error))
			}
			var hosts []string
			for _, app := range rec.Apps() {
				web, ok := app.Process("web")
				if !ok || web.Count == 0 || len(app.Domains) == 0 {
					continue // only apps that answer HTTP
				}
				hosts = append(hosts, fmt.Sprintf("  %-20s http://%s:%s", app.Name+" ("+app.Env+")", app.Domains[0], port))
			}
			slices.Sort(hosts)
			if len(hosts) > 0 {
				fmt.Fprintf(out, "\nApps:\n%s\n", strings.Join(hosts, "\n"))
			}
			// Name the binary as it was started (./bin/manifold under make run); the
			// CLI finds the socket in .manifold by default.
			self := os.Args[0]
			if o.stateDir != defaultStateDir {
				self += " --state " + o.stateDir
			}
			fmt.Fprintf(out, "\nTry, in another terminal:\n")
			for _, hint := range upHints(rec.Apps()) {
				fmt.Fprintf(out, "  %s %s\n", self, hint)
			}
			stop := "Ctrl-C stops manifold; its dynos keep running and the next `manifold up` adopts them."
			if o.stopDynosOnExit {
				stop = "Ctrl-C stops manifold and its dynos."
			}
			fmt.Fprintf(out, "\nEdit a spec or an app's source and watch it converge. %s\n", stop)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-deadline.C:
			return
		case <-tick.C:
		}
	}
}

// serveMetrics serves Prometheus' /metrics on addr until ctx ends. It holds no
// control: counters only, no app's config.
func serveMetrics(ctx context.Context, group *errgroup.Group, addr string, handler http.Handler) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", handler)
	server := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	group.Go(func() error {
		if err := server.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("metrics: %w", err)
		}
		return nil
	})
	group.Go(func() error {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		return server.Shutdown(shutdown)
	})
	return nil
}

// routerPortSuffix is ":PORT" of the router's address, "" for port 80: what app URLs
// need to reach it.
func routerPortSuffix(addr string) string {
	_, port, err := net.SplitHostPort(addr)
	if err != nil || port == "80" {
		return ""
	}
	return ":" + port
}
