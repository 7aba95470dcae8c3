// Package h1 is the router's own HTTP/1.1 server: it reads requests from the client
// connections of one listener, hands each to one Handler and writes its response,
// with keep-alive, pipelining, sized and chunked bodies and graceful shutdown.
package h1

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/manifold-paas/manifold/router/internal/h1wire"
)

// The router's plain-HTTP listener uses this server instead of net/http's: profiles
// of the router's BenchmarkCompareWrk showed net/http's per-request background read
// (a goroutine, an extra read syscall and a deadline change to stop it), its header
// map building and its response buffering layers as most of the router's own CPU.
// This server parses each request head into buffers reused per connection, writes
// each response with one buffered flush, and watches for a vanished client (the
// router's H27) only when a request is still in flight after watchDelay. The
// router's TLS listener (HTTP/2) keeps net/http; both call the same handler.

// Handler answers one request: it writes the response to w (a *Writer) and reports
// whether the response was cut short after its status went out, in which case the
// server hands over what is buffered and closes the connection, so that the client
// sees a truncated response rather than a well-formed short one.
type Handler func(w http.ResponseWriter, req *http.Request) (abort bool)

// Config configures a Server.
type Config struct {
	// Handler answers every request; it must not be nil.
	Handler Handler
	// BaseContext is the parent of every connection's request context (for values
	// the handler reads, such as what it knows of the listener); nil means
	// context.Background().
	BaseContext context.Context
	// Logger receives accept failures (warn) and refused malformed requests (debug);
	// nil discards.
	Logger *slog.Logger
}

const (
	// maxHeadBytes bounds a request's line and headers; larger heads get 431.
	maxHeadBytes = h1wire.MaxHeadBytes
	// connBufSize is the size of each client connection's read and write buffers.
	connBufSize = 4 << 10
	// keepAliveIdle is how long a client connection may sit between requests.
	keepAliveIdle = 90 * time.Second
	// watchDelay is how long a request runs before the server starts reading the
	// client connection to notice a client that went away (H27). Quick requests never
	// pay for that read.
	watchDelay = 20 * time.Millisecond
	// rejectLinger is how long a refused request's connection is drained before it
	// closes.
	rejectLinger = 200 * time.Millisecond
	// lingerBytes bounds what is read and dropped while lingering.
	lingerBytes = 1 << 20
)

// Server serves HTTP/1.1 on one listener.
type Server struct {
	handler Handler
	logger  *slog.Logger
	ln      net.Listener
	base    context.Context // the parent of every connection's context
	closing atomic.Bool

	mu    sync.Mutex
	conns map[*clientConn]struct{} // open, not hijacked

	// httpDate is the Date header of the current second, formatted once per second
	// rather than once per response (as nginx keeps its cached time).
	httpDate atomic.Pointer[httpDate]
}

type httpDate struct {
	sec  int64
	text string
}

// date returns now as an HTTP date.
func (s *Server) date(now time.Time) string {
	sec := now.Unix()
	if d := s.httpDate.Load(); d != nil && d.sec == sec {
		return d.text
	}
	d := &httpDate{sec: sec, text: now.UTC().Format(http.TimeFormat)}
	s.httpDate.Store(d)
	return d.text
}

// Connection states, for shutdown.
const (
	connIdle   int32 = iota // between requests: shutdown may close it
	connActive              // serving a request: shutdown waits
	connClosed              // closed by shutdown
)

// New returns a server for ln; Serve starts it.
func New(ln net.Listener, cfg Config) *Server {
	base, logger := cfg.BaseContext, cfg.Logger
	if base == nil {
		base = context.Background()
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Server{
		handler: cfg.Handler,
		logger:  logger,
		ln:      ln,
		base:    base,
		conns:   map[*clientConn]struct{}{},
	}
}

// Serve accepts connections and serves each on its own goroutine until the listener
// fails or Shutdown closes it. It returns nil after Shutdown, else the listener's
// error.
func (s *Server) Serve() error {
	var backoff time.Duration
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			if s.closing.Load() {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// Out of file descriptors and the like: wait and try again, as net/http.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.logger.Warn("router: accept failed; retrying", "addr", s.ln.Addr().String(), "in", backoff, "err", err)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		c := s.newConn(conn)
		s.mu.Lock()
		if s.closing.Load() {
			s.mu.Unlock()
			_ = conn.Close()
			continue
		}
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		go c.serve()
	}
}

// forget drops c from the connections shutdown waits for.
func (s *Server) forget(c *clientConn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// Shutdown stops accepting, closes idle connections and waits up to timeout for the
// others to finish their request (answered with Connection: close); then it closes
// whatever is left. It reports whether every connection finished in time. Hijacked
// connections are not waited for.
func (s *Server) Shutdown(timeout time.Duration) bool {
	s.closing.Store(true)
	_ = s.ln.Close()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		s.mu.Lock()
		n := len(s.conns)
		for c := range s.conns {
			if c.state.CompareAndSwap(connIdle, connClosed) {
				_ = c.conn.Close()
			}
		}
		s.mu.Unlock()
		if n == 0 {
			return true
		}
		if time.Now().After(deadline) {
			s.mu.Lock()
			for c := range s.conns {
				_ = c.conn.Close()
			}
			s.mu.Unlock()
			return false
		}
		<-tick.C
	}
}
