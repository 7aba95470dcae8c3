package swarm_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/manifold-paas/manifold/drivers"
	"github.com/manifold-paas/manifold/drivers/swarm"
)

// TestNodeDaemonKilled kills the daemon of one node by pid: within 20 s its dyno
// leaves the listing the router is built from, and Swarm runs the replicas on the
// other nodes, which the router answers from.
func TestNodeDaemonKilled(t *testing.T) {
	c := newCluster(t, 3)
	d := newDriver(t, c, randomName(), c.HostAddr+":0", &sink{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	slug := makeSlug(t)
	app := "killed"
	for i := 1; i <= 3; i++ {
		if _, err := d.Start(ctx, webSpec(app, i, 1, slug)); err != nil {
			t.Fatalf("start web.%d: %v", i, err)
		}
	}
	waitDynos(t, d, app, 2*time.Minute, func(dynos []drivers.Dyno) bool {
		hosts := map[string]bool{}
		for _, dy := range dynos {
			if dy.State == drivers.StateUp && dy.Addr != "" {
				hosts[hostOf(dy.Addr)] = true
			}
		}
		return len(hosts) == 3
	})
	victim := c.Nodes[2]
	if err := victim.Kill(); err != nil {
		t.Fatalf("kill %s: %v", victim.Name, err)
	}
	killed := time.Now()
	waitDynos(t, d, app, 20*time.Second, func(dynos []drivers.Dyno) bool {
		for _, dy := range dynos {
			if hostOf(dy.Addr) == victim.Addr {
				return false
			}
		}
		return true
	})
	t.Logf("dyno of the killed node left the listing after %s", time.Since(killed).Round(100*time.Millisecond))
	dynos := waitDynos(t, d, app, 90*time.Second, func(dynos []drivers.Dyno) bool {
		up := 0
		for _, dy := range dynos {
			if dy.State == drivers.StateUp && dy.Addr != "" && hostOf(dy.Addr) != victim.Addr {
				up++
			}
		}
		return up == 3 && len(dynos) == 3
	})
	t.Logf("3 dynos up on the other nodes after %s", time.Since(killed).Round(100*time.Millisecond))
	r, srv := newRouter(t)
	routeTo(r, app, dynos)
	for range 12 {
		if body := get(t, srv.URL, app+".test"); !strings.HasPrefix(body, "web.") {
			t.Fatalf("answer %q", body)
		}
	}
	// The node comes back (it rejoins the swarm from its data root): the driver
	// spreads the replicas over the three nodes again.
	if err := victim.Start(); err != nil {
		t.Fatalf("restart %s: %v", victim.Name, err)
	}
	if err := victim.WaitReady(ctx); err != nil {
		t.Fatalf("restart %s: %v", victim.Name, err)
	}
	waitDynos(t, d, app, 2*time.Minute, func(dynos []drivers.Dyno) bool {
		hosts := map[string]bool{}
		for _, dy := range dynos {
			if dy.State == drivers.StateUp && dy.Addr != "" {
				hosts[hostOf(dy.Addr)] = true
			}
		}
		return len(hosts) == 3 && len(dynos) == 3
	})
	t.Logf("spread over 3 nodes again %s after the kill", time.Since(killed).Round(100*time.Millisecond))
}

// TestMemoryHogIsR15 runs a worker that grows past its memory limit: the kernel
// kills it, and the dyno is reported crashed with R15.
func TestMemoryHogIsR15(t *testing.T) {
	c := newCluster(t, 1)
	out := &sink{}
	d := newDriver(t, c, randomName(), c.HostAddr+":0", out)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	spec := webSpec("hog", 1, 1, makeSlug(t))
	spec.Type = "worker"
	spec.MemoryBytes = 16 << 20
	spec.Command = `echo hogging; x=$(head -c 200000000 /dev/zero | tr '\0' a); echo survived; sleep 600`
	if _, err := d.Start(ctx, spec); err != nil {
		t.Fatalf("start: %v", err)
	}
	deadline := time.After(90 * time.Second)
	for {
		select {
		case ev := <-d.Events():
			if ev.Dyno.Spec.App == "hog" && ev.To == drivers.StateCrashed && ev.Code == "R15" {
				if ev.Dyno.Name != "worker.1" || !strings.HasPrefix(ev.Dyno.Reason, "Error R15") {
					t.Fatalf("R15 event of %s reason %q", ev.Dyno.Name, ev.Dyno.Reason)
				}
				return
			}
		case <-deadline:
			t.Fatalf("no R15 within 90 s; lines: %v", out.texts())
		}
	}
}

// TestSlugFetchFailureIsTheReason points the nodes at a slug URL where nothing
// listens: the dyno is crashed with a reason that says so, as `manifold ps` shows.
func TestSlugFetchFailureIsTheReason(t *testing.T) {
	c := newCluster(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	d, err := swarm.New(ctx, swarm.Options{
		Logs: &sink{}, Host: c.Manager().Host, Instance: randomName(), SlugListen: c.HostAddr + ":0",
		SlugURL: "http://" + c.HostAddr + ":1", RelistInterval: 300 * time.Millisecond,
	})
	if err != nil {
		t.Fatalf("swarm.New: %v", err)
	}
	t.Cleanup(func() { _ = d.Close() })
	spec := webSpec("nofetch", 1, 1, makeSlug(t))
	spec.Type = "worker"
	if _, err := d.Start(ctx, spec); err != nil {
		t.Fatalf("start: %v", err)
	}
	waitDynos(t, d, "nofetch", time.Minute, func(dynos []drivers.Dyno) bool {
		return len(dynos) == 1 && dynos[0].State == drivers.StateCrashed && strings.HasPrefix(dynos[0].Reason, "Slug fetch failed")
	})
}
