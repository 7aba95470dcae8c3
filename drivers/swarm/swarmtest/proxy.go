package swarmtest

import (
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Proxy stands between a client and a node's daemon on a unix socket the test owns:
// Cut breaks every connection through it (an event stream included), as a manager
// restart or a network blip does, without touching the daemon.
type Proxy struct {
	// Host is the proxy's socket, for a client's Host.
	Host string

	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  map[net.Conn]bool
	wg     sync.WaitGroup
}

// NewProxy proxies to node's daemon until the test ends.
func NewProxy(t testing.TB, node *Node) *Proxy {
	t.Helper()
	ln, err := net.Listen("unix", filepath.Join(t.TempDir(), "proxy.sock"))
	if err != nil {
		t.Fatalf("swarmtest: proxy: %v", err)
	}
	p := &Proxy{Host: "unix://" + ln.Addr().String(), ln: ln, target: strings.TrimPrefix(node.Host, "unix://"), conns: map[net.Conn]bool{}}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
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
		upstream, err := net.Dial("unix", p.target)
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

// Cut closes every connection through the proxy; new ones are proxied again.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
}
