package swarm_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/manifold-paas/manifold/drivers"
	"github.com/manifold-paas/manifold/drivers/slugtar"
	"github.com/manifold-paas/manifold/drivers/swarm"
	"github.com/manifold-paas/manifold/drivers/swarm/swarmtest"
	"github.com/manifold-paas/manifold/logs"
	"github.com/manifold-paas/manifold/router"
)

const stackImage = "manifold/stack:24"

// webCommand says which dyno and node it is, then serves it over HTTP.
const webCommand = `mkdir -p /app/public && echo "$DYNO $NODE" > /app/public/index.html && echo "booted $DYNO on $NODE" && exec httpd -f -p $PORT -h /app/public`

// needSwarm fails under CI=true, and skips elsewhere, when extra daemons cannot run.
func needSwarm(t testing.TB) {
	t.Helper()
	if problem := swarmtest.Available(); problem != "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("swarm tests: CI=true and %s", problem)
		}
		t.Skip("swarm tests: " + problem)
	}
}

func newCluster(t testing.TB, nodes int) *swarmtest.Cluster {
	t.Helper()
	needSwarm(t)
	return swarmtest.Start(t, nodes, stackImage, swarm.NodeImageLabel)
}

// sink keeps every published line.
type sink struct {
	mu    sync.Mutex
	lines []logs.Line
}

func (s *sink) Publish(l logs.Line) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lines = append(s.lines, l)
}

func (s *sink) find(match func(logs.Line) bool) (logs.Line, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.lines {
		if match(l) {
			return l, true
		}
	}
	return logs.Line{}, false
}

func randomName() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return "t" + hex.EncodeToString(b)
}

func newDriver(t testing.TB, c *swarmtest.Cluster, instance, slugListen string, out *sink) *swarm.Driver {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d, err := swarm.New(ctx, swarm.Options{
		Logs: out, Logger: slog.New(slog.DiscardHandler), Host: c.Manager().Host, Instance: instance, SlugListen: slugListen,
		RelistInterval: 300 * time.Millisecond, BootTimeout: 20 * time.Second,
	})
	if err != nil {
		t.Fatalf("swarm.New: %v", err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

// makeSlug packs a slug with one file.
func makeSlug(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "README"), []byte("a slug\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := slugtar.Pack(context.Background(), src, &buf, 1<<20); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "slug.tgz")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func webSpec(app string, index, release int, slug string) drivers.DynoSpec {
	return drivers.DynoSpec{
		App: app, Env: "test", Type: "web", Index: index, Release: release,
		SlugKey: "s1", SlugPath: slug, Command: webCommand,
		// Swarm fills in templates in the environment: each task knows its node.
		Config:      map[string]string{"NODE": "{{.Node.ID}}", "GREETING": "v" + string(rune('0'+release))},
		Size:        "standard-1x",
		MemoryBytes: 64 << 20,
		StopTimeout: 3 * time.Second,
	}
}

// waitDynos polls List until ok says the app's dynos are as wanted.
func waitDynos(t testing.TB, d *swarm.Driver, app string, timeout time.Duration, ok func([]drivers.Dyno) bool) []drivers.Dyno {
	t.Helper()
	var got []drivers.Dyno
	err := swarmtest.Poll(context.Background(), timeout, func(ctx context.Context) (bool, error) {
		all, err := d.List(ctx)
		if err != nil {
			return false, nil
		}
		got = got[:0]
		for _, dy := range all {
			if dy.Spec.App == app {
				got = append(got, dy)
			}
		}
		return ok(got), nil
	})
	if err != nil {
		t.Fatalf("dynos of %s: %v; last seen: %+v", app, err, summary(got))
	}
	return got
}

func summary(dynos []drivers.Dyno) []string {
	var out []string
	for _, d := range dynos {
		out = append(out, d.ID+" "+string(d.State)+" "+d.Addr+" "+d.Reason)
	}
	return out
}

func allUp(n int) func([]drivers.Dyno) bool {
	return func(dynos []drivers.Dyno) bool {
		up := 0
		for _, d := range dynos {
			if d.State == drivers.StateUp && (d.Spec.Type != "web" || d.Addr != "") {
				up++
			}
		}
		return up == n && len(dynos) == n
	}
}

// newRouter serves the app's up web dynos at host app.test.
func newRouter(t testing.TB) (*router.Router, *httptest.Server) {
	t.Helper()
	r := router.New(router.Options{Quarantine: time.Second})
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return r, srv
}

func routeTo(r *router.Router, app string, dynos []drivers.Dyno) {
	route := &router.Route{App: app, Env: "test"}
	for _, d := range dynos {
		if d.Spec.Type == "web" && d.State == drivers.StateUp && d.Addr != "" {
			route.Backends = append(route.Backends, router.Backend{Dyno: d.Name, Addr: d.Addr})
		}
	}
	r.Swap(router.Table{Hosts: map[string]*router.Route{app + ".test": route}})
}

func hostOf(addr string) string {
	host, _, _ := strings.Cut(addr, ":")
	return host
}

func (s *sink) texts() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, l := range s.lines {
		out = append(out, l.Dyno+": "+l.Text)
	}
	return out
}

// poll waits for cond through the harness's one polling helper.
func poll(t testing.TB, timeout time.Duration, cond func() bool) error {
	t.Helper()
	return swarmtest.Poll(context.Background(), timeout, func(context.Context) (bool, error) { return cond(), nil })
}
