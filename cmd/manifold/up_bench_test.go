package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// BenchmarkCommitToDyno measures, over 20 commits that change a config var (a new
// release, no build), the time from `git commit` to the router answering with the new
// value from a new dyno: once with a 1 s poll, once with the webhook. It reports p50
// and p99 in milliseconds. Flux and Argo CD poll every 1 to 3 minutes.
func BenchmarkCommitToDyno(b *testing.B) {
	for _, mode := range []string{"poll-1s", "webhook"} {
		b.Run(mode, func(b *testing.B) {
			repo := b.TempDir()
			if err := os.CopyFS(filepath.Join(repo, "src", "hello"), os.DirFS("../../examples/src/hello")); err != nil {
				b.Fatal(err)
			}
			if err := os.MkdirAll(filepath.Join(repo, "apps"), 0o755); err != nil {
				b.Fatal(err)
			}
			writeBenchApp(b, repo, "v0")
			git(b, repo, "init", "-q", "-b", "main")
			git(b, repo, "add", "-A")
			git(b, repo, "commit", "-q", "-m", "v0")

			state := b.TempDir()
			b.Cleanup(func() { killDynos(filepath.Join(state, "dynos")) })
			interval := "1s"
			if mode == "webhook" {
				interval = "1h"
			}
			routerAddr := freeAddr(b)
			d := startDaemon(b, state, "file://"+repo, routerAddr, interval)
			host := "hello.default.localhost"
			waitBody(b, routerAddr, host, "v0", 5*time.Minute)

			const commits = 20
			var took []time.Duration
			b.ResetTimer()
			for i := range b.N * commits {
				want := fmt.Sprintf("v%d", i+1)
				writeBenchApp(b, repo, want)
				start := time.Now()
				git(b, repo, "commit", "-q", "-am", want)
				if mode == "webhook" {
					resp, err := http.Post("http://"+d.webhook+"/hooks/git", "application/json", strings.NewReader(`{"ref":"refs/heads/main"}`))
					if err != nil {
						b.Fatal(err)
					}
					resp.Body.Close()
				}
				waitBody(b, routerAddr, host, want, time.Minute)
				took = append(took, time.Since(start))
			}
			b.StopTimer()
			reportMillis(b, "", took)
		})
	}
}

func writeBenchApp(b *testing.B, repo, greeting string) {
	b.Helper()
	spec := strings.NewReplacer("%GREETING%", greeting, "%WEB%", "1").Replace(e2eApp)
	if err := os.WriteFile(filepath.Join(repo, "apps", "hello.hcl"), []byte(spec), 0o644); err != nil {
		b.Fatal(err)
	}
}

// waitBody polls the router until the app answers with a body holding want.
func waitBody(b *testing.B, routerAddr, host, want string, timeout time.Duration) {
	b.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	eventually(b, timeout, fmt.Sprintf("%s answering %q", host, want), func() error {
		req, err := http.NewRequest(http.MethodGet, "http://"+routerAddr+"/", nil)
		if err != nil {
			return err
		}
		req.Host = host
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, 256))
		if err != nil {
			return err
		}
		if !strings.Contains(string(body), want+" from") {
			return fmt.Errorf("body %q", body)
		}
		return nil
	})
}
