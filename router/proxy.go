package router

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// via is the router's Via entry, as Heroku's router adds `1.1 vegur`.
const via = "1.1 manifold"

// What the request timer means when it fires.
const (
	phaseNone      = iota
	phaseFirstByte // waiting for the dyno's first byte: H12
	phaseIdle      // streaming a response or a WebSocket: H15
)

// exchange is the per-request state of one proxied request, pooled so that the
// common case allocates little. Everything in it belongs to the request being served
// and is reset before reuse; an exchange whose timer fired is never reused, since its
// callback may still be running.
type exchange struct {
	r     *Router
	timer *time.Timer

	// mu guards the fields the timer callback reads and writes.
	mu      sync.Mutex
	phase   int
	fired   int
	firedCh chan struct{} // closed when the timer fires
	upc     *upConn       // the dyno connection in use, aborted by the timer
	aborted bool          // the client went away
	spoiled bool          // a callback may still touch the exchange
	closer  func()

	up         upstream
	clientGone func() // ex.onClientGone, bound once

	url url.URL
	// Header values handed to the dyno, kept here so each needs no slice allocation.
	xff, proto, port, start, requestID [1]string

	// waited is set once the request queued for a dyno (wait) or was retried after a
	// refused connection: its connect time is then measured, not zero.
	waited bool
	// end is when the response was over, read once for the log line and the pool.
	end time.Time

	// Log line fields.
	arrival time.Time
	reqID   string
	fwd     string
	dyno    string
	connect time.Duration
	status  int
	bytes   int64
	logBuf  []byte
}

func newExchange(r *Router) *exchange {
	ex := &exchange{r: r, logBuf: make([]byte, 0, 512), firedCh: make(chan struct{})}
	ex.timer = time.AfterFunc(time.Hour, ex.onTimer)
	ex.timer.Stop()
	ex.clientGone = ex.onClientGone
	return ex
}

// onClientGone runs when the client's request context ends: it aborts the dyno side.
func (ex *exchange) onClientGone() {
	ex.mu.Lock()
	ex.aborted = true
	upc := ex.upc
	ex.mu.Unlock()
	if upc != nil {
		upc.abort()
	}
}

// setUpstream records the dyno connection in use so a timeout or a vanished client can
// abort it; it reports false when the exchange was aborted already.
func (ex *exchange) setUpstream(c *upConn) bool {
	ex.mu.Lock()
	defer ex.mu.Unlock()
	ex.upc = c
	return c == nil || (ex.fired == phaseNone && !ex.aborted)
}

// onTimer runs when a timeout expires: it records which one and aborts the exchange.
func (ex *exchange) onTimer() {
	ex.mu.Lock()
	if ex.fired != phaseNone || ex.phase == phaseNone {
		ex.mu.Unlock()
		return
	}
	ex.fired = ex.phase
	close(ex.firedCh)
	upc, closer := ex.upc, ex.closer
	ex.mu.Unlock()
	if upc != nil {
		upc.abort()
	}
	if closer != nil {
		closer()
	}
}

func (ex *exchange) setPhase(p int, d time.Duration) {
	ex.mu.Lock()
	ex.phase = p
	ex.mu.Unlock()
	ex.timer.Reset(d)
}

func (ex *exchange) firedPhase() int {
	ex.mu.Lock()
	defer ex.mu.Unlock()
	return ex.fired
}

// finish stops the timer and reports whether the exchange may be pooled again.
func (ex *exchange) finish() bool {
	ex.timer.Stop()
	ex.mu.Lock()
	reusable := ex.fired == phaseNone && !ex.spoiled
	ex.phase, ex.upc, ex.closer, ex.aborted = phaseNone, nil, nil, false
	ex.mu.Unlock()
	ex.up = upstream{}
	ex.url = url.URL{}
	ex.reqID, ex.fwd, ex.dyno = "", "", ""
	ex.waited, ex.end = false, time.Time{}
	ex.connect, ex.status, ex.bytes = 0, 0, 0
	return reusable
}

// ServeHTTP routes one request by its Host to a dyno of the current table.
func (r *Router) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if r.handle(w, req) {
		// The response was cut short after its status went out: abort the client
		// connection (HTTP/1) or stream (HTTP/2) so the client sees the truncation
		// instead of a well-formed short response.
		panic(http.ErrAbortHandler)
	}
}

// handle is the one core both servers share (net/http's for TLS and HTTP/2 through
// ServeHTTP, the router's own for plain HTTP/1.1): it routes req and writes the
// response to w. It reports whether the client connection must be aborted because
// the response was cut short after its status went out.
func (r *Router) handle(w http.ResponseWriter, req *http.Request) bool {
	arrival := r.opts.Now()
	host := normalizeHost(req.Host)
	rt := r.table.Load().hosts[host]
	if rt == nil {
		r.logger.Debug("router: no such app", "host", host, "path", req.URL.Path)
		h := w.Header()
		h.Set("Content-Type", "text/plain; charset=utf-8")
		h.Set("Content-Length", strconv.Itoa(len(noSuchApp)))
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, noSuchApp)
		return false
	}
	ex := r.exchanges.Get().(*exchange)
	abort := ex.serve(w, req, rt, host, arrival)
	if ex.finish() {
		r.exchanges.Put(ex)
	}
	return abort
}

// serve proxies one request to a dyno of rt and writes its log line. It reports whether
// the client connection must be aborted.
func (ex *exchange) serve(w http.ResponseWriter, req *http.Request, rt *route, host string, arrival time.Time) (abort bool) {
	r := ex.r
	ex.arrival = arrival
	upgrade := ex.prepareHeaders(req, arrival)
	if len(rt.backends) == 0 {
		code := H14
		if rt.Crashed > 0 {
			code = H10
		}
		ex.fail(w, req, rt, host, code, false)
		return false
	}

	var stop func() bool
	if cw, ok := w.(interface{ AfterClientGone(func()) func() bool }); ok {
		stop = cw.AfterClientGone(ex.clientGone) // the router's own server
	} else {
		stop = context.AfterFunc(req.Context(), ex.clientGone)
	}
	defer func() {
		if !stop() {
			// The callback ran or is running: this exchange must not be reused.
			ex.mu.Lock()
			ex.spoiled = true
			ex.mu.Unlock()
		}
	}()
	ex.setPhase(phaseFirstByte, r.opts.FirstByteTimeout)

	var body *bodyReader
	if req.Body != nil && req.Body != http.NoBody && req.ContentLength != 0 {
		body = &bodyReader{src: req.Body, rc: http.NewResponseController(w), idle: r.opts.IdleTimeout, http1: req.ProtoMajor == 1}
		defer body.detach()
	}

	limit := int64(r.opts.BackendConcurrency)
	var done tried
	attempts := 0  // dynos tried, for maxAttempts
	triedHere := 0 // of them, dynos of rt
	// The arrival time serves the first pick; a pick after waiting or a refused
	// connection reads the clock again. (Each clock read is ~50 ns here; a request
	// used to make eight.)
	now := arrival.UnixNano()
	for {
		idx := rt.pick(now, limit, done)
		if idx < 0 {
			if triedHere >= len(rt.backends) {
				ex.fail(w, req, rt, host, H21, true)
				return false
			}
			if code := ex.wait(req, rt); code != "" {
				ex.fail(w, req, rt, host, code, false)
				return false
			}
			now = r.opts.Now().UnixNano()
			ex.waited = true
			continue
		}
		b := rt.backends[idx]
		ex.dyno = b.Dyno
		u, err := ex.send(req, b, body)
		if err != nil {
			if isRefused(err) && req.Context().Err() == nil && ex.firedPhase() == phaseNone {
				now = r.opts.Now().UnixNano()
				ex.waited = true
				rt.app.release(b)
				if b.pool.isClosed() {
					// A dyno that left the table is being stopped: no quarantine.
					r.logger.Debug("router: dyno is stopping; trying another", "app", rt.App, "env", rt.Env,
						"dyno", b.Dyno, "addr", b.Addr, "err", err)
				} else {
					b.quarantineUntil.Store(now + int64(r.opts.Quarantine))
					r.logger.Warn("router: dyno refused connection; quarantined", "app", rt.App, "env", rt.Env,
						"dyno", b.Dyno, "addr", b.Addr, "for", r.opts.Quarantine, "err", err)
				}
				done.add(idx)
				attempts++
				triedHere++
				if attempts >= maxAttempts {
					ex.fail(w, req, rt, host, H21, true)
					return false
				}
				if cur := r.table.Load().hosts[host]; cur != nil && cur != rt && len(cur.backends) > 0 {
					// The table changed since the request came (a deploy swapped in
					// new dynos and is stopping the old ones): nothing was sent, so
					// the retry goes to the current dynos.
					rt, done, triedHere = cur, 0, 0
				}
				continue
			}
			code := ex.classify(req, body)
			rt.app.release(b)
			ex.fail(w, req, rt, host, code, true)
			return false
		}
		abort = ex.respond(w, req, rt, host, u, upgrade)
		rt.app.release(b)
		return abort
	}
}

// wait queues the request until a dyno of its app has a free slot. It returns H11 when
// the app's backlog is full, H12 when the first-byte timeout expires while waiting and
// H27 when the client goes away.
func (ex *exchange) wait(req *http.Request, rt *route) Code {
	a := rt.app
	if a.waiting.Add(1) > int64(ex.r.opts.Backlog) {
		a.waiting.Add(-1)
		return H11
	}
	defer a.waiting.Add(-1)
	select {
	case <-a.wake:
		return ""
	case <-ex.firedCh:
		return H12
	case <-req.Context().Done():
		return H27
	}
}

// classify names the router error for a failed round trip that was not a refused
// connection.
func (ex *exchange) classify(req *http.Request, body *bodyReader) Code {
	if ex.firedPhase() == phaseFirstByte {
		return H12
	}
	if body != nil {
		if err := body.clientErr(); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return H28
			}
			return H27
		}
	}
	if req.Context().Err() != nil {
		return H27
	}
	if body != nil && body.midway() {
		return H18
	}
	return H13
}

// respond streams the dyno's response to the client. It reports whether the client
// connection must be aborted because the response was cut short.
func (ex *exchange) respond(w http.ResponseWriter, req *http.Request, rt *route, host string, u *upstream, upgrade bool) bool {
	r := ex.r
	resp := u.resp
	ex.setPhase(phaseIdle, r.opts.IdleTimeout)
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return ex.upgrade(w, req, rt, host, u, upgrade)
	}
	dst := w.Header()
	removeHopHeaders(resp.Header)
	// The dyno connection's header values are reused once it is back in the pool.
	// The router's own HTTP/1.1 writer sends the head at WriteHeader, before that;
	// net/http's may send it after the handler returns, so it gets copies.
	_, ownServer := w.(*h1Writer)
	for k, vv := range resp.Header {
		if !ownServer {
			vv = append([]string(nil), vv...)
		}
		dst[k] = vv
	}
	if len(resp.Trailer) > 0 {
		for k := range resp.Trailer {
			dst.Add("Trailer", k)
		}
	}
	ex.status = resp.StatusCode
	w.WriteHeader(resp.StatusCode)
	// Responses of unknown length (chunked, server-sent events) are flushed as each
	// piece arrives; sized ones go through the server's buffer.
	var flusher http.Flusher
	if resp.ContentLength < 0 {
		flusher, _ = w.(http.Flusher)
		if flusher != nil {
			flusher.Flush()
		}
	}
	readErr, writeErr := ex.copyBody(w, resp.Body, flusher)
	ex.end = r.opts.Now()
	if hw, ok := w.(*h1Writer); ok {
		hw.c.lastNow = ex.end
	}
	ex.setUpstream(nil)
	if readErr == nil && writeErr == nil {
		// Trailers (a map of their own per response) are set before the
		// connection, whose response state is reused, goes back to the pool.
		for k, vv := range resp.Trailer {
			dst[k] = vv
		}
	}
	u.release(r, readErr == nil && writeErr == nil, ex.end)
	var code Code
	switch {
	case writeErr != nil || (readErr != nil && req.Context().Err() != nil):
		code = H27
	case readErr != nil && ex.firedPhase() == phaseIdle:
		code = H15
	case readErr != nil:
		code = H18
	}
	if code != "" {
		if flusher, ok := w.(http.Flusher); ok && code != H27 {
			// Hand over what the dyno did send before the connection is cut.
			flusher.Flush()
		}
		if code == H27 {
			ex.status = H27.Status()
		}
		ex.log(req, rt, host, code, true)
		return true
	}
	ex.log(req, rt, host, "", true)
	return false
}

// copyBody copies the dyno's response body to the client, restarting the idle timer
// on every piece of data.
func (ex *exchange) copyBody(w http.ResponseWriter, body io.Reader, flusher http.Flusher) (readErr, writeErr error) {
	bufp := ex.r.buffers.Get().(*[]byte)
	defer ex.r.buffers.Put(bufp)
	buf := *bufp
	idle := ex.r.opts.IdleTimeout
	for {
		n, err := body.Read(buf)
		if n > 0 {
			if err == nil {
				// More is to come: the idle timeout starts again. (The last piece,
				// the only one of most responses, needs no timer update.)
				ex.timer.Reset(idle)
			}
			written, werr := w.Write(buf[:n])
			ex.bytes += int64(written)
			if werr != nil {
				return nil, werr
			}
			if flusher != nil {
				flusher.Flush()
			}
		}
		if err == io.EOF {
			return nil, nil
		}
		if err != nil {
			return err, nil
		}
	}
}

// fail answers with the error page for code and logs the error line.
func (ex *exchange) fail(w http.ResponseWriter, req *http.Request, rt *route, host string, code Code, tried bool) {
	ex.status = code.Status()
	// A client that went away gets no page; one that stalled (H28) still may read it.
	if code != H27 || req.Context().Err() == nil {
		ex.bytes = int64(writeError(w, code))
	}
	ex.log(req, rt, host, code, tried)
}

// isRefused reports whether err is a failure to connect, where nothing was sent and
// the request may go to another dyno.
func isRefused(err error) bool {
	var dialed errDialed
	return errors.As(err, &dialed)
}

// hopHeaders are meaningful for a single connection only and never forwarded.
var hopHeaders = [...]string{
	"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// removeHopHeaders deletes the hop-by-hop headers of h, including those named by its
// Connection header.
func removeHopHeaders(h http.Header) {
	for _, v := range h["Connection"] {
		for token := range strings.SplitSeq(v, ",") {
			token = strings.TrimSpace(token)
			switch {
			case token == "", strings.EqualFold(token, "close"), strings.EqualFold(token, "keep-alive"), strings.EqualFold(token, "upgrade"):
				// Handled by the fixed list below; no canonicalisation needed.
			default:
				delete(h, http.CanonicalHeaderKey(token))
			}
		}
	}
	if len(h) <= len(hopHeaders) {
		// A small map (a dyno's response has three or four headers) is cheaper to
		// walk once than to probe nine times.
		for k := range h {
			if isHopHeader(k) {
				delete(h, k)
			}
		}
		return
	}
	for _, k := range hopHeaders {
		delete(h, k)
	}
}

// isHopHeader reports whether the canonical header name k is one of hopHeaders.
func isHopHeader(k string) bool {
	switch k {
	case "Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate",
		"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

// isUpgrade reports whether the request asks to switch protocols (WebSocket) and
// returns the protocol.
func isUpgrade(h http.Header) (string, bool) {
	up := h["Upgrade"]
	if len(up) == 0 || up[0] == "" {
		return "", false
	}
	for _, v := range h["Connection"] {
		for token := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(token), "upgrade") {
				return up[0], true
			}
		}
	}
	return "", false
}

// prepareHeaders rewrites the request's headers in place into those the dyno gets:
// hop-by-hop headers removed, Heroku's forwarding headers set. The request is the
// router's own from here on (nothing else reads its headers), which saves a copy of
// the header map per request. It reports whether the request is an upgrade.
func (ex *exchange) prepareHeaders(req *http.Request, arrival time.Time) bool {
	h := req.Header
	proto, upgrade := "", false
	if req.ProtoMajor == 1 {
		proto, upgrade = isUpgrade(h)
	}
	removeHopHeaders(h)
	if upgrade {
		h["Connection"] = []string{"Upgrade"}
		h["Upgrade"] = []string{proto}
	}

	clientIP := req.RemoteAddr
	if host, _, err := net.SplitHostPort(clientIP); err == nil {
		clientIP = host
	}
	if prior := h["X-Forwarded-For"]; len(prior) > 0 {
		ex.fwd = strings.Join(prior, ", ") + ", " + clientIP
	} else {
		ex.fwd = clientIP
	}
	ex.xff[0] = ex.fwd
	h["X-Forwarded-For"] = ex.xff[:]

	if req.TLS != nil {
		ex.proto[0] = "https"
	} else {
		ex.proto[0] = "http"
	}
	h["X-Forwarded-Proto"] = ex.proto[:]

	if info, ok := req.Context().Value(listenerKey{}).(*listenerInfo); ok {
		h["X-Forwarded-Port"] = info.port
	} else if addr, ok := req.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		ex.port[0] = portOf(addr.String(), ex.proto[0])
		h["X-Forwarded-Port"] = ex.port[:]
	} else {
		ex.port[0] = portOf(req.Host, ex.proto[0])
		h["X-Forwarded-Port"] = ex.port[:]
	}

	ex.start[0] = strconv.FormatInt(arrival.UnixMilli(), 10)
	h["X-Request-Start"] = ex.start[:]

	if id := h["X-Request-Id"]; len(id) == 1 && validRequestID(id[0]) {
		ex.reqID = id[0]
	} else {
		ex.reqID = newRequestID()
		ex.requestID[0] = ex.reqID
		h["X-Request-Id"] = ex.requestID[:]
	}

	if prior := h["Via"]; len(prior) > 0 {
		h["Via"] = []string{strings.Join(prior, ", ") + ", " + via}
	} else {
		h["Via"] = ex.r.via
	}
	return upgrade
}

// validRequestID reports whether a client's X-Request-Id is kept: 20 to 200
// characters of [A-Za-z0-9+=/-], as Heroku accepts.
func validRequestID(id string) bool {
	if len(id) < 20 || len(id) > 200 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '+', c == '=', c == '/', c == '-':
		default:
			return false
		}
	}
	return true
}

// newRequestID returns a random version-4 UUID. It needs to be unique, not secret, so
// the fast runtime generator serves.
func newRequestID() string {
	const hexDigits = "0123456789abcdef"
	hi, lo := rand.Uint64(), rand.Uint64()
	var raw [16]byte
	for i := range 8 {
		raw[i] = byte(hi >> (56 - 8*i))
		raw[8+i] = byte(lo >> (56 - 8*i))
	}
	raw[6] = raw[6]&0x0f | 0x40
	raw[8] = raw[8]&0x3f | 0x80
	var out [36]byte
	j := 0
	for i, c := range raw {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out[j] = '-'
			j++
		}
		out[j], out[j+1] = hexDigits[c>>4], hexDigits[c&0x0f]
		j += 2
	}
	return string(out[:])
}

// bodyReader passes the client's request body to the dyno, streaming. It tells a
// client that stalls (read deadline: H28) or goes away (H27) from a dyno that hangs up
// mid-body (H18). The transport may still read it after the handler returned, so it
// locks its state and is detached at the end of the request.
type bodyReader struct {
	src   io.ReadCloser
	rc    *http.ResponseController
	idle  time.Duration
	http1 bool

	mu       sync.Mutex
	started  bool
	eof      bool
	err      error // from the client
	detached bool
}

func (b *bodyReader) Read(p []byte) (int, error) {
	b.mu.Lock()
	if b.detached {
		b.mu.Unlock()
		return 0, io.ErrUnexpectedEOF
	}
	b.started = true
	b.mu.Unlock()
	// A stalled client fails the read after the idle timeout instead of holding the
	// dyno's connection forever.
	_ = b.rc.SetReadDeadline(time.Now().Add(b.idle))
	n, err := b.src.Read(p)
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case err == io.EOF:
		b.eof = true
		if !b.detached {
			// The server reads ahead for the next request or a closed connection
			// once the body is done: that read must not time out.
			_ = b.rc.SetReadDeadline(time.Time{})
		}
	case err != nil:
		b.err = err
	}
	return n, err
}

// Close leaves the client's body to the server, which closes it after the handler:
// the transport closes request bodies even on a refused connection, when the body is
// still wanted for a retry.
func (b *bodyReader) Close() error { return nil }

func (b *bodyReader) clientErr() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

// midway reports whether the body was partly sent.
func (b *bodyReader) midway() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.started && !b.eof
}

// detach stops the body from touching the client connection once the handler is done.
// A body left unfinished gets an expired read deadline on HTTP/1: the server would
// otherwise wait to discard its rest (from a client that may be stalled) before
// answering, and with the deadline it answers and closes the connection instead.
func (b *bodyReader) detach() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.detached && !b.eof && b.http1 {
		_ = b.rc.SetReadDeadline(time.Now())
	}
	b.detached = true
}
