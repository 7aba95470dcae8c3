package reconciler_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/manifold-paas/manifold/reconciler"
	"github.com/manifold-paas/manifold/reconciler/ledger"
	"github.com/manifold-paas/manifold/spec"
)

// TestPromotedSlugRunsWithoutABuild pins production to the slug staging built and
// ran, then moves staging on: production keeps running the very tarball staging
// ran (no build: a build would pick up the new code), with its own config. A pin to
// a slug the store does not hold stalls the app with a clear reason, and the last
// good release keeps serving.
func TestPromotedSlugRunsWithoutABuild(t *testing.T) {
	t.Parallel()
	env := newProcessEnv(t)
	if err := os.Remove(env.repo + "/apps/hello.hcl"); err != nil {
		t.Fatal(err)
	}
	env.write("src/hello/Procfile", "web: "+webCommand+"\n")
	env.write("apps/hello.hcl", `app "hello" {
  source { path = "../src/hello" }
  buildpacks = ["procfile"]
  build_config = []
  config = { GREETING = "base" }
}
`)
	env.write("environments/staging.hcl", `environment "staging" {
  app "hello" {
    config = { GREETING = "staging" }
  }
}
`)
	env.write("src/hello/www/index.html", "v1\n")
	env.reconcile()
	stagingV1 := newest(t, env.rec, "staging")

	// Promote v1 into a new production, and move staging on to new code in the
	// same commit.
	env.write("environments/production.hcl", fmt.Sprintf(`environment "production" {
  app "hello" {
    config = { GREETING = "production" }
    release {
      slug = %q
      from = "staging v%d"
    }
  }
}
`, stagingV1.SlugKey, stagingV1.Version))
	env.write("src/hello/www/index.html", "v2\n")
	env.reconcile()

	stagingV2, production := newest(t, env.rec, "staging"), newest(t, env.rec, "production")
	if stagingV2.SlugKey == stagingV1.SlugKey {
		t.Fatal("staging did not rebuild its new code")
	}
	if production.SlugKey != stagingV1.SlugKey || production.Status != ledger.StatusSucceeded {
		t.Fatalf("production runs %s (%s), want staging's v1 slug %s", production.SlugKey, production.Status, stagingV1.SlugKey)
	}
	if want := fmt.Sprintf("Promote %s from staging v%d", shortKey(stagingV1.SlugKey), stagingV1.Version); production.Description != want {
		t.Errorf("description %q, want %q", production.Description, want)
	}
	if production.Config["GREETING"] != "production" {
		t.Errorf("production runs with config %v, want its own", production.Config)
	}
	// The tarball production's release names is byte for byte the one staging ran.
	if a, b := readFile(t, env.store.Path(stagingV1.SlugKey)), readFile(t, env.store.Path(production.SlugKey)); !bytes.Equal(a, b) || len(a) == 0 {
		t.Error("production's slug tarball differs from staging's")
	}
	if got := get(t, env.router.addrs("hello.production.localhost")); got != "v1\n" {
		t.Errorf("production serves %q, want staging's v1", got)
	}
	if got := get(t, env.router.addrs("hello.staging.localhost")); got != "v2\n" {
		t.Errorf("staging serves %q, want v2", got)
	}

	// A slug the store does not hold: stalled, v1 keeps serving, nothing appended.
	unknown := "sha256:" + strings.Repeat("f", 64)
	env.write("environments/production.hcl", fmt.Sprintf(`environment "production" {
  app "hello" {
    release { slug = %q }
  }
}
`, unknown))
	env.source.commit(fmt.Sprintf("%040d", 99), "bob@example.com")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := env.rec.Reconcile(ctx, ""); err != nil {
		t.Fatal(err)
	}
	var status reconciler.AppStatus
	for _, s := range env.rec.Status().Apps {
		if s.Env == "production" {
			status = s
		}
	}
	if status.State != reconciler.StateStalled || !strings.Contains(status.Reason, unknown) || !strings.Contains(status.Reason, "not in the store") {
		t.Errorf("production is %s (%q), want stalled on the unknown slug", status.State, status.Reason)
	}
	if after := newest(t, env.rec, "production"); after.Version != production.Version {
		t.Errorf("a release was appended for an unknown slug: v%d", after.Version)
	}
	if got := get(t, env.router.addrs("hello.production.localhost")); got != "v1\n" {
		t.Errorf("production serves %q after the bad pin, want v1 still", got)
	}
}

func newest(t *testing.T, rec *reconciler.Reconciler, env string) ledger.Release {
	t.Helper()
	_, releases, err := rec.Releases("hello", env)
	if err != nil || len(releases) == 0 {
		t.Fatalf("releases of hello (%s): %v %v", env, releases, err)
	}
	return releases[0]
}

func shortKey(key string) string { return key[:len("sha256:")+12] }

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// get answers the body of GET / from the first backend (web dynos are up once a
// pass has released them).
func get(t *testing.T, addrs []string) string {
	t.Helper()
	if len(addrs) == 0 {
		t.Fatal("no backend in the router table")
	}
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get("http://" + addrs[0] + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

// TestBuildConfig: only the names build_config lists reach the buildpacks; without
// build_config every config var does (Heroku's way).
func TestBuildConfig(t *testing.T) {
	t.Parallel()
	config := map[string]string{"BUILD_FLAGS": "-x", "DATABASE_URL": "postgres://secret", "GOVERSION": "1.26"}
	tests := []struct {
		name  string
		names []string
		want  map[string]string
	}{
		{"unset: all", nil, config},
		{"empty: none", []string{}, map[string]string{}},
		{"named, one missing", []string{"BUILD_FLAGS", "GOVERSION", "NOT_SET"}, map[string]string{"BUILD_FLAGS": "-x", "GOVERSION": "1.26"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := reconciler.BuildConfig(&spec.App{Config: config, BuildConfig: tt.names})
			if !maps.Equal(got, tt.want) {
				t.Errorf("BuildConfig = %v, want %v", got, tt.want)
			}
		})
	}
}
