package reconciler_test

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/manifold-paas/manifold/drivers"
	"github.com/manifold-paas/manifold/drivers/process"
	"github.com/manifold-paas/manifold/logs"
	"github.com/manifold-paas/manifold/reconciler"
	"github.com/manifold-paas/manifold/reconciler/ledger"
	"github.com/manifold-paas/manifold/reconciler/plan"
	"github.com/manifold-paas/manifold/reconciler/plan/plantest"
	"github.com/manifold-paas/manifold/reconciler/secret"
	"github.com/manifold-paas/manifold/reconciler/slug"
	"github.com/manifold-paas/manifold/spec"
)

// TestPlanIsWhatApplyDoes walks every field of spec.App and spec.Process (the shared
// mutations, proved complete in reconciler/plan): it deploys a base app on the real
// process driver, commits the mutation, plans it against what runs, applies it with a
// pass, and checks that the plan named an effect exactly when the daemon did
// something, and named what.
func TestPlanIsWhatApplyDoes(t *testing.T) {
	t.Parallel()
	for _, m := range plantest.Mutations() {
		if m.Mutate == nil {
			continue // identity fields: another app or type, covered by create/destroy and scale
		}
		t.Run(m.Field, func(t *testing.T) {
			t.Parallel()
			env := newProcessEnv(t)
			base := env.load()
			env.reconcile()
			before := env.observe()
			if got := before.dynos["web"]; len(got) != 1 {
				t.Fatalf("base app runs web dynos %v, want one", got)
			}

			mutated := base
			m.Mutate(&mutated)
			if mutated.Pin != nil {
				// A pin runs a slug of the store: one built from the other source.
				mutated.Pin.Slug = env.buildSlug("src/hello-v2")
			}
			env.writeApp(mutated)
			desired := env.load()
			observed, err := env.rec.Observed(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			planned := plan.Diff([]spec.App{desired}, observed)
			env.reconcile()
			after := env.observe()

			want := effectsOf(planned)
			got := before.diff(after)
			if !slices.Equal(got, want) {
				var text strings.Builder
				_ = planned.WriteText(&text)
				t.Errorf("the plan said %v, the daemon did %v; plan:\n%s", want, got, text.String())
			}
			if plan.FieldEffects()[m.Field] != plan.EffectNone && len(want) == 0 {
				t.Errorf("%s changed and the plan names nothing", m.Field)
			}
		})
	}
}

// processEnv is a reconciler on the real process driver over a config repo folder.
type processEnv struct {
	t      testing.TB
	repo   string
	source *folderSource
	router *recordingRouter
	logs   *drainRecorder
	ledger *ledger.Ledger
	store  *slug.Store
	rec    *reconciler.Reconciler
	driver drivers.Driver
	pass   int
}

// drainRecorder is the logplex, remembering each app's drains as last set.
type drainRecorder struct {
	*logs.Plex
	mu     sync.Mutex
	drains map[string]string
}

func (d *drainRecorder) SetDrains(app, env string, drains []logs.DrainConfig) error {
	d.mu.Lock()
	d.drains[env+"/"+app] = fmt.Sprint(drains)
	d.mu.Unlock()
	return d.Plex.SetDrains(app, env, drains)
}

const webCommand = "busybox httpd -f -p $PORT -h www"

func newProcessEnv(t testing.TB) *processEnv {
	t.Helper()
	keyring := testKeyring(t)
	return newDriverEnv(t, reconciler.Options{Secrets: keyring}, func(ctx context.Context, state string, sink drivers.LogSink) (drivers.Driver, error) {
		return process.New(ctx, process.Options{StateDir: filepath.Join(state, "dynos"), Logs: sink, BootTimeout: 20 * time.Second,
			OpenSecrets: reconciler.SecretOpener(keyring)})
	})
}

// newDriverEnv starts a reconciler with opts on the driver that newDriver makes, over a
// config repo holding the base app (one web dyno of busybox httpd).
func newDriverEnv(t testing.TB, opts reconciler.Options, newDriver func(ctx context.Context, state string, sink drivers.LogSink) (drivers.Driver, error)) *processEnv {
	t.Helper()
	state := t.TempDir()
	env := &processEnv{t: t, repo: t.TempDir(), router: &recordingRouter{}}
	env.source = &folderSource{dir: env.repo}
	for _, dir := range []string{"src/hello", "src/hello-v2"} {
		env.write(dir+"/www/index.html", "hello\n")
	}
	env.write("src/hello-v2/VERSION", "2\n")
	env.writeApp(spec.App{Name: "hello", Source: spec.Source{Path: "src/hello"}, Buildpacks: []string{"procfile"},
		Processes: []spec.Process{{Type: "web", Command: webCommand, Count: 1}}})

	var err error
	if env.ledger, err = ledger.Open(filepath.Join(state, "ledger.db")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { env.ledger.Close() })
	store, err := slug.OpenStore(filepath.Join(state, "slugs"))
	if err != nil {
		t.Fatal(err)
	}
	plex := logs.New(logs.Options{})
	t.Cleanup(plex.Close)
	env.logs = &drainRecorder{Plex: plex, drains: map[string]string{}}
	ctx, cancel := context.WithCancel(context.Background())
	env.driver, err = newDriver(ctx, state, plex)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	env.store = store
	opts.Source, opts.Driver, opts.Builder, opts.Ledger = env.source, env.driver, &slug.Builder{Store: store}, env.ledger
	opts.Router, opts.Logs, opts.StateDir, opts.BootTimeout, opts.Interval = env.router, env.logs, state, 20*time.Second, time.Hour
	env.rec, err = reconciler.New(opts)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- env.rec.Run(ctx) }()
	t.Cleanup(func() {
		dynos, err := env.driver.List(context.Background())
		if err != nil {
			t.Error(err)
		}
		for _, d := range dynos {
			if err := env.driver.Stop(context.Background(), d.ID); err != nil {
				t.Error(err)
			}
		}
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		if err := env.driver.Close(); err != nil {
			t.Error(err)
		}
	})
	return env
}

func (e *processEnv) write(name, content string) {
	e.t.Helper()
	path := filepath.Join(e.repo, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

// writeApp writes app back as the config repo's apps/hello.hcl and its source's
// Procfile (which holds the release command, the one field only a Procfile sets).
func (e *processEnv) writeApp(app spec.App) {
	e.t.Helper()
	var hcl strings.Builder
	hcl.WriteString(strings.Repeat("\n", max(app.Pos.Line-1, 0)))
	fmt.Fprintf(&hcl, "app %q {\n  source { path = %q }\n", app.Name, "../"+app.Source.Path)
	if app.Buildpacks != nil {
		fmt.Fprintf(&hcl, "  buildpacks = %s\n", hclList(app.Buildpacks))
	}
	if app.Stack != "" {
		fmt.Fprintf(&hcl, "  stack = %q\n", app.Stack)
	}
	if len(app.Config) > 0 {
		hcl.WriteString("  config = {\n")
		for _, k := range slices.Sorted(maps.Keys(app.Config)) {
			fmt.Fprintf(&hcl, "    %s = %q\n", k, app.Config[k])
		}
		hcl.WriteString("  }\n")
	}
	if len(app.Sensitive) > 0 {
		fmt.Fprintf(&hcl, "  sensitive = %s\n", hclList(app.Sensitive))
	}
	if len(app.Domains) > 1 {
		fmt.Fprintf(&hcl, "  domains = %s\n", hclList(app.Domains[1:])) // the first is <app>.<env>.<suffix>
	}
	if app.Suspend {
		hcl.WriteString("  suspend = true\n")
	}
	if app.BuildConfig != nil {
		fmt.Fprintf(&hcl, "  build_config = %s\n", hclList(app.BuildConfig))
	}
	procfile := ""
	for _, p := range app.Processes {
		fmt.Fprintf(&hcl, "  process %q {\n    command = %q\n    count = %d\n", p.Type, p.Command, p.Count)
		if p.Size != "" {
			fmt.Fprintf(&hcl, "    size = %q\n", p.Size)
		}
		if p.HealthCheck != "" {
			fmt.Fprintf(&hcl, "    health_check = %q\n", p.HealthCheck)
		}
		if p.StopTimeoutSeconds != 0 {
			fmt.Fprintf(&hcl, "    stop_timeout = %d\n", p.StopTimeoutSeconds)
		}
		hcl.WriteString("  }\n")
		procfile += p.Type + ": " + p.Command + "\n"
	}
	if app.ReleaseCommand != "" {
		procfile += "release: " + app.ReleaseCommand + "\n"
	}
	for _, d := range app.Drains {
		fmt.Fprintf(&hcl, "  drain %q { url = %q }\n", d.Name, d.URL)
	}
	hcl.WriteString("}\n")
	e.write("apps/hello.hcl", hcl.String())
	e.writeEnvironment(app)
	e.write(app.Source.Path+"/Procfile", procfile)
}

// writeEnvironment writes what only an environment file holds (secrets with their
// recipients, a release pin, the soak) as environments/default.hcl ("default" is
// the one environment), or removes the folder when there is none.
func (e *processEnv) writeEnvironment(app spec.App) {
	e.t.Helper()
	if app.Pin == nil && app.SoakSeconds == 0 && len(app.Secrets) == 0 {
		if err := os.RemoveAll(filepath.Join(e.repo, "environments")); err != nil {
			e.t.Fatal(err)
		}
		return
	}
	var hcl strings.Builder
	hcl.WriteString("environment \"default\" {\n")
	if len(app.Secrets) > 0 {
		fmt.Fprintf(&hcl, "  recipients = [%q]\n", plantest.Recipient)
	}
	if app.SoakSeconds != 0 {
		fmt.Fprintf(&hcl, "  soak = \"%ds\"\n", app.SoakSeconds)
	}
	if app.Pin != nil || len(app.Secrets) > 0 {
		fmt.Fprintf(&hcl, "  app %q {\n", app.Name)
		if len(app.Secrets) > 0 {
			hcl.WriteString("    secrets = {\n")
			for _, k := range slices.Sorted(maps.Keys(app.Secrets)) {
				fmt.Fprintf(&hcl, "      %s = %q\n", k, app.Secrets[k].Sealed)
			}
			hcl.WriteString("    }\n")
		}
		if app.Pin != nil {
			fmt.Fprintf(&hcl, "    release {\n      slug = %q\n      from = %q\n    }\n", app.Pin.Slug, app.Pin.From)
		}
		hcl.WriteString("  }\n")
	}
	hcl.WriteString("}\n")
	e.write("environments/default.hcl", hcl.String())
}

// buildSlug builds the folder of the config repo into the env's slug store, as
// another environment would have, and returns its key.
func (e *processEnv) buildSlug(dir string) string {
	e.t.Helper()
	e.write(dir+"/Procfile", "web: "+webCommand+"\n")
	built, err := (&slug.Builder{Store: e.store}).Build(context.Background(), slug.Request{
		App: "hello", SourceDir: filepath.Join(e.repo, dir), Buildpacks: []string{"procfile"}, Stack: spec.DefaultStack,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return built.Key
}

// testKeyring opens what plantest's Secrets mutation seals.
func testKeyring(t testing.TB) *secret.Keyring {
	t.Helper()
	keyring, err := secret.ParseKeyring(strings.NewReader(plantest.Identity + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	return keyring
}

func hclList(items []string) string {
	quoted := make([]string, len(items))
	for i, item := range items {
		quoted[i] = fmt.Sprintf("%q", item)
	}
	return "[" + strings.Join(quoted, ", ") + "]"
}

// load loads the config repo as the loop does and returns the app.
func (e *processEnv) load() spec.App {
	e.t.Helper()
	desired, diags := spec.Load(os.DirFS(e.repo), spec.LoadOptions{})
	if len(diags) > 0 {
		e.t.Fatalf("the config repo does not load:\n%v", diags)
	}
	if len(desired.Apps) != 1 {
		e.t.Fatalf("want one app, got %d", len(desired.Apps))
	}
	return desired.Apps[0]
}

// reconcile commits the folder as a new revision and runs one pass.
func (e *processEnv) reconcile() {
	e.t.Helper()
	e.pass++
	e.source.commit(fmt.Sprintf("%040d", e.pass), "alice@example.com")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := e.rec.Reconcile(ctx, ""); err != nil {
		e.t.Fatal(err)
	}
	for _, s := range e.rec.Status().Apps {
		if s.State == reconciler.StateStalled {
			e.t.Fatalf("%s stalled: %s", s.App, s.Reason)
		}
	}
}

// world is what the daemon shows of an app: its releases, dynos (ids by type), hosts,
// drains and whether it is suspended.
type world struct {
	releases  int
	dynos     map[string][]string
	hosts     string
	drains    string
	suspended bool
}

func (e *processEnv) observe() world {
	e.t.Helper()
	w := world{dynos: map[string][]string{}}
	_, releases, err := e.rec.Releases("hello", "default")
	if err != nil {
		e.t.Fatal(err)
	}
	w.releases = len(releases)
	dynos, err := e.driver.List(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	for _, d := range dynos {
		w.dynos[d.Spec.Type] = append(w.dynos[d.Spec.Type], d.ID)
	}
	for _, ids := range w.dynos {
		slices.Sort(ids)
	}
	e.router.mu.Lock()
	w.hosts = fmt.Sprint(slices.Sorted(maps.Keys(e.router.table.Hosts)))
	e.router.mu.Unlock()
	e.logs.mu.Lock()
	w.drains = e.logs.drains["default/hello"]
	e.logs.mu.Unlock()
	for _, s := range e.rec.Status().Apps {
		w.suspended = s.Suspended
	}
	return w
}

// diff names what the daemon did between two observations, in the plan's words: a
// new release (which replaces every dyno, so restarts are not named beside it), a
// restart or scale of a type, router, drains, suspend.
func (w world) diff(after world) []string {
	var did []string
	if after.releases != w.releases {
		did = append(did, "new release")
	}
	for _, typ := range slices.Sorted(maps.Keys(mergeKeys(w.dynos, after.dynos))) {
		from, to := w.dynos[typ], after.dynos[typ]
		switch {
		case len(from) != len(to):
			did = append(did, "scale "+typ)
		case !slices.Equal(from, to) && after.releases == w.releases:
			did = append(did, "restart "+typ)
		}
	}
	if after.hosts != w.hosts {
		did = append(did, "router")
	}
	if after.drains != w.drains {
		did = append(did, "drains")
	}
	if after.suspended != w.suspended {
		did = append(did, "suspend")
	}
	slices.Sort(did)
	return did
}

func mergeKeys(a, b map[string][]string) map[string]bool {
	out := map[string]bool{}
	for k := range a {
		out[k] = true
	}
	for k := range b {
		out[k] = true
	}
	return out
}

// effectsOf is the plan's effects in the same words, restarts folded into a release.
func effectsOf(p plan.Plan) []string {
	var out []string
	release := p.Changes != nil && plan.NeedsRelease(p.Changes)
	for _, c := range p.Changes {
		if release && c.Effect == plan.EffectRestart {
			continue
		}
		if s := c.EffectString(); !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}
