package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// reviewRepo makes a config repo (a git work tree, listed and fetched over file://)
// whose app hello serves www/index.html with busybox httpd, with review apps of
// refs/pull/*/head, at most max at once.
func newReviewRepo(t testing.TB, max int) string {
	t.Helper()
	repo := t.TempDir()
	for name, content := range map[string]string{
		"apps/hello.hcl":           "app \"hello\" {\n  source { path = \"../src/hello\" }\n  buildpacks = [\"procfile\"]\n}\n",
		"src/hello/Procfile":       "web: busybox httpd -f -p $PORT -h www\n",
		"src/hello/www/index.html": "main\n",
		"manifold.hcl":             fmt.Sprintf("review {\n  refs = [\"refs/pull/*/head\"]\n  max  = %d\n}\n", max),
	} {
		path := filepath.Join(repo, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	git(t, repo, "init", "-q", "-b", "main")
	git(t, repo, "add", "-A")
	git(t, repo, "commit", "-q", "-m", "main")
	return repo
}

func (d *daemon) hook(t testing.TB) {
	t.Helper()
	resp, err := http.Post("http://"+d.webhook+"/hooks/git", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

// TestReviewAppsEndToEnd: `manifold up` on a git config repo; a pull request ref
// (update-ref + the webhook) becomes pr-7, built from its commit and answered at
// hello.pr-7.localhost, listed by `manifold review list` and `manifold status`; the
// ref removed, two listings later it is gone.
func TestReviewAppsEndToEnd(t *testing.T) {
	repo := newReviewRepo(t, 5)
	state := t.TempDir()
	t.Cleanup(func() { killDynos(filepath.Join(state, "dynos")) })
	routerAddr := freeAddr(t)
	d := startDaemon(t, state, "file://"+repo, routerAddr, "1h")
	eventually(t, 2*time.Minute, "main deploys", func() error { return wantBody(d, "hello.default.localhost", "main\n") })

	git(t, repo, "checkout", "-q", "-b", "login-form")
	if err := os.WriteFile(filepath.Join(repo, "src/hello/www/index.html"), []byte("pr 7\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	git(t, repo, "commit", "-q", "-am", "pr 7")
	git(t, repo, "update-ref", "refs/pull/7/head", "HEAD")
	git(t, repo, "checkout", "-q", "main")
	d.hook(t)
	eventually(t, time.Minute, "pr-7 answers", func() error { return wantBody(d, "hello.pr-7.localhost", "pr 7\n") })
	if err := wantBody(d, "hello.default.localhost", "main\n"); err != nil {
		t.Errorf("main after pr-7: %v", err)
	}

	code, out, errOut := runCLI(t, "review", "list", "--api", d.apiAddr)
	if code != 0 || !strings.Contains(out, "pr-7") || !strings.Contains(out, "active") || !strings.Contains(out, "refs/pull/7/head") {
		t.Errorf("review list: exit %d\n%s%s", code, out, errOut)
	}
	// The dyno answers once routed; the pass that started it says Ready when it ends.
	eventually(t, time.Minute, "status lists hello in pr-7 as Ready", func() error {
		code, out, errOut := runCLI(t, "status", "--api", d.apiAddr)
		if code != 0 || !slices.ContainsFunc(strings.Split(out, "\n"), func(line string) bool {
			return strings.HasPrefix(line, "hello") && strings.Contains(line, "pr-7") && strings.Contains(line, "Ready")
		}) {
			return fmt.Errorf("exit %d\n%s%s", code, out, errOut)
		}
		return nil
	})

	git(t, repo, "update-ref", "-d", "refs/pull/7/head")
	d.hook(t)
	d.hook(t)
	// The second listing needs a second pass: a webhook every 100 ms at most stands
	// for the next event or poll (eventually looks more often than that).
	var lastHook time.Time
	eventually(t, time.Minute, "pr-7 torn down", func() error {
		if err := wantBody(d, "hello.pr-7.localhost", "pr 7\n"); err == nil {
			if time.Since(lastHook) > 100*time.Millisecond {
				d.hook(t)
				lastHook = time.Now()
			}
			return fmt.Errorf("pr-7 still answers")
		}
		return nil
	})
}

// wantBody checks that host answers 200 with body.
func wantBody(d *daemon, host, body string) error {
	got, err := d.get(host)
	if err != nil {
		return err
	}
	if got != body {
		return fmt.Errorf("%s answers %q, want %q", host, got, body)
	}
	return nil
}

// BenchmarkRefToReviewApp measures, over 10 pull requests, the time from `git
// update-ref refs/pull/N/head` (and the webhook) to hello.pr-N.localhost answering,
// for a commit whose slug is built already (main's), and the time from `git
// update-ref -d` (and a webhook every 250 ms: two listings must lack the ref) to it
// no longer answering. It reports p50 and p99 of each in ms.
func BenchmarkRefToReviewApp(b *testing.B) {
	repo := newReviewRepo(b, 100)
	state := b.TempDir()
	b.Cleanup(func() { killDynos(filepath.Join(state, "dynos")) })
	routerAddr := freeAddr(b)
	d := startDaemon(b, state, "file://"+repo, routerAddr, "1h")
	waitFor := func(host string, timeout time.Duration) {
		b.Helper()
		eventually(b, timeout, host+" answering", func() error {
			_, err := d.get(host)
			return err
		})
	}
	waitFor("hello.default.localhost", 2*time.Minute)
	const pulls = 10
	var took []time.Duration
	n := 0
	b.ResetTimer()
	for range b.N * pulls {
		n++
		start := time.Now()
		git(b, repo, "update-ref", fmt.Sprintf("refs/pull/%d/head", n), "HEAD")
		d.hook(b)
		waitFor(fmt.Sprintf("hello.pr-%d.localhost", n), time.Minute)
		took = append(took, time.Since(start))
	}
	var teardown []time.Duration
	for i := n - pulls + 1; i <= n; i++ {
		host := fmt.Sprintf("hello.pr-%d.localhost", i)
		start := time.Now()
		git(b, repo, "update-ref", "-d", fmt.Sprintf("refs/pull/%d/head", i))
		teardown = append(teardown, d.waitTornDown(b, host, start))
	}
	b.StopTimer()
	reportMillis(b, "", took)
	reportMillis(b, "teardown-", teardown)
}
