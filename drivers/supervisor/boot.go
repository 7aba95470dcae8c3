package supervisor

import (
	"context"
	"net"
	"net/http"
	"syscall"
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

type bootOutcome int

const (
	bootUp bootOutcome = iota
	bootExited
	bootTimedOut  // never bound $PORT
	bootUnhealthy // bound, never answered the health check
	bootStop
	bootClosed
)

// boot waits for the dyno to be up: a web dyno accepts a TCP connection on its port
// (and answers its health check with 2xx) within BootTimeout of its start; other
// dynos are up once running.
func (s *Supervisor) boot(ctx context.Context, p Process, exited <-chan exitResult) (bootOutcome, exitResult) {
	if s.spec.Type != "web" {
		return bootUp, exitResult{}
	}
	s.mu.Lock()
	deadline := s.st.Dyno.StartedAt.Add(s.cfg.BootTimeout)
	s.mu.Unlock()
	probe := newProber(p.Addr(), s.spec.HealthCheck)
	defer probe.close()
	interval := bootProbeFirst
	for {
		if probe.up(ctx) {
			return bootUp, exitResult{}
		}
		left := time.Until(deadline)
		if left <= 0 {
			if probe.bound {
				return bootUnhealthy, exitResult{}
			}
			return bootTimedOut, exitResult{}
		}
		timer := time.NewTimer(min(interval, left))
		select {
		case result := <-exited:
			timer.Stop()
			return bootExited, result
		case <-s.stopReq:
			timer.Stop()
			return bootStop, exitResult{}
		case <-ctx.Done():
			timer.Stop()
			return bootClosed, exitResult{}
		case <-timer.C:
		}
		interval = min(interval*2, bootProbeMax)
	}
}

// bootTimeout is R10: kill the dyno that did not boot in time; it crashes. It is
// false when the driver closed before the run ended.
func (s *Supervisor) bootTimeout(ctx context.Context, p Process, exited <-chan exitResult, bound bool) bool {
	s.Say(R10(s.cfg.BootTimeout, bound, s.spec.HealthCheck))
	s.Say(MsgKill)
	if err := p.Signal(syscall.SIGKILL); err != nil {
		s.log.Error("kill dyno after R10", "err", err)
	}
	var result exitResult
	select {
	case result = <-exited:
	case <-ctx.Done():
		return false
	}
	if result.err != nil {
		s.log.Error("watch dyno process", "err", result.err)
	}
	s.Say(Exited(result.exit))
	s.crashed(ReasonR10, "R10")
	return true
}
