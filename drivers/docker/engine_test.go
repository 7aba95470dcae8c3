package docker_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/manifold-paas/manifold/drivers"
)

// engineProxy stands between the driver and the engine on a unix socket the test owns:
// cutting it breaks every connection (the event stream included) as an engine restart
// does, without restarting the real engine.
type engineProxy struct {
	ln            net.Listener
	network, addr string
	mu            sync.Mutex
	conns         map[net.Conn]bool
	down          bool
	wg            sync.WaitGroup
}

func newEngineProxy(t *testing.T, engineHost string) *engineProxy {
	t.Helper()
	u, err := url.Parse(engineHost)
	if err != nil {
		t.Fatal(err)
	}
	p := &engineProxy{network: u.Scheme, addr: u.Host, conns: map[net.Conn]bool{}}
	if u.Scheme == "unix" {
		p.addr = u.Path
	}
	p.ln, err = net.Listen("unix", filepath.Join(t.TempDir(), "engine.sock"))
	if err != nil {
		t.Fatal(err)
	}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() {
		p.ln.Close()
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *engineProxy) host() string { return "unix://" + p.ln.Addr().String() }

func (p *engineProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down := p.down
		p.mu.Unlock()
		if down {
			c.Close()
			continue
		}
		upstream, err := net.Dial(p.network, p.addr)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[upstream] = true, true
		p.mu.Unlock()
		p.wg.Add(2)
		pipe := func(dst, src net.Conn) {
			defer p.wg.Done()
			_, _ = io.Copy(dst, src)
			dst.Close()
			src.Close()
			p.mu.Lock()
			delete(p.conns, dst)
			delete(p.conns, src)
			p.mu.Unlock()
		}
		go pipe(c, upstream)
		go pipe(upstream, c)
	}
}

// cut closes every connection through the proxy.
func (p *engineProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
}

// setDown makes the proxy refuse (accept and close) new connections, as an engine
// that is restarting does.
func (p *engineProxy) setDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
}

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
	proxy := newEngineProxy(t, e.raw.DaemonHost())
	var daemonLog syncBuffer
	opts := e.options()
	opts.Host = proxy.host()
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
	proxy.setDown(true)
	proxy.cut()
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
	proxy.setDown(false)
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
