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
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"

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

// BenchmarkDynoStartToUp measures dyno create + slug copy + start until the port
// answers, over benchDynos dynos, beside `docker run -d` of the same image and command
// and beside the engine API without a slug and with the slug in a read-only volume.
// p50-ms and p99-ms are the figures to read; ns/op is the time of all benchDynos.
func BenchmarkDynoStartToUp(b *testing.B) {
	needEngine(b)
	small := map[string]string{"public/index.html": "hello\n"}
	big := map[string]string{"public/index.html": "hello\n", "vendor/blob": randomText(20 << 20)}
	b.Run("manifold", func(b *testing.B) { benchManifold(b, small, benchDynos) })
	b.Run("docker-run-cli", func(b *testing.B) { benchDockerRun(b) })
	b.Run("api-no-slug", func(b *testing.B) { benchAPI(b, nil, benchDynos) })
	b.Run("api-volume", func(b *testing.B) { benchAPI(b, small, benchDynos) })
	b.Run("manifold-20MB-slug", func(b *testing.B) { benchManifold(b, big, 10) })
	b.Run("api-volume-20MB-slug", func(b *testing.B) { benchAPI(b, big, 10) })
}

func randomText(n int) string {
	raw := make([]byte, n/2)
	_, _ = rand.Read(raw)
	return fmt.Sprintf("%x", raw)
}

// report records the percentiles of the samples.
func report(b *testing.B, samples []time.Duration) {
	sort.Slice(samples, func(i, j int) bool { return samples[i] < samples[j] })
	at := func(p float64) float64 {
		i := int(p * float64(len(samples)-1))
		return float64(samples[i].Microseconds()) / 1000
	}
	b.ReportMetric(at(0.50), "p50-ms")
	b.ReportMetric(at(0.99), "p99-ms")
}

func benchManifold(b *testing.B, files map[string]string, dynos int) {
	b.ReportAllocs()
	e := newEnv(b)
	opts := e.options()
	d := e.driver(opts)
	slugPath := slug(b, files)
	ctx := context.Background()
	var samples []time.Duration
	for n := 0; n < b.N; n++ {
		app := randomName("bench")
		for i := 1; i <= dynos; i++ {
			spec := webSpec(app, i, slugPath)
			spec.Command = benchWebCommand
			began := time.Now()
			dy, err := d.Start(ctx, spec)
			if err != nil {
				b.Fatal(err)
			}
			for ev := range d.Events() {
				if ev.Dyno.ID == dy.ID && ev.To == drivers.StateUp {
					break
				}
				if ev.Dyno.ID == dy.ID && ev.To == drivers.StateCrashed {
					b.Fatalf("dyno crashed: %+v", ev)
				}
			}
			samples = append(samples, time.Since(began))
		}
		b.StopTimer()
		list, err := d.List(ctx)
		if err != nil {
			b.Fatal(err)
		}
		parallel(len(list), func(i int) {
			if err := d.Stop(ctx, list[i].ID); err != nil {
				b.Error(err)
			}
		})
		b.StartTimer()
	}
	report(b, samples)
}

// waitPort polls addr until it accepts a connection.
func waitPort(b *testing.B, addr string) {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	b.Fatalf("%s never answered", addr)
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

func benchDockerRun(b *testing.B) {
	e := newEnv(b)
	if _, err := exec.LookPath("docker"); err != nil {
		b.Fatal("the docker CLI is needed for the docker run peer: ", err)
	}
	netName := benchNetwork(b, e)
	var samples []time.Duration
	for n := 0; n < b.N; n++ {
		var ids []string
		for i := 0; i < benchDynos; i++ {
			began := time.Now()
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
			samples = append(samples, time.Since(began))
		}
		b.StopTimer()
		removeAll(e, ids)
		b.StartTimer()
	}
	report(b, samples)
}

// benchAPI starts containers through the engine API: without a slug when files is nil,
// else with the slug unpacked once into a volume mounted read-only at /app.
func benchAPI(b *testing.B, files map[string]string, dynos int) {
	e := newEnv(b)
	ctx := context.Background()
	netName := benchNetwork(b, e)
	command := benchPeerCommand
	var mounts []mount.Mount
	if files != nil {
		command = "exec busybox httpd -f -p 5000 -h /app/public"
		vol, err := e.raw.VolumeCreate(ctx, volume.CreateOptions{Name: randomName("manifold-slug-"), Labels: map[string]string{docker.LabelInstance: e.instance}})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = e.raw.VolumeRemove(context.Background(), vol.Name, true) })
		mounts = []mount.Mount{{Type: mount.TypeVolume, Source: vol.Name, Target: "/app"}}
		// Fill the volume once per slug, as a volume-based driver would per release.
		filler, err := e.raw.ContainerCreate(ctx, &container.Config{Image: docker.DefaultStack, Cmd: []string{"true"},
			Labels: map[string]string{docker.LabelInstance: e.instance}}, &container.HostConfig{Mounts: mounts}, nil, nil, "")
		if err != nil {
			b.Fatal(err)
		}
		f, err := os.Open(slug(b, files))
		if err != nil {
			b.Fatal(err)
		}
		err = e.raw.CopyToContainer(ctx, filler.ID, "/app", f, container.CopyToContainerOptions{})
		f.Close()
		removeAll(e, []string{filler.ID})
		if err != nil {
			b.Fatal(err)
		}
		mounts[0].ReadOnly = true
	}
	init := true
	var samples []time.Duration
	for n := 0; n < b.N; n++ {
		var ids []string
		for i := 0; i < dynos; i++ {
			began := time.Now()
			created, err := e.raw.ContainerCreate(ctx,
				&container.Config{Image: docker.DefaultStack, Cmd: []string{"/bin/sh", "-c", command}, Env: []string{"PORT=5000"},
					Labels: map[string]string{docker.LabelInstance: e.instance}},
				&container.HostConfig{NetworkMode: container.NetworkMode(netName), Init: &init, Mounts: mounts},
				&network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{netName: {}}}, nil, "")
			if err != nil {
				b.Fatal(err)
			}
			ids = append(ids, created.ID)
			if err := e.raw.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
				b.Fatal(err)
			}
			waitPort(b, containerAddr(b, e, created.ID, netName))
			samples = append(samples, time.Since(began))
		}
		b.StopTimer()
		removeAll(e, ids)
		b.StartTimer()
	}
	report(b, samples)
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
