package reconciler_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/manifold-paas/manifold/drivers"
	"github.com/manifold-paas/manifold/logs"
	"github.com/manifold-paas/manifold/reconciler"
	"github.com/manifold-paas/manifold/reconciler/ledger"
	"github.com/manifold-paas/manifold/reconciler/plan"
	"github.com/manifold-paas/manifold/reconciler/slug"
	"github.com/manifold-paas/manifold/reconciler/source"
	"github.com/manifold-paas/manifold/router"
)

func sortStrings(s []string) { slices.Sort(s) }

// folderSource hands out one folder as the config repo at a revision the test sets.
type folderSource struct {
	mu  sync.Mutex
	dir string
	rev source.Revision
}

func (s *folderSource) Fetch(context.Context) (source.Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return source.Snapshot{Rev: s.rev, Dir: s.dir, Root: s.dir}, nil
}

func (s *folderSource) commit(id, author string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rev = source.Revision{ID: id, Message: "commit " + id, Author: author, Time: time.Now()}
}

// recordingRouter keeps the last table swapped in.
type recordingRouter struct {
	mu    sync.Mutex
	table router.Table
}

func (r *recordingRouter) Swap(t router.Table) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.table = t
}

func (r *recordingRouter) addrs(host string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	if route := r.table.Hosts[host]; route != nil {
		for _, b := range route.Backends {
			out = append(out, b.Addr)
		}
	}
	return out
}

func (r *recordingRouter) backends(host string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	route := r.table.Hosts[host]
	if route == nil {
		return nil
	}
	var out []string
	for _, b := range route.Backends {
		out = append(out, b.Dyno)
	}
	return out
}

type harness struct {
	t       *testing.T
	repo    string
	source  *folderSource
	driver  *fakeDriver
	router  *recordingRouter
	logs    *logs.Plex
	ledger  *ledger.Ledger
	rec     *reconciler.Reconciler
	notes   *noteRecorder
	commits int
}

const helloSpec = `app "hello" {
  source { path = "../src/hello" }
  buildpacks = ["procfile"]
  config = { GREETING = "hi" }
  process "web" { count = %WEB% }
  process "worker" { count = 1 }
}
`

// newHarness starts a reconciler on a config repo holding apps/hello.hcl: helloSpec
// with one web dyno, or appSpec when given.
func newHarness(t *testing.T, appSpec ...string) *harness {
	t.Helper()
	repo := t.TempDir()
	state := t.TempDir()
	h := &harness{t: t, repo: repo, source: &folderSource{dir: repo}, driver: newFakeDriver(), router: &recordingRouter{}, notes: &noteRecorder{}}
	h.write("src/hello/Procfile", "web: ./web.sh\nworker: ./worker.sh\n")
	h.write("src/hello/web.sh", "#!/bin/sh\necho web\n")
	h.write("src/hello/worker.sh", "#!/bin/sh\necho worker\n")
	h.write("apps/hello.hcl", strings.ReplaceAll(helloSpec, "%WEB%", "1"))
	for _, content := range appSpec {
		h.write("apps/hello.hcl", content)
	}
	h.commit()

	var err error
	h.ledger, err = ledger.Open(filepath.Join(state, "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.ledger.Close() })
	store, err := slug.OpenStore(filepath.Join(state, "slugs"))
	if err != nil {
		t.Fatal(err)
	}
	h.logs = logs.New(logs.Options{})
	t.Cleanup(h.logs.Close)
	h.rec, err = reconciler.New(reconciler.Options{
		Source: h.source, Driver: h.driver, Builder: &slug.Builder{Store: store}, Ledger: h.ledger,
		Router: h.router, Logs: h.logs, StateDir: state, BootTimeout: 200 * time.Millisecond,
		ReleaseTimeout: 300 * time.Millisecond, Interval: time.Hour, Notifier: h.notes,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.rec.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return h
}

func (h *harness) write(name, content string) {
	h.t.Helper()
	path := filepath.Join(h.repo, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		h.t.Fatal(err)
	}
	mode := os.FileMode(0o644)
	if strings.HasSuffix(name, ".sh") {
		mode = 0o755
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) commit() {
	h.commits++
	h.source.commit(strings.Repeat(string(rune('a'+h.commits%26)), 40), "alice@example.com")
}

// reconcile runs one pass and waits for it.
func (h *harness) reconcile(app string) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.rec.Reconcile(ctx, app); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) releases() []ledger.Release {
	h.t.Helper()
	_, releases, err := h.rec.Releases("hello", "default")
	if err != nil {
		h.t.Fatal(err)
	}
	return releases
}

func (h *harness) appStatus() reconciler.AppStatus {
	for _, s := range h.rec.Status().Apps {
		if s.App == "hello" {
			return s
		}
	}
	h.t.Fatal("no status for hello")
	return reconciler.AppStatus{}
}

func (h *harness) expectDynos(want string) {
	h.t.Helper()
	if got := h.driver.summary("hello", "default"); got != want {
		h.t.Errorf("dynos = %q, want %q", got, want)
	}
}

func (h *harness) expectReleases(want ...string) {
	h.t.Helper()
	var got []string
	for _, r := range h.releases() {
		got = append(got, r.Description+" "+string(r.Status))
	}
	if !slices.Equal(got, want) {
		h.t.Errorf("releases (newest first) = %q, want %q", got, want)
	}
}

func TestDeployScaleAndConfig(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.reconcile("")
	h.expectReleases("Deploy bbbbbbb succeeded")
	h.expectDynos("web.1@v1 worker.1@v1")
	if got := h.router.backends("hello.default.localhost"); !slices.Equal(got, []string{"web.1"}) {
		t.Errorf("router backends = %v, want [web.1]", got)
	}
	if s := h.appStatus(); s.State != reconciler.StateReady || s.Release != 1 {
		t.Errorf("status = %+v, want Ready on v1", s)
	}

	// Scaling is not a release.
	h.write("apps/hello.hcl", strings.ReplaceAll(helloSpec, "%WEB%", "3"))
	h.commit()
	h.reconcile("")
	h.expectReleases("Deploy bbbbbbb succeeded")
	h.expectDynos("web.1@v1 web.2@v1 web.3@v1 worker.1@v1")
	if got := h.router.backends("hello.default.localhost"); len(got) != 3 {
		t.Errorf("router backends = %v, want 3", got)
	}

	// A config change is a release; its slug is reused and every dyno replaced.
	h.write("apps/hello.hcl", strings.ReplaceAll(strings.ReplaceAll(helloSpec, "%WEB%", "3"), `"hi"`, `"hello"`))
	h.commit()
	h.reconcile("")
	h.expectReleases("Set GREETING config vars succeeded", "Deploy bbbbbbb succeeded")
	h.expectDynos("web.1@v2 web.2@v2 web.3@v2 worker.1@v2")
	releases := h.releases()
	if releases[0].SlugKey != releases[1].SlugKey {
		t.Errorf("a config change rebuilt the slug: %s != %s", releases[0].SlugKey, releases[1].SlugKey)
	}
	if releases[0].Author != "alice@example.com" {
		t.Errorf("author = %q", releases[0].Author)
	}

	// Scale down to zero web dynos: the route stays and answers H14 (no backends).
	h.write("apps/hello.hcl", strings.ReplaceAll(strings.ReplaceAll(helloSpec, "%WEB%", "0"), `"hi"`, `"hello"`))
	h.commit()
	h.reconcile("")
	h.expectDynos("worker.1@v2")
	if got := h.router.backends("hello.default.localhost"); len(got) != 0 {
		t.Errorf("router backends = %v, want none", got)
	}
}

func TestBrokenSpecKeepsLastGood(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.reconcile("")
	h.write("apps/hello.hcl", "app \"hello\" {\n  process \"web\" { count = -1 }\n}\n")
	h.commit()
	h.reconcile("")
	status := h.rec.Status()
	if !strings.Contains(status.Error, "apps/hello.hcl:2:") || status.ErrorRevision.ID == "" {
		t.Errorf("status error = %q (revision %q), want the file:line:col", status.Error, status.ErrorRevision.ID)
	}
	h.expectDynos("web.1@v1 worker.1@v1")
	h.expectReleases("Deploy bbbbbbb succeeded")
}

func TestReleasePhaseFailureKeepsPreviousRelease(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.reconcile("")
	h.write("src/hello/Procfile", "web: ./web.sh\nworker: ./worker.sh\nrelease: exit 1\n")
	h.commit()
	h.reconcile("")
	h.expectDynos("web.1@v1 worker.1@v1")
	releases := h.releases()
	if releases[0].Status != ledger.StatusFailed || !strings.Contains(releases[0].StatusReason, "exited with status 1") {
		t.Errorf("v2 = %s %q, want failed with the exit status", releases[0].Status, releases[0].StatusReason)
	}
	if s := h.appStatus(); s.State != reconciler.StateStalled || s.Release != 1 {
		t.Errorf("status = %+v, want Stalled on v1", s)
	}
	// The same spec is not retried on every pass...
	h.reconcile("")
	if n := len(h.releases()); n != 2 {
		t.Errorf("a failed release was retried by a plain pass: %d releases", n)
	}
	// ...but a forced reconcile retries it, and a fixed command deploys.
	h.reconcile("hello")
	if n := len(h.releases()); n != 3 {
		t.Errorf("a forced reconcile did not retry: %d releases", n)
	}
	h.write("src/hello/Procfile", "web: ./web.sh\nworker: ./worker.sh\nrelease: exit 0\n")
	h.commit()
	h.reconcile("")
	h.expectDynos("web.1@v4 worker.1@v4")
}

func TestBootTimeoutStopsTheDeploy(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.reconcile("")
	h.write("src/hello/Procfile", "web: ./web.sh never-binds\nworker: ./worker.sh\n")
	h.commit()
	h.reconcile("")
	h.expectDynos("web.1@v1 worker.1@v1")
	if s := h.appStatus(); s.State != reconciler.StateStalled || !strings.Contains(s.Reason, "R10") {
		t.Errorf("status = %+v, want Stalled with R10", s)
	}
	if got := h.router.backends("hello.default.localhost"); !slices.Equal(got, []string{"web.1"}) {
		t.Errorf("router backends = %v, want the old web.1", got)
	}
}

func TestRollbackPinsUntilTheAppChanges(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.reconcile("")
	h.write("apps/hello.hcl", strings.ReplaceAll(strings.ReplaceAll(helloSpec, "%WEB%", "1"), `"hi"`, `"v2"`))
	h.commit()
	h.reconcile("")
	release, err := h.rec.Rollback(context.Background(), "hello", "", 1, "bob@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if release.Version != 3 || release.Description != "Rollback to v1" {
		t.Errorf("rollback release = v%d %q", release.Version, release.Description)
	}
	h.expectDynos("web.1@v3 worker.1@v3")
	// A pass over the same spec keeps the pin.
	h.reconcile("")
	h.expectDynos("web.1@v3 worker.1@v3")
	if s := h.appStatus(); s.PinnedTo != 3 {
		t.Errorf("status = %+v, want pinned to v3", s)
	}
	// A commit that changes the app ends it.
	h.write("apps/hello.hcl", strings.ReplaceAll(strings.ReplaceAll(helloSpec, "%WEB%", "1"), `"hi"`, `"v4"`))
	h.commit()
	h.reconcile("")
	h.expectDynos("web.1@v4 worker.1@v4")
	if s := h.appStatus(); s.PinnedTo != 0 {
		t.Errorf("status = %+v, want unpinned", s)
	}
}

func TestRemovedAppIsPrunedLedgerKept(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.reconcile("")
	if err := os.Remove(filepath.Join(h.repo, "apps", "hello.hcl")); err != nil {
		t.Fatal(err)
	}
	h.commit()
	h.reconcile("")
	h.expectDynos("")
	releases, err := h.ledger.List("hello", "default")
	if err != nil || len(releases) != 1 {
		t.Errorf("ledger after prune: %d releases, %v; want 1 kept", len(releases), err)
	}
}

func TestCrashedWebDynoCountsForH10(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.reconcile("")
	h.driver.crash("web.1")
	h.reconcile("")
	h.router.mu.Lock()
	route := h.router.table.Hosts["hello.default.localhost"]
	h.router.mu.Unlock()
	if route == nil || len(route.Backends) != 0 || route.Crashed != 1 {
		t.Errorf("route = %+v, want no backends and 1 crashed (H10)", route)
	}
}

// gitRepo makes a git repository with the git CLI holding files, and returns its
// file:// URL.
func gitRepo(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{
		{"init", "-q", "-b", "main"},
		{"add", "-A"},
		{"-c", "user.email=a@example.com", "-c", "user.name=a", "commit", "-q", "-m", "first"},
	} {
		if out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	return "file://" + dir
}

// A pass resolves a git source's commit on its own copy of the spec: the loaded spec is
// read by the API (ps, run, rollback) at the same time.
func TestGitSourcePassDoesNotWriteTheSharedSpec(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	url := gitRepo(t, map[string]string{"Procfile": "web: ./web.sh\n", "web.sh": "#!/bin/sh\necho web\n"})
	h.write("apps/remote.hcl", "app \"remote\" {\n  source {\n    git = \""+url+"\"\n    ref = \"main\"\n  }\n  buildpacks = [\"procfile\"]\n  process \"web\" { count = 1 }\n}\n")
	h.commit()
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			for _, app := range h.rec.Apps() {
				_ = app.Source.Digest
			}
		}
	}()
	h.reconcile("")
	h.reconcile("")
	close(stop)
	<-done
	if got := h.driver.summary("remote", "default"); got != "web.1@v1" {
		t.Errorf("remote dynos = %q, want web.1@v1 (status %+v)", got, h.rec.Status())
	}
}

// A git source's Procfile is known only after the fetch: its types run as Heroku runs
// them on a first deploy (web 1, the others 0) when the spec does not name them.
func TestGitSourceProcfileTypesRun(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	url := gitRepo(t, map[string]string{"Procfile": "web: ./web.sh\nworker: ./web.sh\n", "web.sh": "#!/bin/sh\necho web\n"})
	h.write("apps/remote.hcl", "app \"remote\" {\n  source {\n    git = \""+url+"\"\n    ref = \"main\"\n  }\n  buildpacks = [\"procfile\"]\n}\n")
	h.commit()
	h.reconcile("")
	if got := h.driver.summary("remote", "default"); got != "web.1@v1" {
		t.Errorf("remote dynos = %q, want web.1@v1 (status %+v)", got, h.rec.Status().Apps)
	}
	if got := h.router.backends("remote.default.localhost"); !slices.Equal(got, []string{"web.1"}) {
		t.Errorf("router backends = %v, want [web.1]", got)
	}
	app, _, err := h.rec.Dynos(context.Background(), "remote", "")
	if err != nil {
		t.Fatal(err)
	}
	var ps []string
	for _, p := range app.Processes {
		ps = append(ps, fmt.Sprintf("%s=%s(%d)", p.Type, p.Command, p.Count))
	}
	if want := []string{"web=./web.sh(1)", "worker=./web.sh(0)"}; !slices.Equal(ps, want) {
		t.Errorf("ps formation = %q, want %q", ps, want)
	}
}

// A route refresh that listed the dynos before a rollout (the events goroutine's, with a
// slow List) must not swap in its table after the rollout's: it would send requests to
// the dyno the rollout took out of the table and stopped.
func TestStaleRouteRefreshDoesNotBringBackAStoppedDyno(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.reconcile("")
	old := h.router.addrs("hello.default.localhost")
	if len(old) != 1 {
		t.Fatalf("router addrs = %v, want one", old)
	}
	var armed atomic.Bool
	entered, release := make(chan struct{}), make(chan struct{})
	h.driver.mu.Lock()
	h.driver.listHook = func() {
		if armed.CompareAndSwap(true, false) {
			entered <- struct{}{}
			<-release
		}
	}
	h.driver.mu.Unlock()
	wait := func(what string) {
		t.Helper()
		select {
		case <-entered:
		case <-time.After(30 * time.Second):
			t.Fatalf("timed out waiting for %s", what)
		}
	}
	armed.Store(true)
	h.driver.events <- drivers.Event{}
	wait("the events goroutine's List")

	h.write("apps/hello.hcl", strings.ReplaceAll(strings.ReplaceAll(helloSpec, "%WEB%", "1"), `"hi"`, `"v2"`))
	h.commit()
	h.reconcile("")
	h.expectDynos("web.1@v2 worker.1@v2")

	// Let the stale refresh finish; the next event's List says it has.
	armed.Store(true)
	release <- struct{}{}
	h.driver.events <- drivers.Event{}
	wait("the next refresh")
	got := h.router.addrs("hello.default.localhost")
	release <- struct{}{}
	if slices.Contains(got, old[0]) || len(got) != 1 {
		t.Errorf("router addrs = %v after the rollout, want the new web.1 only (not the stopped %s)", got, old[0])
	}
}

// A config repo that has never loaded still ends its passes: status (and `manifold up`,
// which waits for the first pass to say where to look) reports the error.
func TestFirstRevisionThatDoesNotLoadIsReported(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "app \"hello\" {\n  process \"web\" { count = -1 }\n}\n")
	h.reconcile("")
	status := h.rec.Status()
	if status.LastPass.IsZero() || status.LastPassReason == "" {
		t.Errorf("last pass = %v (%q), want set", status.LastPass, status.LastPassReason)
	}
	if !strings.Contains(status.Error, "apps/hello.hcl:2:") {
		t.Errorf("status error = %q, want the file:line:col", status.Error)
	}
}

// A rollback whose caller goes away (`manifold rollback` interrupted) records its
// failure: a release left pending made the next pass take it for one cut short by a
// restart and deploy the spec again, with the app still pinned to the failed rollback.
func TestCancelledRollbackIsRecordedAsFailed(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.reconcile("")
	h.write("apps/hello.hcl", strings.ReplaceAll(strings.ReplaceAll(helloSpec, "%WEB%", "1"), `"hi"`, `"v2"`))
	h.commit()
	h.reconcile("")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h.driver.mu.Lock()
	h.driver.listHook = cancel // the client goes away while the rollback lists the dynos
	h.driver.mu.Unlock()
	if _, err := h.rec.Rollback(ctx, "hello", "", 1, "bob@example.com"); err == nil {
		t.Fatal("rollback with its context cancelled: no error")
	}
	h.driver.mu.Lock()
	h.driver.listHook = nil
	h.driver.mu.Unlock()
	releases := h.releases()
	if releases[0].Version != 3 || releases[0].Status != ledger.StatusFailed {
		t.Errorf("v%d is %s, want the rollback v3 failed", releases[0].Version, releases[0].Status)
	}
	h.reconcile("")
	if n := len(h.releases()); n != 3 {
		t.Errorf("the pass after a failed rollback made a release: %d releases", n)
	}
	h.expectDynos("web.1@v2 worker.1@v2")
	if s := h.appStatus(); s.PinnedTo != 0 || s.Release != 2 {
		t.Errorf("status = %+v, want v2 running and no pin", s)
	}
}

// A release command that never ends fails its release at the release timeout: it held
// the loop (every app, every `manifold reconcile`) for good.
func TestHungReleaseCommandTimesOut(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.reconcile("")
	h.write("src/hello/Procfile", "web: ./web.sh\nworker: ./worker.sh\nrelease: hang\n")
	h.commit()
	h.reconcile("")
	h.expectDynos("web.1@v1 worker.1@v1")
	releases := h.releases()
	if releases[0].Status != ledger.StatusFailed || !strings.Contains(releases[0].StatusReason, "did not finish within") {
		t.Errorf("v2 = %s %q, want failed by the release timeout", releases[0].Status, releases[0].StatusReason)
	}
}

func TestReconcileOfAnUnknownApp(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.reconcile("")
	if err := h.rec.Reconcile(context.Background(), "helo"); !errors.Is(err, reconciler.ErrUnknownApp) {
		t.Errorf("reconcile -a helo: %v, want ErrUnknownApp", err)
	}
}

// After a restart, a release left pending is marked failed whether or not the spec
// still wants it, and a rollback's pin on it ends: it stayed pending for good when a
// commit had changed the app meanwhile, and the pin outlived it.
func TestPendingReleasesAfterARestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t.Run("deploy of an older spec", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		h.reconcile("")
		cut, err := h.ledger.Append(ctx, ledger.Release{App: "hello", Env: "default", SlugKey: h.releases()[0].SlugKey,
			SpecDigest: "sha256:older", Status: ledger.StatusPending, Description: "Deploy 0000000"})
		if err != nil {
			t.Fatal(err)
		}
		h.reconcile("")
		releases := h.releases()
		if len(releases) != 2 || releases[0].Version != cut.Version || releases[0].Status != ledger.StatusFailed {
			t.Errorf("releases %+v, want v%d failed and no new one (v1 is the spec's)", releases, cut.Version)
		}
		h.expectDynos("web.1@v1 worker.1@v1")
	})
	t.Run("rollback", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		h.reconcile("")
		cut, err := h.ledger.Rollback(ctx, "hello", "default", 1, "bob@example.com", h.releases()[0].SpecDigest)
		if err != nil {
			t.Fatal(err)
		}
		h.reconcile("")
		if got := h.releases()[0]; got.Version != cut.Version || got.Status != ledger.StatusFailed {
			t.Errorf("v%d is %s, want the interrupted rollback v%d failed", got.Version, got.Status, cut.Version)
		}
		if s := h.appStatus(); s.PinnedTo != 0 || s.State != reconciler.StateReady {
			t.Errorf("status = %+v, want Ready and no pin", s)
		}
	})
}

// An app removed from the repo leaves status even when it ran no dyno.
func TestRemovedAppWithoutDynosLeavesStatus(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.write("apps/idle.hcl", "app \"idle\" {\n  source { path = \"../src/hello\" }\n  buildpacks = [\"procfile\"]\n  suspend = true\n}\n")
	h.commit()
	h.reconcile("")
	names := func() (out []string) {
		for _, s := range h.rec.Status().Apps {
			out = append(out, s.App)
		}
		return out
	}
	if got := names(); !slices.Equal(got, []string{"hello", "idle"}) {
		t.Fatalf("status apps = %v, want hello and idle", got)
	}
	if err := os.Remove(filepath.Join(h.repo, "apps", "idle.hcl")); err != nil {
		t.Fatal(err)
	}
	h.commit()
	h.reconcile("")
	if got := names(); !slices.Equal(got, []string{"hello"}) {
		t.Errorf("status apps = %v after idle left the repo, want hello only", got)
	}
}

func TestLivePlanShowsWhatTheRunningSystemLacks(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.reconcile("")
	live, err := h.rec.LivePlan(context.Background())
	if err != nil || live.Plan.HasChanges() {
		t.Fatalf("converged app: plan %+v, %v; want no changes", live.Plan.Changes, err)
	}
	// A config change whose release phase fails: what runs still lacks it.
	h.write("src/hello/Procfile", "web: ./web.sh\nworker: ./worker.sh\nrelease: exit 1\n")
	h.write("apps/hello.hcl", strings.ReplaceAll(strings.ReplaceAll(helloSpec, "%WEB%", "1"), `"hi"`, `"new"`))
	h.commit()
	h.reconcile("")
	live, err = h.rec.LivePlan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, c := range live.Plan.Changes {
		kinds = append(kinds, string(c.Kind)+":"+c.Key+c.Process)
	}
	if !slices.Contains(kinds, "config:GREETING") || !slices.Contains(kinds, "command:release") {
		t.Errorf("live plan = %v, want the GREETING change and the release command", kinds)
	}
	// A dyno lost from outside shows as a scale change until the next pass.
	h.driver.mu.Lock()
	for id, d := range h.driver.dynos {
		if d.Name == "worker.1" {
			delete(h.driver.dynos, id)
		}
	}
	h.driver.mu.Unlock()
	live, err = h.rec.LivePlan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, c := range live.Plan.Changes {
		if c.Kind == plan.KindScale && c.Process == "worker" && c.From == 0 && c.To == 1 {
			found = true
		}
	}
	if !found {
		t.Errorf("live plan after losing worker.1 = %+v, want scale worker 0 -> 1", live.Plan.Changes)
	}
}

func TestLivePlanListsPinnedApps(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.reconcile("")
	h.write("apps/hello.hcl", strings.ReplaceAll(strings.ReplaceAll(helloSpec, "%WEB%", "1"), `"hi"`, `"v2"`))
	h.commit()
	h.reconcile("")
	if _, err := h.rec.Rollback(context.Background(), "hello", "", 1, "bob"); err != nil {
		t.Fatal(err)
	}
	live, err := h.rec.LivePlan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(live.Pinned) != 1 || live.Pinned[0].App != "hello" || live.Pinned[0].PinnedTo != 3 {
		t.Errorf("pinned = %+v, want hello pinned to v3", live.Pinned)
	}
}

func TestRollbackRunsTheReleasePhase(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.reconcile("") // v1
	h.write("src/hello/Procfile", "web: ./web.sh\nworker: ./worker.sh\nrelease: exit 0\n")
	h.commit()
	h.reconcile("") // v2, with a release phase
	h.write("apps/hello.hcl", strings.ReplaceAll(strings.ReplaceAll(helloSpec, "%WEB%", "1"), `"hi"`, `"v3"`))
	h.commit()
	h.reconcile("") // v3
	h.expectDynos("web.1@v3 worker.1@v3")
	runsBefore := h.driver.runCount()
	release, err := h.rec.Rollback(context.Background(), "hello", "", 2, "bob")
	if err != nil {
		t.Fatal(err)
	}
	if runs := h.driver.runsSince(runsBefore); len(runs) != 1 || runs[0].Command != "exit 0" || runs[0].Release != release.Version {
		t.Errorf("rollback ran one-offs %+v, want the release phase of v%d once", runs, release.Version)
	}
	h.expectDynos(fmt.Sprintf("web.1@v%d worker.1@v%d", release.Version, release.Version))

	// A release that never went live cannot be rolled back to.
	h.write("src/hello/Procfile", "web: ./web.sh\nworker: ./worker.sh\nrelease: exit 7\n")
	h.commit()
	h.reconcile("")
	failed := h.releases()[0]
	if failed.Status != ledger.StatusFailed {
		t.Fatalf("newest release %+v, want failed", failed)
	}
	if _, err := h.rec.Rollback(context.Background(), "hello", "", failed.Version, "bob"); !errors.Is(err, ledger.ErrNotLive) {
		t.Errorf("rollback to a failed release: %v, want ErrNotLive", err)
	}
}

func TestHealthCheckChangeReplacesDynos(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.reconcile("")
	h.write("apps/hello.hcl", strings.ReplaceAll(strings.ReplaceAll(helloSpec, "%WEB%", "1"),
		`process "web" { count = 1 }`, `process "web" {
    count        = 1
    health_check = "/up"
  }`))
	h.commit()
	h.reconcile("")
	h.expectReleases("Deploy bbbbbbb succeeded") // not a release
	dynos, err := h.driver.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dynos {
		if d.Spec.Type == "web" && d.Spec.HealthCheck != "/up" {
			t.Errorf("web dyno %s kept health check %q", d.ID, d.Spec.HealthCheck)
		}
	}
}
