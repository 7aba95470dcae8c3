package router

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/manifold-paas/manifold/logs"
	"github.com/manifold-paas/manifold/router/h1"
	"github.com/manifold-paas/manifold/router/internal/h1wire"
)

// LogSink receives the router's log lines, one per request, into the app's stream
// (source heroku, dyno router). Publish must never block: the router calls it on the
// request path.
type LogSink interface {
	Publish(logs.Line)
}

// Defaults for Options, Heroku's where Heroku has one.
const (
	DefaultFirstByteTimeout   = 30 * time.Second // H12
	DefaultIdleTimeout        = 55 * time.Second // H15, H28
	DefaultQuarantine         = 5 * time.Second
	DefaultBackendConcurrency = 200  // requests in flight per dyno before others wait
	DefaultBacklog            = 1000 // waiting requests per app before H11
	DefaultShutdownTimeout    = 30 * time.Second
	// maxAttempts bounds how many dynos one request tries after refused connections.
	maxAttempts = 8
)

// Options configure a Router. The zero value of each field means its default.
type Options struct {
	// Logs receives one router line per request; nil drops them.
	Logs LogSink
	// Metrics, when set, records every request per app (reconciler/metrics).
	Metrics Metrics
	// Logger is the daemon's own log (errors serving, unknown hosts at debug level);
	// nil discards.
	Logger *slog.Logger
	// FirstByteTimeout is how long a request may wait, from its arrival, for the first
	// byte of the dyno's response before H12 (default 30 s).
	FirstByteTimeout time.Duration
	// IdleTimeout is how long a streaming response or WebSocket may carry no data in
	// either direction before H15, and a request body may stall before H28
	// (default 55 s).
	IdleTimeout time.Duration
	// Quarantine is how long a dyno that refused a connection is skipped (default 5 s).
	Quarantine time.Duration
	// BackendConcurrency is how many requests a dyno has in flight before further
	// requests of its app wait for a free slot (default 200; negative: unlimited, no
	// waiting, so H11 never happens).
	BackendConcurrency int
	// Backlog is how many requests of one app may wait for a free dyno slot; one more
	// gets H11 (default 1000).
	Backlog int
	// ShutdownTimeout bounds how long Serve waits for requests in flight once its
	// context is done, before closing the remaining connections (default 30 s).
	ShutdownTimeout time.Duration
	// Now is the clock for X-Request-Start, log times, quarantine, the dyno pool's
	// idle expiry and client keep-alive deadlines (default time.Now), so it must
	// follow the wall clock. Timeouts use real timers.
	Now func() time.Time
}

// Metrics gives the recorder of one app's requests; the router asks once per app
// when a table is swapped in, so a request pays no lookup.
type Metrics interface {
	App(app, env string) RequestMetrics
}

// RequestMetrics records the requests of one app in one environment: the status sent,
// the router error code (empty when none) and the time from arrival to the end.
// Request must be safe for concurrent use and cheap: it runs on every request.
type RequestMetrics interface {
	Request(status int, code Code, took time.Duration)
}

// Router routes HTTP requests by Host to the web dynos of the current Table. It is
// safe for concurrent use; Swap may be called at any time.
type Router struct {
	opts   Options
	logger *slog.Logger
	dialer *net.Dialer
	table  atomic.Pointer[table]

	// mu guards the live states reused across swaps.
	mu       sync.Mutex
	backends map[string]*backend // by Addr
	apps     map[string]*app     // by app + "\x00" + env

	exchanges sync.Pool // *exchange
	buffers   sync.Pool // *[]byte, copy buffers
	via       []string
}

// New returns a Router with an empty table: every host gets 404 until Swap.
func New(opts Options) *Router {
	if opts.FirstByteTimeout <= 0 {
		opts.FirstByteTimeout = DefaultFirstByteTimeout
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = DefaultIdleTimeout
	}
	if opts.Quarantine <= 0 {
		opts.Quarantine = DefaultQuarantine
	}
	if opts.BackendConcurrency == 0 {
		opts.BackendConcurrency = DefaultBackendConcurrency
	}
	if opts.Backlog <= 0 {
		opts.Backlog = DefaultBacklog
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = DefaultShutdownTimeout
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	r := &Router{
		opts:     opts,
		logger:   logger,
		backends: map[string]*backend{},
		apps:     map[string]*app{},
		via:      []string{via},
	}
	r.dialer = &net.Dialer{Timeout: opts.FirstByteTimeout, KeepAlive: 30 * time.Second}
	r.table.Store(&table{hosts: map[string]*route{}})
	r.exchanges.New = func() any { return newExchange(r) }
	r.buffers.New = func() any { b := make([]byte, 32<<10); return &b }
	return r
}

// Swap replaces the routing table atomically. Requests in flight finish on the table
// they started with; the Table must not be modified afterwards. Dynos and apps that
// stay keep their outstanding counts and quarantine.
func (r *Router) Swap(t Table) {
	r.mu.Lock()
	defer r.mu.Unlock()
	next := &table{hosts: make(map[string]*route, len(t.Hosts))}
	backends := make(map[string]*backend, len(r.backends))
	apps := make(map[string]*app, len(r.apps))
	built := map[*Route]*route{}
	for host, rt := range t.Hosts {
		if rt == nil {
			continue
		}
		live, ok := built[rt]
		if !ok {
			key := rt.App + "\x00" + rt.Env
			a := apps[key]
			if a == nil {
				a = r.apps[key]
			}
			if a == nil {
				a = &app{name: rt.App, env: rt.Env, wake: make(chan struct{}, 64)}
				if r.opts.Metrics != nil {
					a.metrics = r.opts.Metrics.App(rt.App, rt.Env)
				}
			}
			apps[key] = a
			live = &route{Route: rt, app: a, backends: make([]*backend, 0, len(rt.Backends))}
			for _, be := range rt.Backends {
				b := backends[be.Addr]
				if b == nil {
					b = r.backends[be.Addr]
				}
				if b == nil || b.Dyno != be.Dyno {
					b = &backend{Backend: be}
				}
				backends[be.Addr] = b
				live.backends = append(live.backends, b)
			}
			built[rt] = live
		}
		next.hosts[normalizeHost(host)] = live
	}
	var gone []*backend
	for addr, b := range r.backends {
		if backends[addr] != b {
			gone = append(gone, b)
		}
	}
	r.backends, r.apps = backends, apps
	r.table.Store(next)
	// Dynos that left keep serving their requests in flight; their idle connections
	// close now and the others as those requests finish.
	for _, b := range gone {
		b.pool.close()
	}
}

// Serve answers HTTP/1.1 on ln (with the router's own server, package h1) until ctx
// is done, then shuts down gracefully: it stops accepting, lets requests in flight
// finish (up to Options.ShutdownTimeout) and returns nil. Any other failure to serve
// is returned.
func (r *Router) Serve(ctx context.Context, ln net.Listener) error {
	info := &listenerInfo{port: []string{portOf(ln.Addr().String(), "http")}}
	s := h1.New(ln, h1.Config{
		Handler:     r.handle,
		BaseContext: context.WithValue(context.Background(), listenerKey{}, info),
		Logger:      r.logger,
	})
	done := make(chan error, 1)
	go func() { done <- s.Serve() }()
	select {
	case err := <-done:
		s.Shutdown(0)
		return fmt.Errorf("router: serve on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	if !s.Shutdown(r.opts.ShutdownTimeout) {
		r.logger.Warn("router: requests still in flight at shutdown timeout; closed", "addr", ln.Addr().String())
	}
	<-done
	return nil
}

// ServeTLS is Serve over TLS with the certificate and key in PEM files; clients get
// HTTP/2 or HTTP/1.1 by ALPN.
func (r *Router) ServeTLS(ctx context.Context, ln net.Listener, certFile, keyFile string) error {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return fmt.Errorf("router: load TLS certificate %s and key %s: %w", certFile, keyFile, err)
	}
	srv := r.newServer(ln, "https")
	srv.TLSConfig = &tls.Config{
		Certificates: []tls.Certificate{cert},
		NextProtos:   []string{"h2", "http/1.1"},
		MinVersion:   tls.VersionTLS12,
	}
	return r.run(ctx, srv, ln, func() error { return srv.ServeTLS(ln, "", "") })
}

// listenerInfo is what the router knows of the listener a request came in on,
// computed once per Serve rather than once per request.
type listenerInfo struct {
	port []string // X-Forwarded-Port
}

type listenerKey struct{}

func (r *Router) newServer(ln net.Listener, scheme string) *http.Server {
	info := &listenerInfo{port: []string{portOf(ln.Addr().String(), scheme)}}
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	if scheme == "https" {
		protocols.SetHTTP2(true)
	}
	return &http.Server{
		Handler:           r,
		Protocols:         protocols,
		ReadHeaderTimeout: r.opts.IdleTimeout,
		// The same bound on a request head (431 beyond it) as the own server's:
		// net/http reads up to MaxHeaderBytes plus 4 KB of slack for its buffer.
		MaxHeaderBytes: h1wire.MaxHeadBytes - 4<<10,
		IdleTimeout:    90 * time.Second,
		ErrorLog:       slog.NewLogLogger(r.logger.Handler(), slog.LevelDebug),
		BaseContext: func(net.Listener) context.Context {
			return context.WithValue(context.Background(), listenerKey{}, info)
		},
	}
}

func (r *Router) run(ctx context.Context, srv *http.Server, ln net.Listener, serve func() error) error {
	done := make(chan error, 1)
	go func() { done <- serve() }()
	select {
	case err := <-done:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("router: serve on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), r.opts.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		r.logger.Warn("router: requests still in flight at shutdown timeout; closing", "addr", ln.Addr().String(), "err", err)
		_ = srv.Close()
	}
	<-done
	return nil
}

// portOf is the port of a host:port address, or the scheme's default.
func portOf(addr, scheme string) string {
	if _, port, err := net.SplitHostPort(addr); err == nil && port != "" {
		return port
	}
	if scheme == "https" {
		return "443"
	}
	return "80"
}

// normalizeHost lower-cases a Host header and strips its port and trailing dot,
// allocating only when the host has upper-case letters.
func normalizeHost(host string) string {
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.Contains(host[i:], "]") {
		host = host[:i]
	}
	host = strings.TrimSuffix(host, ".")
	for i := 0; i < len(host); i++ {
		if c := host[i]; 'A' <= c && c <= 'Z' {
			return strings.ToLower(host)
		}
	}
	return host
}
