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

// appSourceRepos makes the git source of app hello (a work tree pushed to a bare
// repo, read over file://) serving www/index.html with busybox httpd, and a config
// repo whose hello builds its main and says review = true, with review apps of
// refs/pull/*/head, at most max at once. It returns the config repo, the source's
// work tree and its bare repo.
func appSourceRepos(t testing.TB, max int) (config, work, bare string) {
	t.Helper()
	root := t.TempDir()
	work, bare = filepath.Join(root, "hello"), filepath.Join(root, "hello.git")
	writeTree(t, work, map[string]string{
		"Procfile":       "web: busybox httpd -f -p $PORT -h www\n",
		"www/index.html": "main\n",
	})
	git(t, work, "init", "-q", "-b", "main")
	git(t, work, "add", "-A")
	git(t, work, "commit", "-q", "-m", "main")
	git(t, root, "init", "-q", "--bare", "-b", "main", bare)
	git(t, work, "push", "-q", bare, "main")

	config = t.TempDir()
	writeTree(t, config, map[string]string{
		"apps/hello.hcl": fmt.Sprintf("app \"hello\" {\n  source {\n    git = %q\n    ref = \"main\"\n  }\n  buildpacks = [\"procfile\"]\n  review     = true\n}\n", "file://"+bare),
		"manifold.hcl":   fmt.Sprintf("review {\n  refs = [\"refs/pull/*/head\"]\n  max  = %d\n}\n", max),
	})
	git(t, config, "init", "-q", "-b", "main")
	git(t, config, "add", "-A")
	git(t, config, "commit", "-q", "-m", "main")
	return config, work, bare
}

func writeTree(t testing.TB, root string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		path := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// sourcePullRequest commits content as www/index.html of the app's source, pushes it
// and points refs/pull/N/head of the bare repo at it, as a forge does; it returns
// the commit.
func sourcePullRequest(t testing.TB, work, bare string, n int, content string) string {
	t.Helper()
	git(t, work, "checkout", "-q", "-B", fmt.Sprintf("pr-%d", n), "main")
	if err := os.WriteFile(filepath.Join(work, "www/index.html"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	git(t, work, "commit", "-q", "-am", fmt.Sprintf("pr %d", n))
	commit := git(t, work, "rev-parse", "HEAD")
	git(t, work, "push", "-q", bare, fmt.Sprintf("+HEAD:refs/heads/pr-%d", n))
	git(t, bare, "update-ref", fmt.Sprintf("refs/pull/%d/head", n), commit)
	git(t, work, "checkout", "-q", "main")
	return commit
}

// sourcePush posts what a forge sends for a push to the app's own repository (not
// the config repo's): the webhook answers 202, and a pass lists the app's refs.
func (d *daemon) sourcePush(t testing.TB, ref, after string) {
	t.Helper()
	body := fmt.Sprintf(`{"ref":%q,"after":%q,"repository":{"full_name":"acme/hello"}}`, ref, after)
	req, err := http.NewRequest(http.MethodPost, "http://"+d.webhook+"/hooks/git", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", "push")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("the webhook answers the app source's push %d, want 202", resp.StatusCode)
	}
}

// TestAppSourceReviewAppsEndToEnd: `manifold up` on a config repo whose app hello
// builds its own git source with review = true; a pull request ref of that source
// (update-ref + the webhook, as the source's forge sends) becomes hello--pr-7, built
// from it and answered at hello.hello--pr-7.localhost, listed by `manifold review
// list` and `manifold status`; a push makes its v2; the ref removed, two listings
// later it is gone, and hello keeps serving main.
func TestAppSourceReviewAppsEndToEnd(t *testing.T) {
	config, work, bare := appSourceRepos(t, 5)
	state := t.TempDir()
	t.Cleanup(func() { killDynos(filepath.Join(state, "dynos")) })
	routerAddr := freeAddr(t)
	d := startDaemon(t, state, "file://"+config, routerAddr, "1h")
	eventually(t, 2*time.Minute, "main deploys", func() error { return wantBody(d, "hello.default.localhost", "main\n") })

	const host = "hello.hello--pr-7.localhost"
	first := sourcePullRequest(t, work, bare, 7, "pr 7\n")
	d.sourcePush(t, "refs/pull/7/head", first)
	eventually(t, time.Minute, "hello--pr-7 answers", func() error { return wantBody(d, host, "pr 7\n") })
	if err := wantBody(d, "hello.default.localhost", "main\n"); err != nil {
		t.Errorf("main after hello--pr-7: %v", err)
	}
	code, out, errOut := runCLI(t, "review", "list", "--api", d.apiAddr)
	if code != 0 || !strings.Contains(out, "hello--pr-7") || !strings.Contains(out, "active") || !strings.Contains(out, "refs/pull/7/head of hello") {
		t.Errorf("review list: exit %d\n%s%s", code, out, errOut)
	}
	// The dyno answers once routed; the pass that started it says Ready when it ends.
	eventually(t, time.Minute, "status lists hello in hello--pr-7 as Ready", func() error {
		code, out, errOut := runCLI(t, "status", "--api", d.apiAddr)
		if code != 0 || !slices.ContainsFunc(strings.Split(out, "\n"), func(line string) bool {
			return strings.HasPrefix(line, "hello") && strings.Contains(line, "hello--pr-7") && strings.Contains(line, "Ready")
		}) {
			return fmt.Errorf("exit %d\n%s%s", code, out, errOut)
		}
		return nil
	})

	second := sourcePullRequest(t, work, bare, 7, "pr 7, pushed again\n")
	d.sourcePush(t, "refs/pull/7/head", second)
	eventually(t, time.Minute, "hello--pr-7 redeploys", func() error { return wantBody(d, host, "pr 7, pushed again\n") })
	code, out, errOut = runCLI(t, "releases", "-a", "hello", "-e", "hello--pr-7", "--api", d.apiAddr)
	if code != 0 || !strings.Contains(out, "v2") || !strings.Contains(out, second[:7]) {
		t.Errorf("releases of hello in hello--pr-7: exit %d, want v2 deploying %s\n%s%s", code, second[:7], out, errOut)
	}

	git(t, bare, "update-ref", "-d", "refs/pull/7/head")
	d.hook(t)
	// The second listing needs a second pass: a webhook every 100 ms at most stands
	// for the next event or poll.
	var lastHook time.Time
	eventually(t, time.Minute, "hello--pr-7 torn down", func() error {
		if err := wantBody(d, host, "pr 7, pushed again\n"); err == nil {
			if time.Since(lastHook) > 100*time.Millisecond {
				d.hook(t)
				lastHook = time.Now()
			}
			return fmt.Errorf("hello--pr-7 still answers")
		}
		return nil
	})
	if err := wantBody(d, "hello.default.localhost", "main\n"); err != nil {
		t.Errorf("main after hello--pr-7 went: %v", err)
	}
}

// BenchmarkAppRefToReviewApp measures, over 10 pull requests of hello's own git
// source, the time from `git update-ref refs/pull/N/head` in the source's bare repo
// (and the webhook) to hello.hello--pr-N.localhost answering: "built" points each
// ref at main's commit, whose slug is built already (the time is the listing, the
// source's fetch and the dynos' start); "new-commit" at a new commit each, built
// with the procfile buildpack. It reports p50 and p99 in ms, and those of the time
// from `git update-ref -d` (and a webhook every 250 ms) to the host no longer
// answering.
func BenchmarkAppRefToReviewApp(b *testing.B) {
	for _, variant := range []string{"built", "new-commit"} {
		b.Run(variant, func(b *testing.B) {
			config, work, bare := appSourceRepos(b, 100)
			state := b.TempDir()
			b.Cleanup(func() { killDynos(filepath.Join(state, "dynos")) })
			routerAddr := freeAddr(b)
			d := startDaemon(b, state, "file://"+config, routerAddr, "1h")
			eventually(b, 2*time.Minute, "main deploys", func() error { return wantBody(d, "hello.default.localhost", "main\n") })
			main := git(b, bare, "rev-parse", "main")
			const pulls = 10
			var took []time.Duration
			n := 0
			b.ResetTimer()
			for range b.N * pulls {
				n++
				body, commit := "main\n", main
				if variant == "new-commit" {
					// The commit is made and pushed before the clock starts: only
					// the ref's update is timed.
					b.StopTimer()
					body = fmt.Sprintf("pr %d\n", n)
					commit = sourcePullRequest(b, work, bare, n, body)
					git(b, bare, "update-ref", "-d", fmt.Sprintf("refs/pull/%d/head", n))
					b.StartTimer()
				}
				start := time.Now()
				git(b, bare, "update-ref", fmt.Sprintf("refs/pull/%d/head", n), commit)
				d.hook(b)
				host := fmt.Sprintf("hello.hello--pr-%d.localhost", n)
				eventually(b, time.Minute, host+" answering", func() error { return wantBody(d, host, body) })
				took = append(took, time.Since(start))
			}
			var teardown []time.Duration
			for i := n - pulls + 1; i <= n; i++ {
				host := fmt.Sprintf("hello.hello--pr-%d.localhost", i)
				start := time.Now()
				git(b, bare, "update-ref", "-d", fmt.Sprintf("refs/pull/%d/head", i))
				teardown = append(teardown, d.waitTornDown(b, host, start))
			}
			b.StopTimer()
			reportMillis(b, "", took)
			reportMillis(b, "teardown-", teardown)
		})
	}
}

// TestAppSourceReviewDroppedWhileDown: hello stops saying review = true while the
// daemon is down (kill -9). The new daemon's first passes destroy hello--pr-7 as
// the old one would have: predestroy runs (on its current release), its dynos stop,
// and <state>/review/hello--pr-7 (its postdeploy mark) and hello's state file go.
func TestAppSourceReviewDroppedWhileDown(t *testing.T) {
	config, work, bare := appSourceRepos(t, 5)
	hooksDir := t.TempDir()
	if err := os.Chmod(hooksDir, 0o777); err != nil { // dynos run as nobody
		t.Fatal(err)
	}
	hooks := filepath.Join(hooksDir, "hooks.log")
	writeTree(t, config, map[string]string{"manifold.hcl": fmt.Sprintf(`review {
  refs       = ["refs/pull/*/head"]
  postdeploy = { hello = "echo postdeploy $DYNO >> %[1]s" }
  predestroy = { hello = "echo predestroy $DYNO >> %[1]s" }
}
`, hooks)})
	git(t, config, "commit", "-q", "-am", "hooks")
	state := t.TempDir()
	t.Cleanup(func() { killDynos(filepath.Join(state, "dynos")) })
	routerAddr := freeAddr(t)
	d := startDaemon(t, state, "file://"+config, routerAddr, "1h")
	eventually(t, 2*time.Minute, "main deploys", func() error { return wantBody(d, "hello.default.localhost", "main\n") })

	const host = "hello.hello--pr-7.localhost"
	d.sourcePush(t, "refs/pull/7/head", sourcePullRequest(t, work, bare, 7, "pr 7\n"))
	eventually(t, time.Minute, "hello--pr-7 answers", func() error { return wantBody(d, host, "pr 7\n") })
	hooksAre := func(want string) func() error {
		return func() error {
			data, _ := os.ReadFile(hooks)
			if string(data) != want {
				return fmt.Errorf("hooks ran %q, want %q", data, want)
			}
			return nil
		}
	}
	eventually(t, time.Minute, "postdeploy runs", hooksAre("postdeploy run.1\n"))
	folder := filepath.Join(state, "review", "hello--pr-7")
	if _, err := os.Stat(filepath.Join(folder, "postdeployed")); err != nil {
		t.Fatalf("hello--pr-7's postdeploy mark: %v", err)
	}

	d.kill()
	writeTree(t, config, map[string]string{"apps/hello.hcl": strings.Replace(readTree(t, config, "apps/hello.hcl"), "review     = true", "review     = false", 1)})
	git(t, config, "commit", "-q", "-am", "hello: no more review apps")
	d = startDaemon(t, state, "file://"+config, routerAddr, "1h")
	eventually(t, time.Minute, "predestroy runs", hooksAre("postdeploy run.1\npredestroy run.1\n")) // the new daemon counts one-offs from 1
	eventually(t, time.Minute, "hello--pr-7 torn down", func() error {
		if err := wantBody(d, host, "pr 7\n"); err == nil {
			d.hook(t)
			return fmt.Errorf("hello--pr-7 still answers")
		}
		return nil
	})
	for _, path := range []string{folder, filepath.Join(state, "review", "tracker-hello.json")} {
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			t.Errorf("%s after the teardown: %v, want it gone", path, err)
		}
	}
	if err := wantBody(d, "hello.default.localhost", "main\n"); err != nil {
		t.Errorf("main after hello--pr-7 went: %v", err)
	}
}

func readTree(t testing.TB, root, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(name)))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
