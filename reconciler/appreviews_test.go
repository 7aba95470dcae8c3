package reconciler_test

import (
	"context"
	"fmt"
	"io"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/manifold-paas/manifold/drivers"
	"github.com/manifold-paas/manifold/drivers/process"
	"github.com/manifold-paas/manifold/reconciler"
	"github.com/manifold-paas/manifold/reconciler/ledger"
	"github.com/manifold-paas/manifold/reconciler/review"
	"github.com/manifold-paas/manifold/reconciler/source"
	"github.com/manifold-paas/manifold/spec"
)

// appReviewEnv is a reconciler on the process driver whose app hello builds its own
// git source (a bare repository, over file:// or HTTP) and says review = true.
type appReviewEnv struct {
	*processEnv
	work, bare string // the app source's work tree and the bare repo it pushes to
	hooks      string // the file the review hooks append to
	reviews    *swappableReviews
}

func newAppReviewEnv(t *testing.T, transport string) *appReviewEnv {
	t.Helper()
	root := t.TempDir()
	env := &appReviewEnv{work: filepath.Join(root, "hello"), bare: filepath.Join(root, "hello.git"), hooks: filepath.Join(root, "hooks.log")}
	for name, content := range map[string]string{"Procfile": "web: " + webCommand + "\n", "www/index.html": "main\n"} {
		path := filepath.Join(env.work, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	gitIn(t, root, "init", "-q", "-b", "main", env.work)
	gitIn(t, env.work, "add", "-A")
	gitIn(t, env.work, "commit", "-q", "-m", "main")
	gitIn(t, root, "init", "-q", "--bare", "-b", "main", env.bare)
	gitIn(t, env.work, "push", "-q", env.bare, "main")
	url := "file://" + env.bare
	if transport == "http" {
		backend, err := exec.LookPath("git")
		if err != nil {
			t.Fatal(err)
		}
		server := httptest.NewServer(&cgi.Handler{
			Path: backend, Args: []string{"http-backend"}, Stderr: io.Discard, // the failed listings' complaints
			Env: []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1"},
		})
		t.Cleanup(server.Close)
		url = server.URL + "/hello.git"
	}

	config := t.TempDir()
	env.reviews = &swappableReviews{Manager: &review.Manager{URL: "file://" + config, Dir: t.TempDir()}}
	env.processEnv = newDriverEnv(t, reconciler.Options{Reviews: env.reviews},
		func(ctx context.Context, state string, sink drivers.LogSink) (drivers.Driver, error) {
			return process.New(ctx, process.Options{StateDir: filepath.Join(state, "dynos"), Logs: sink, BootTimeout: 20 * time.Second})
		})
	// The config repo is a git work tree too (its refs are listed); the loop, which
	// runs already, reads the source's folder under its lock.
	env.repo = config
	env.source.mu.Lock()
	env.source.dir = config
	env.source.mu.Unlock()
	env.write("apps/hello.hcl", fmt.Sprintf(`app "hello" {
  source {
    git = %q
    ref = "main"
  }
  buildpacks = ["procfile"]
  review     = true
  process "web" { command = "`+webCommand+`" }
}
`, url))
	env.write("manifold.hcl", fmt.Sprintf(`review {
  refs       = ["refs/pull/*/head"]
  postdeploy = { hello = "echo postdeploy $DYNO >> %[1]s" }
  predestroy = { hello = "echo predestroy $DYNO >> %[1]s" }
}
`, env.hooks))
	gitIn(t, config, "init", "-q", "-b", "main")
	gitIn(t, config, "add", "-A")
	gitIn(t, config, "commit", "-q", "-m", "config")
	return env
}

// pullRequest commits content as www/index.html of the app's source on a branch,
// pushes it and points refs/pull/N/head of the bare repo at it, as a forge does.
func (e *appReviewEnv) pullRequest(t *testing.T, n, content string) {
	t.Helper()
	gitIn(t, e.work, "checkout", "-q", "-B", "pr-"+n, "main")
	if err := os.WriteFile(filepath.Join(e.work, "www/index.html"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	gitIn(t, e.work, "commit", "-q", "-am", "pr "+n)
	commit := gitIn(t, e.work, "rev-parse", "HEAD")
	gitIn(t, e.work, "push", "-q", e.bare, "+HEAD:refs/heads/pr-"+n)
	gitIn(t, e.bare, "update-ref", "refs/pull/"+n+"/head", commit)
	gitIn(t, e.work, "checkout", "-q", "main")
}

// SyncApps is the Manager's, read under the lock restart takes.
func (s *swappableReviews) SyncApps(ctx context.Context, settings *spec.Review, config source.Snapshot, now time.Time) review.AppSync {
	s.mu.Lock()
	m, after := s.Manager, s.afterSyncApps
	s.mu.Unlock()
	got := m.SyncApps(ctx, settings, config, now)
	if after != nil {
		after()
	}
	return got
}

// pass runs one pass; unlike reconcile, an app may stall (its source unreadable).
func (e *appReviewEnv) pass(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := e.rec.Reconcile(ctx, ""); err != nil {
		t.Fatal(err)
	}
}

// TestAppSourceReviewEnvironments: a pull request ref of hello's own source makes
// environment hello--pr-7 with hello only, built from the ref and answered at
// hello.hello--pr-7.localhost; a push redeploys it (a new release in its own
// history); listings that fail (the source unreadable, and a restart meanwhile)
// destroy nothing; the ref gone for two listings tears it down, its releases kept.
// Over file:// and HTTP (git http-backend).
func TestAppSourceReviewEnvironments(t *testing.T) {
	t.Parallel()
	for _, transport := range []string{"file", "http"} {
		t.Run(transport, func(t *testing.T) {
			t.Parallel()
			env := newAppReviewEnv(t, transport)
			const host = "hello.hello--pr-7.localhost"
			env.reconcile()
			if got := get(t, env.router.addrs("hello.default.localhost")); got != "main\n" {
				t.Fatalf("hello serves %q, want its source's main", got)
			}
			if got := env.router.addrs(host); len(got) != 0 {
				t.Fatalf("a review app before any pull request: %v", got)
			}

			env.pullRequest(t, "7", "pr 7\n")
			env.reconcile()
			if got := get(t, env.router.addrs(host)); got != "pr 7\n" {
				t.Errorf("hello--pr-7 serves %q", got)
			}
			if got := get(t, env.router.addrs("hello.default.localhost")); got != "main\n" {
				t.Errorf("hello serves %q after the pull request, want main's", got)
			}
			env.wantHooks(t, "postdeploy run.1")
			env.pullRequest(t, "7", "pr 7, pushed again\n")
			env.reconcile()
			if got := get(t, env.router.addrs(host)); got != "pr 7, pushed again\n" {
				t.Errorf("hello--pr-7 after a push serves %q", got)
			}
			releases, err := env.ledger.List("hello", "hello--pr-7")
			if err != nil || len(releases) != 2 {
				t.Fatalf("hello--pr-7 has %d releases (%v) after a push, want 2", len(releases), err)
			}
			pushed := gitIn(t, env.bare, "rev-parse", "refs/pull/7/head")
			if mark := releases[0].Review; mark == nil || *mark != (ledger.Review{Ref: "refs/pull/7/head", Commit: pushed, Source: "app"}) {
				t.Errorf("hello--pr-7's v2 is marked %+v, want its ref, commit %s and source app", mark, pushed)
			}
			env.wantHooks(t, "postdeploy run.1")

			// The source unreadable: listings (and fetches) fail, hello--pr-7 stays,
			// through a restart too.
			if err := os.Rename(env.bare, env.bare+".away"); err != nil {
				t.Fatal(err)
			}
			env.pass(t)
			env.pass(t)
			for _, s := range env.rec.Status().Apps {
				if s.Env == "hello--pr-7" && s.State == reconciler.StateStalled {
					// Its checkout is at the listed commit: nothing to fetch.
					t.Errorf("hello--pr-7 stalled while its source is unreadable: %s", s.Reason)
				}
			}
			env.reviews.restart()
			env.pass(t)
			env.pass(t)
			if got := get(t, env.router.addrs(host)); got != "pr 7, pushed again\n" {
				t.Errorf("hello--pr-7 after failed listings and a restart serves %q", got)
			}
			if err := os.Rename(env.bare+".away", env.bare); err != nil {
				t.Fatal(err)
			}
			env.reconcile()
			if got := get(t, env.router.addrs(host)); got != "pr 7, pushed again\n" {
				t.Errorf("hello--pr-7 after the restart's first listing serves %q", got)
			}

			// After another restart, a review overlay that does not load at HEAD (it
			// declares another environment) decides nothing: hello--pr-7, which only
			// the state file knows of now, stays while the config repo's listings
			// settle.
			env.reviews.restart()
			env.write("environments/review.hcl", "environment \"qa\" {}\n")
			env.pass(t)
			env.pass(t)
			env.pass(t)
			if got := env.router.addrs(host); len(got) == 0 {
				t.Fatal("hello--pr-7 torn down after a restart while the review overlay did not load")
			}
			if err := os.Remove(filepath.Join(env.repo, "environments/review.hcl")); err != nil {
				t.Fatal(err)
			}
			env.reconcile()
			if got := get(t, env.router.addrs(host)); got != "pr 7, pushed again\n" {
				t.Errorf("hello--pr-7 after the overlay loads again serves %q", got)
			}

			gitIn(t, env.bare, "update-ref", "-d", "refs/pull/7/head")
			env.reconcile()
			if got := env.router.addrs(host); len(got) == 0 {
				t.Error("hello--pr-7 torn down after one listing without its ref")
			}
			env.reconcile()
			if got := env.router.addrs(host); len(got) != 0 {
				t.Errorf("hello--pr-7 still routed after its ref went: %v", got)
			}
			dynos, err := env.driver.List(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range dynos {
				if d.Spec.Env == "hello--pr-7" {
					t.Errorf("dyno %s of hello--pr-7 still runs", d.ID)
				}
			}
			env.wantHooks(t, "postdeploy run.1", "predestroy run.2")
			if releases, err := env.ledger.List("hello", "hello--pr-7"); err != nil || len(releases) != 2 {
				t.Errorf("hello--pr-7's releases after teardown: %d, %v; want its 2 kept", len(releases), err)
			}
			if got := get(t, env.router.addrs("hello.default.localhost")); got != "main\n" {
				t.Errorf("hello serves %q at the end, want main's", got)
			}
		})
	}
}

// wantHooks checks the lines the review hooks wrote, in order.
func (e *appReviewEnv) wantHooks(t *testing.T, want ...string) {
	t.Helper()
	(&reviewEnv{hooks: e.hooks}).wantHooks(t, want...)
}

// TestAppSourceReviewMarkBuiltCommit: when the ref of an app source's review
// environment moves between the listing and the fetch (its checkout is elsewhere, so
// the ref is fetched), the release's review mark names the commit that was built,
// not the one listed.
func TestAppSourceReviewMarkBuiltCommit(t *testing.T) {
	t.Parallel()
	env := newAppReviewEnv(t, "file")
	env.reconcile()
	env.pullRequest(t, "7", "pr 7 as listed\n")
	listed := gitIn(t, env.bare, "rev-parse", "refs/pull/7/head")
	env.pullRequest(t, "7", "pr 7 moved\n")
	moved := gitIn(t, env.bare, "rev-parse", "refs/pull/7/head")
	gitIn(t, env.bare, "update-ref", "refs/pull/7/head", listed)

	var moveErr error
	env.reviews.mu.Lock()
	env.reviews.afterSyncApps = func() {
		// Once: the forge moves the ref right after the listing.
		out, err := exec.Command("git", "-C", env.bare, "update-ref", "refs/pull/7/head", moved).CombinedOutput()
		env.reviews.mu.Lock()
		defer env.reviews.mu.Unlock()
		if err != nil {
			moveErr = fmt.Errorf("move refs/pull/7/head: %w: %s", err, out)
		}
		env.reviews.afterSyncApps = nil
	}
	env.reviews.mu.Unlock()
	env.reconcile()
	env.reviews.mu.Lock()
	err := moveErr
	env.reviews.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if got := get(t, env.router.addrs("hello.hello--pr-7.localhost")); got != "pr 7 moved\n" {
		t.Fatalf("hello--pr-7 serves %q, want the moved ref's build", got)
	}
	releases, err := env.ledger.List("hello", "hello--pr-7")
	if err != nil || len(releases) != 1 {
		t.Fatalf("hello--pr-7 has %d releases (%v), want 1", len(releases), err)
	}
	if mark := releases[0].Review; mark == nil || mark.Commit != moved {
		t.Errorf("hello--pr-7's v1 is marked %+v, want the built commit %s (listed: %s)", mark, moved, listed)
	}
}
