package supervisor

import (
	"context"
	"net"
	"net/http"
	"time"
)

// Boot probing: fast at first (a dyno that binds at once is up within milliseconds,
// see the drivers' start-to-up benchmarks), then gentler.
const (
	bootProbeFirst = 2 * time.Millisecond
	bootProbeMax   = 100 * time.Millisecond
	bootDialMax    = 250 * time.Millisecond
	healthTimeout  = 2 * time.Second
)

// prober is the health probe of one boot of a web dyno: $PORT accepts a TCP
// connection, then (with a health check path) GET path answers 2xx.
type prober struct {
	addr, path string
	client     *http.Client // nil without a health check
	bound      bool
}

func newProber(addr, healthCheck string) *prober {
	p := &prober{addr: addr}
	if healthCheck != "" {
		p.path = healthPath(healthCheck)
		// No keep-alive: each probe is a fresh connection, as the router's first is.
		p.client = &http.Client{Timeout: healthTimeout, Transport: &http.Transport{DisableKeepAlives: true}}
	}
	return p
}

// up probes once and reports whether the dyno is up.
func (p *prober) up(ctx context.Context) bool {
	if p.addr == "" {
		return false
	}
	if !p.bound {
		dialer := net.Dialer{Timeout: bootDialMax}
		conn, err := dialer.DialContext(ctx, "tcp", p.addr)
		if err != nil {
			return false
		}
		conn.Close()
		p.bound = true
	}
	return p.client == nil || p.healthy(ctx)
}

func (p *prober) healthy(ctx context.Context) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.addr+p.path, nil)
	if err != nil {
		return false
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode >= 200 && resp.StatusCode < 300
}

func (p *prober) close() {
	if p.client != nil {
		p.client.CloseIdleConnections()
	}
}
