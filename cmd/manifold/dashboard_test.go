package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

var loginURLRE = regexp.MustCompile(`dashboard\s+(http://\S+/login\?token=mf_\S+)`)

// TestDashboardEndToEnd drives the dashboard of a real daemon (process driver, a git
// config repo) in Debian's headless chromium: log in with the one-click URL, see the
// app, open it, watch a dyno come up after a scale commit without reloading, see the
// line it printed in the tail within 2 s, roll back and see the new release. Each step
// saves a screenshot under the test's temp folder (and $MANIFOLD_SCREENSHOTS).
func TestDashboardEndToEnd(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium (Debian's package) is needed: make test installs it: ", err)
	}
	repo := t.TempDir()
	if err := os.CopyFS(filepath.Join(repo, "src", "hello"), os.DirFS("../../examples/src/hello")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(repo, "apps"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeE2EApp(t, repo, "one", 1)
	git(t, repo, "init", "-q", "-b", "main")
	git(t, repo, "add", "-A")
	git(t, repo, "commit", "-q", "-m", "add hello")

	state := t.TempDir()
	t.Cleanup(func() { killDynos(filepath.Join(state, "dynos")) })
	routerAddr, apiAddr := freeAddr(t), freeAddr(t)
	d := startDaemonArgs(t, state, routerAddr, "up", "--repo", "file://"+repo, "--state", state, "--router", routerAddr,
		"--api", apiAddr, "--dashboard-login", "--interval", "500ms", "--boot-timeout", "30s", "-v")
	var loginURL string
	eventually(t, 30*time.Second, "the daemon prints the dashboard's login URL", func() error {
		data, err := os.ReadFile(filepath.Join(state, "daemon.log"))
		if err != nil {
			return err
		}
		m := loginURLRE.FindSubmatch(data)
		if m == nil {
			return errors.New("not yet")
		}
		loginURL = string(m[1])
		return nil
	})
	host := "hello.default.localhost"
	waitBody := func(want string) {
		t.Helper()
		eventually(t, 3*time.Minute, "hello answers "+want, func() error {
			body, err := d.get(host)
			if err == nil && !strings.Contains(body, want) {
				return fmt.Errorf("body %q", body)
			}
			return err
		})
	}
	waitBody("one from web.1")
	writeE2EApp(t, repo, "two", 1)
	git(t, repo, "commit", "-q", "-am", "greet two")
	waitBody("two from web.1")

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium),
		chromedp.Flag("headless", true), chromedp.NoSandbox, chromedp.WindowSize(1280, 900), chromedp.UserDataDir(t.TempDir()))
	allocator, cancelAllocator := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAllocator()
	browser, cancelBrowser := chromedp.NewContext(allocator)
	defer cancelBrowser()
	ctx, cancel := context.WithTimeout(browser, 4*time.Minute)
	defer cancel()
	shot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		dirs := []string{t.TempDir()}
		if dir := os.Getenv("MANIFOLD_SCREENSHOTS"); dir != "" {
			dirs = append(dirs, dir)
		}
		for _, dir := range dirs {
			if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}

	// The one-click URL logs in and lands on the overview.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(loginURL),
		chromedp.WaitVisible(chromedp.CSS(`#overview tr[data-app="hello"][data-env="default"]`)),
	); err != nil {
		t.Fatalf("overview: %v", err)
	}
	if url, err := chromedp.Run(ctx, chromedp.Location()); err != nil || strings.Contains(url, "token=") {
		t.Errorf("after login the address is %q (%v): the token must leave it", url, err)
	}
	shot("dashboard-overview.png")

	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`#overview tr[data-app="hello"] a`)),
		chromedp.WaitVisible(chromedp.CSS(`#formation tr[data-dyno="web.1"] .state.up`)),
	); err != nil {
		t.Fatalf("app page: %v", err)
	}

	// A scale commit: web.2 comes up on the open page, and the line it printed when it
	// started reaches the tail.
	writeE2EApp(t, repo, "two", 2)
	git(t, repo, "commit", "-q", "-am", "scale web to 2")
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(`#formation tr[data-dyno="web.2"] .state.up`))); err != nil {
		t.Fatalf("web.2 never showed as up without a reload: %v", err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.getElementById("log").textContent.includes("app[web.2]: ")`,
		chromedp.WithPollingTimeout(2*time.Second))); err != nil {
		log, _ := chromedp.Run(ctx, chromedp.Text(chromedp.ID("log")))
		t.Fatalf("web.2's line did not reach the tail within 2 s of it showing up: %v\n%s", err, tail(log, 20))
	}
	shot("dashboard-app.png")

	// Roll back to v1: the page shows v3, "Rollback to v1", and the app serves v1's config.
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`tr[data-version="1"] button.rollback`)),
		chromedp.WaitVisible(chromedp.CSS(`.flash`)),
		chromedp.WaitVisible(chromedp.CSS(`#releases tr[data-version="3"]`)),
	); err != nil {
		t.Fatalf("rollback: %v", err)
	}
	row, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#releases tr[data-version="3"]`)))
	if err != nil || !strings.Contains(row, "Rollback to v1") || !strings.Contains(row, "dashboard-local") {
		t.Errorf("release v3 row = %q (%v); want a rollback to v1 by the login token", row, err)
	}
	waitBody("one from web.")
}
