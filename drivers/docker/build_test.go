package docker_test

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/manifold-paas/manifold/drivers"
	"github.com/manifold-paas/manifold/drivers/docker"
	slugs "github.com/manifold-paas/manifold/reconciler/slug"
)

func TestStackImage(t *testing.T) {
	for stack, want := range map[string]string{
		"":                  docker.DefaultStack,
		"manifold-24":       docker.DefaultStack,
		"heroku/heroku:24":  "heroku/heroku:24",
		"manifold/stack:24": "manifold/stack:24",
	} {
		if got := docker.StackImage(stack); got != want {
			t.Errorf("StackImage(%q) = %q, want %q", stack, got, want)
		}
	}
}

// lockedBuffer is a build's output, written by the runner while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// The builder takes the docker driver's runner for its steps (the interface is the
// builder's own, so the guard lives with the one test that uses both).
var _ slugs.Runner = (*docker.BuildRunner)(nil)

// containerBuilder is a slug builder whose steps run in build containers of the test's
// driver instance, sharing the test run's Go build cache (as `manifold up` shares the
// machine's).
func containerBuilder(t testing.TB, d *docker.Driver) *slugs.Builder {
	t.Helper()
	store, err := slugs.OpenStore(filepath.Join(t.TempDir(), "slugs"))
	if err != nil {
		t.Fatal(err)
	}
	return &slugs.Builder{Store: store, Runner: d.BuildRunner(), Env: []string{"GOCACHE=" + hostGoCache(t)}, TimeLimit: 3 * time.Minute}
}

func hostGoCache(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOCACHE").Output()
	if err != nil {
		t.Fatalf("go env GOCACHE: %v", err)
	}
	return strings.TrimSpace(string(out))
}

func example(name string) string { return filepath.Join("..", "..", "examples", "src", name) }

func TestBuildExamplesInStackContainers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	d := e.driver(e.options())
	b := containerBuilder(t, d)
	tests := []struct {
		app       string
		dir       string
		buildpack string
		types     map[string]string
		files     []string // in the slug
		output    []string
	}{
		{"hello", example("hello"), "go", map[string]string{"web": "hello web", "worker": "hello worker"},
			[]string{"./bin/hello"}, []string{"Go app detected", "Using go1", "Installed: hello"}},
		{"site", example("site"), "static", map[string]string{"web": "static-server public"},
			[]string{"./public/index.html"}, []string{"Static app detected", "Serving public/"}},
		{"ticker", example("ticker"), "procfile", map[string]string{"worker": "sh ./tick.sh"},
			[]string{"./tick.sh"}, []string{"Procfile app detected", "Shipping the source as is"}},
	}
	for _, tt := range tests {
		t.Run(tt.app, func(t *testing.T) {
			var out lockedBuffer
			s, err := b.Build(context.Background(), slugs.Request{App: tt.app, SourceDir: tt.dir, Stack: "manifold-24", Output: &out})
			if err != nil {
				t.Fatalf("build: %v\noutput:\n%s", err, out.String())
			}
			if len(s.Buildpacks) != 1 || s.Buildpacks[0] != tt.buildpack {
				t.Errorf("buildpacks %v, want [%s]", s.Buildpacks, tt.buildpack)
			}
			for typ, cmd := range tt.types {
				if s.ProcessTypes[typ] != cmd {
					t.Errorf("process type %s = %q, want %q (all: %v)", typ, s.ProcessTypes[typ], cmd, s.ProcessTypes)
				}
			}
			entries := slugEntries(t, s.Path)
			for _, f := range tt.files {
				if !entries[f] {
					t.Errorf("slug lacks %s", f)
				}
			}
			for _, want := range tt.output {
				if !strings.Contains(out.String(), want) {
					t.Errorf("output lacks %q:\n%s", want, out.String())
				}
			}
		})
	}
	if left := e.containers(); len(left) != 0 {
		t.Errorf("%d build containers left after the builds", len(left))
	}
}

// slugEntries lists a slug tarball's entry names.
func slugEntries(t testing.TB, path string) map[string]bool {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	names, err := tarNames(f)
	if err != nil {
		t.Fatalf("read slug %s: %v", path, err)
	}
	set := map[string]bool{}
	for _, n := range names {
		set[n] = true
	}
	return set
}

func tarNames(r io.Reader) ([]string, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, err
	}
	var names []string
	tr := tar.NewReader(zr)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return names, nil
		}
		if err != nil {
			return nil, err
		}
		names = append(names, hdr.Name)
	}
}

// probePack is a buildpack whose compile reports where it runs: the stack's busybox
// shell, no network but loopback, what it may write.
const probeCompile = `#!/bin/sh
set -eu
echo "-----> probing"
echo "sh: $(readlink /bin/sh)"
echo "net: $(ls /sys/class/net | tr '\n' ' ')"
echo "path: $PATH"
echo "go: $(command -v go || echo none)"
echo "stack: $STACK"
echo "cache: $(cat "$2/runs" 2>/dev/null || echo 0)"
runs=$(( $(cat "$2/runs" 2>/dev/null || echo 0) + 1 ))
echo "$runs" > "$2/runs"
cp "$3/GREETING" "$1/greeting.txt"
[ -z "${GOCACHE:-}" ] || echo shared > "$GOCACHE/probe"
mkdir -p "$1/bin" && echo 'echo built' > "$1/bin/web" && chmod +x "$1/bin/web"
if touch "$0.written" 2>/dev/null; then echo "buildpack: writable"; else echo "buildpack: read-only"; fi
`

func probePack(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range map[string]string{
		"bin/detect":  "#!/bin/sh\necho Probe\n",
		"bin/compile": probeCompile,
		"bin/release": "#!/bin/sh\necho '--- {default_process_types: {web: bin/web}}'\n",
	} {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestBuildContainerIsTheStackOffline(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	d := e.driver(e.options())
	b := containerBuilder(t, d)
	goCache := filepath.Join(t.TempDir(), "gocache") // made by the runner
	b.Env = []string{"GOCACHE=" + goCache}
	pack := probePack(t)
	src := t.TempDir()
	mustWrite(t, filepath.Join(src, "README"), []byte("probe\n"))

	build := func(greeting string) (slugs.Slug, string) {
		var out lockedBuffer
		s, err := b.Build(context.Background(), slugs.Request{App: "probe", SourceDir: src, Stack: "manifold-24",
			Buildpacks: []string{pack}, Config: map[string]string{"GREETING": greeting, "BUILD_N": greeting}, Output: &out})
		if err != nil {
			t.Fatalf("build: %v\noutput:\n%s", err, out.String())
		}
		return s, out.String()
	}
	s, out := build("one")
	for _, want := range []string{
		"sh: busybox",                   // the stack's shell, not the host's
		"net: lo \n",                    // NetworkMode none: loopback only
		"go: /usr/local/go/bin/go",      // the host toolchain, mounted
		"stack: manifold-24",            // STACK is the spec's name
		"cache: 0",                      // a fresh CACHE_DIR
		"buildpack: read-only",          // the buildpack is mounted read-only
		"path: /app/bin:/usr/local/bin", // the image's PATH, not the host's
	} {
		if !strings.Contains(out, want) {
			t.Errorf("compile output lacks %q:\n%s", want, out)
		}
	}
	if s.ProcessTypes["web"] != "bin/web" {
		t.Errorf("process types %v, want web: bin/web", s.ProcessTypes)
	}
	if entries := slugEntries(t, s.Path); !entries["./greeting.txt"] || !entries["./bin/web"] {
		t.Errorf("slug entries %v lack greeting.txt and bin/web written in the container", entries)
	}
	// The cache written by root in the container is the app's, kept on the host.
	if got := strings.TrimSpace(string(mustRead(t, filepath.Join(b.Store.Dir(), "cache", "probe", "runs")))); got != "1" {
		t.Errorf("cache file = %q, want 1", got)
	}
	// An absolute GOCACHE of Builder.Env is the host's folder, mounted.
	if got := string(mustRead(t, filepath.Join(goCache, "probe"))); got != "shared\n" {
		t.Errorf("GOCACHE file = %q, want shared", got)
	}
	_, out = build("two")
	if !strings.Contains(out, "cache: 1") {
		t.Errorf("second build did not see the first one's cache:\n%s", out)
	}
}

func TestBuildInContainerFailures(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	d := e.driver(e.options())

	t.Run("compile error", func(t *testing.T) {
		b := containerBuilder(t, d)
		src := t.TempDir()
		mustWrite(t, filepath.Join(src, "go.mod"), []byte("module example.com/broken\n\ngo 1.26\n"))
		mustWrite(t, filepath.Join(src, "main.go"), []byte("package main\n\nfunc main() { undefinedThing() }\n"))
		_, err := b.Build(context.Background(), slugs.Request{App: "broken", SourceDir: src, Stack: "manifold-24"})
		var be *slugs.BuildError
		if !errors.Is(err, slugs.ErrCompile) || !errors.As(err, &be) {
			t.Fatalf("err %v, want a BuildError wrapping ErrCompile", err)
		}
		if be.Buildpack != "go" || !strings.Contains(err.Error(), "exit status 1") || !strings.Contains(err.Error(), "undefined: undefinedThing") {
			t.Errorf("err %v: want the go buildpack, exit status 1 and the compiler's line", err)
		}
	})
	t.Run("time limit kills the container", func(t *testing.T) {
		b := containerBuilder(t, d)
		b.TimeLimit = 2 * time.Second
		pack := probePack(t)
		mustWrite(t, filepath.Join(pack, "bin", "compile"), []byte("#!/bin/sh\necho sleeping\nsleep 600\n"))
		began := time.Now()
		_, err := b.Build(context.Background(), slugs.Request{App: "sleepy", SourceDir: t.TempDir(), Buildpacks: []string{pack}})
		if !errors.Is(err, slugs.ErrTimeout) {
			t.Fatalf("err %v, want ErrTimeout", err)
		}
		if took := time.Since(began); took > 60*time.Second {
			t.Errorf("build took %s after a 2s limit: the container was not killed", took)
		}
		// The step removes its container before it returns, and the build waits for it.
		if left := e.containers(); len(left) != 0 {
			t.Errorf("%d build containers left after the time limit: %s", len(left), describeContainers(left))
		}
	})
	t.Run("cancelled build", func(t *testing.T) {
		b := containerBuilder(t, d)
		pack := probePack(t)
		mustWrite(t, filepath.Join(pack, "bin", "compile"), []byte("#!/bin/sh\necho started\nsleep 600\n"))
		ctx, cancel := context.WithCancel(context.Background())
		out := &lockedBuffer{}
		done := make(chan error, 1)
		go func() {
			_, err := b.Build(ctx, slugs.Request{App: "cancelled", SourceDir: t.TempDir(), Buildpacks: []string{pack}, Output: out})
			done <- err
		}()
		waitFor(t, "the compile to start", func() bool { return strings.Contains(out.String(), "started") })
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("err %v, want context.Canceled", err)
			}
		case <-time.After(60 * time.Second):
			t.Fatal("a cancelled build did not return")
		}
		// The runner removes its container before the step returns, and Build
		// returns as soon as ctx ends: poll until the step's cleanup is done.
		waitFor(t, "the build container to go", func() bool { return len(e.containers()) == 0 })
	})
	t.Run("missing stack image", func(t *testing.T) {
		b := containerBuilder(t, d)
		_, err := b.Build(context.Background(), slugs.Request{App: "nostack", SourceDir: example("site"), Stack: "manifold/no-such-stack:0"})
		if !errors.Is(err, docker.ErrImageMissing) || !strings.Contains(err.Error(), "make stack-image") {
			t.Fatalf("err %v, want ErrImageMissing saying make stack-image", err)
		}
	})
	if left := e.containers(); len(left) != 0 {
		t.Errorf("%d build containers left after failed builds: %s", len(left), describeContainers(left))
	}
}

// TestGoSlugBuiltInContainerRunsAsDyno builds examples/src/hello in a build container
// and runs the slug as a web dyno of the busybox stack: the binary the mounted
// toolchain made runs there.
func TestGoSlugBuiltInContainerRunsAsDyno(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	d := e.driver(e.options())
	b := containerBuilder(t, d)
	s, err := b.Build(context.Background(), slugs.Request{App: "hello", SourceDir: example("hello"), Stack: "manifold-24"})
	if err != nil {
		t.Fatal(err)
	}
	app := randomName("hello")
	started, err := d.Start(context.Background(), drivers.DynoSpec{
		App: app, Env: "production", Type: "web", Index: 1, Release: 1,
		SlugKey: s.Key, SlugPath: s.Path, Command: s.ProcessTypes["web"], Stack: "manifold-24",
		Config: map[string]string{"GREETING": "built in the stack"}, StopTimeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if started.Spec.Stack != docker.DefaultStack {
		t.Errorf("dyno stack %q, want the image %q", started.Spec.Stack, docker.DefaultStack)
	}
	up := waitDyno(t, d, app, "web.1", isUp)
	if got := httpGet(t, "http://"+up.Addr+"/"); !strings.Contains(got, "built in the stack") {
		t.Errorf("GET / = %q, want the GREETING", got)
	}
	stopAll(t, d)
}

func TestCloseKillsRunningBuild(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	d := e.driver(e.options())
	b := containerBuilder(t, d)
	pack := probePack(t)
	mustWrite(t, filepath.Join(pack, "bin", "compile"), []byte("#!/bin/sh\necho started\nsleep 600\n"))
	out := &lockedBuffer{}
	done := make(chan error, 1)
	go func() {
		_, err := b.Build(context.Background(), slugs.Request{App: "closing", SourceDir: t.TempDir(), Buildpacks: []string{pack}, Output: out})
		done <- err
	}()
	waitFor(t, "the compile to start", func() bool { return strings.Contains(out.String(), "started") })
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, slugs.ErrCompile) || !strings.Contains(err.Error(), "closing") {
			t.Fatalf("err %v, want a failed compile of app closing", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("Close did not end the build")
	}
	// Close waits for the step, which removes its container.
	if left := e.containers(); len(left) != 0 {
		t.Errorf("%d build containers left after Close", len(left))
	}
	// A closed driver runs no more steps.
	if _, err := b.Build(context.Background(), slugs.Request{App: "late", SourceDir: example("site")}); !errors.Is(err, docker.ErrClosed) {
		t.Errorf("build after Close: %v, want ErrClosed", err)
	}
}

func TestLeftoverBuildContainerIsRemovedAtStart(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	created, err := e.raw.ContainerCreate(ctx, &container.Config{
		Image: docker.DefaultStack, Cmd: []string{"sleep", "600"},
		Labels: map[string]string{docker.LabelInstance: e.instance, docker.LabelOneOff: "build", docker.LabelBuild: "hello"},
	}, &container.HostConfig{NetworkMode: "none"}, nil, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.raw.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	d := e.driver(e.options())
	if left := e.containers(); len(left) != 0 {
		t.Errorf("the build container of an earlier daemon is still there: %+v", left)
	}
	if list, err := d.List(ctx); err != nil || len(list) != 0 {
		t.Errorf("List = %v, %v: want no dynos", list, err)
	}
}

// BenchmarkBuildHello builds examples/src/hello with a warm cache (the test run's Go
// build cache and the app's CACHE_DIR), as processes of the host and in build
// containers of the stack: the containers' cost per build (a stack probe once, then
// three containers: detect, compile, release).
func BenchmarkBuildHello(b *testing.B) {
	e := newEnv(b)
	d := e.driver(e.options())
	for _, mode := range []string{"host", "container"} {
		b.Run(mode, func(b *testing.B) {
			builder := containerBuilder(b, d)
			if mode == "host" {
				builder.Runner = nil
			}
			build := func(n int) {
				// A new BUILD_ var is a new slug key: every iteration really builds.
				_, err := builder.Build(context.Background(), slugs.Request{App: "hello", SourceDir: example("hello"),
					Stack: "manifold-24", Config: map[string]string{"BUILD_N": strconv.Itoa(n)}})
				if err != nil {
					b.Fatal(err)
				}
			}
			build(-1) // warm the caches
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				build(i)
			}
		})
	}
}

// describeContainers says what each container is, for a test that finds some left.
func describeContainers(list []container.Summary) string {
	var parts []string
	for _, c := range list {
		parts = append(parts, fmt.Sprintf("%.12s (%s, %s, command %q, labels %v)", c.ID, c.State, c.Status, c.Command, c.Labels))
	}
	return strings.Join(parts, "; ")
}
