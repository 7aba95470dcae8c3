package slug_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/manifold-paas/manifold/reconciler/slug"
)

// quotesSrc is the example app with third-party modules (chi, uuid).
const quotesSrc = "../../examples/src/quotes"

var (
	proxyOnce sync.Once
	proxyDir  string // <temp module cache>/cache/download
	proxyErr  error
)

// TestMain removes the module proxy folder the tests filled.
func TestMain(m *testing.M) {
	code := m.Run()
	if proxyDir != "" {
		_ = os.RemoveAll(filepath.Dir(filepath.Dir(proxyDir)))
	}
	os.Exit(code)
}

// moduleProxyDir returns a folder laid out as a module proxy (GOPROXY=file://DIR)
// holding the quotes app's dependencies, filled once per test run by `go mod
// download` into a temp module cache (whose cache/download folder is a valid proxy).
// It reads the machine's module cache first and reaches the daemon's proxy only for
// what that lacks.
func moduleProxyDir(t testing.TB) string {
	t.Helper()
	proxyOnce.Do(func() {
		modCache, err := os.MkdirTemp("", "manifold-goproxy-")
		if err != nil {
			proxyErr = err
			return
		}
		proxy := defaultGoEnv(t, "GOPROXY")
		if hostCache := defaultGoEnv(t, "GOMODCACHE"); hostCache != "" {
			proxy = "file://" + filepath.Join(hostCache, "cache", "download") + "," + proxy
		}
		cmd := exec.Command("go", "mod", "download")
		cmd.Dir = quotesSrc
		cmd.Env = append(os.Environ(), "GOMODCACHE="+modCache, "GOFLAGS=-modcacherw", "GOPROXY="+proxy, "GOTOOLCHAIN=local")
		if out, err := cmd.CombinedOutput(); err != nil {
			proxyErr = errors.New("fill the test module proxy: " + err.Error() + "\n" + string(out))
			return
		}
		proxyDir = filepath.Join(modCache, "cache", "download")
	})
	if proxyErr != nil {
		t.Fatal(proxyErr)
	}
	return proxyDir
}

func defaultGoEnv(t testing.TB, name string) string {
	t.Helper()
	out, err := exec.Command("go", "env", name).Output()
	if err != nil {
		t.Fatalf("go env %s: %v", name, err)
	}
	return strings.TrimSpace(string(out))
}

// countingProxy serves dir over the module proxy protocol (plain files) on
// 127.0.0.1 and counts the requests for module zips.
type countingProxy struct {
	URL  string
	zips atomic.Int64
	all  atomic.Int64
}

func newCountingProxy(t testing.TB, dir string) *countingProxy {
	t.Helper()
	p := &countingProxy{}
	files := http.FileServer(http.Dir(dir))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.all.Add(1)
		if strings.HasSuffix(r.URL.Path, ".zip") {
			p.zips.Add(1)
		}
		files.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	p.URL = srv.URL
	return p
}

// goModBuilder is a Builder whose apps share one empty module cache.
func goModBuilder(t testing.TB) *slug.Builder {
	t.Helper()
	b := newBuilder(t)
	b.Env = append(b.Env, "GOMODCACHE="+filepath.Join(t.TempDir(), "gomodcache"))
	return b
}

// copyQuotes copies the example app into a new folder; edit rewrites files in it.
func copyQuotes(t testing.TB, edit map[string]string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "quotes")
	if err := os.CopyFS(dir, os.DirFS(quotesSrc)); err != nil {
		t.Fatal(err)
	}
	writeTree(t, dir, edit)
	return dir
}

// TestGoModulesThroughProxy builds the example app from an empty module cache through
// a local proxy, then a second app with the same dependencies: it downloads nothing.
func TestGoModulesThroughProxy(t *testing.T) {
	t.Parallel()
	proxy := newCountingProxy(t, moduleProxyDir(t))
	b := goModBuilder(t)
	// Credentials in a proxy URL never reach the build output (the second proxy is
	// never asked: the first has every module).
	netEnv := map[string]string{"GOPROXY": proxy.URL + ",https://manifold:s3cret@127.0.0.1:1"}

	var out syncBuffer
	first, err := b.Build(context.Background(), slug.Request{App: "quotes", SourceDir: copyQuotes(t, nil), NetEnv: netEnv, Output: &out})
	if err != nil {
		t.Fatalf("build: %v\n%s", err, out.String())
	}
	if proxy.zips.Load() != 2 {
		t.Errorf("first app fetched %d module zips, want 2 (chi, uuid)\n%s", proxy.zips.Load(), out.String())
	}
	entries := tarEntries(t, first.Path)
	for _, want := range []string{"./bin/quotes-web", "./.profile.d/go.sh"} {
		if _, ok := entries[want]; !ok {
			t.Errorf("slug has no %s: %v", want, entries)
		}
	}
	if first.ProcessTypes["web"] != "quotes-web" {
		t.Errorf("web = %q, want the Procfile's quotes-web", first.ProcessTypes["web"])
	}
	if !strings.Contains(out.String(), "Downloading dependencies (GOPROXY="+proxy.URL+",https://***@127.0.0.1:1)") ||
		strings.Contains(out.String(), "s3cret") {
		t.Errorf("output does not say where modules come from, or shows the proxy's password:\n%s", out.String())
	}

	// Another app (its own CACHE_DIR), other source, the same dependencies.
	requests := proxy.all.Load()
	out = syncBuffer{}
	second, err := b.Build(context.Background(), slug.Request{
		App: "quotes2", NetEnv: netEnv, Output: &out,
		SourceDir: copyQuotes(t, map[string]string{"cmd/quotes-web/extra.go": "package main\n\nconst second = true\n"}),
	})
	if err != nil {
		t.Fatalf("second build: %v\n%s", err, out.String())
	}
	if second.Cached || second.Key == first.Key {
		t.Fatalf("second app was not built: %+v", second)
	}
	if n := proxy.all.Load() - requests; n != 0 {
		t.Errorf("second app made %d proxy requests, want 0: the module cache is shared", n)
	}
	if !strings.Contains(out.String(), "Fetched 0 module zip(s)") {
		t.Errorf("second build's output:\n%s", out.String())
	}
}

// TestGoModulesBadInput: a module that does not exist, a proxy that is down and a
// go.sum that does not match each fail the build, naming the module and the reason.
func TestGoModulesBadInput(t *testing.T) {
	t.Parallel()
	proxy := newCountingProxy(t, moduleProxyDir(t))
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	downURL := "http://" + closed.Addr().String()
	closed.Close()
	goMod, err := os.ReadFile(filepath.Join(quotesSrc, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	goSum, err := os.ReadFile(filepath.Join(quotesSrc, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		proxy string
		edit  map[string]string
		want  []string
	}{
		{
			name: "module does not exist", proxy: proxy.URL,
			edit: map[string]string{"go.mod": string(goMod) + "require github.com/manifold-paas/no-such-module v1.0.0\n"},
			want: []string{"bin/download", "github.com/manifold-paas/no-such-module", "404 Not Found"},
		},
		{
			name: "proxy down", proxy: downURL,
			want: []string{"github.com/go-chi/chi/v5", "connection refused"},
		},
		{
			name: "go.sum mismatch", proxy: proxy.URL,
			edit: map[string]string{"go.sum": strings.Replace(string(goSum),
				"github.com/go-chi/chi/v5 v5.5.0 h1:", "github.com/go-chi/chi/v5 v5.5.0 h1:AAAA", 1)},
			want: []string{"github.com/go-chi/chi/v5@v5.5.0", "checksum mismatch"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := goModBuilder(t)
			_, err := b.Build(context.Background(), slug.Request{
				App: "quotes", SourceDir: copyQuotes(t, tt.edit), NetEnv: map[string]string{"GOPROXY": tt.proxy},
			})
			var buildErr *slug.BuildError
			if !errors.As(err, &buildErr) || !errors.Is(err, slug.ErrCompile) || buildErr.Buildpack != "go" {
				t.Fatalf("err = %v; want a compile error of the go buildpack", err)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("the error shows the proxy's password:\n%v", err)
			}
			for _, want := range tt.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error does not say %q:\n%v", want, err)
				}
			}
			if files := storeFiles(t, b); len(files) != 0 {
				t.Errorf("a failed build left %v in the store", files)
			}
		})
	}
}

// TestGoHerokuDirectives covers Heroku's go.mod conventions: `// +heroku goVersion`
// must match the toolchain (else a clear error naming both), `// +heroku install`
// picks the packages, GO_INSTALL_PACKAGE_SPEC overrides it.
func TestGoHerokuDirectives(t *testing.T) {
	t.Parallel()
	// runtime.Version() is the toolchain the tests were built with, the same go on PATH.
	have := runtime.Version()
	minor := have
	if parts := strings.SplitN(have, ".", 3); len(parts) == 3 {
		minor = parts[0] + "." + parts[1]
	}
	mainPkg := "package main\n\nfunc main() {}\n"
	tests := []struct {
		name      string
		header    string
		config    map[string]string
		wantBins  []string
		wantError string
	}{
		{name: "matching goVersion, install one package", header: "// +heroku goVersion " + minor + "\n// +heroku install ./cmd/a\n", wantBins: []string{"a"}},
		{name: "GO_INSTALL_PACKAGE_SPEC wins", header: "// +heroku install ./cmd/a\n", config: map[string]string{"GO_INSTALL_PACKAGE_SPEC": "./cmd/b"}, wantBins: []string{"b"}},
		{name: "no directive builds all", wantBins: []string{"a", "b"}},
		{name: "missing toolchain", header: "// +heroku goVersion go1.99\n", wantError: "go.mod asks for go1.99 (// +heroku goVersion go1.99), but the build's toolchain is " + have},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := newBuilder(t)
			src := app(t, map[string]string{
				"go.mod":        tt.header + "module example.com/multi\n\ngo 1.22\n",
				"cmd/a/main.go": mainPkg,
				"cmd/b/main.go": mainPkg,
			})
			s, err := b.Build(context.Background(), slug.Request{App: "multi", SourceDir: src, Config: tt.config})
			if tt.wantError != "" {
				if !errors.Is(err, slug.ErrCompile) || !strings.Contains(err.Error(), tt.wantError) {
					t.Fatalf("err = %v; want %q", err, tt.wantError)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			entries := tarEntries(t, s.Path)
			for _, bin := range []string{"a", "b"} {
				_, ok := entries["./bin/"+bin]
				if want := strings.Contains(strings.Join(tt.wantBins, " "), bin); ok != want {
					t.Errorf("bin/%s in slug = %v, want %v (%v)", bin, ok, want, entries)
				}
			}
		})
	}
}

// TestGoModulesRealProxy builds the example app from an empty module cache with the
// daemon's own `go env` (the real module proxy): the one test that reaches the
// network, as CI can.
func TestGoModulesRealProxy(t *testing.T) {
	t.Parallel()
	b := goModBuilder(t)
	var out syncBuffer
	if _, err := b.Build(context.Background(), slug.Request{App: "quotes", SourceDir: copyQuotes(t, nil), Output: &out}); err != nil {
		t.Fatalf("build through %s: %v\n%s", defaultGoEnv(t, "GOPROXY"), err, out.String())
	}
	if !strings.Contains(out.String(), "Fetched 2 module zip(s)") && !strings.Contains(out.String(), "GOPROXY=file://") {
		t.Errorf("output:\n%s", out.String())
	}
}
