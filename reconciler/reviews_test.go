package reconciler_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/manifold-paas/manifold/drivers"
	"github.com/manifold-paas/manifold/drivers/process"
	"github.com/manifold-paas/manifold/reconciler"
	"github.com/manifold-paas/manifold/reconciler/review"
	"github.com/manifold-paas/manifold/spec"
)

func gitIn(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=Alice", "GIT_AUTHOR_EMAIL=alice@example.com",
		"GIT_COMMITTER_NAME=Alice", "GIT_COMMITTER_EMAIL=alice@example.com")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// reviewEnv is a reconciler on the process driver whose config repo is also a bare
// git repository (file://) that review environments come from.
type reviewEnv struct {
	*processEnv
	bare    string
	hooks   string // the file the review hooks append to
	reviews *swappableReviews
}

// swappableReviews lets a test replace the Manager, as a daemon restart does.
type swappableReviews struct {
	mu sync.Mutex
	*review.Manager
	// afterSyncApps, when set, runs once SyncApps has listed (appreviews_test.go).
	afterSyncApps func()
}

func (s *swappableReviews) Sync(ctx context.Context, settings *spec.Review, now time.Time) ([]review.Running, review.Decisions) {
	s.mu.Lock()
	m := s.Manager
	s.mu.Unlock()
	return m.Sync(ctx, settings, now)
}

// restart replaces the Manager by a new one on the same state, as a daemon restart.
func (s *swappableReviews) restart() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Manager = &review.Manager{URL: s.Manager.URL, Dir: s.Manager.Dir}
}

func newReviewEnv(t testing.TB) *reviewEnv {
	t.Helper()
	bare := filepath.Join(t.TempDir(), "config.git")
	env := &reviewEnv{bare: bare}
	env.reviews = &swappableReviews{Manager: &review.Manager{URL: "file://" + bare, Dir: t.TempDir()}}
	env.processEnv = newDriverEnv(t, reconciler.Options{Reviews: env.reviews},
		func(ctx context.Context, state string, sink drivers.LogSink) (drivers.Driver, error) {
			return process.New(ctx, process.Options{StateDir: filepath.Join(state, "dynos"), Logs: sink, BootTimeout: 20 * time.Second})
		})
	env.write("apps/hello.hcl", `app "hello" {
  source { path = "../src/hello" }
  buildpacks = ["procfile"]
  process "web" { command = "`+webCommand+`" }
}
`)
	env.write("src/hello/Procfile", "web: "+webCommand+"\n")
	env.hooks = filepath.Join(t.TempDir(), "hooks.log")
	env.write("manifold.hcl", fmt.Sprintf(`review {
  refs       = ["refs/pull/*/head"]
  postdeploy = { hello = "echo postdeploy $DYNO >> %[1]s" }
  predestroy = { hello = "echo predestroy $DYNO >> %[1]s" }
}
`, env.hooks))
	gitIn(t, env.repo, "init", "-q", "-b", "main")
	gitIn(t, env.repo, "add", "-A")
	gitIn(t, env.repo, "commit", "-q", "-m", "main")
	gitIn(t, env.repo, "init", "-q", "--bare", "-b", "main", bare)
	gitIn(t, env.repo, "push", "-q", bare, "main")
	return env
}

// pullRequest commits content as www/index.html on a branch of the work repo, pushes
// the commit to the bare repo and points refs/pull/N/head at it, as a forge does.
func (e *reviewEnv) pullRequest(t testing.TB, n, content string) {
	t.Helper()
	gitIn(t, e.repo, "checkout", "-q", "-B", "pr-"+n, "main")
	e.write("src/hello/www/index.html", content)
	gitIn(t, e.repo, "commit", "-q", "-am", "pr "+n)
	commit := gitIn(t, e.repo, "rev-parse", "HEAD")
	gitIn(t, e.repo, "push", "-q", e.bare, "+HEAD:refs/heads/pr-"+n) // a force-push, as a rewritten pull request
	gitIn(t, e.bare, "update-ref", "refs/pull/"+n+"/head", commit)
	gitIn(t, e.repo, "checkout", "-q", "main")
}

// TestReviewEnvironments: a pull request ref makes environment pr-7, built from the
// ref and answered at hello.pr-7.localhost; a push redeploys it; a listing that
// fails destroys nothing; the ref gone for two listings tears it down, its releases
// kept.
func TestReviewEnvironments(t *testing.T) {
	t.Parallel()
	env := newReviewEnv(t)
	env.reconcile()
	if got := env.router.addrs("hello.pr-7.localhost"); len(got) != 0 {
		t.Fatalf("a review app before any pull request: %v", got)
	}
	env.pullRequest(t, "7", "pr 7\n")
	env.reconcile()
	if got := get(t, env.router.addrs("hello.pr-7.localhost")); got != "pr 7\n" {
		t.Errorf("pr-7 serves %q", got)
	}
	if got := get(t, env.router.addrs("hello.default.localhost")); got != "hello\n" {
		t.Errorf("main's app serves %q, want its own code", got)
	}
	env.wantHooks(t, "postdeploy run.1")
	env.pullRequest(t, "7", "pr 7, pushed again\n")
	env.reconcile()
	if got := get(t, env.router.addrs("hello.pr-7.localhost")); got != "pr 7, pushed again\n" {
		t.Errorf("pr-7 after a push serves %q", got)
	}
	env.wantHooks(t, "postdeploy run.1") // once, not per release

	// The repo unreadable: listings fail, pr-7 stays.
	if err := os.Rename(env.bare, env.bare+".away"); err != nil {
		t.Fatal(err)
	}
	env.reconcile()
	env.reconcile()
	if got := get(t, env.router.addrs("hello.pr-7.localhost")); got != "pr 7, pushed again\n" {
		t.Errorf("pr-7 after failed listings serves %q", got)
	}
	// A restart while the repo is unreadable: the new Manager reads what ran from
	// its state file, and destroys nothing.
	env.reviews.restart()
	env.reconcile()
	env.reconcile()
	if got := get(t, env.router.addrs("hello.pr-7.localhost")); got != "pr 7, pushed again\n" {
		t.Errorf("pr-7 after a restart with failed listings serves %q", got)
	}
	if err := os.Rename(env.bare+".away", env.bare); err != nil {
		t.Fatal(err)
	}
	env.reconcile()
	if got := get(t, env.router.addrs("hello.pr-7.localhost")); got != "pr 7, pushed again\n" {
		t.Errorf("pr-7 after the restart's first listing serves %q", got)
	}

	gitIn(t, env.bare, "update-ref", "-d", "refs/pull/7/head")
	env.reconcile()
	if got := env.router.addrs("hello.pr-7.localhost"); len(got) == 0 {
		t.Error("pr-7 torn down after one listing without its ref")
	}
	env.reconcile()
	if got := env.router.addrs("hello.pr-7.localhost"); len(got) != 0 {
		t.Errorf("pr-7 still routed after its ref went: %v", got)
	}
	dynos, err := env.driver.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dynos {
		if d.Spec.Env == "pr-7" {
			t.Errorf("dyno %s of pr-7 still runs", d.ID)
		}
	}
	env.wantHooks(t, "postdeploy run.1", "predestroy run.2")
	releases, err := env.ledger.List("hello", "pr-7")
	if err != nil || len(releases) != 2 {
		t.Errorf("pr-7's releases after teardown: %d, %v; want its 2 kept", len(releases), err)
	}
	// Marked when appended, the marks kept; the API still lists them.
	_, listed, err := env.rec.Releases("hello", "pr-7")
	if err != nil || len(listed) != 2 {
		t.Fatalf("the API's releases of pr-7 after teardown: %d, %v", len(listed), err)
	}
	for _, r := range listed {
		if r.Review == nil || r.Review.Ref != "refs/pull/7/head" || r.Review.Commit != r.Commit || r.Review.Source != "config" {
			t.Errorf("v%d of pr-7: mark %+v (commit %s)", r.Version, r.Review, r.Commit)
		}
	}
	if main, err := env.ledger.List("hello", "default"); err != nil || len(main) == 0 || main[0].Review != nil {
		t.Errorf("main's releases: %+v, %v; want unmarked", main, err)
	}
}

// wantHooks checks the lines the review hooks wrote, in order.
func (e *reviewEnv) wantHooks(t *testing.T, want ...string) {
	t.Helper()
	data, err := os.ReadFile(e.hooks)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(data)); got != strings.Join(want, "\n") {
		t.Errorf("hooks ran %q, want %q", got, want)
	}
}
