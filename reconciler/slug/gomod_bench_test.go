package slug_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/manifold-paas/manifold/drivers/docker"
	"github.com/manifold-paas/manifold/logs"
	"github.com/manifold-paas/manifold/reconciler/slug"
)

// BenchmarkGoModulesBuild times builds of the example app with third-party modules
// (examples/src/quotes) through a local module proxy, with the steps on the host
// (the process driver's builds) and in build containers (the Docker driver's):
//   - cold: a new app with an empty module cache (every module is downloaded) and a
//     new build cache; the Go build cache is the machine's, as `manifold up` shares it;
//   - warm: a rebuild of the same app after a source change (nothing is downloaded).
//
// Run: go test -run '^$' -bench BenchmarkGoModulesBuild -benchtime 5x ./reconciler/slug/
func BenchmarkGoModulesBuild(b *testing.B) {
	proxy := newCountingProxy(b, moduleProxyDir(b))
	for _, runner := range []string{"host", "docker"} {
		b.Run(runner, func(b *testing.B) {
			var run slug.Runner
			if runner == "docker" {
				run = dockerRunner(b)
			}
			newBuilder := func() *slug.Builder {
				bl := goModBuilder(b)
				bl.Runner = run
				return bl
			}
			b.Run("cold", func(b *testing.B) {
				b.ReportAllocs()
				for i := range b.N {
					b.StopTimer()
					bl := newBuilder()
					src := copyQuotes(b, map[string]string{"cmd/quotes-web/n.go": fmt.Sprintf("package main\n\nconst n = %d\n", i)})
					b.StartTimer()
					if _, err := bl.Build(context.Background(), slug.Request{App: "quotes", SourceDir: src, NetEnv: map[string]string{"GOPROXY": proxy.URL}}); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("warm", func(b *testing.B) {
				b.ReportAllocs()
				bl := newBuilder()
				src := copyQuotes(b, nil)
				req := slug.Request{App: "quotes", SourceDir: src, NetEnv: map[string]string{"GOPROXY": proxy.URL}}
				if _, err := bl.Build(context.Background(), req); err != nil {
					b.Fatal(err)
				}
				b.ResetTimer()
				for i := range b.N {
					writeTree(b, src, map[string]string{"cmd/quotes-web/n.go": fmt.Sprintf("package main\n\nconst n = %d\n", i)})
					if _, err := bl.Build(context.Background(), req); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// dockerRunner is the Docker driver's build runner over the local stack image.
func dockerRunner(b *testing.B) slug.Runner {
	b.Helper()
	if err := exec.Command("docker", "info").Run(); err != nil {
		b.Skipf("skipping: no Docker Engine: %v", err)
	}
	if out, err := exec.Command("../../drivers/docker/stack/build.sh").CombinedOutput(); err != nil {
		b.Fatalf("stack image: %v\n%s", err, out)
	}
	plex := logs.New(logs.Options{})
	b.Cleanup(plex.Close)
	d, err := docker.New(context.Background(), docker.Options{
		Logs: plex, Instance: fmt.Sprintf("bench%d", os.Getpid()), StateDir: filepath.Join(b.TempDir(), "docker"),
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { d.Close() })
	return d.BuildRunner()
}
