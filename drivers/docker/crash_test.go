package docker_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/manifold-paas/manifold/drivers"
	"github.com/manifold-paas/manifold/logs"
)

func workerSpec(app, command string) drivers.DynoSpec {
	return drivers.DynoSpec{
		App: app, Env: "staging", Type: "worker", Index: 1, Release: 2,
		SlugKey: "k", Command: command, StopTimeout: time.Second,
	}
}

func TestCrashedDynoRestartsInTheSameContainer(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	opts := e.options()
	var mu sync.Mutex
	var cooloffs []int
	opts.Cooloff = func(n int) time.Duration {
		mu.Lock()
		defer mu.Unlock()
		cooloffs = append(cooloffs, n)
		return 100 * time.Millisecond
	}
	d := e.driver(opts)
	app := randomName("crash")
	spec := workerSpec(app, `echo "boom from $DYNO"; exit 3`)
	spec.SlugPath = slug(t, map[string]string{"Procfile": "worker: exit 3\n"})
	started, err := d.Start(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	dy := waitDyno(t, d, app, "worker.1", func(dy drivers.Dyno) bool { return dy.Restarts >= 2 })
	if dy.ID != started.ID {
		t.Errorf("restarted in container %s, want the same %s", dy.ID, started.ID)
	}
	mu.Lock()
	if len(cooloffs) < 2 || cooloffs[0] != 1 || cooloffs[1] != 2 {
		t.Errorf("cool-off asked for crashes %v, want 1, 2, …", cooloffs)
	}
	mu.Unlock()
	waitFor(t, "crash lines", func() bool {
		return e.logs.count("worker.1", logs.SourceHeroku, "Process exited with status 3") >= 2 &&
			e.logs.count("worker.1", logs.SourceHeroku, "State changed from up to crashed") >= 2 &&
			e.logs.count("worker.1", logs.SourceHeroku, "State changed from crashed to starting") >= 1 &&
			e.logs.count("worker.1", logs.SourceApp, "boom from worker.1") >= 2
	})
	stopAll(t, d)
}

func TestWebDynoThatNeverBindsIsR10(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	opts := e.options()
	opts.BootTimeout = time.Second
	d := e.driver(opts)
	app := randomName("r10")
	spec := webSpec(app, 1, webSlug(t))
	spec.Command = "sleep 600"
	if _, err := d.Start(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	crashed := nextEvent(t, d, "a crash", func(ev drivers.Event) bool { return ev.To == drivers.StateCrashed })
	if crashed.Code != "R10" || crashed.From != drivers.StateStarting {
		t.Errorf("crash event %+v, want R10 from starting", crashed)
	}
	waitFor(t, "R10 lines and a restart", func() bool {
		return e.logs.count("web.1", logs.SourceHeroku, "Error R10 (Boot timeout) -> Web process failed to bind to $PORT within 1 seconds of launch") >= 1 &&
			e.logs.count("web.1", logs.SourceHeroku, "Stopping process with SIGKILL") >= 1 &&
			e.logs.count("web.1", logs.SourceHeroku, "Process exited with status 137") >= 1 &&
			e.logs.count("web.1", logs.SourceHeroku, "State changed from crashed to starting") >= 1
	})
	stopAll(t, d)
}

func TestOutOfMemoryIsR15(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	d := e.driver(e.options())
	app := randomName("oom")
	spec := workerSpec(app, "head -c 64m /dev/zero | tail")
	spec.SlugPath = slug(t, map[string]string{"Procfile": "worker: x\n"})
	spec.MemoryBytes = 8 << 20
	if _, err := d.Start(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	crashed := nextEvent(t, d, "a crash", func(ev drivers.Event) bool { return ev.To == drivers.StateCrashed })
	if crashed.Code != "R15" || crashed.Dyno.Reason != "Error R15 (Memory quota vastly exceeded)" {
		t.Errorf("crash event %+v, want R15", crashed)
	}
	waitFor(t, "R15 line", func() bool {
		return e.logs.count("worker.1", logs.SourceHeroku, "Error R15 (Memory quota vastly exceeded)") >= 1
	})
	stopAll(t, d)
}

func TestContainerRemovedFromOutsideIsReplaced(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	d := e.driver(e.options())
	app := randomName("rm")
	ctx := context.Background()
	first, err := d.Start(ctx, webSpec(app, 1, webSlug(t)))
	if err != nil {
		t.Fatal(err)
	}
	waitDyno(t, d, app, "web.1", isUp)
	if err := e.raw.ContainerRemove(ctx, first.ID, container.RemoveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	replaced := waitDyno(t, d, app, "web.1", func(dy drivers.Dyno) bool { return dy.ID != first.ID && isUp(dy) })
	if got := httpGet(t, "http://"+replaced.Addr+"/"); got != "hello from a slug\n" {
		t.Errorf("replacement answers %q", got)
	}
	if e.logs.count("web.1", logs.SourceHeroku, "was removed outside manifold; starting a replacement") != 1 {
		t.Errorf("replacement not logged:\n%s", e.logs.dump())
	}
	if n := len(e.containers()); n != 1 {
		t.Errorf("%d containers, want the replacement only", n)
	}
	// The reconciler may still hold the old id.
	if err := d.Stop(ctx, first.ID); err != nil {
		t.Fatalf("Stop with the replaced container's id: %v", err)
	}
	if n := len(e.containers()); n != 0 {
		t.Errorf("%d containers left after Stop", n)
	}
}

func TestContainerStoppedFromOutsideIsRestarted(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	d := e.driver(e.options())
	app := randomName("ext")
	ctx := context.Background()
	first, err := d.Start(ctx, webSpec(app, 1, webSlug(t)))
	if err != nil {
		t.Fatal(err)
	}
	waitDyno(t, d, app, "web.1", isUp)
	grace := 1
	if err := e.raw.ContainerStop(ctx, first.ID, container.StopOptions{Timeout: &grace}); err != nil {
		t.Fatal(err)
	}
	again := waitDyno(t, d, app, "web.1", func(dy drivers.Dyno) bool { return dy.Restarts == 1 && isUp(dy) })
	if again.ID != first.ID {
		t.Errorf("restarted as %s, want the same container %s", again.ID, first.ID)
	}
	httpGet(t, "http://"+again.Addr+"/")
	stopAll(t, d)
}

// With a health check, a web dyno is up only once the path answers 2xx.
func TestHealthCheck(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, path string
		wantUp     bool
	}{
		{"answers 200", "/index.html", true},
		{"answers 404", "/missing", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			opts := e.options()
			opts.BootTimeout = 2 * time.Second
			d := e.driver(opts)
			spec := webSpec(randomName("hc"), 1, webSlug(t))
			spec.HealthCheck = tc.path
			started, err := d.Start(context.Background(), spec)
			if err != nil {
				t.Fatal(err)
			}
			first := nextEvent(t, d, "the first change from starting", func(ev drivers.Event) bool {
				return ev.Dyno.ID == started.ID && ev.From == drivers.StateStarting
			})
			if gotUp := first.To == drivers.StateUp; gotUp != tc.wantUp {
				t.Errorf("first change from starting: %+v, want up %v", first, tc.wantUp)
			}
			if !tc.wantUp && first.Code != "R10" {
				t.Errorf("crash code %q, want R10", first.Code)
			}
			stopAll(t, d)
		})
	}
}
