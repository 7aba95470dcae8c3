package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// BenchmarkRefToReviewAppGoBuild measures, over 5 pull requests, the time from `git
// update-ref refs/pull/N/head` (and the webhook) to hello.pr-N.localhost answering,
// for the example Go app (Go buildpack) whose pull request changes its source, so
// each review environment builds its slug from source (the build cache warm from
// main's build, as on a daemon that has built the app before). It reports p50 and
// p99 in ms.
func BenchmarkRefToReviewAppGoBuild(b *testing.B) {
	repo := b.TempDir()
	if err := os.CopyFS(filepath.Join(repo, "src", "hello"), os.DirFS("../../examples/src/hello")); err != nil {
		b.Fatal(err)
	}
	for name, content := range map[string]string{
		"apps/hello.hcl": "app \"hello\" {\n  source { path = \"../src/hello\" }\n  buildpacks = [\"go\"]\n" +
			"  process \"web\" { health_check = \"/healthz\" }\n  process \"worker\" { count = 0 }\n}\n",
		"manifold.hcl": "review {\n  refs = [\"refs/pull/*/head\"]\n  max  = 100\n}\n",
	} {
		path := filepath.Join(repo, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	git(b, repo, "init", "-q", "-b", "main")
	git(b, repo, "add", "-A")
	git(b, repo, "commit", "-q", "-m", "main")
	mainGo := filepath.Join(repo, "src", "hello", "main.go")
	source, err := os.ReadFile(mainGo)
	if err != nil || !strings.Contains(string(source), `greeting = "hello"`) {
		b.Fatalf("examples/src/hello/main.go no longer defaults to greeting \"hello\": %v", err)
	}

	state := b.TempDir()
	b.Cleanup(func() { killDynos(filepath.Join(state, "dynos")) })
	routerAddr := freeAddr(b)
	d := startDaemon(b, state, "file://"+repo, routerAddr, "1h")
	eventually(b, 5*time.Minute, "main's build answers", func() error { return wantBody(d, "hello.default.localhost", "hello from web.1\n") })

	const pulls = 5
	var took []time.Duration
	n := 0
	b.ResetTimer()
	for range b.N * pulls {
		n++
		// The pull request's commit, made before the clock starts: the figure is
		// from the ref's update on.
		b.StopTimer()
		branch := fmt.Sprintf("pr-%d", n)
		git(b, repo, "checkout", "-q", "-B", branch, "main")
		greeting := fmt.Sprintf("pull request %d", n)
		if err := os.WriteFile(mainGo, []byte(strings.Replace(string(source), `greeting = "hello"`, `greeting = "`+greeting+`"`, 1)), 0o644); err != nil {
			b.Fatal(err)
		}
		git(b, repo, "commit", "-q", "-am", greeting)
		git(b, repo, "checkout", "-q", "main")
		b.StartTimer()
		start := time.Now()
		git(b, repo, "update-ref", fmt.Sprintf("refs/pull/%d/head", n), branch)
		d.hook(b)
		host := fmt.Sprintf("hello.pr-%d.localhost", n)
		eventually(b, 5*time.Minute, host+" built and answering", func() error { return wantBody(d, host, greeting+" from web.1\n") })
		took = append(took, time.Since(start))
	}
	b.StopTimer()
	reportMillis(b, "", took)
}

// reportMillis reports the median and the 99th percentile of samples in ms, as the
// metrics prefix+"p50-ms" and prefix+"p99-ms".
func reportMillis(b *testing.B, prefix string, samples []time.Duration) {
	b.Helper()
	slices.Sort(samples)
	b.ReportMetric(float64(samples[len(samples)/2].Milliseconds()), prefix+"p50-ms")
	b.ReportMetric(float64(samples[(len(samples)*99)/100].Milliseconds()), prefix+"p99-ms")
}

// waitTornDown waits until host no longer answers once its ref was removed, and
// says how long that took. Two listings must lack the ref: a webhook every 250 ms
// stands for the next event or poll (the webhook limits bursts).
func (d *daemon) waitTornDown(b *testing.B, host string, start time.Time) time.Duration {
	b.Helper()
	lastHook := time.Time{}
	eventually(b, time.Minute, host+" gone after its ref went", func() error {
		if _, err := d.get(host); err != nil {
			return nil
		}
		if time.Since(lastHook) > 250*time.Millisecond {
			d.hook(b)
			lastHook = time.Now()
		}
		return fmt.Errorf("%s still answers", host)
	})
	return time.Since(start)
}
