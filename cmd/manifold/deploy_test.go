package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// deployTestRequests is how many requests TestZeroDowntimeDeploys sends (at least
// 100,000 by default; MANIFOLD_DEPLOY_REQUESTS overrides it).
func deployTestRequests(t *testing.T) int64 {
	if v := os.Getenv("MANIFOLD_DEPLOY_REQUESTS"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			t.Fatalf("MANIFOLD_DEPLOY_REQUESTS=%q: %v", v, err)
		}
		return n
	}
	return 100_000
}

// TestZeroDowntimeDeploys sends a bounded stream of requests through the router while
// the app is deployed three times in a row (three releases, each replacing both web
// dynos), and requires every request to succeed.
func TestZeroDowntimeDeploys(t *testing.T) {
	repo := t.TempDir()
	if err := os.CopyFS(filepath.Join(repo, "src", "hello"), os.DirFS("../../examples/src/hello")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(repo, "apps"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeApp := func(greeting string) {
		spec := strings.NewReplacer("%GREETING%", greeting, "%WEB%", "2").Replace(e2eApp)
		if err := os.WriteFile(filepath.Join(repo, "apps", "hello.hcl"), []byte(spec), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeApp("v0")
	git(t, repo, "init", "-q", "-b", "main")
	git(t, repo, "add", "-A")
	git(t, repo, "commit", "-q", "-m", "v0")

	state := t.TempDir()
	t.Cleanup(func() { killDynos(filepath.Join(state, "dynos")) })
	routerAddr := freeAddr(t)
	d := startDaemon(t, state, "file://"+repo, routerAddr, "1h")
	host := "hello.default.localhost"
	eventually(t, 3*time.Minute, "v0 answers", func() error {
		body, err := d.get(host)
		if err == nil && !strings.Contains(body, "v0 from") {
			err = fmt.Errorf("body %q", body)
		}
		return err
	})

	total := deployTestRequests(t)
	var sent, failed atomic.Int64
	var seen sync.Map // greetings answered
	var firstErr atomic.Value
	transport := &http.Transport{MaxIdleConnsPerHost: 16}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: 30 * time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var load sync.WaitGroup
	for range 8 {
		load.Go(func() {
			for sent.Add(1) <= total && ctx.Err() == nil {
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+routerAddr+"/", nil)
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					return
				}
				req.Host = host
				resp, err := client.Do(req)
				if err == nil {
					var body []byte
					body, err = io.ReadAll(resp.Body)
					resp.Body.Close()
					if err != nil {
						err = fmt.Errorf("read the answer: %w", err)
					} else if resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("status %d: %s", resp.StatusCode, body)
					} else if greeting, _, ok := strings.Cut(string(body), " from"); ok {
						seen.Store(greeting, true)
					}
				}
				if err != nil && ctx.Err() == nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				}
			}
		})
	}

	// Three deploys in a row while the load runs, each waited for until it serves.
	for i := 1; i <= 3; i++ {
		want := fmt.Sprintf("v%d", i)
		writeApp(want)
		git(t, repo, "commit", "-q", "-am", want)
		resp, err := http.Post("http://"+d.webhook+"/hooks/git", "application/json", strings.NewReader(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		eventually(t, 2*time.Minute, want+" serves", func() error {
			if _, ok := seen.Load(want); !ok {
				return fmt.Errorf("no %s answer yet (%d requests sent)", want, sent.Load())
			}
			return nil
		})
	}
	load.Wait()
	if sent.Load() < total {
		t.Fatalf("only %d of %d requests sent", sent.Load(), total)
	}
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d of %d requests failed during three deploys; first: %v", n, total, firstErr.Load())
	}
	releases, err := d.api.Releases(context.Background(), "hello", "")
	if err != nil || len(releases.Releases) != 4 {
		t.Fatalf("releases: %d, %v; want 4", len(releases.Releases), err)
	}
	t.Logf("%d requests, 0 failed, across 3 deploys (releases v2-v4)", total)
}
