package router

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
)

// The plain-HTTP listener has its own HTTP/1.1 server (this file) instead of
// net/http's: profiles of BenchmarkCompareWrk showed net/http's per-request
// background read (a goroutine, an extra read syscall and a deadline change to stop
// it), its header map building and its response buffering layers as most of the
// router's own CPU. This server parses each request head into buffers reused per
// connection, writes each response with one buffered flush, and watches for a
// vanished client (H27) only when a request is still in flight after watchDelay.
// The TLS listener (HTTP/2) keeps net/http; both call the same core, Router.handle.

const (
	// maxHeadBytes bounds a request's line and headers (net/http's default is 1 MB;
	// nginx's 32 KB). Larger heads get 431.
	maxHeadBytes = 64 << 10
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

// h1Server serves HTTP/1.1 on one listener.
type h1Server struct {
	r       *Router
	ln      net.Listener
	base    context.Context // carries the listenerInfo
	closing atomic.Bool

	mu    sync.Mutex
	conns map[*h1Conn]struct{} // open, not hijacked

	// httpDate is the Date header of the current second, formatted once per second
	// rather than once per response (as nginx keeps its cached time).
	httpDate atomic.Pointer[httpDate]
}

type httpDate struct {
	sec  int64
	text string
}

// date returns now as an HTTP date.
func (s *h1Server) date(now time.Time) string {
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

func newH1Server(r *Router, ln net.Listener) *h1Server {
	info := &listenerInfo{port: []string{portOf(ln.Addr().String(), "http")}}
	return &h1Server{
		r:     r,
		ln:    ln,
		base:  context.WithValue(context.Background(), listenerKey{}, info),
		conns: map[*h1Conn]struct{}{},
	}
}

// acceptLoop accepts connections until the listener fails or is closed.
func (s *h1Server) acceptLoop() error {
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
			s.r.logger.Warn("router: accept failed; retrying", "addr", s.ln.Addr().String(), "in", backoff, "err", err)
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
func (s *h1Server) forget(c *h1Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// shutdown stops accepting, closes idle connections and waits up to timeout for the
// others to finish their request; then it closes whatever is left. It reports
// whether every connection finished in time.
func (s *h1Server) shutdown(timeout time.Duration) bool {
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

// Watcher states of a connection (h1Conn.wstate).
const (
	watchOff      = iota // no request, or the request finished
	watchArmed           // the request's watch timer is pending
	watchWaitBody        // the timer fired while the request body was still being read
	watchRunning         // a goroutine reads the connection
	watchStopping        // the request is done; the reading goroutine is being stopped
	watchDone            // the reading goroutine returned
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

// h1Conn is one client connection and the request state it reuses.
type h1Conn struct {
	s      *h1Server
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
	w       h1Writer
	body    h1Body
	expect  bool // the request asked for 100-continue
	closeIt bool // the request asked to close the connection after the response

	// readDeadline is the idle deadline set on the connection; zero when unknown
	// (a request body or a watcher changed it).
	readDeadline time.Time
	// lastNow is when the last proxied response ended (set by the core through
	// respond): the loop's clock for refreshing readDeadline, which saves a
	// clock read per request.
	lastNow time.Time

	wmu        sync.Mutex
	wstate     int
	goneFn     func() // the core's callback for a vanished client, until stopped
	goneFired  bool   // the watcher found the client gone
	stopGoneFn func() bool
	bodyOpen   bool // the request body has not reached its end
	watchTimer *time.Timer
	watchDone  chan struct{}
}

func (s *h1Server) newConn(conn net.Conn) *h1Conn {
	c := &h1Conn{s: s, conn: conn, header: make(http.Header, 8), vals: make([]string, 0, 16)}
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
func (c *h1Conn) serve() {
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
func (c *h1Conn) readHead() (string, error) {
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
		if n := headEnd(buf); n > 0 {
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

// headEnd returns the length of the head at the start of buf, up to and including
// its first empty line ("\r\n" or a bare "\n", RFC 9112 2.2), or 0 when buf holds no
// empty line. The first empty line ends the head even when a "\r\n\r\n" comes later:
// what follows it is a body or the next request, never more head.
func headEnd(buf []byte) int {
	end := 0
	if i := bytes.Index(buf, []byte("\n\r\n")); i >= 0 {
		end = i + 3
		buf = buf[:i+1]
	}
	if i := bytes.Index(buf, []byte("\n\n")); i >= 0 {
		end = i + 2
	}
	return end
}

// chunkedTE is the TransferEncoding of requests with a chunked body.
var chunkedTE = []string{"chunked"}

// parse fills c.req from a request head. It returns a status and message for a
// request the server refuses, or 0.
func (c *h1Conn) parse(head, remote string) (int, string) {
	req := c.req
	clear(c.header)
	c.vals = c.vals[:0]
	line, rest, _ := strings.Cut(head, "\n")
	line = strings.TrimSuffix(line, "\r")
	method, line, ok1 := strings.Cut(line, " ")
	uri, proto, ok2 := strings.Cut(line, " ")
	if !ok1 || !ok2 || method == "" || uri == "" || !validMethod(method) {
		return http.StatusBadRequest, "malformed request line"
	}
	major, minor, ok := http.ParseHTTPVersion(proto)
	if !ok {
		return http.StatusBadRequest, "malformed HTTP version"
	}
	if major != 1 {
		return http.StatusHTTPVersionNotSupported, "HTTP version not supported"
	}
	for i := 0; i < len(uri); i++ {
		if uri[i] <= ' ' || uri[i] == 0x7f {
			return http.StatusBadRequest, "malformed request target"
		}
	}
	c.url = url.URL{}
	if uri[0] == '/' && strings.IndexByte(uri, '%') < 0 && strings.IndexByte(uri, '#') < 0 {
		// Origin form without escapes: no need for the full parser.
		c.url.Path, c.url.RawQuery, _ = strings.Cut(uri, "?")
		if c.url.RawQuery == "" && strings.HasSuffix(uri, "?") {
			c.url.ForceQuery = true
		}
	} else {
		u, err := url.ParseRequestURI(uri)
		if err != nil {
			return http.StatusBadRequest, "malformed request target"
		}
		c.url = *u
	}

	h := c.header
	for {
		line, rest, _ = strings.Cut(rest, "\n")
		line = strings.TrimSuffix(line, "\r")
		if line == "" {
			break
		}
		colon := strings.IndexByte(line, ':')
		if colon <= 0 {
			return http.StatusBadRequest, "malformed header line"
		}
		key, value := line[:colon], strings.Trim(line[colon+1:], " \t")
		if !httpguts.ValidHeaderFieldName(key) || !httpguts.ValidHeaderFieldValue(value) {
			// Also refuses obsolete line folding: a line starting with a space.
			return http.StatusBadRequest, "invalid header " + strconv.Quote(key)
		}
		if !canonical(key) {
			key = http.CanonicalHeaderKey(key)
		}
		if vv, ok := h[key]; ok {
			h[key] = append(vv, value)
			continue
		}
		c.vals = append(c.vals, value)
		n := len(c.vals)
		h[key] = c.vals[n-1 : n : n]
	}

	host := ""
	if hv := h["Host"]; len(hv) > 1 {
		return http.StatusBadRequest, "too many Host headers"
	} else if len(hv) == 1 {
		host = hv[0]
		delete(h, "Host")
	}
	if c.url.Host != "" {
		host = c.url.Host
	} else if host == "" && minor >= 1 {
		return http.StatusBadRequest, "missing required Host header"
	}
	if !httpguts.ValidHostHeader(host) {
		return http.StatusBadRequest, "malformed Host header"
	}

	// Connection options, and keep-alive: HTTP/1.1 by default, HTTP/1.0 when asked.
	keepAlive, closeIt := false, false
	for _, v := range h["Connection"] {
		for token := range strings.SplitSeq(v, ",") {
			token = strings.TrimSpace(token)
			switch {
			case strings.EqualFold(token, "close"):
				closeIt = true
			case strings.EqualFold(token, "keep-alive"):
				keepAlive = true
			}
		}
	}
	c.closeIt = closeIt || (minor == 0 && !keepAlive)

	// Body framing: chunked wins over Content-Length (which is then dropped, RFC 9112
	// 6.3); anything else is refused rather than guessed at (request smuggling).
	contentLength := int64(0)
	chunked := false
	if te, ok := h["Transfer-Encoding"]; ok {
		if minor == 0 || len(te) != 1 || !strings.EqualFold(strings.TrimSpace(te[0]), "chunked") {
			return http.StatusNotImplemented, "unsupported Transfer-Encoding"
		}
		chunked = true
		contentLength = -1
		if _, both := h["Content-Length"]; both {
			// A message with both is suspect: chunked wins and the connection is not
			// reused.
			delete(h, "Content-Length")
			c.closeIt = true
		}
	} else if cl := h["Content-Length"]; len(cl) > 0 {
		for _, v := range cl[1:] {
			if v != cl[0] {
				return http.StatusBadRequest, "conflicting Content-Length"
			}
		}
		n, ok := parseContentLength(cl[0])
		if !ok {
			return http.StatusBadRequest, "malformed Content-Length"
		}
		contentLength = n
	}

	c.expect = false
	if ev, ok := h["Expect"]; ok {
		if len(ev) != 1 || !strings.EqualFold(ev[0], "100-continue") {
			return http.StatusExpectationFailed, "unsupported Expect"
		}
		c.expect = minor >= 1 && contentLength != 0
	}

	req.Method = method
	req.URL = &c.url
	req.Proto = proto
	req.ProtoMajor, req.ProtoMinor = major, minor
	req.Header = h
	req.ContentLength = contentLength
	req.TransferEncoding = nil
	req.Close = c.closeIt
	req.Host = host
	req.RemoteAddr = remote
	req.RequestURI = uri
	req.Body = http.NoBody
	if chunked {
		req.TransferEncoding = chunkedTE
	}
	if contentLength != 0 {
		c.body.reset(contentLength, chunked)
		req.Body = &c.body
	}
	return 0, ""
}

// parseContentLength parses a Content-Length value: digits only (RFC 9110 8.6), so
// that no sign ("+5", "-0") or other form is read one way here and another way by a
// peer.
func parseContentLength(v string) (int64, bool) {
	if v == "" {
		return 0, false
	}
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	return n, err == nil
}

// validMethod reports whether m is an HTTP token.
func validMethod(m string) bool {
	for i := 0; i < len(m); i++ {
		if !httpguts.IsTokenRune(rune(m[i])) {
			return false
		}
	}
	return true
}

// canonical reports whether a header name is in canonical form already (as clients
// send nearly all of them), which saves CanonicalHeaderKey's allocation.
func canonical(k string) bool {
	upper := true
	for i := 0; i < len(k); i++ {
		c := k[i]
		if upper && 'a' <= c && c <= 'z' || !upper && 'A' <= c && c <= 'Z' {
			return false
		}
		upper = c == '-'
	}
	return true
}

// reject answers a request the server refuses and leaves the connection to close.
func (c *h1Conn) reject(status int, msg string) {
	body := strconv.Itoa(status) + " " + http.StatusText(status) + ": " + msg + "\n"
	fmt.Fprintf(c.bw, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		status, http.StatusText(status), len(body), body)
	_ = c.bw.Flush()
	c.linger()
	c.s.r.logger.Debug("router: refused a malformed request", "remote", c.conn.RemoteAddr().String(), "status", status, "why", msg)
}

// linger reads what the client still sends for a moment before the connection
// closes: closing with unread data resets the connection, and the client could lose
// the answer it was sent.
func (c *h1Conn) linger() {
	if tcp, ok := c.conn.(*net.TCPConn); ok {
		_ = tcp.CloseWrite()
		_ = c.conn.SetReadDeadline(time.Now().Add(rejectLinger))
		_, _ = io.CopyN(io.Discard, c.conn, lingerBytes)
	}
}

// serveOne answers the parsed request. It reports whether the connection may carry
// another request, and whether the core took it over (WebSocket).
func (c *h1Conn) serveOne() (keep, hijacked bool) {
	req := c.req
	c.w.reset(req)
	hasBody := req.Body != http.NoBody
	if _, up := req.Header["Upgrade"]; !up && (hasBody || c.br.Buffered() == 0) {
		c.armWatch(hasBody)
	}
	abort := c.s.r.handle(&c.w, req)
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

// armWatch starts the request's watch timer.
func (c *h1Conn) armWatch(hasBody bool) {
	c.wmu.Lock()
	c.wstate, c.bodyOpen = watchArmed, hasBody
	c.wmu.Unlock()
	c.watchTimer.Reset(watchDelay)
}

// onWatchTimer runs when a request is still in flight after watchDelay: from now on
// the connection is read so that a client that goes away is noticed.
func (c *h1Conn) onWatchTimer() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.wstate != watchArmed {
		return
	}
	if c.bodyOpen {
		// The body's reader owns the connection until the body ends.
		c.wstate = watchWaitBody
		return
	}
	c.startWatchLocked()
}

// bodyEnded is called by the body reader at the end of the body, on the goroutine
// that read it.
func (c *h1Conn) bodyEnded() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.bodyOpen = false
	if c.wstate == watchWaitBody && c.br.Buffered() == 0 {
		c.startWatchLocked()
	}
}

func (c *h1Conn) startWatchLocked() {
	// Cleared here, under wmu, so that stopWatch's interrupting deadline always comes
	// after it.
	_ = c.conn.SetReadDeadline(time.Time{})
	c.wstate = watchRunning
	c.watchDone = make(chan struct{})
	go c.watch(c.watchDone)
}

// watch reads the idle client connection: an error means the client is gone (the
// request context is cancelled, H27); a byte is the start of a pipelined request,
// kept for the next parse.
func (c *h1Conn) watch(done chan struct{}) {
	defer close(done)
	var b [1]byte
	n, err := c.conn.Read(b[:])
	c.wmu.Lock()
	stopped := c.wstate == watchStopping
	c.wstate = watchDone
	if n == 1 {
		c.cr.pending, c.cr.hasPending = b[0], true
	}
	c.wmu.Unlock()
	if n == 0 && err != nil && !stopped {
		c.wmu.Lock()
		f := c.goneFn
		c.goneFn, c.goneFired = nil, true
		c.wmu.Unlock()
		c.cancel()
		if f != nil {
			f()
		}
	}
}

// AfterClientGone arranges for f to run when the client is found gone during the
// request, as context.AfterFunc on the request's context would, without its
// per-request allocations and registration in the context. The returned stop
// reports false when f has run or is running.
func (w *h1Writer) AfterClientGone(f func()) (stop func() bool) {
	c := w.c
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.goneFired {
		go f()
		return func() bool { return false }
	}
	c.goneFn = f
	return c.stopGoneFn
}

func (c *h1Conn) stopGone() bool {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.goneFn == nil {
		return false
	}
	c.goneFn = nil
	return true
}

// stopWatch ends the request's watch: the timer is stopped, and a running watcher is
// interrupted and waited for, so the connection is the server's alone again.
func (c *h1Conn) stopWatch() {
	c.wmu.Lock()
	state := c.wstate
	switch state {
	case watchOff:
		c.wmu.Unlock()
		return
	case watchArmed, watchWaitBody:
		c.wstate = watchOff
		c.wmu.Unlock()
		c.watchTimer.Stop()
		return
	case watchRunning:
		c.wstate = watchStopping
	}
	done := c.watchDone
	c.wmu.Unlock()
	if state == watchRunning {
		_ = c.conn.SetReadDeadline(aLongTimeAgo)
	}
	<-done
	c.readDeadline = time.Time{}
	_ = c.conn.SetReadDeadline(time.Time{})
	c.wmu.Lock()
	c.wstate = watchOff
	c.wmu.Unlock()
}

// h1Body is a request body read from the client connection: Content-Length bytes or
// chunked. It is reused for every request of the connection.
type h1Body struct {
	c *h1Conn

	mu        sync.Mutex // held during reads, so finish waits for one in progress
	remaining int64
	chunked   io.Reader // nil for a sized body
	closed    bool
	continued bool        // 100 Continue was sent, or not needed
	eof       atomic.Bool // read by the response writer without the lock
	err       error
}

func (b *h1Body) reset(n int64, chunked bool) {
	b.remaining, b.chunked, b.closed, b.err = n, nil, false, nil
	b.continued = !b.c.expect
	b.eof.Store(false)
	if chunked {
		b.chunked = httputil.NewChunkedReader(b.c.br)
	}
}

func (b *h1Body) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.closed:
		return 0, http.ErrBodyReadAfterClose
	case b.eof.Load():
		return 0, io.EOF
	case b.err != nil:
		return 0, b.err
	}
	if !b.continued {
		b.continued = true
		b.c.w.sendContinue()
	}
	var n int
	var err error
	if b.chunked != nil {
		n, err = b.chunked.Read(p)
		if err == io.EOF {
			err = b.readTrailer()
		}
	} else {
		if int64(len(p)) > b.remaining {
			p = p[:b.remaining]
		}
		n, err = b.c.br.Read(p)
		b.remaining -= int64(n)
		switch {
		case b.remaining == 0:
			err = io.EOF
		case err == io.EOF:
			err = io.ErrUnexpectedEOF
		}
	}
	if err == io.EOF {
		b.eof.Store(true)
		b.c.bodyEnded()
	} else if err != nil {
		b.err = err
	}
	return n, err
}

// readTrailer consumes a chunked body's trailer section (dropped, as the router does
// not forward request trailers) up to its empty line.
func (b *h1Body) readTrailer() error {
	size := 0
	for {
		line, err := b.c.br.ReadSlice('\n')
		if err != nil {
			return fmt.Errorf("read chunked trailer: %w", err)
		}
		if size += len(line); size > maxHeadBytes {
			return errHeadTooLarge
		}
		if len(line) == 1 || (len(line) == 2 && line[0] == '\r') {
			return io.EOF
		}
	}
}

// Close leaves the body to the server, which finishes it after the request.
func (b *h1Body) Close() error { return nil }

// finish closes the body for good once the request is answered and reports whether
// it was read to its end (else the connection cannot carry another request).
func (b *h1Body) finish() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	return b.eof.Load()
}

// h1Writer is the http.ResponseWriter of the router's HTTP/1.1 server. It also
// implements http.Flusher, http.Hijacker and SetReadDeadline for the core's
// http.ResponseController.
type h1Writer struct {
	c      *h1Conn
	req    *http.Request
	header http.Header

	mu            sync.Mutex // orders 100 Continue against the response head
	wroteHeader   bool
	status        int
	noBody        bool
	chunked       bool
	closeAfter    bool
	contentLength int64 // -1: unknown
	written       int64
	hijacked      bool
	// scratch formats numbers and dates without allocating (a local array would
	// escape through bufio.Writer.Write).
	scratch [64]byte
}

func (w *h1Writer) reset(req *http.Request) {
	clear(w.header)
	w.req = req
	w.wroteHeader, w.status, w.noBody, w.chunked, w.hijacked = false, 0, false, false, false
	w.closeAfter = req.Close
	w.contentLength, w.written = -1, 0
}

// Header returns the response headers to send.
func (w *h1Writer) Header() http.Header { return w.header }

// sendContinue answers Expect: 100-continue, before the first body read, unless the
// response went out already.
func (w *h1Writer) sendContinue() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.wroteHeader {
		_, _ = w.c.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
		_ = w.c.bw.Flush()
	}
}

// WriteHeader writes the response head into the connection's buffer: the framing
// (Content-Length, chunked, or close-delimited for HTTP/1.0), Connection and Date.
func (w *h1Writer) WriteHeader(status int) {
	if w.wroteHeader || w.hijacked {
		return
	}
	if w.c.expect {
		w.mu.Lock()
		defer w.mu.Unlock()
	}
	w.wroteHeader, w.status = true, status
	h, req := w.header, w.req
	w.noBody = req.Method == http.MethodHead || status == http.StatusNoContent || status == http.StatusNotModified || status < 200
	if cl := h["Content-Length"]; len(cl) == 1 {
		if n, err := strconv.ParseInt(cl[0], 10, 64); err == nil && n >= 0 {
			w.contentLength = n
		} else {
			delete(h, "Content-Length")
		}
	} else if len(cl) > 1 {
		delete(h, "Content-Length")
	}
	if w.contentLength < 0 && !w.noBody {
		if req.ProtoMinor >= 1 {
			w.chunked = true
		} else {
			w.closeAfter = true
		}
	}
	if req.Body != http.NoBody && !w.c.body.eof.Load() {
		// The body is not read to its end (the dyno answered early): the connection
		// will close after the response.
		w.closeAfter = true
	}
	if w.c.s.closing.Load() {
		w.closeAfter = true
	}
	bw := w.c.bw
	num := w.scratch[:0]
	bw.WriteString("HTTP/1.1 ")
	bw.Write(strconv.AppendInt(num, int64(status), 10))
	bw.WriteByte(' ')
	if text := http.StatusText(status); text != "" {
		bw.WriteString(text)
	} else {
		bw.WriteString("status code ")
		bw.Write(strconv.AppendInt(num, int64(status), 10))
	}
	bw.WriteString("\r\n")
	for k, vv := range h {
		for _, v := range vv {
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	if w.chunked {
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	switch {
	case w.closeAfter:
		bw.WriteString("Connection: close\r\n")
	case req.ProtoMinor == 0:
		bw.WriteString("Connection: keep-alive\r\n")
	}
	if _, ok := h["Date"]; !ok {
		bw.WriteString("Date: ")
		bw.WriteString(w.c.s.date(time.Now()))
		bw.WriteString("\r\n")
	}
	bw.WriteString("\r\n")
}

// Write writes body bytes: as they are, or as one chunk.
func (w *h1Writer) Write(p []byte) (int, error) {
	if w.hijacked {
		return 0, http.ErrHijacked
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.noBody || len(p) == 0 {
		return len(p), nil
	}
	var err error
	n := len(p)
	if w.contentLength >= 0 && w.written+int64(n) > w.contentLength {
		n, err = int(w.contentLength-w.written), http.ErrContentLength
		p = p[:n]
	}
	bw := w.c.bw
	if w.chunked {
		bw.Write(strconv.AppendInt(w.scratch[:0], int64(n), 16))
		bw.WriteString("\r\n")
	}
	written, werr := bw.Write(p)
	if w.chunked {
		_, werr = bw.WriteString("\r\n")
	}
	w.written += int64(written)
	if werr != nil {
		return written, werr
	}
	return written, err
}

// Flush sends what is buffered to the client now (streaming responses).
func (w *h1Writer) Flush() {
	if w.hijacked {
		return
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	_ = w.c.bw.Flush()
}

// finish ends the response (the last chunk) and reports whether it is complete: a
// response shorter than its Content-Length leaves the connection unusable.
func (w *h1Writer) finish() bool {
	if !w.wroteHeader {
		w.header.Set("Content-Length", "0")
		w.WriteHeader(http.StatusOK)
	}
	if w.chunked {
		w.writeTrailers()
	}
	return w.noBody || w.contentLength < 0 || w.written == w.contentLength
}

// Hijack hands the connection over (WebSocket after 101): the server forgets it.
func (w *h1Writer) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.hijacked {
		return nil, nil, http.ErrHijacked
	}
	if w.wroteHeader {
		return nil, nil, errors.New("router: hijack after the response head was written")
	}
	c := w.c
	if w.req.Body != http.NoBody && !c.body.eof.Load() {
		// The request body is still being read for the dyno from this connection:
		// handed over as well, the client's bytes would go to both readers.
		return nil, nil, errors.New("router: hijack before the request body was read to its end")
	}
	c.stopWatch()
	w.hijacked = true
	c.s.forget(c)
	_ = c.conn.SetDeadline(time.Time{})
	return c.conn, bufio.NewReadWriter(c.br, c.bw), nil
}

// SetReadDeadline sets the client connection's read deadline (request body reads).
func (w *h1Writer) SetReadDeadline(t time.Time) error {
	return w.c.conn.SetReadDeadline(t)
}

// writeTrailers ends a chunked response: the last chunk, then the trailer fields
// the response declared in its Trailer header and set after the body.
func (w *h1Writer) writeTrailers() {
	bw := w.c.bw
	bw.WriteString("0\r\n")
	for _, v := range w.header["Trailer"] {
		for k := range strings.SplitSeq(v, ",") {
			k = http.CanonicalHeaderKey(strings.TrimSpace(k))
			for _, tv := range w.header[k] {
				if httpguts.ValidHeaderFieldName(k) && httpguts.ValidHeaderFieldValue(tv) {
					bw.WriteString(k)
					bw.WriteString(": ")
					bw.WriteString(tv)
					bw.WriteString("\r\n")
				}
			}
		}
	}
	bw.WriteString("\r\n")
}
