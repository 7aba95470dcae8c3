package docker_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/manifold-paas/manifold/drivers"
	"github.com/manifold-paas/manifold/drivers/internal/engineproxy"
)

// syncBuffer is a bytes.Buffer safe for the driver's goroutines to log into.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestEngineRestartReconnectsRelistsAndRestartsDynos(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	proxy := engineproxy.New(t, e.raw.DaemonHost())
	var daemonLog syncBuffer
	opts := e.options()
	opts.Host = proxy.Host
	// Only the event stream and the relist after a reconnect can notice anything.
	opts.RelistInterval = time.Hour
	opts.Logger = slog.New(slog.NewTextHandler(&daemonLog, nil))
	d := e.driver(opts)
	app := randomName("cut")
	spec := workerSpec(app, "sleep 600")
	spec.SlugPath = slug(t, map[string]string{"Procfile": "worker: sleep 600\n"})
	started, err := d.Start(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	waitDyno(t, d, app, "worker.1", isUp)

	// The engine "restarts": connections break, new ones fail for a while, and the
	// dyno dies meanwhile, so no event about it can reach the driver.
	proxy.SetDown(true)
	proxy.Cut()
	if err := e.raw.ContainerKill(ctx, started.ID, "SIGKILL"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the container to exit", func() bool {
		info, err := e.raw.ContainerInspect(ctx, started.ID)
		return err == nil && !info.State.Running
	})
	waitFor(t, "the driver to notice the broken stream", func() bool {
		return strings.Contains(daemonLog.String(), "engine event stream broken; reconnecting")
	})
	proxy.SetDown(false)
	again := waitDyno(t, d, app, "worker.1", func(dy drivers.Dyno) bool { return dy.Restarts == 1 && isUp(dy) })
	if again.ID != started.ID {
		t.Errorf("restarted as %s, want the same container", again.ID)
	}

	// The reconnected event stream delivers the next death.
	if err := e.raw.ContainerKill(ctx, started.ID, "SIGKILL"); err != nil {
		t.Fatal(err)
	}
	waitDyno(t, d, app, "worker.1", func(dy drivers.Dyno) bool { return dy.Restarts == 2 && isUp(dy) })
	stopAll(t, d)
}
