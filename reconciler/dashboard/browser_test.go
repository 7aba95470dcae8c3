package dashboard_test

import (
	"context"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/manifold-paas/manifold/drivers"
	"github.com/manifold-paas/manifold/logs"
)

// browser starts Debian's headless chromium (nothing downloaded) for one test.
func browser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium (Debian's package) is needed: make test installs it: ", err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path),
		chromedp.Flag("headless", true), chromedp.NoSandbox, chromedp.WindowSize(1280, 900),
		chromedp.UserDataDir(t.TempDir()))
	allocator, cancelAllocator := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelBrowser := chromedp.NewContext(allocator)
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() {
		cancelTimeout()
		cancelBrowser()
		cancelAllocator()
	})
	return ctx
}

// screenshot saves the page as a PNG under the test's temp folder (and under
// $MANIFOLD_SCREENSHOTS when set), for a person to look at.
func screenshot(t *testing.T, ctx context.Context, name string) {
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

// TestDashboardInABrowser drives the pages in a real browser: log in, see the apps,
// open one, see a dyno's state change and a new log line without reloading, roll back.
func TestDashboardInABrowser(t *testing.T) {
	t.Parallel()
	plex := logs.New(logs.Options{})
	t.Cleanup(plex.Close)
	daemon := exampleDaemon(3)
	server := httptest.NewServer(newDashboard(t, daemon, plex))
	t.Cleanup(server.Close)
	ctx := browser(t)

	if err := chromedp.Do(ctx,
		chromedp.Navigate(server.URL+"/"),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), "mf_deploy"),
		chromedp.Submit(chromedp.ID("token")),
		chromedp.WaitVisible(chromedp.CSS(`#overview tr[data-app="hello"]`)),
	); err != nil {
		t.Fatal(err)
	}
	rows, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#overview tr").length`))
	if err != nil {
		t.Fatal(err)
	}
	if rows != 6 {
		t.Errorf("overview shows %d rows, want 6", rows)
	}
	screenshot(t, ctx, "overview.png")

	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`#overview tr[data-app="hello"][data-env="staging"] a`)),
		chromedp.WaitVisible(chromedp.CSS(`#formation tr[data-dyno="web.2"]`)),
	); err != nil {
		t.Fatal(err)
	}
	// web.2 comes up and a dyno prints a line: both show without a reload.
	daemon.mu.Lock()
	for i := range daemon.dynos {
		if daemon.dynos[i].ID == "hello-staging-web.2" {
			daemon.dynos[i].State = drivers.StateUp
		}
	}
	daemon.mu.Unlock()
	plex.Publish(logs.Line{App: "hello", Env: "staging", Source: "app", Dyno: "web.2", Text: "hello from the browser test"})
	if err := chromedp.Do(ctx,
		chromedp.WaitVisible(chromedp.CSS(`#formation tr[data-dyno="web.2"] .state.up`)),
	); err != nil {
		t.Fatalf("the formation did not refresh: %v", err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.getElementById("log").textContent.includes("hello from the browser test")`,
		chromedp.WithPollingTimeout(2*time.Second))); err != nil {
		log, _ := chromedp.Run(ctx, chromedp.Text(chromedp.ID("log")))
		t.Fatalf("the line did not reach the tail within 2 s: %v (log: %q)", err, log)
	}
	screenshot(t, ctx, "app.png")

	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`tr[data-version="2"] button.rollback`)),
		chromedp.WaitVisible(chromedp.CSS(`.flash`)),
		chromedp.WaitVisible(chromedp.CSS(`#releases tr[data-version="4"]`)),
	); err != nil {
		t.Fatal(err)
	}
	if flash, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`.flash`))); err != nil || !strings.Contains(flash, "Rolled back to v2") {
		t.Errorf("flash = %q, %v", flash, err)
	}

	// The pipeline view: each app's environments side by side.
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`a.navlink[href="/pipeline"]`)),
		chromedp.WaitVisible(chromedp.CSS(`table.pipeline tr[data-app="hello"] td[data-env="production"]`)),
	); err != nil {
		t.Fatal(err)
	}
	if cell, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`tr[data-app="hello"] td[data-env="staging"]`))); err != nil ||
		!strings.Contains(cell, "manifold promote -a hello --from staging --to production") {
		t.Errorf("staging's cell = %q (%v): want the promotion to production", cell, err)
	}
	screenshot(t, ctx, "pipeline.png")

	// At 390 px wide the overview still fits without a horizontal page scroll.
	if err := chromedp.Do(ctx,
		chromedp.EmulateViewport(390, 844),
		chromedp.Navigate(server.URL+"/"),
		chromedp.WaitVisible(chromedp.ID("overview")),
	); err != nil {
		t.Fatal(err)
	}
	overflow, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth`))
	if err != nil {
		t.Fatal(err)
	}
	if overflow {
		t.Error("the overview scrolls sideways at 390 px")
	}
	screenshot(t, ctx, "overview-390.png")
}
