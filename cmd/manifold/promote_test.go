package main

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/manifold-paas/manifold/drivers"
	"github.com/manifold-paas/manifold/reconciler"
	"github.com/manifold-paas/manifold/reconciler/api"
	"github.com/manifold-paas/manifold/reconciler/ledger"
	"github.com/manifold-paas/manifold/spec"
)

// releasesDaemon answers the API's releases of each environment from a table; the
// promote command asks nothing else. (The daemon's own answers are tested in
// reconciler/api and by the end-to-end tests.)
type releasesDaemon struct {
	releases map[string][]ledger.Release // by env
}

var errNotServed = errors.New("not served by this test daemon")

func (d releasesDaemon) Status() reconciler.Status               { return reconciler.Status{} }
func (d releasesDaemon) Reconcile(context.Context, string) error { return errNotServed }
func (d releasesDaemon) LivePlan(context.Context) (reconciler.LivePlan, error) {
	return reconciler.LivePlan{}, errNotServed
}
func (d releasesDaemon) Dynos(context.Context, string, string) (spec.App, []drivers.Dyno, error) {
	return spec.App{}, nil, errNotServed
}
func (d releasesDaemon) Rollback(context.Context, string, string, int, string) (ledger.Release, error) {
	return ledger.Release{}, errNotServed
}
func (d releasesDaemon) RunOneOff(context.Context, reconciler.OneOff) (int, error) {
	return 0, errNotServed
}
func (d releasesDaemon) Releases(app, env string) (spec.App, []ledger.Release, error) {
	return spec.App{Name: app, Env: env}, d.releases[env], nil
}

// serveOnSocket serves the API for daemon on a unix socket, as `manifold up` does,
// and returns the address the CLI takes.
func serveOnSocket(t *testing.T, daemon api.Daemon) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "mfp") // short: a socket path has a length limit
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, api.SocketName)
	ln, err := api.ListenSocket(sock)
	if err != nil {
		t.Fatal(err)
	}
	server := &http.Server{Handler: api.Handler(api.Options{Daemon: daemon}), ConnContext: api.ConnContext}
	go func() { _ = server.Serve(api.LocalListener(ln, nil, nil)) }()
	t.Cleanup(func() { server.Close() })
	return "unix://" + sock
}

// TestPromoteCommand promotes staging's release of the examples' hello into
// production: a refusal while the build-time config differs (names only), then a
// commit on promote/hello-staging-v7 whose markdown plan is the one promote line.
func TestPromoteCommand(t *testing.T) {
	t.Parallel()
	repo := gitRepoWithExamples(t)
	git(t, repo, "config", "user.name", "Alice")
	git(t, repo, "config", "user.email", "alice@example.com")
	running := "sha256:" + strings.Repeat("a", 64)
	staged := "sha256:" + strings.Repeat("b", 64)
	daemon := releasesDaemon{releases: map[string][]ledger.Release{
		"staging": {{Version: 7, SlugKey: staged, Status: ledger.StatusSucceeded, CreatedAt: time.Now().Add(-time.Hour),
			Config: map[string]string{"GREETING": "hello from staging", "DATABASE_URL": "postgres://hello:secret@db.internal:5432/hello"}}},
		"production": {{Version: 3, SlugKey: running, Status: ledger.StatusSucceeded, CreatedAt: time.Now().Add(-48 * time.Hour)}},
	}}
	addr := serveOnSocket(t, daemon)

	// The examples' hello sets no build_config: every config var reached staging's
	// buildpacks, and GREETING and DATABASE_URL differ in production.
	code, out, errOut := runCLI(t, "promote", "--api", addr, "--repo", repo, "-a", "hello", "--from", "staging", "--to", "production")
	if code != 1 || !strings.Contains(errOut, "differs between staging and production: DATABASE_URL, GREETING") {
		t.Fatalf("exit %d, want a refusal naming DATABASE_URL, GREETING\n%s%s", code, out, errOut)
	}
	if strings.Contains(errOut, "secret") || strings.Contains(errOut, "hello from") {
		t.Errorf("the refusal shows config values:\n%s", errOut)
	}

	// Only GOFLAGS reaches the buildpacks (unset in both): the promotion goes.
	helloSpec := filepath.Join(repo, "apps", "hello.hcl")
	data, err := os.ReadFile(helloSpec)
	if err != nil {
		t.Fatal(err)
	}
	withBuildConfig := strings.Replace(string(data), `buildpacks = ["go"]`, `buildpacks = ["go"]`+"\n  build_config = [\"GOFLAGS\"]", 1)
	if err := os.WriteFile(helloSpec, []byte(withBuildConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	git(t, repo, "commit", "-q", "-am", "hello: only GOFLAGS at build time")
	code, out, errOut = runCLI(t, "promote", "--api", addr, "--repo", repo, "-a", "hello", "--from", "staging", "--to", "production")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	if want := "| hello | ~ promote hello | sha256:aaaaaaaaaaaa… | sha256:bbbbbbbbbbbb… (staging v7) | **new release** |"; !strings.Contains(out, want) {
		t.Errorf("markdown plan lacks %q:\n%s", want, out)
	}
	if !strings.Contains(out, "Plan: 1 change in 1 environment, 1 new release.") {
		t.Errorf("the plan is not the promotion alone:\n%s", out)
	}
	if !strings.Contains(errOut, "on branch promote/hello-staging-v7") {
		t.Errorf("stderr does not name the branch: %s", errOut)
	}
	pinned := git(t, repo, "show", "promote/hello-staging-v7:environments/production.yaml")
	if !strings.Contains(pinned, "slug: \""+staged+"\"") || !strings.Contains(pinned, "from: staging v7") {
		t.Errorf("production.yaml on the branch:\n%s", pinned)
	}
	if got := git(t, repo, "rev-parse", "--abbrev-ref", "HEAD"); got != "main" {
		t.Errorf("promote checked out %s", got)
	}
}
