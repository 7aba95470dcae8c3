package router

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// deployRequestsEnv sets how many requests TestZeroDowntimeDeploys sends.
const deployRequestsEnv = "MANIFOLD_ROUTER_DEPLOY_REQUESTS"

// release is one deployed version of the app: its web dynos, real HTTP servers.
type release struct {
	servers  []*http.Server
	backends []Backend
}

func startRelease(t *testing.T, version, dynos int) *release {
	t.Helper()
	rel := &release{}
	body := []byte("v" + strconv.Itoa(version))
	for i := range dynos {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(body) })}
		go func() { _ = srv.Serve(ln) }()
		t.Cleanup(func() { _ = srv.Close() })
		rel.servers = append(rel.servers, srv)
		rel.backends = append(rel.backends, Backend{Dyno: fmt.Sprintf("web.%d", i+1), Addr: ln.Addr().String()})
	}
	return rel
}

func releaseTable(rels ...*release) Table {
	rt := &Route{App: "hello", Env: "staging"}
	for _, rel := range rels {
		rt.Backends = append(rt.Backends, rel.backends...)
	}
	return Table{Hosts: map[string]*Route{appHost: rt}}
}

// TestZeroDowntimeDeploys sends a bounded stream of requests through the router with
// keep-alive clients while the app is deployed three times: each deploy starts new
// dynos, routes to old and new, then to new only, then shuts the old dynos down
// gracefully. Not one request may fail.
func TestZeroDowntimeDeploys(t *testing.T) {
	// 100,000 requests is the bar; under the race detector (make test) the default
	// is 10,000 so the run stays in seconds, and the env var sets any count.
	total := 100_000
	if raceEnabled {
		total = 10_000
	}
	if v := os.Getenv(deployRequestsEnv); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 100 {
			t.Fatalf("%s=%q: want a count of at least 100", deployRequestsEnv, v)
		}
		total = n
	}
	const clients, dynosPerRelease, deploys = 8, 2, 3

	r := New(Options{Logs: &sink{}, ShutdownTimeout: 5 * time.Second})
	current := startRelease(t, 1, dynosPerRelease)
	r.Swap(releaseTable(current))
	base := startRouter(t, r)

	transport := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: clients}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: 10 * time.Second}

	var sent, done, failed atomic.Int64
	var firstErrs sync.Map
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for sent.Add(1) <= int64(total) {
				if err := deployProbe(client, base); err != nil {
					if failed.Add(1) <= 5 {
						firstErrs.Store(err.Error(), true)
					}
				}
				done.Add(1)
			}
		}()
	}

	// Deploys are paced by progress, not time: each step waits for a slice of the
	// requests to complete so every table sees traffic.
	waitDone := func(n int64) {
		eventually(t, time.Minute, fmt.Sprintf("%d requests done", n), func() error {
			if done.Load() < n && failed.Load() < 100 {
				return fmt.Errorf("%d done, %d failed", done.Load(), failed.Load())
			}
			return nil
		})
	}
	step := int64(total) / (deploys*3 + 1)
	for d := range deploys {
		next := startRelease(t, d+2, dynosPerRelease)
		waitDone(step * int64(3*d+1))
		r.Swap(releaseTable(current, next))
		waitDone(step * int64(3*d+2))
		r.Swap(releaseTable(next))
		waitDone(step * int64(3*d+3))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		for _, srv := range current.servers {
			if err := srv.Shutdown(ctx); err != nil {
				t.Errorf("shut down old dyno: %v", err)
			}
		}
		cancel()
		current = next
	}
	wg.Wait()

	if n := done.Load(); n != int64(total) {
		t.Errorf("%d requests completed, want %d", n, total)
	}
	if n := failed.Load(); n != 0 {
		firstErrs.Range(func(k, _ any) bool { t.Log(k); return true })
		t.Fatalf("%d of %d requests failed across %d deploys", n, total, deploys)
	}
	// The last release serves: a final request answers with its version.
	if err := deployProbe(client, base); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d requests, %d deploys, 0 failed", total, deploys)
}

// deployProbe sends one request and checks it was answered by some release.
func deployProbe(client *http.Client, base string) error {
	req, err := http.NewRequest(http.MethodGet, base+"/", nil)
	if err != nil {
		return err
	}
	req.Host = appHost
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 || len(body) < 2 || body[0] != 'v' {
		return fmt.Errorf("status %d body %q", resp.StatusCode, body)
	}
	return nil
}
