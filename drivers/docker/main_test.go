package docker_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/manifold-paas/manifold/drivers"
	"github.com/manifold-paas/manifold/drivers/docker"
	"github.com/manifold-paas/manifold/logs"
)

// engineProblem is why the Docker tests cannot run here ("" when they can); set once
// by TestMain before any test runs.
var engineProblem string

func TestMain(m *testing.M) {
	engineProblem = prepareEngine()
	if engineProblem != "" && os.Getenv("CI") == "true" {
		fmt.Fprintln(os.Stderr, "docker tests: CI=true and "+engineProblem)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// prepareEngine checks the engine answers and builds the stack image when missing.
func prepareEngine() string {
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return "no Docker client: " + err.Error()
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := cli.Ping(ctx); err != nil {
		return "the Docker Engine is not reachable at " + cli.DaemonHost() + ": " + err.Error()
	}
	if _, err := cli.ImageInspect(ctx, docker.DefaultStack); err != nil {
		_, file, _, _ := runtime.Caller(0)
		build := exec.Command(filepath.Join(filepath.Dir(file), "stack", "build.sh"), docker.DefaultStack)
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return "building the stack image failed: " + err.Error()
		}
	}
	return ""
}

// needEngine skips (or, with CI=true, TestMain already failed) without an engine.
func needEngine(t testing.TB) {
	t.Helper()
	if engineProblem != "" {
		t.Skip("skipping: needs the Docker Engine: " + engineProblem)
	}
}

// sink collects published lines; tests poll it.
type sink struct {
	mu    sync.Mutex
	lines []logs.Line
}

func (s *sink) Publish(l logs.Line) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lines = append(s.lines, l)
}

func (s *sink) all() []logs.Line {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]logs.Line(nil), s.lines...)
}

// has reports whether a line of the dyno and source contains text.
func (s *sink) count(dyno, source, text string) int {
	n := 0
	for _, l := range s.all() {
		if (dyno == "" || l.Dyno == dyno) && l.Source == source && strings.Contains(l.Text, text) {
			n++
		}
	}
	return n
}

func (s *sink) dump() string {
	var b strings.Builder
	for _, l := range s.all() {
		fmt.Fprintf(&b, "%s %s[%s]: %s\n", l.Time.Format(time.StampMicro), l.Source, l.Dyno, l.Text)
	}
	return b.String()
}

func randomName(prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// rawClient is a client of the engine that bypasses the driver, as a user would.
func rawClient(t testing.TB) *client.Client {
	t.Helper()
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// env is one test's driver setup: its own instance label, sink and raw client.
type env struct {
	t        testing.TB
	instance string
	logs     *sink
	raw      *client.Client
	stateDir string
}

func newEnv(t testing.TB) *env {
	t.Helper()
	needEngine(t)
	e := &env{t: t, instance: randomName("test-"), logs: &sink{}, raw: rawClient(t), stateDir: t.TempDir()}
	t.Cleanup(e.cleanup)
	return e
}

func (e *env) options() docker.Options {
	return docker.Options{
		Logs:           e.logs,
		Instance:       e.instance,
		BootTimeout:    20 * time.Second,
		RelistInterval: time.Second,
		StateDir:       e.stateDir,
		Cooloff:        func(int) time.Duration { return 100 * time.Millisecond },
	}
}

// driver starts a Driver for the env; it is closed at cleanup (before the containers
// are removed).
func (e *env) driver(opts docker.Options) *docker.Driver {
	e.t.Helper()
	d, err := docker.New(context.Background(), opts)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { d.Close() })
	return d
}

func (e *env) filter() filters.Args {
	return filters.NewArgs(filters.Arg("label", docker.LabelInstance+"="+e.instance))
}

// containers lists the env's containers, one-offs included.
func (e *env) containers() []container.Summary {
	e.t.Helper()
	list, err := e.raw.ContainerList(context.Background(), container.ListOptions{All: true, Filters: e.filter()})
	if err != nil {
		e.t.Fatal(err)
	}
	return list
}

func (e *env) volumes() []string {
	e.t.Helper()
	list, err := e.raw.VolumeList(context.Background(), volume.ListOptions{Filters: e.filter()})
	if err != nil {
		e.t.Fatal(err)
	}
	var names []string
	for _, v := range list.Volumes {
		names = append(names, v.Name)
	}
	return names
}

func (e *env) networks() []network.Summary {
	e.t.Helper()
	list, err := e.raw.NetworkList(context.Background(), network.ListOptions{Filters: e.filter()})
	if err != nil {
		e.t.Fatal(err)
	}
	return list
}

// cleanup removes what the test left and fails when a passing test left anything.
func (e *env) cleanup() {
	ctx := context.Background()
	left := e.containers()
	nets := e.networks()
	vols := e.volumes()
	if !e.t.Failed() && (len(left) > 0 || len(nets) > 0 || len(vols) > 0) {
		e.t.Errorf("test left %d containers, %d networks and %d volumes behind", len(left), len(nets), len(vols))
	}
	for _, c := range left {
		_ = e.raw.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true})
	}
	for _, v := range vols {
		_ = e.raw.VolumeRemove(ctx, v, true)
	}
	// An endpoint can linger a moment after its container is removed: retry.
	eventually(e.t, 10*time.Second, "the test's networks removed", func() error {
		var errs []error
		for _, n := range e.networks() {
			if err := e.raw.NetworkRemove(ctx, n.ID); err != nil {
				errs = append(errs, fmt.Errorf("remove network %s: %w", n.Name, err))
			}
		}
		return errors.Join(errs...)
	})
	if len(e.containers()) > 0 || len(e.networks()) > 0 || len(e.volumes()) > 0 {
		e.t.Errorf("could not remove everything of instance %s", e.instance)
	}
}

// stopAll stops every dyno of a driver, as the reconciler does when an app goes.
func stopAll(t testing.TB, d *docker.Driver) {
	t.Helper()
	ctx := context.Background()
	list, err := d.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, dy := range list {
		if err := d.Stop(ctx, dy.ID); err != nil {
			t.Errorf("stop %s: %v", dy.Name, err)
		}
	}
}

// slug writes a gzipped tarball of files (relative to /app) and returns its path.
// Files under bin/ are executable.
func slug(t testing.TB, files map[string]string) string {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	dirs := map[string]bool{}
	for name, body := range files {
		for dir := filepath.Dir(name); dir != "." && !dirs[dir]; dir = filepath.Dir(dir) {
			dirs[dir] = true
			if err := tw.WriteHeader(&tar.Header{Name: "./" + dir + "/", Mode: 0o755, Typeflag: tar.TypeDir}); err != nil {
				t.Fatal(err)
			}
		}
		mode := int64(0o644)
		if strings.HasPrefix(name, "bin/") {
			mode = 0o755
		}
		if err := tw.WriteHeader(&tar.Header{Name: "./" + name, Mode: mode, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "slug.tgz")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// webCommand serves /app/public with busybox httpd on $PORT and writes the dyno's
// environment to /env.txt.
const webCommand = `mkdir -p /tmp/www && cp -r /app/public/. /tmp/www/ && echo "$DYNO $PS $HOME $PORT $GREETING" > /tmp/www/env.txt && exec busybox httpd -f -p $PORT -h /tmp/www`

func webSlug(t testing.TB) string {
	return slug(t, map[string]string{"public/index.html": "hello from a slug\n", "Procfile": "web: " + webCommand + "\n"})
}

func webSpec(app string, index int, slugPath string) drivers.DynoSpec {
	return drivers.DynoSpec{
		App: app, Env: "production", Type: "web", Index: index, Release: 3,
		SlugKey: "sha256-test", SlugPath: slugPath, Command: webCommand,
		Config:      map[string]string{"GREETING": "hi"},
		StopTimeout: 5 * time.Second,
	}
}

// waitDyno polls List until a dyno named name of app satisfies ok.
func waitDyno(t testing.TB, d *docker.Driver, app, name string, ok func(drivers.Dyno) bool) drivers.Dyno {
	t.Helper()
	var found drivers.Dyno
	eventually(t, waitLimit, fmt.Sprintf("dyno %s of %s in the wanted state", name, app), func() error {
		list, err := d.List(context.Background())
		if err != nil {
			return err
		}
		for _, dy := range list {
			if dy.Spec.App == app && dy.Name == name && ok(dy) {
				found = dy
				return nil
			}
		}
		return fmt.Errorf("last list: %+v", list)
	})
	return found
}

func isUp(dy drivers.Dyno) bool { return dy.State == drivers.StateUp }

// waitLimit bounds every wait of these tests: a container start on a busy shared
// engine can take seconds.
const waitLimit = 45 * time.Second

// pollInterval is how often eventually looks again (each look is an Engine API call).
const pollInterval = 50 * time.Millisecond

// eventually calls check until it returns nil, and fails the test with check's last
// error when timeout passes first: the package's one way to wait for something.
func eventually(t testing.TB, timeout time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, timeout, err)
		}
		time.Sleep(pollInterval)
	}
}

// waitFor waits until cond holds, through eventually.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	eventually(t, waitLimit, what, func() error {
		if !cond() {
			return errors.New("not yet")
		}
		return nil
	})
}

// nextEvent reads the driver's events until one matches, within a deadline, so that a
// missing event fails the test instead of hanging it.
func nextEvent(t testing.TB, d *docker.Driver, what string, match func(drivers.Event) bool) drivers.Event {
	t.Helper()
	// Generous: on a loaded 2-core machine the engine takes its time (an OOM kill
	// was seen to take over 45 s to be reported while every Docker test ran).
	deadline := time.After(90 * time.Second)
	for {
		select {
		case ev, ok := <-d.Events():
			if !ok {
				t.Fatalf("events closed while waiting for %s", what)
			}
			if match(ev) {
				return ev
			}
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustWrite(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

var containerLogsAll = container.LogsOptions{ShowStdout: true, ShowStderr: true}

// readAll reads a multiplexed log stream's payloads (good enough for substring checks).
func readAll(r io.Reader) string {
	var out, errOut bytes.Buffer
	_, _ = stdcopy.StdCopy(&out, &errOut, r)
	return out.String() + errOut.String()
}
