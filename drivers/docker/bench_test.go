package docker_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"

	"github.com/manifold-paas/manifold/drivers"
	"github.com/manifold-paas/manifold/drivers/docker"
)

// benchDynos is how many dynos each variant starts per iteration.
const benchDynos = 50

// benchWebCommand serves /app/public; the docker-run peer makes its page first since it
// has no slug.
const (
	benchWebCommand  = "exec busybox httpd -f -p $PORT -h /app/public"
	benchPeerCommand = "mkdir -p /tmp/www && echo hello > /tmp/www/index.html && exec busybox httpd -f -p 5000 -h /tmp/www"
)

// BenchmarkDynoStartToUp measures dyno create + slug + start until the port answers,
// over benchDynos dynos per variant, the variants interleaved (one dyno of each in
// turn) so that the machine's load falls on all alike: manifold (slug volume, the
// default), manifold-copy (Options.CopySlug) and the peer, `docker run -d --init` of
// the same image and command through the docker CLI. Read the <variant>-p50-ms and
// -p99-ms metrics; ns/op is the time of one whole round of all variants.
func BenchmarkDynoStartToUp(b *testing.B) {
	needEngine(b)
	small := map[string]string{"public/index.html": "hello\n"}
	b.Run("small-slug", func(b *testing.B) {
		benchInterleaved(b, benchDynos, []variant{manifoldVariant(b, "manifold", false, small), manifoldVariant(b, "manifold-copy", true, small), dockerRunVariant(b)})
	})
	big := map[string]string{"public/index.html": "hello\n", "vendor/blob": randomText(20 << 20)}
	b.Run("20MB-slug", func(b *testing.B) {
		benchInterleaved(b, 10, []variant{manifoldVariant(b, "manifold", false, big), manifoldVariant(b, "manifold-copy", true, big)})
	})
}

// variant starts one dyno and returns when it answers; clear removes what it started.
type variant struct {
	name  string
	start func(i int)
	clear func()
}

func benchInterleaved(b *testing.B, dynos int, variants []variant) {
	b.ReportAllocs()
	samples := make([][]time.Duration, len(variants))
	for n := 0; n < b.N; n++ {
		for i := 1; i <= dynos; i++ {
			for v, vt := range variants {
				began := time.Now()
				vt.start(i)
				samples[v] = append(samples[v], time.Since(began))
			}
		}
		b.StopTimer()
		for _, vt := range variants {
			vt.clear()
		}
		b.StartTimer()
	}
	for v, vt := range variants {
		report(b, vt.name, samples[v])
	}
}

func randomText(n int) string {
	raw := make([]byte, n/2)
	_, _ = rand.Read(raw)
	return fmt.Sprintf("%x", raw)
}

// report records the percentiles of the samples.
func report(b *testing.B, name string, samples []time.Duration) {
	sort.Slice(samples, func(i, j int) bool { return samples[i] < samples[j] })
	at := func(p float64) float64 {
		i := int(p * float64(len(samples)-1))
		return float64(samples[i].Microseconds()) / 1000
	}
	b.ReportMetric(at(0.50), name+"-p50-ms")
	b.ReportMetric(at(0.99), name+"-p99-ms")
}

func manifoldVariant(b *testing.B, name string, copySlug bool, files map[string]string) variant {
	e := newEnv(b)
	opts := e.options()
	opts.RelistInterval = docker.DefaultRelistInterval
	opts.CopySlug = copySlug
	d := e.driver(opts)
	slugPath := slug(b, files)
	ctx := context.Background()
	app := randomName("bench")
	return variant{
		name: name,
		start: func(i int) {
			spec := webSpec(app, i, slugPath)
			spec.Command = benchWebCommand
			dy, err := d.Start(ctx, spec)
			if err != nil {
				b.Fatal(err)
			}
			for ev := range d.Events() {
				if ev.Dyno.ID == dy.ID && ev.To == drivers.StateUp {
					return
				}
				if ev.Dyno.ID == dy.ID && ev.To == drivers.StateCrashed {
					b.Fatalf("dyno crashed: %+v", ev)
				}
			}
		},
		clear: func() {
			list, err := d.List(ctx)
			if err != nil {
				b.Fatal(err)
			}
			parallel(len(list), func(i int) {
				if err := d.Stop(ctx, list[i].ID); err != nil {
					b.Error(err)
				}
			})
		},
	}
}

func dockerRunVariant(b *testing.B) variant {
	e := newEnv(b)
	if _, err := exec.LookPath("docker"); err != nil {
		b.Fatal("the docker CLI is needed for the docker run peer: ", err)
	}
	netName := benchNetwork(b, e)
	var ids []string
	return variant{
		name: "docker-run",
		start: func(int) {
			cmd := exec.Command("docker", "run", "-d", "--rm", "--init", "--network", netName,
				"--label", docker.LabelInstance+"="+e.instance, docker.DefaultStack, "/bin/sh", "-c", benchPeerCommand)
			cmd.Env = append(os.Environ(), "DOCKER_HOST="+e.raw.DaemonHost())
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				b.Fatalf("docker run: %v: %s", err, stderr.String())
			}
			id := strings.TrimSpace(string(out))
			ids = append(ids, id)
			waitPort(b, containerAddr(b, e, id, netName))
		},
		clear: func() { removeAll(e, ids); ids = nil },
	}
}

// waitPort polls addr until it accepts a connection.
func waitPort(b *testing.B, addr string) {
	b.Helper()
	eventually(b, 30*time.Second, addr+" accepting connections", func() error {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			return err
		}
		return c.Close()
	})
}

// benchNetwork makes a labelled bridge network for the peers.
func benchNetwork(b *testing.B, e *env) string {
	name := randomName("manifold.bench.")
	_, err := e.raw.NetworkCreate(context.Background(), name, network.CreateOptions{
		Driver: "bridge", Labels: map[string]string{docker.LabelInstance: e.instance}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = e.raw.NetworkRemove(context.Background(), name) })
	return name
}

func containerAddr(b *testing.B, e *env, id, netName string) string {
	info, err := e.raw.ContainerInspect(context.Background(), id)
	if err != nil {
		b.Fatal(err)
	}
	return info.NetworkSettings.Networks[netName].IPAddress + ":5000"
}

func removeAll(e *env, ids []string) {
	parallel(len(ids), func(i int) {
		_ = e.raw.ContainerRemove(context.Background(), ids[i], container.RemoveOptions{Force: true})
	})
}

// parallel runs f(0..n-1) eight at a time.
func parallel(n int, f func(i int)) {
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			f(i)
		}()
	}
	wg.Wait()
}
