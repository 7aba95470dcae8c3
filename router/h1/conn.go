package h1

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/manifold-paas/manifold/router/internal/h1wire"
)

// connReader is the source of a connection's bufio.Reader: the byte a watcher read
// (a pipelined request's first byte), then the connection.
type connReader struct {
	conn       net.Conn
	pending    byte
	hasPending bool
}

func (r *connReader) Read(p []byte) (int, error) {
	if r.hasPending && len(p) > 0 {
		p[0] = r.pending
		r.hasPending = false
		return 1, nil
	}
	return r.conn.Read(p)
}

// clientConn is one client connection and the request state it reuses.
type clientConn struct {
	s      *Server
	conn   net.Conn
	cr     connReader
	br     *bufio.Reader
	bw     *bufio.Writer
	ctx    context.Context // the requests' context, cancelled when the client is gone
	cancel context.CancelFunc
	state  atomic.Int32

	req     *http.Request
	url     url.URL
	header  http.Header
	vals    []string
	head    []byte
	w       Writer
	body    requestBody
	expect  bool // the request asked for 100-continue
	closeIt bool // the request asked to close the connection after the response

	// readDeadline is the idle deadline set on the connection; zero when unknown
	// (a request body or a watcher changed it).
	readDeadline time.Time
	// lastNow is when the last response ended (set by the handler through
	// Writer.ResponseEnded): the loop's clock for refreshing readDeadline, which saves a
	// clock read per request.
	lastNow time.Time

	wmu        sync.Mutex
	wstate     int
	goneFn     func() // the handler's callback for a vanished client, until stopped
	goneFired  bool   // the watcher found the client gone
	stopGoneFn func() bool
	bodyOpen   bool // the request body has not reached its end
	watchTimer *time.Timer
	watchDone  chan struct{}
}

func (s *Server) newConn(conn net.Conn) *clientConn {
	c := &clientConn{s: s, conn: conn, header: make(http.Header, 8), vals: make([]string, 0, 16)}
	c.cr.conn = conn
	c.br = bufio.NewReaderSize(&c.cr, connBufSize)
	c.bw = bufio.NewWriterSize(conn, connBufSize)
	c.ctx, c.cancel = context.WithCancel(s.base)
	c.req = (&http.Request{}).WithContext(c.ctx)
	c.w.c = c
	c.w.header = make(http.Header, 8)
	c.body.c = c
	c.stopGoneFn = c.stopGone
	c.watchTimer = time.AfterFunc(time.Hour, c.onWatchTimer)
	c.watchTimer.Stop()
	return c
}

// serve reads and answers requests on the connection until it closes.
func (c *clientConn) serve() {
	hijacked := false
	defer func() {
		c.watchTimer.Stop()
		c.cancel()
		if !hijacked {
			c.s.forget(c)
			_ = c.conn.Close()
		}
	}()
	remote := c.conn.RemoteAddr().String()
	for {
		if c.s.closing.Load() {
			return
		}
		now := c.lastNow
		if now.IsZero() {
			now = time.Now()
		}
		c.lastNow = time.Time{}
		if c.readDeadline.Sub(now) < keepAliveIdle-30*time.Second {
			// Refreshed every 30 s or so rather than on every request: a deadline
			// change costs a runtime timer update.
			c.readDeadline = now.Add(keepAliveIdle)
			_ = c.conn.SetReadDeadline(c.readDeadline)
		}
		head, err := c.readHead()
		if err != nil {
			if errors.Is(err, errHeadTooLarge) {
				c.reject(http.StatusRequestHeaderFieldsTooLarge, "request head too large")
			}
			return
		}
		if !c.state.CompareAndSwap(connIdle, connActive) {
			return // shutdown closed the connection
		}
		if status, msg := c.parse(head, remote); status != 0 {
			c.reject(status, msg)
			return
		}
		keep, hj := c.serveOne()
		if hj {
			hijacked = true
			return
		}
		if !keep {
			return
		}
		c.state.Store(connIdle)
	}
}

var errHeadTooLarge = errors.New("request head too large")

// readHead returns the request line and headers up to the empty line, as one string
// that the parsed request's fields slice.
func (c *clientConn) readHead() (string, error) {
	// Skip the empty lines a client may send between requests (RFC 9112 2.2).
	for range 4 {
		b, err := c.br.Peek(1)
		if err != nil {
			return "", err
		}
		if b[0] != '\r' && b[0] != '\n' {
			break
		}
		if _, err := c.br.ReadSlice('\n'); err != nil {
			return "", err
		}
	}
	// The common case: the whole head is in the buffer already.
	if buf, _ := c.br.Peek(c.br.Buffered()); len(buf) > 0 {
		if n := h1wire.HeadEnd(buf); n > 0 {
			head := string(buf[:n])
			_, _ = c.br.Discard(n)
			return head, nil
		}
	}
	c.head = c.head[:0]
	atLineStart := true
	for {
		line, err := c.br.ReadSlice('\n')
		if len(c.head)+len(line) > maxHeadBytes {
			return "", errHeadTooLarge
		}
		c.head = append(c.head, line...)
		if errors.Is(err, bufio.ErrBufferFull) {
			atLineStart = false
			continue
		}
		if err != nil {
			return "", err
		}
		// Only a whole line can be the empty one: the "\n" or "\r\n" that ends a
		// line longer than the buffer is not.
		if atLineStart && (len(line) == 1 || (len(line) == 2 && line[0] == '\r')) {
			return string(c.head), nil
		}
		atLineStart = true
	}
}

// reject answers a request the server refuses and leaves the connection to close.
func (c *clientConn) reject(status int, msg string) {
	body := strconv.Itoa(status) + " " + http.StatusText(status) + ": " + msg + "\n"
	fmt.Fprintf(c.bw, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		status, http.StatusText(status), len(body), body)
	_ = c.bw.Flush()
	c.linger()
	c.s.logger.Debug("router: refused a malformed request", "remote", c.conn.RemoteAddr().String(), "status", status, "why", msg)
}

// linger reads what the client still sends for a moment before the connection
// closes: closing with unread data resets the connection, and the client could lose
// the answer it was sent.
func (c *clientConn) linger() {
	if tcp, ok := c.conn.(*net.TCPConn); ok {
		_ = tcp.CloseWrite()
		_ = c.conn.SetReadDeadline(time.Now().Add(rejectLinger))
		_, _ = io.CopyN(io.Discard, c.conn, lingerBytes)
	}
}

// serveOne answers the parsed request. It reports whether the connection may carry
// another request, and whether the handler took it over (Hijack, for WebSocket).
func (c *clientConn) serveOne() (keep, hijacked bool) {
	req := c.req
	c.w.reset(req)
	hasBody := req.Body != http.NoBody
	if _, up := req.Header["Upgrade"]; !up && (hasBody || c.br.Buffered() == 0) {
		c.armWatch(hasBody)
	}
	abort := c.s.handler(&c.w, req)
	c.stopWatch()
	if c.w.hijacked {
		return false, true
	}
	bodyDone := !hasBody || c.body.finish()
	if hasBody {
		c.readDeadline = time.Time{} // the body's reads moved it
	}
	if abort {
		// Cut short after the status went out: hand over what there is and close,
		// so the client sees a truncated response.
		_ = c.bw.Flush()
		return false, false
	}
	complete := c.w.finish()
	err := c.bw.Flush()
	if !bodyDone && err == nil {
		// The rest of the body is still coming (a 404, or a dyno that answered
		// early): answer it, then close.
		c.linger()
	}
	return err == nil && complete && bodyDone && !c.w.closeAfter && c.ctx.Err() == nil, false
}
