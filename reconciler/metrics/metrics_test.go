package metrics_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/manifold-paas/manifold/drivers"
	"github.com/manifold-paas/manifold/drivers/process"
	"github.com/manifold-paas/manifold/drivers/slugtar"
	"github.com/manifold-paas/manifold/logs"
	"github.com/manifold-paas/manifold/reconciler/metrics"
	"github.com/manifold-paas/manifold/reconciler/source"
	"github.com/manifold-paas/manifold/router"
)

// eventually polls check until it returns nil or timeout passes: the package's one
// polling helper.
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
		time.Sleep(10 * time.Millisecond)
	}
}

// startRouter serves a real router with m on 127.0.0.1, routing shop.example.test to
// a real backend (and nodynos.example.test to an app without web dynos).
func startRouter(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, "ok")
	}))
	t.Cleanup(backend.Close)
	rt := router.New(router.Options{Metrics: m})
	rt.Swap(router.Table{Hosts: map[string]*router.Route{
		"shop.example.test":    {App: "shop", Env: "production", Backends: []router.Backend{{Dyno: "web.1", Addr: backend.Listener.Addr().String()}}},
		"nodynos.example.test": {App: "idle", Env: "production"},
	}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return ln.Addr().String()
}

func get(t *testing.T, client *http.Client, addr, host, path string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode
}

// TestRequestsAreCountedExactly: a bounded load of N requests moves the counters by
// exactly N, by status class, with router errors by code, in Prometheus and in the
// one-minute history alike.
func TestRequestsAreCountedExactly(t *testing.T) {
	t.Parallel()
	m := metrics.New(metrics.Options{})
	addr := startRouter(t, m)
	client := &http.Client{Timeout: 10 * time.Second}
	const ok, missing, noDynos = 300, 20, 7
	for range ok {
		if status := get(t, client, addr, "shop.example.test", "/"); status != 200 {
			t.Fatalf("status %d", status)
		}
	}
	for range missing {
		get(t, client, addr, "shop.example.test", "/missing")
	}
	for range noDynos {
		get(t, client, addr, "nodynos.example.test", "/")
	}
	requests := func(app, class string) float64 {
		return sample(t, m, "manifold_router_requests_total", "app", app, "env", "production", "status_class", class)
	}
	if got := requests("shop", "2xx"); got != ok {
		t.Errorf("2xx = %v, want %d", got, ok)
	}
	if got := requests("shop", "4xx"); got != missing {
		t.Errorf("4xx = %v, want %d", got, missing)
	}
	if got := requests("idle", "5xx"); got != noDynos {
		t.Errorf("idle 5xx = %v, want %d", got, noDynos)
	}
	if got := sample(t, m, "manifold_router_errors_total", "app", "idle", "env", "production", "code", "H14"); got != noDynos {
		t.Errorf("H14 = %v, want %d", got, noDynos)
	}
	minutes := m.History("shop", "production", time.Now().Add(-time.Hour))
	var total uint64
	for _, minute := range minutes {
		total += minute.Requests["2xx"] + minute.Requests["4xx"]
	}
	if total != ok+missing {
		t.Errorf("history counts %d requests, want %d", total, ok+missing)
	}
	last := minutes[len(minutes)-1]
	if last.P50 <= 0 || last.P50 > last.P99 || last.P99 > last.Max {
		t.Errorf("response times p50 %v p99 %v max %v", last.P50, last.P99, last.Max)
	}
}

// TestScrapePassesPromtool checks a real scrape with Prometheus' own linter.
func TestScrapePassesPromtool(t *testing.T) {
	t.Parallel()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool (Debian's prometheus package) is needed: make test installs it: ", err)
	}
	plex := logs.New(logs.Options{})
	t.Cleanup(plex.Close)
	m := metrics.New(metrics.Options{Drains: plex, Dynos: staticDynos{{Name: "web.1", State: drivers.StateUp, MemoryBytes: 64 << 20,
		Spec: drivers.DynoSpec{App: "shop", Env: "production", Type: "web", Index: 1, MemoryBytes: 512 << 20}}}})
	addr := startRouter(t, m)
	get(t, &http.Client{Timeout: 10 * time.Second}, addr, "shop.example.test", "/")
	m.Release("shop", "production", 3, "sha256:abc", "succeeded")
	m.Running("shop", "production", 3, "sha256:abc")
	m.Build(2 * time.Second)
	m.Pass(100 * time.Millisecond)
	server := httptest.NewServer(m.Handler())
	t.Cleanup(server.Close)
	resp, err := http.Get(server.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`manifold_router_requests_total{app="shop",env="production",status_class="2xx"} 1`,
		`manifold_dynos{app="shop",env="production",process="web",state="up"} 1`,
		`manifold_dyno_memory_bytes{app="shop",dyno="web.1",env="production"} 6.7108864e+07`,
		`manifold_release_info{app="shop",env="production",slug="sha256:abc",version="3"} 1`,
		`manifold_build_duration_seconds_count 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("scrape lacks %s", want)
		}
	}
	check := exec.Command(promtool, "check", "metrics")
	check.Stdin = bytes.NewReader(body)
	if out, err := check.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

type staticDynos []drivers.Dyno

func (s staticDynos) List(context.Context) ([]drivers.Dyno, error) { return s, nil }

// TestACrashMovesRestarts runs a real process dyno that exits 1: the dyno manager's
// crash event moves manifold_dyno_restarts_total and the history's restarts.
func TestACrashMovesRestarts(t *testing.T) {
	t.Parallel()
	m := metrics.New(metrics.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	driver, err := process.New(ctx, process.Options{StateDir: filepath.Join(t.TempDir(), "dynos"),
		Cooloff: func(int) time.Duration { return time.Hour }})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		if err := driver.Close(); err != nil {
			t.Error(err)
		}
	})
	go func() {
		for ev := range driver.Events() {
			m.DynoEvent(ev)
		}
	}()
	slugDir := t.TempDir()
	dyno, err := driver.Start(ctx, drivers.DynoSpec{App: "shop", Env: "production", Type: "worker", Index: 1, Release: 1,
		SlugKey: "none", SlugPath: emptySlug(t, slugDir), Command: "exit 1", StopTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := driver.Stop(context.Background(), dyno.ID); err != nil {
			t.Error(err)
		}
	})
	eventually(t, 20*time.Second, "a restart counted", func() error {
		if got := sample(t, m, "manifold_dyno_restarts_total", "app", "shop", "env", "production", "process", "worker", "reason", "crash"); got != 1 {
			return fmt.Errorf("restarts = %v", got)
		}
		return nil
	})
	minutes := m.History("shop", "production", time.Now().Add(-time.Hour))
	if got := minutes[len(minutes)-1].Restarts; got != 1 {
		t.Errorf("history restarts = %d, want 1", got)
	}
}

func TestHistoryQuantiles(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 1, 10, 0, 30, 0, time.UTC)
	m := metrics.New(metrics.Options{Now: func() time.Time { return now }})
	app := m.App("shop", "production")
	for i := 1; i <= 1000; i++ {
		app.Request(200, "", time.Duration(i)*time.Millisecond) // 1 ms .. 1 s
	}
	now = now.Add(time.Minute) // the next minute closes this one
	app.Request(503, router.H12, 30*time.Second)
	minutes := m.History("shop", "production", now.Add(-time.Hour))
	if len(minutes) != 2 {
		t.Fatalf("%d minutes, want 2", len(minutes))
	}
	first := minutes[0]
	for _, q := range []struct {
		name      string
		got, want float64
	}{{"p50", first.P50, 0.5}, {"p95", first.P95, 0.95}, {"p99", first.P99, 0.99}, {"max", first.Max, 1}} {
		if math.Abs(q.got-q.want)/q.want > 0.11 {
			t.Errorf("%s = %v, want %v within 11 %%", q.name, q.got, q.want)
		}
	}
	if minutes[1].Errors["H12"] != 1 || minutes[1].Requests["5xx"] != 1 || first.Requests["2xx"] != 1000 {
		t.Errorf("minutes = %+v", minutes)
	}
}

// emptySlug packs an empty /app into dir/slug.tgz.
func emptySlug(t *testing.T, dir string) string {
	t.Helper()
	app := filepath.Join(dir, "app")
	if err := os.MkdirAll(app, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "slug.tgz")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := slugtar.Pack(context.Background(), app, f, 1<<20); err != nil {
		t.Fatal(err)
	}
	return path
}

// sample gathers m's registry and returns the value of the counter or gauge name whose
// labels are the given name, value pairs (0 when there is none).
func sample(t *testing.T, m *metrics.Metrics, name string, labels ...string) float64 {
	t.Helper()
	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	for _, family := range families {
		if family.GetName() != name {
			continue
		}
	metric:
		for _, metric := range family.GetMetric() {
			if len(metric.GetLabel()) != len(want) {
				continue
			}
			for _, label := range metric.GetLabel() {
				if want[label.GetName()] != label.GetValue() {
					continue metric
				}
			}
			if c := metric.GetCounter(); c != nil {
				return c.GetValue()
			}
			return metric.GetGauge().GetValue()
		}
	}
	return 0
}

// TestWebhookCalls counts a real webhook handler's answers by result.
func TestWebhookCalls(t *testing.T) {
	t.Parallel()
	m := metrics.New(metrics.Options{})
	var triggered atomic.Int32
	server := httptest.NewServer(m.CountWebhooks(source.NewWebhook(source.WebhookOptions{Secret: "s3cret", Trigger: func(string) { triggered.Add(1) }})))
	t.Cleanup(server.Close)
	post := func(signature string, event string) {
		t.Helper()
		body := `{"ref":"refs/heads/main","after":"0123456789abcdef"}`
		req, err := http.NewRequest(http.MethodPost, server.URL, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-GitHub-Event", event)
		if signature != "" {
			mac := hmac.New(sha256.New, []byte(signature))
			mac.Write([]byte(body))
			req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	post("s3cret", "push")
	post("s3cret", "ping")
	post("wrong", "push")
	post("", "push")
	for result, want := range map[string]float64{"accepted": 1, "ignored": 1, "rejected": 2} {
		if got := sample(t, m, "manifold_webhook_requests_total", "result", result); got != want {
			t.Errorf("%s = %v, want %v", result, got, want)
		}
	}
	if n := triggered.Load(); n != 1 {
		t.Errorf("triggered %d fetches, want 1", n)
	}
}
