package main

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// moduleProxyDir fills a folder laid out as a module proxy with the example quotes
// app's dependencies: `go mod download` into the test's temp module cache, whose
// cache/download folder is a valid proxy (GOPROXY=file://DIR). The machine's module
// cache is read first; the daemon's proxy only gives what it lacks.
func moduleProxyDir(t *testing.T) string {
	t.Helper()
	modCache := filepath.Join(t.TempDir(), "modcache")
	proxy := goEnv(t, "GOPROXY")
	if hostCache := goEnv(t, "GOMODCACHE"); hostCache != "" {
		proxy = "file://" + filepath.Join(hostCache, "cache", "download") + "," + proxy
	}
	cmd := exec.Command("go", "mod", "download")
	cmd.Dir = "../../examples/src/quotes"
	cmd.Env = append(os.Environ(), "GOMODCACHE="+modCache, "GOFLAGS=-modcacherw", "GOPROXY="+proxy, "GOTOOLCHAIN=local")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("fill the test module proxy: %v\n%s", err, out)
	}
	return filepath.Join(modCache, "cache", "download")
}

func goEnv(t *testing.T, name string) string {
	t.Helper()
	out, err := exec.Command("go", "env", name).Output()
	if err != nil {
		t.Fatalf("go env %s: %v", name, err)
	}
	return strings.TrimSpace(string(out))
}

// zipProxy serves a module proxy folder on 127.0.0.1 and counts module zips served.
func zipProxy(t *testing.T, dir string) (url string, zips *atomic.Int64) {
	t.Helper()
	zips = &atomic.Int64{}
	files := http.FileServer(http.Dir(dir))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, ".zip") {
			zips.Add(1)
		}
		files.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, zips
}

// goModulesRepo makes a config repo with the example quotes app and a second app
// (quotes2, its own source) with the same dependencies, building through proxyURL.
func goModulesRepo(t *testing.T, proxyURL string) string {
	t.Helper()
	repo := t.TempDir()
	for _, app := range []string{"quotes", "quotes2"} {
		if err := os.CopyFS(filepath.Join(repo, "src", app), os.DirFS("../../examples/src/quotes")); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		"manifold.hcl":                         fmt.Sprintf("build_env = { GOPROXY = %q }\n", proxyURL),
		"apps/quotes.hcl":                      "app \"quotes\" {\n  source { path = \"../src/quotes\" }\n  process \"web\" { size = \"basic\" }\n}\n",
		"apps/quotes2.hcl":                     "app \"quotes2\" {\n  source { path = \"../src/quotes2\" }\n  process \"web\" { size = \"basic\" }\n}\n",
		"src/quotes2/cmd/quotes-web/second.go": "package main\n\n// second makes this source differ from quotes': a build of its own.\nconst second = true\n",
	}
	for name, content := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(repo, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(repo, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	git(t, repo, "init", "-q", "-b", "main")
	git(t, repo, "add", "-A")
	git(t, repo, "commit", "-q", "-m", "quotes and quotes2")
	return repo
}

// TestDeployGoModules deploys the example app with third-party modules on the process
// and the Docker drivers from an empty module cache, through a local proxy (the
// platform's build_env). A second app with the same dependencies fetches nothing.
// On the process driver, a commit requiring a module that does not exist fails its
// build naming the module while the last good release serves; the next commit builds.
func TestDeployGoModules(t *testing.T) {
	for _, driver := range []string{"process", "docker"} {
		t.Run(driver, func(t *testing.T) {
			proxyURL, zips := zipProxy(t, moduleProxyDir(t))
			repo := goModulesRepo(t, proxyURL)
			state := t.TempDir()
			routerAddr, apiAddr := freeAddr(t), socketAPI(state)
			args := []string{"up", "--repo", "file://" + repo, "--state", state, "--router", routerAddr,
				"--interval", "500ms", "--boot-timeout", "30s", "-v", "--driver", driver}
			if driver == "docker" {
				needDocker(t)
				instance := fmt.Sprintf("gomod%d", time.Now().UnixNano()%1_000_000_000)
				t.Cleanup(func() { removeInstance(t, instance) })
				args = append(args, "--docker-instance", instance)
			} else {
				t.Cleanup(func() { killDynos(filepath.Join(state, "dynos")) })
			}
			d := startDaemonArgs(t, state, routerAddr, args...)
			for _, app := range []string{"quotes", "quotes2"} {
				eventually(t, 5*time.Minute, app+" answers", func() error {
					body, err := d.get(app + ".default.localhost")
					if err == nil && !strings.Contains(body, "quotes from web.1") {
						err = fmt.Errorf("body %q", body)
					}
					return err
				})
			}
			if n := zips.Load(); n != 2 {
				t.Errorf("the two apps fetched %d module zips, want 2 (chi and uuid, once)", n)
			}
			if driver != "process" {
				return
			}

			// A module that does not exist: the build fails naming it, v1 keeps serving.
			goMod := filepath.Join(repo, "src", "quotes", "go.mod")
			good, err := os.ReadFile(goMod)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(goMod, append(good, "require github.com/manifold-paas/no-such-module v1.0.0\n"...), 0o644); err != nil {
				t.Fatal(err)
			}
			git(t, repo, "commit", "-q", "-am", "require a module that does not exist")
			eventually(t, 2*time.Minute, "the failed build named in the status", func() error {
				s, err := d.appStatus("quotes", "default")
				if err == nil && !strings.Contains(s.Reason, "github.com/manifold-paas/no-such-module") {
					err = fmt.Errorf("status %+v", s)
				}
				return err
			})
			if body, err := d.get("quotes.default.localhost"); err != nil || !strings.Contains(body, "quotes from web.1") {
				t.Errorf("the last good release stopped serving: %q, %v", body, err)
			}

			// The next commit retries: fixed go.mod and a new answer.
			if err := os.WriteFile(goMod, good, 0o644); err != nil {
				t.Fatal(err)
			}
			mainGo := filepath.Join(repo, "src", "quotes", "cmd", "quotes-web", "main.go")
			src, err := os.ReadFile(mainGo)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(mainGo, []byte(strings.Replace(string(src), `"quotes from "`, `"quotes v2 from "`, 1)), 0o644); err != nil {
				t.Fatal(err)
			}
			git(t, repo, "commit", "-q", "-am", "fix go.mod")
			eventually(t, 2*time.Minute, "v2 answers", func() error {
				body, err := d.get("quotes.default.localhost")
				if err == nil && !strings.Contains(body, "quotes v2 from") {
					err = fmt.Errorf("body %q", body)
				}
				return err
			})

			// quotes2 leaves the spec: `manifold gc --dry-run` lists its build cache
			// and removes nothing; `manifold gc` removes it. Every slug is recent
			// (gc.DefaultGrace) or a kept release's: none goes.
			git(t, repo, "rm", "-q", "apps/quotes2.hcl")
			git(t, repo, "commit", "-q", "-m", "remove quotes2")
			cache := filepath.Join(state, "slugs", "cache", "quotes2")
			eventually(t, time.Minute, "quotes2 gone from the status", func() error {
				if _, err := d.appStatus("quotes2", "default"); err == nil {
					return errors.New("quotes2 still has a status")
				}
				return nil
			})
			code, out, errOut := runCLI(t, "--api", apiAddr, "gc", "--dry-run")
			if code != 0 || !strings.Contains(out, "build-cache  quotes2") || !strings.Contains(out, "Would remove 1 item(s)") || !strings.Contains(out, "3 slug(s) kept") {
				t.Errorf("gc --dry-run: exit %d\n%s%s", code, out, errOut)
			}
			if _, err := os.Stat(cache); err != nil {
				t.Errorf("a dry run removed quotes2's build cache: %v", err)
			}
			code, out, errOut = runCLI(t, "--api", apiAddr, "gc")
			if code != 0 || !strings.Contains(out, "Removed 1 item(s)") {
				t.Errorf("gc: exit %d\n%s%s", code, out, errOut)
			}
			if _, err := os.Stat(cache); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("quotes2's build cache is still there: %v", err)
			}
		})
	}
}
