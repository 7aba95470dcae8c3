package review_test

import (
	"context"
	"io"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/manifold-paas/manifold/reconciler/review"
	"github.com/manifold-paas/manifold/spec"
)

func git(t testing.TB, dir string, args ...string) string {
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

// bareRepo makes a bare repository (its path) with two commits on main, and
// returns both commits' ids.
func bareRepo(t testing.TB) (dir string, first, second string) {
	t.Helper()
	root := t.TempDir()
	work, bare := filepath.Join(root, "work"), filepath.Join(root, "config.git")
	git(t, root, "init", "-q", "--bare", "-b", "main", bare)
	git(t, root, "init", "-q", "-b", "main", work)
	for _, msg := range []string{"first", "second"} {
		git(t, work, "commit", "-q", "--allow-empty", "-m", msg)
	}
	git(t, work, "push", "-q", bare, "main")
	return bare, git(t, work, "rev-parse", "HEAD~1"), git(t, work, "rev-parse", "HEAD")
}

// TestListerLifecycle drives a Tracker from real listings of a bare repo, over
// file:// and over HTTP (git http-backend): a pull request ref appears, moves, the
// repo becomes unreadable (nothing is destroyed), comes back, and the ref goes.
func TestListerLifecycle(t *testing.T) {
	t.Parallel()
	backend, err := exec.LookPath("git")
	if err != nil {
		t.Fatal(err)
	}
	for _, transport := range []string{"file", "http"} {
		t.Run(transport, func(t *testing.T) {
			t.Parallel()
			bare, first, second := bareRepo(t)
			url := "file://" + bare
			if transport == "http" {
				server := httptest.NewServer(&cgi.Handler{
					Path: backend, Args: []string{"http-backend"}, Stderr: io.Discard, // the failed listings' complaints
					Env: []string{"GIT_PROJECT_ROOT=" + filepath.Dir(bare), "GIT_HTTP_EXPORT_ALL=1"},
				})
				t.Cleanup(server.Close)
				url = server.URL + "/" + filepath.Base(bare)
			}
			lister := review.GitLister{URL: url}
			tracker := review.NewTracker(spec.Review{Refs: []string{"refs/pull/*/head"}, Max: 5})
			now := time.Now()
			step := func(what, create, redeploy, destroy string) {
				t.Helper()
				now = now.Add(time.Minute)
				refs, err := lister.List(context.Background())
				d := tracker.Observe(now, refs, err)
				if got := names(d.Create); got != create {
					t.Errorf("%s: create %q, want %q", what, got, create)
				}
				if got := names(d.Redeploy); got != redeploy {
					t.Errorf("%s: redeploy %q, want %q", what, got, redeploy)
				}
				if got := destroyed(d.Destroy); got != destroy {
					t.Errorf("%s: destroy %q, want %q", what, got, destroy)
				}
			}

			step("no pull request", "", "", "")
			git(t, bare, "update-ref", "refs/pull/7/head", first)
			step("pull request 7 opens", "pr-7@"+first[:1], "", "")
			git(t, bare, "update-ref", "refs/pull/7/head", second)
			step("a push to it", "", "pr-7@"+second[:1], "")

			// Unreadable: the repository is moved away (the tests run as root, for
			// whom file modes do not stop a read).
			if err := os.Rename(bare, bare+".away"); err != nil {
				t.Fatal(err)
			}
			for range 3 {
				step("the listing fails", "", "", "")
			}
			if tracker.ListError == "" || len(tracker.Envs()) != 1 {
				t.Fatalf("after failed listings: error %q, envs %+v", tracker.ListError, tracker.Envs())
			}
			if err := os.Rename(bare+".away", bare); err != nil {
				t.Fatal(err)
			}
			step("readable again", "", "", "")

			git(t, bare, "update-ref", "-d", "refs/pull/7/head")
			step("the ref is gone once", "", "", "")
			step("the ref is gone twice", "", "", "pr-7: its ref refs/pull/7/head is gone")
			if envs := tracker.Envs(); len(envs) != 0 {
				t.Errorf("envs after teardown: %+v", envs)
			}
		})
	}
}
