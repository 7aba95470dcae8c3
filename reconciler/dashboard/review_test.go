package dashboard_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/manifold-paas/manifold/logs"
	"github.com/manifold-paas/manifold/reconciler"
	"github.com/manifold-paas/manifold/reconciler/ledger"
	"github.com/manifold-paas/manifold/spec"
)

// TestReviewReleaseMark: the app page of a review environment shows each release's
// review mark (ref and commit), and none on a release without one.
func TestReviewReleaseMark(t *testing.T) {
	t.Parallel()
	plex := logs.New(logs.Options{})
	t.Cleanup(plex.Close)
	daemon := exampleDaemon(1)
	daemon.apps = append(daemon.apps, spec.App{Name: "hello", Env: "pr-7", Domains: []string{"hello.pr-7.localhost"}})
	daemon.statuses = append(daemon.statuses, reconciler.AppStatus{App: "hello", Env: "pr-7", State: reconciler.StateReady, Release: 2})
	daemon.releases["pr-7/hello"] = []ledger.Release{
		{Version: 2, Description: "Deploy 9f8e7d6", Commit: "9f8e7d6c5b", Status: ledger.StatusSucceeded, CreatedAt: now.Add(-time.Minute),
			Review: &ledger.Review{Ref: "refs/pull/7/head", Commit: "9f8e7d6c5b4a", Source: "config"}},
		{Version: 1, Description: "Deploy 0a0b0c0", Commit: "0a0b0c0d0e", Status: ledger.StatusSucceeded, CreatedAt: now.Add(-time.Hour)},
	}
	server := httptest.NewServer(newDashboard(t, daemon, plex))
	t.Cleanup(server.Close)
	status, body := getBody(t, loggedIn(t, server, "mf_deploy"), server.URL+"/apps/pr-7/hello")
	if status != http.StatusOK {
		t.Fatalf("GET /apps/pr-7/hello: %d %s", status, body)
	}
	if !strings.Contains(body, `Deploy 9f8e7d6 <span class="meta">review refs/pull/7/head@9f8e7d6</span>`) {
		t.Errorf("v2's review mark is not shown:\n%s", body)
	}
	if !strings.Contains(body, "<td>Deploy 0a0b0c0</td>") {
		t.Errorf("v1 (unmarked) is not shown bare:\n%s", body)
	}
}
