package swarm

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// A one-off's task cannot be attached through the manager, so it connects out, as a
// Heroku one-off dyno does to its rendezvous service: it writes
//
//	GET /rendezvous/<token> HTTP/1.1
//
// to the slug server's listener, which answers 101 and hands the connection to the
// Run that waits for that token; from then on the connection is the command's stdin
// and output (or a telnet session on its pty). A token is 256 random bits, made for
// one Run, accepted once and only while that Run waits; any other path or token is
// 404 and the connection is left alone. Nothing else is reachable this way.
const (
	rendezvousTokenBytes = 32
	rendezvousUpgrade    = "manifold-rendezvous"
	// DefaultRendezvousTimeout is Options.RendezvousTimeout's default.
	DefaultRendezvousTimeout = 60 * time.Second
)

// rendezvous holds the tokens of the one-offs being waited for. It is safe for
// concurrent use.
type rendezvous struct {
	log *slog.Logger

	mu sync.Mutex
	// waiting is keyed by the token's sha256, so a lookup compares digests and
	// tells nothing of the tokens by its timing.
	waiting map[[sha256.Size]byte]*rendezvousWait
}

// rendezvousWait is one Run's wait for its task's connection.
type rendezvousWait struct {
	key   [sha256.Size]byte
	conns chan net.Conn // the task's connection, once
	done  chan struct{} // closed by stop: a connection arriving then is closed
}

func newRendezvous(log *slog.Logger) *rendezvous {
	return &rendezvous{log: log, waiting: map[[sha256.Size]byte]*rendezvousWait{}}
}

// newRendezvousToken is a fresh 256-bit token, hex.
func newRendezvousToken() string {
	b := make([]byte, rendezvousTokenBytes)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (it crashes the program instead)
	return hex.EncodeToString(b)
}

// expect accepts token once, until stop.
func (r *rendezvous) expect(token string) *rendezvousWait {
	w := &rendezvousWait{key: sha256.Sum256([]byte(token)), conns: make(chan net.Conn), done: make(chan struct{})}
	r.mu.Lock()
	r.waiting[w.key] = w
	r.mu.Unlock()
	return w
}

// stop ends the wait: the token is refused from then on.
func (r *rendezvous) stop(w *rendezvousWait) {
	r.mu.Lock()
	if r.waiting[w.key] == w {
		delete(r.waiting, w.key)
	}
	r.mu.Unlock()
	close(w.done)
}

// take removes and returns the wait for token, if any: a token is good once.
func (r *rendezvous) take(token string) *rendezvousWait {
	key := sha256.Sum256([]byte(token))
	r.mu.Lock()
	defer r.mu.Unlock()
	w := r.waiting[key]
	delete(r.waiting, key)
	return w
}

// serve is GET /rendezvous/{token}. It never logs the token.
func (r *rendezvous) serve(w http.ResponseWriter, req *http.Request) {
	wait := r.take(req.PathValue("token"))
	if wait == nil {
		http.Error(w, "no one-off waits for this token", http.StatusNotFound)
		return
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		r.log.Error("rendezvous: take over the connection", "remote", req.RemoteAddr, "err", err)
		http.Error(w, "cannot take over the connection", http.StatusInternalServerError)
		return
	}
	// The server's header deadline must not end the session.
	_ = conn.SetDeadline(time.Time{})
	_, err = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: " + rendezvousUpgrade + "\r\n\r\n")
	if err == nil {
		err = brw.Flush()
	}
	if err != nil {
		_ = conn.Close()
		return
	}
	attached := &hijackedConn{Conn: conn, r: brw.Reader}
	select {
	case wait.conns <- attached:
	case <-wait.done:
		_ = conn.Close()
	}
}

// hijackedConn reads what the HTTP server had buffered before the connection itself.
type hijackedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *hijackedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// CloseWrite ends the one-off's stdin and keeps its output coming.
func (c *hijackedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.New("connection cannot half-close")
}

// rendezvousAddr is the host and port a task connects to, from the endpoint's URL:
// plain http, as the task speaks it with nc.
func rendezvousAddr(raw string) (host, port, hostHeader string, err error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", "", "", fmt.Errorf("rendezvous URL %q: %w", raw, err)
	}
	if u.Scheme != "http" || u.Hostname() == "" {
		return "", "", "", fmt.Errorf("rendezvous URL %q: want http://host:port (a task connects to it with nc, without TLS): set the swarm driver's RendezvousURL", raw)
	}
	port = u.Port()
	if port == "" {
		port = "80"
	}
	return u.Hostname(), port, u.Host, nil
}
