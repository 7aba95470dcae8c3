package reconciler_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/manifold-paas/manifold/drivers"
	"github.com/manifold-paas/manifold/drivers/docker"
	"github.com/manifold-paas/manifold/reconciler"
	"github.com/manifold-paas/manifold/spec"
)

// scaleTo is the web count of BenchmarkDockerScaleUp: from 1, so 20 new dynos.
const scaleTo = 21

// BenchmarkDockerScaleUp measures one commit that scales a web process on the Docker
// driver from 1 to 21 dynos, until the pass returns (all 21 up: running and answering
// on $PORT), with the starts concurrent (the default, 8 at once) and one at a time (as
// before), beside its peer: 20 sequential `docker run -d` of the same image with a
// command that binds a port, until the last one runs. Run it with -benchtime=3x.
func BenchmarkDockerScaleUp(b *testing.B) {
	if err := exec.Command("docker", "image", "inspect", docker.DefaultStack).Run(); err != nil {
		b.Fatalf("needs the Docker Engine and the stack image (make stack-image): %v", err)
	}
	for _, variant := range []struct {
		name       string
		concurrent int
	}{{"manifold-concurrent-8", 8}, {"manifold-sequential", 1}} {
		b.Run(variant.name, func(b *testing.B) {
			instance := benchInstance(b)
			env := newDriverEnv(b, reconciler.Options{MaxConcurrentStarts: variant.concurrent},
				func(ctx context.Context, state string, sink drivers.LogSink) (drivers.Driver, error) {
					return docker.New(ctx, docker.Options{Logs: sink, Instance: instance, BootTimeout: 60 * time.Second, StateDir: state})
				})
			base := env.load()
			env.reconcile()
			for b.Loop() {
				b.StopTimer()
				scaled := base
				scaled.Processes = []spec.Process{base.Processes[0]}
				scaled.Processes[0].Count = scaleTo
				env.writeApp(scaled)
				b.StartTimer()
				env.reconcile()
				b.StopTimer()
				if got := len(env.observe().dynos["web"]); got != scaleTo {
					b.Fatalf("%d web dynos, want %d", got, scaleTo)
				}
				env.writeApp(base)
				env.reconcile()
				b.StartTimer()
			}
		})
	}
	b.Run("docker-run-sequential", func(b *testing.B) {
		instance := benchInstance(b)
		for b.Loop() {
			for range scaleTo - 1 {
				out, err := exec.Command("docker", "run", "-d", "--init", "--label", docker.LabelInstance+"="+instance,
					docker.DefaultStack, "/bin/sh", "-c", "mkdir -p /tmp/www && exec busybox httpd -f -p 5000 -h /tmp/www").CombinedOutput()
				if err != nil {
					b.Fatalf("docker run: %v: %s", err, out)
				}
			}
			b.StopTimer()
			removeInstance(b, instance)
			b.StartTimer()
		}
	})
}

// benchInstance is a fresh manifold.instance label whose containers, networks and
// volumes are removed when the benchmark ends.
func benchInstance(b *testing.B) string {
	b.Helper()
	var random [4]byte
	_, _ = rand.Read(random[:])
	instance := "bench-" + hex.EncodeToString(random[:])
	b.Cleanup(func() { removeInstance(b, instance) })
	return instance
}

// removeInstance force-removes everything labelled with the instance. A network's
// endpoints can linger a moment after its containers are gone, so removal is retried
// until nothing is left or 60 s have passed (a loaded engine is slow to remove).
func removeInstance(b *testing.B, instance string) {
	b.Helper()
	filter := "label=" + docker.LabelInstance + "=" + instance
	list := func(kind string) []string {
		args := []string{kind, "ls", "-q", "--filter", filter}
		if kind == "container" {
			args = append(args, "-a")
		}
		out, err := exec.Command("docker", args...).Output()
		if err != nil {
			b.Errorf("docker %s ls: %v", kind, err)
			return nil
		}
		return strings.Fields(string(out))
	}
	var last string
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		left := 0
		for _, kind := range []string{"container", "network", "volume"} {
			ids := list(kind)
			left += len(ids)
			if len(ids) == 0 {
				continue
			}
			args := append([]string{kind, "rm"}, ids...)
			if kind != "network" {
				args = append([]string{kind, "rm", "-f"}, ids...)
			}
			if out, err := exec.Command("docker", args...).CombinedOutput(); err != nil {
				last = string(out)
			}
		}
		if left == 0 {
			return
		}
	}
	b.Errorf("could not remove everything of instance %s: %s", instance, last)
}
