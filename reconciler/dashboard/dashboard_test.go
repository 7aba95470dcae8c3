package dashboard_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/manifold-paas/manifold/drivers"
	"github.com/manifold-paas/manifold/logs"
	"github.com/manifold-paas/manifold/reconciler"
	"github.com/manifold-paas/manifold/reconciler/dashboard"
	"github.com/manifold-paas/manifold/reconciler/ledger"
	"github.com/manifold-paas/manifold/reconciler/metrics"
	"github.com/manifold-paas/manifold/reconciler/source"
	"github.com/manifold-paas/manifold/spec"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

var now = time.Date(2026, 12, 1, 10, 30, 0, 0, time.UTC)

// fakeDaemon serves fixed apps, as the reconciler would report them.
type fakeDaemon struct {
	mu        sync.Mutex
	apps      []spec.App
	statuses  []reconciler.AppStatus
	releases  map[string][]ledger.Release
	rolledBy  string
	dynos     []drivers.Dyno
	rollbacks int
}

func (f *fakeDaemon) Status() reconciler.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return reconciler.Status{Revision: source.Revision{ID: "0123456789abcdef0123456789abcdef01234567"}, Apps: f.statuses}
}
func (f *fakeDaemon) Apps() []spec.App { return f.apps }
func (f *fakeDaemon) Releases(app, env string) (spec.App, []ledger.Release, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return spec.App{Name: app, Env: env}, f.releases[env+"/"+app], nil
}
func (f *fakeDaemon) Rollback(_ context.Context, app, env string, to int, author string) (ledger.Release, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	key := env + "/" + app
	list := f.releases[key]
	if len(list) == 0 {
		return ledger.Release{}, errors.New("no releases")
	}
	next := ledger.Release{Version: list[0].Version + 1, App: app, Env: env, Description: fmt.Sprintf("Rollback to v%d", to),
		Author: author, Status: ledger.StatusSucceeded, CreatedAt: now}
	f.releases[key] = append([]ledger.Release{next}, list...)
	f.rolledBy = author
	f.rollbacks++
	return next, nil
}
func (f *fakeDaemon) LivePlan(context.Context) (reconciler.LivePlan, error) {
	return reconciler.LivePlan{}, nil
}
func (f *fakeDaemon) List(context.Context) ([]drivers.Dyno, error) { return f.dynos, nil }

type fakeHistory struct{}

func (fakeHistory) History(string, string, time.Time) []metrics.Minute {
	var out []metrics.Minute
	for i := range 30 {
		out = append(out, metrics.Minute{Start: now.Add(time.Duration(i-29) * time.Minute), P50: 0.010 + float64(i)/1000,
			P95: 0.040, P99: 0.090, Max: 0.2, Requests: map[string]uint64{"2xx": uint64(100 + i), "5xx": 2},
			MemoryBytes: 200 << 20, MemoryLimitBytes: 512 << 20, Errors: map[string]uint64{"H12": 1}})
	}
	return out
}

// tokens knows "mf_read" (read) and "mf_deploy" (read, deploy).
type tokens struct{}

func (tokens) Verify(_ context.Context, token string) (dashboard.Principal, error) {
	switch token {
	case "mf_read":
		return dashboard.Principal{Name: "viewer", Allows: func(s dashboard.Scope, _ string) bool { return s == dashboard.ScopeRead }}, nil
	case "mf_deploy":
		return dashboard.Principal{Name: "ci", Allows: func(dashboard.Scope, string) bool { return true }}, nil
	}
	return dashboard.Principal{}, errors.New("unknown token")
}

func exampleDaemon(apps int) *fakeDaemon {
	f := &fakeDaemon{releases: map[string][]ledger.Release{}}
	for i := range apps {
		name := "hello"
		if i > 0 {
			name = fmt.Sprintf("app-%03d", i)
		}
		for _, env := range []string{"production", "staging"} {
			var pin *spec.ReleasePin
			if env == "production" && i == 0 {
				pin = &spec.ReleasePin{Slug: "sha256:" + strings.Repeat("p", 64), From: "staging v2"}
			}
			f.apps = append(f.apps, spec.App{Name: name, Env: env, Domains: []string{name + "." + env + ".localhost"}, Pin: pin,
				Config:    map[string]string{"GREETING": "hi", "DATABASE_URL": "postgres://secret@db/one"},
				Processes: []spec.Process{{Type: "web", Command: "bin/hello", Count: 2, Size: "standard-1x"}, {Type: "worker", Command: "bin/worker", Count: 1, Size: "standard-1x"}}})
			f.statuses = append(f.statuses, reconciler.AppStatus{App: name, Env: env, State: reconciler.StateReady, Release: 3,
				Commit: "abcdef0123456789", UpdatedAt: now.Add(-5 * time.Minute)})
			slugKey := "sha256:" + strings.Repeat(env[:1], 64) // staging's and production's differ
			f.releases[env+"/"+name] = []ledger.Release{
				{Version: 3, Description: "Set GREETING config vars", Author: "alice@example.com", Commit: "abcdef0123", Status: ledger.StatusSucceeded, CreatedAt: now.Add(-5 * time.Minute), SlugKey: slugKey},
				{Version: 2, Description: "Deploy 1a2b3c4", Author: "bob@example.com", Commit: "1a2b3c4d5e", Status: ledger.StatusSucceeded, CreatedAt: now.Add(-2 * time.Hour)},
				{Version: 1, Description: "Deploy 0f0f0f0", Author: "bob@example.com", Commit: "0f0f0f0f0f", Status: ledger.StatusSucceeded, CreatedAt: now.Add(-72 * time.Hour)},
			}
			for _, p := range []struct {
				typ   string
				index int
				state drivers.State
			}{{"web", 1, drivers.StateUp}, {"web", 2, drivers.StateStarting}, {"worker", 1, drivers.StateUp}} {
				f.dynos = append(f.dynos, drivers.Dyno{ID: fmt.Sprintf("%s-%s-%s.%d", name, env, p.typ, p.index), Name: fmt.Sprintf("%s.%d", p.typ, p.index),
					State: p.state, StateChangedAt: now.Add(-3 * time.Minute), MemoryBytes: 120 << 20,
					Spec: drivers.DynoSpec{App: name, Env: env, Type: p.typ, Index: p.index, Release: 3, MemoryBytes: 512 << 20}})
			}
		}
	}
	return f
}

func newDashboard(t testing.TB, daemon *fakeDaemon, plex *logs.Plex) *dashboard.Dashboard {
	t.Helper()
	d, err := dashboard.New(dashboard.Options{Daemon: daemon, Dynos: daemon, Logs: plex, History: fakeHistory{},
		Tokens: tokens{}, DomainPort: ":5000", Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// loggedIn returns a client with a session cookie for token.
func loggedIn(t testing.TB, server *httptest.Server, token string) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	resp, err := client.PostForm(server.URL+"/login", url.Values{"token": {token}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/" {
		t.Fatalf("login with %s: %s at %s", token, resp.Status, resp.Request.URL)
	}
	return client
}

func getBody(t testing.TB, client *http.Client, target string) (int, string) {
	t.Helper()
	resp, err := client.Get(target)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

func TestPagesGolden(t *testing.T) {
	t.Parallel()
	plex := logs.New(logs.Options{})
	t.Cleanup(plex.Close)
	plex.Publish(logs.Line{Time: now.Add(-time.Second), App: "hello", Env: "staging", Source: "app", Dyno: "web.1", Text: "listening on <8080> & ready"})
	server := httptest.NewServer(newDashboard(t, exampleDaemon(2), plex))
	t.Cleanup(server.Close)
	client := loggedIn(t, server, "mf_deploy")
	for _, page := range []struct{ path, golden string }{
		{"/", "overview.html"},
		{"/apps/staging/hello", "app.html"},
		{"/login", "login.html"},
		{"/pipeline", "pipeline.html"},
	} {
		t.Run(page.golden, func(t *testing.T) {
			status, body := getBody(t, client, server.URL+page.path)
			if status != http.StatusOK {
				t.Fatalf("GET %s: %d %s", page.path, status, body)
			}
			if strings.Contains(body, "postgres://secret") {
				t.Errorf("%s shows a config value", page.path)
			}
			assertGolden(t, filepath.Join("testdata", page.golden), []byte(body))
		})
	}
}

func assertGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test -update rewrites it):\n%s", path, got)
	}
}

func TestAccess(t *testing.T) {
	t.Parallel()
	plex := logs.New(logs.Options{})
	t.Cleanup(plex.Close)
	daemon := exampleDaemon(1)
	server := httptest.NewServer(newDashboard(t, daemon, plex))
	t.Cleanup(server.Close)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	// Without a session, pages send to /login and actions are refused.
	resp, err := noRedirect.Get(server.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login" {
		t.Errorf("GET / without a session: %s to %q", resp.Status, resp.Header.Get("Location"))
	}
	resp, err = noRedirect.PostForm(server.URL+"/apps/staging/hello/rollback", url.Values{"version": {"2"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("rollback without a session: %s", resp.Status)
	}
	// A bad token is refused; a good one gets an HttpOnly, SameSite=Strict cookie.
	resp, err = noRedirect.PostForm(server.URL+"/login", url.Values{"token": {"mf_wrong"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("login with a bad token: %s", resp.Status)
	}
	resp, err = noRedirect.Get(server.URL + "/login?token=mf_read")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cookie := resp.Header.Get("Set-Cookie")
	if resp.StatusCode != http.StatusSeeOther || !strings.Contains(cookie, "HttpOnly") || !strings.Contains(cookie, "SameSite=Strict") {
		t.Errorf("one-click login: %s, cookie %q", resp.Status, cookie)
	}
	// The same link followed from another site logs nobody in.
	req, err := http.NewRequest(http.MethodGet, server.URL+"/login?token=mf_read", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	resp, err = noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || resp.Header.Get("Set-Cookie") != "" {
		t.Errorf("cross-site login link: %s, cookie %q", resp.Status, resp.Header.Get("Set-Cookie"))
	}
	// A read token looks but may not roll back.
	reader := loggedIn(t, server, "mf_read")
	if status, body := getBody(t, reader, server.URL+"/apps/staging/hello"); status != 200 || strings.Contains(body, "Roll back to") {
		t.Errorf("app page for a reader: %d, rollback button shown: %v", status, strings.Contains(body, "Roll back to"))
	}
	resp, err = reader.PostForm(server.URL+"/apps/staging/hello/rollback", url.Values{"version": {"2"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || daemon.rollbacks != 0 {
		t.Errorf("rollback with a read token: %s, %d rollbacks", resp.Status, daemon.rollbacks)
	}
	// A cross-site POST is refused even with a deploy session.
	deployer := loggedIn(t, server, "mf_deploy")
	req, err = http.NewRequest(http.MethodPost, server.URL+"/apps/staging/hello/rollback", strings.NewReader("version=2"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "http://evil.example")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	resp, err = deployer.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || daemon.rollbacks != 0 {
		t.Errorf("cross-site rollback: %s, %d rollbacks", resp.Status, daemon.rollbacks)
	}
	// The same from the dashboard itself rolls back, with the token's name as author.
	resp, err = deployer.PostForm(server.URL+"/apps/staging/hello/rollback", url.Values{"version": {"2"}})
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if daemon.rollbacks != 1 || daemon.rolledBy != "ci" || !strings.Contains(string(body), "Rolled back to v2: v4 runs.") {
		t.Errorf("rollback: %d rollbacks by %q; page %s", daemon.rollbacks, daemon.rolledBy, body)
	}
}

// BenchmarkOverview200Apps renders the overview of 200 apps in 2 environments; the
// goal is under 50 ms and 200 KB.
func BenchmarkOverview200Apps(b *testing.B) {
	plex := logs.New(logs.Options{})
	b.Cleanup(plex.Close)
	server := httptest.NewServer(newDashboard(b, exampleDaemon(100), plex))
	b.Cleanup(server.Close)
	client := loggedIn(b, server, "mf_read")
	size := 0
	for b.Loop() {
		status, body := getBody(b, client, server.URL+"/")
		if status != 200 {
			b.Fatal(status)
		}
		size = len(body)
	}
	b.ReportMetric(float64(size)/1024, "KB/page")
}
