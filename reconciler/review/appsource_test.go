package review_test

import (
	"context"
	"encoding/json"
	"fmt"
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
	"github.com/manifold-paas/manifold/reconciler/source"
	"github.com/manifold-paas/manifold/spec"
)

// TestAppEnvName: an app source's review environments are <app>--<ref's name>, a
// DNS label, never a name the config repo's refs make, and AppOf reads the app back.
func TestAppEnvName(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a", 58)
	tests := []struct {
		app, refEnv, want string
	}{
		{"hello", "pr-7", "hello--pr-7"},
		{"hello", "review-login-form", "hello--review-login-form"},
		{"a--b", "pr-7", "a--b--pr-7"},
		{long, "pr-1234", long + "--pr"},
		{long, "ab-cd", long + "--ab"}, // no dash left at the end
		{long + "ab", "pr-7", long + "ab--p"},
		{long + "abc", "pr-7", ""}, // no room left for the ref's name
	}
	for _, tt := range tests {
		got, ok := review.AppEnvName(tt.app, tt.refEnv)
		if ok != (tt.want != "") || got != tt.want {
			t.Errorf("AppEnvName(%s, %s) = %q, %v; want %q", tt.app, tt.refEnv, got, ok, tt.want)
			continue
		}
		if !ok {
			continue
		}
		if app, isApp := review.AppOf(got); !isApp || app != tt.app {
			t.Errorf("AppOf(%s) = %q, %v; want %q", got, app, isApp, tt.app)
		}
	}
	settings := spec.Review{Refs: []string{"refs/*/*/*"}, Branches: []string{"*", "*/*"}}
	for _, ref := range []string{"refs/pull/7/head", "refs/heads/review/login-form", "refs/heads/hello--pr-7", "refs/heads/a_-_b", "refs/x/--/y"} {
		name, ok := settings.EnvName(ref)
		if !ok {
			t.Errorf("EnvName(%s) does not match", ref)
		}
		if app, isApp := review.AppOf(name); isApp {
			t.Errorf("the config repo's ref %s makes %s, which AppOf reads as app %s's", ref, name, app)
		}
	}
}

// appSourceRepos makes an app's source (a bare repo with two commits, served over
// transport) and a config repo whose app hello builds it with review = true; it
// returns the config repo's folder, the bare repo and both commits.
func appSourceRepos(t *testing.T, transport string) (config, bare, first, second string) {
	t.Helper()
	bare, first, second = bareRepo(t)
	url := "file://" + bare
	if transport == "http" {
		backend, err := exec.LookPath("git")
		if err != nil {
			t.Fatal(err)
		}
		server := httptest.NewServer(&cgi.Handler{
			Path: backend, Args: []string{"http-backend"}, Stderr: io.Discard, // the failed listings' complaints
			Env: []string{"GIT_PROJECT_ROOT=" + filepath.Dir(bare), "GIT_HTTP_EXPORT_ALL=1"},
		})
		t.Cleanup(server.Close)
		url = server.URL + "/" + filepath.Base(bare)
	}
	config = t.TempDir()
	writeFiles(t, config, map[string]string{
		"apps/hello.hcl":              fmt.Sprintf("app \"hello\" {\n  source { git = %q }\n  review = true\n}\n", url),
		"apps/other.hcl":              "app \"other\" {\n  source { git = \"file:///nowhere\" }\n}\n",
		"environments/review.hcl":     "environment \"review\" {\n  app \"hello\" {\n    config = { GREETING = \"review\" }\n  }\n}\n",
		"environments/production.hcl": "environment \"production\" {\n  app \"hello\" {\n    config = { GREETING = \"production\" }\n  }\n}\n",
		"manifold.hcl":                "review {\n  refs = [\"refs/pull/*/head\"]\n}\n",
	})
	git(t, config, "init", "-q", "-b", "main")
	git(t, config, "add", "-A")
	git(t, config, "commit", "-q", "-m", "config")
	return config, bare, first, second
}

func writeFiles(t *testing.T, root string, files map[string]string) {
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

// appSyncer runs the Manager's two halves as a daemon's pass does.
type appSyncer struct {
	t        *testing.T
	manager  *review.Manager
	settings *spec.Review
	config   source.Snapshot
	now      time.Time
}

func (s *appSyncer) pass() review.AppSync {
	s.t.Helper()
	s.now = s.now.Add(time.Minute)
	s.manager.Sync(context.Background(), s.settings, s.now)
	return s.manager.SyncApps(context.Background(), s.settings, s.config, s.now)
}

// TestSyncAppsLifecycle drives the review environments of hello's own git source
// through real listings of a bare repo, over file:// and HTTP (git http-backend): a
// pull request ref appears (hello--pr-7, with hello only, from the config repo's
// review overlay), moves, the repo becomes unreadable (nothing is destroyed), comes
// back, and the ref goes (two listings later, hello--pr-7 is destroyed).
func TestSyncAppsLifecycle(t *testing.T) {
	t.Parallel()
	for _, transport := range []string{"file", "http"} {
		t.Run(transport, func(t *testing.T) {
			t.Parallel()
			config, bare, first, second := appSourceRepos(t, transport)
			s := &appSyncer{t: t, manager: &review.Manager{URL: "file://" + config, Dir: t.TempDir()},
				settings: &spec.Review{Refs: []string{"refs/pull/*/head"}, Max: 5},
				config:   source.Snapshot{Rev: source.Revision{ID: "c1"}, Dir: config, Root: config}, now: time.Now()}
			step := func(what, running, destroy, unsettled string) review.AppSync {
				t.Helper()
				got := s.pass()
				var names []string
				for _, run := range got.Running {
					names = append(names, run.Env.Name+"@"+run.Env.Commit[:1])
				}
				if g := strings.Join(names, " "); g != running {
					t.Errorf("%s: running %q, want %q", what, g, running)
				}
				if g := destroyed(got.Destroy); g != destroy {
					t.Errorf("%s: destroy %q, want %q", what, g, destroy)
				}
				if g := strings.Join(got.Unsettled, " "); g != unsettled {
					t.Errorf("%s: unsettled %q, want %q", what, g, unsettled)
				}
				return got
			}

			step("no pull request", "", "", "hello")
			git(t, bare, "update-ref", "refs/pull/7/head", first)
			got := step("pull request 7 opens", "hello--pr-7@"+first[:1], "", "")
			run := got.Running[0]
			if len(run.Apps) != 1 {
				t.Fatalf("hello--pr-7 runs %d apps, want hello only", len(run.Apps))
			}
			app := run.Apps[0]
			if app.Name != "hello" || app.Env != "hello--pr-7" || app.Source.Ref != "refs/pull/7/head" || app.Source.Digest != "git:"+first ||
				!strings.HasSuffix(app.Source.Git, filepath.Base(bare)) || app.Config["GREETING"] != "review" ||
				strings.Join(app.Domains, " ") != "hello.hello--pr-7.localhost" {
				t.Errorf("hello--pr-7's app: %+v", app)
			}
			if run.Env.App != "hello" || run.Snapshot.Rev.ID != first || run.Snapshot.Dir != config {
				t.Errorf("hello--pr-7: env %+v, snapshot %+v", run.Env, run.Snapshot)
			}
			git(t, bare, "update-ref", "refs/pull/7/head", second)
			got = step("a push to it", "hello--pr-7@"+second[:1], "", "")
			if got.Running[0].Snapshot.Rev.ID != second {
				t.Errorf("after the push, the release's commit is %s, want %s", got.Running[0].Snapshot.Rev.ID, second)
			}

			// Unreadable: moved away (the tests run as root, whom modes do not stop).
			if err := os.Rename(bare, bare+".away"); err != nil {
				t.Fatal(err)
			}
			for range 3 {
				step("the listing fails", "hello--pr-7@"+second[:1], "", "")
			}
			list := listOf(t, s.manager)
			if !strings.Contains(list.AppListErrors["hello"], "list refs of") || len(list.Envs) != 1 || list.Envs[0].App != "hello" {
				t.Errorf("review list after failed listings: %+v", list)
			}
			if err := os.Rename(bare+".away", bare); err != nil {
				t.Fatal(err)
			}
			step("readable again", "hello--pr-7@"+second[:1], "", "")
			if list := listOf(t, s.manager); len(list.AppListErrors) != 0 {
				t.Errorf("list errors after a good listing: %v", list.AppListErrors)
			}

			git(t, bare, "update-ref", "-d", "refs/pull/7/head")
			step("the ref is gone once", "hello--pr-7@"+second[:1], "", "")
			step("the ref is gone twice", "", "hello--pr-7: its ref refs/pull/7/head is gone", "")
			if envs, _ := s.manager.Envs(); len(envs) != 0 {
				t.Errorf("envs after teardown: %+v", envs)
			}
		})
	}
}

// TestSyncAppsShareMax: the config repo's review environments and an app source's
// share the review block's max; an app that stops saying review = true loses its
// review environments.
func TestSyncAppsShareMax(t *testing.T) {
	t.Parallel()
	config, bare, first, _ := appSourceRepos(t, "file")
	git(t, config, "update-ref", "refs/pull/1/head", "HEAD")
	git(t, bare, "update-ref", "refs/pull/7/head", first)
	git(t, bare, "update-ref", "refs/pull/8/head", first)
	s := &appSyncer{t: t, manager: &review.Manager{URL: "file://" + config, Dir: t.TempDir()},
		settings: &spec.Review{Refs: []string{"refs/pull/*/head"}, Max: 2},
		config:   source.Snapshot{Rev: source.Revision{ID: "c1"}, Dir: config, Root: config}, now: time.Now()}
	got := s.pass()
	if len(got.Running) != 1 || got.Running[0].Env.Name != "hello--pr-7" {
		t.Fatalf("running %+v, want hello--pr-7 only (pr-1 takes the other slot)", got.Running)
	}
	envs, _ := s.manager.Envs()
	states := map[string]string{}
	for _, env := range envs {
		states[env.Name] = env.State + " " + env.Reason
	}
	want := map[string]string{
		"pr-1":        "active ",
		"hello--pr-7": "active ",
		"hello--pr-8": "waiting waiting: 2 review environments run at once (review max)",
	}
	for name, state := range want {
		if states[name] != state {
			t.Errorf("%s: %q, want %q", name, states[name], state)
		}
	}

	writeFiles(t, config, map[string]string{"apps/hello.hcl": strings.Replace(readFile(t, filepath.Join(config, "apps/hello.hcl")), "review = true", "review = false", 1)})
	s.config.Rev.ID = "c2"
	got = s.pass()
	if len(got.Running) != 0 || destroyed(got.Destroy) != "hello--pr-7: hello no longer says review = true" {
		t.Errorf("after review = false: running %+v, destroy %q", got.Running, destroyed(got.Destroy))
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// listOf returns what GET /v1/review answers.
func listOf(t *testing.T, m *review.Manager) review.List {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/v1/review", nil))
	var list review.List
	if err := json.Unmarshal(rec.Body.Bytes(), &list); err != nil {
		t.Fatal(err)
	}
	return list
}

// TestSyncAppsRestart: an app source's tracker survives a restart in its own state
// file: a failed first listing afterwards keeps hello--pr-7 running (and unsettled),
// the ttl counts from the push before the restart, and what the ttl destroyed stays
// gone through another restart.
func TestSyncAppsRestart(t *testing.T) {
	t.Parallel()
	config, bare, first, _ := appSourceRepos(t, "file")
	git(t, bare, "update-ref", "refs/pull/7/head", first)
	dir := t.TempDir()
	s := &appSyncer{t: t, manager: &review.Manager{URL: "file://" + config, Dir: dir},
		settings: &spec.Review{Refs: []string{"refs/pull/*/head"}, TTLSeconds: 3600, Max: 5},
		config:   source.Snapshot{Rev: source.Revision{ID: "c1"}, Dir: config, Root: config}, now: time.Now()}
	if got := s.pass(); len(got.Running) != 1 {
		t.Fatalf("running %+v, want hello--pr-7", got.Running)
	}
	info, err := os.Stat(filepath.Join(dir, "tracker-hello.json"))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("hello's state file: %v, %v", info, err)
	}

	restart := func() { s.manager = &review.Manager{URL: "file://" + config, Dir: dir} }
	restart()
	if err := os.Rename(bare, bare+".away"); err != nil {
		t.Fatal(err)
	}
	s.now = s.now.Add(29 * time.Minute)
	got := s.pass()
	if len(got.Running) != 1 || got.Running[0].Env.Name != "hello--pr-7" || strings.Join(got.Unsettled, " ") != "hello" {
		t.Errorf("after a restart and a failed listing: running %+v, unsettled %v; want hello--pr-7, unsettled", got.Running, got.Unsettled)
	}
	if err := os.Rename(bare+".away", bare); err != nil {
		t.Fatal(err)
	}
	s.now = s.now.Add(30 * time.Minute) // an hour and a minute after the push
	got = s.pass()
	if destroyed(got.Destroy) != "hello--pr-7: no push for 1h0m0s" || len(got.Unsettled) != 0 {
		t.Errorf("an hour after the push, across the restart: destroy %q, unsettled %v", destroyed(got.Destroy), got.Unsettled)
	}
	restart()
	if got := s.pass(); len(got.Running) != 0 {
		t.Errorf("the ttl's teardown undone by a restart: running %+v", got.Running)
	}
}

// TestSyncAppsDroppedWhileDown: an app that stops saying review = true (or loses the
// review block) while the daemon is down has the review environments its state file
// knows of destroyed at the first pass after the restart, with a reason (so that
// predestroy runs), their folders (the postdeploy mark) removed, then its file.
func TestSyncAppsDroppedWhileDown(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		change func(t *testing.T, config string, s *appSyncer)
	}{
		{"review = false", func(t *testing.T, config string, _ *appSyncer) {
			hcl := filepath.Join(config, "apps/hello.hcl")
			writeFiles(t, config, map[string]string{"apps/hello.hcl": strings.Replace(readFile(t, hcl), "review = true", "review = false", 1)})
		}},
		{"no review block", func(_ *testing.T, _ string, s *appSyncer) { s.settings = nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			config, bare, first, _ := appSourceRepos(t, "file")
			git(t, bare, "update-ref", "refs/pull/7/head", first)
			dir := t.TempDir()
			s := &appSyncer{t: t, manager: &review.Manager{URL: "file://" + config, Dir: dir},
				settings: &spec.Review{Refs: []string{"refs/pull/*/head"}, Max: 5},
				config:   source.Snapshot{Rev: source.Revision{ID: "c1"}, Dir: config, Root: config}, now: time.Now()}
			if got := s.pass(); len(got.Running) != 1 {
				t.Fatalf("running %+v, want hello--pr-7", got.Running)
			}
			s.manager.MarkPostdeployed("hello--pr-7")
			mark := filepath.Join(dir, "hello--pr-7", "postdeployed")
			if _, err := os.Stat(mark); err != nil {
				t.Fatalf("postdeploy mark: %v", err)
			}

			// The daemon is down while the app changes; then it starts again.
			tt.change(t, config, s)
			s.manager = &review.Manager{URL: "file://" + config, Dir: dir}
			got := s.pass()
			if len(got.Running) != 0 || destroyed(got.Destroy) != "hello--pr-7: hello no longer says review = true" {
				t.Errorf("first pass after the restart: running %+v, destroy %q; want hello--pr-7 destroyed", got.Running, destroyed(got.Destroy))
			}
			for _, path := range []string{filepath.Join(dir, "hello--pr-7"), filepath.Join(dir, "tracker-hello.json")} {
				if _, err := os.Stat(path); !os.IsNotExist(err) {
					t.Errorf("%s after the teardown: %v, want it gone", path, err)
				}
			}
			if got := s.pass(); len(got.Running) != 0 || len(got.Destroy) != 0 {
				t.Errorf("second pass: running %+v, destroy %q; want nothing", got.Running, destroyed(got.Destroy))
			}
		})
	}
}

// TestSyncAppsRestartKeepsMax: after a restart the app source's environments that
// ran hold their slots of the shared max from the first pass on: a config repo ref
// that appeared meanwhile waits rather than make one environment too many.
func TestSyncAppsRestartKeepsMax(t *testing.T) {
	t.Parallel()
	config, bare, first, _ := appSourceRepos(t, "file")
	git(t, bare, "update-ref", "refs/pull/7/head", first)
	git(t, bare, "update-ref", "refs/pull/8/head", first)
	dir := t.TempDir()
	s := &appSyncer{t: t, manager: &review.Manager{URL: "file://" + config, Dir: dir},
		settings: &spec.Review{Refs: []string{"refs/pull/*/head"}, Max: 2},
		config:   source.Snapshot{Rev: source.Revision{ID: "c1"}, Dir: config, Root: config}, now: time.Now()}
	if got := s.pass(); len(got.Running) != 2 {
		t.Fatalf("running %+v, want hello--pr-7 and hello--pr-8", got.Running)
	}

	git(t, config, "update-ref", "refs/pull/1/head", "HEAD")
	s.manager = &review.Manager{URL: "file://" + config, Dir: dir}
	for i := range 2 {
		s.pass()
		envs, _ := s.manager.Envs()
		var active []string
		for _, env := range envs {
			if env.State == review.StateActive {
				active = append(active, env.Name)
			}
		}
		if got := strings.Join(active, " "); got != "hello--pr-7 hello--pr-8" {
			t.Errorf("pass %d after the restart: active %q, want the 2 (max) that ran before it", i+1, got)
		}
	}
}
