// Package engineproxy stands, in tests, between a Docker client and an engine's
// socket: Cut breaks every connection through it (an event stream included) and
// SetDown refuses new ones, as an engine restart or a network blip does, without
// touching the engine.
package engineproxy

import (
	"io"
	"net"
	"net/url"
	"path/filepath"
	"sync"
	"testing"
)

// Proxy proxies a unix socket the test owns to an engine until the test ends.
type Proxy struct {
	// Host is the proxy's socket, for a client's Host.
	Host string

	ln            net.Listener
	network, addr string
	mu            sync.Mutex
	conns         map[net.Conn]bool
	down          bool
	wg            sync.WaitGroup
}

// New proxies to engineHost (unix:///… or tcp://host:port) until the test ends.
func New(t testing.TB, engineHost string) *Proxy {
	t.Helper()
	u, err := url.Parse(engineHost)
	if err != nil {
		t.Fatalf("engineproxy: %v", err)
	}
	p := &Proxy{network: u.Scheme, addr: u.Host, conns: map[net.Conn]bool{}}
	if u.Scheme == "unix" {
		p.addr = u.Path
	}
	p.ln, err = net.Listen("unix", filepath.Join(t.TempDir(), "engine.sock"))
	if err != nil {
		t.Fatalf("engineproxy: %v", err)
	}
	p.Host = "unix://" + p.ln.Addr().String()
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() {
		p.ln.Close()
		p.Cut()
		p.wg.Wait()
	})
	return p
}

func (p *Proxy) serve() {
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

// Cut closes every connection through the proxy; new ones are proxied again
// (unless SetDown).
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
}

// SetDown makes the proxy refuse (accept and close) new connections, as an engine
// that is restarting does.
func (p *Proxy) SetDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
}
