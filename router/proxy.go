package router

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/manifold-paas/manifold/router/h1"
)

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
	if cw, ok := w.(clientGoneNotifier); ok {
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
		abort = ex.respond(w, req, rt, host, u, upgrade, body)
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
		if req.Context().Err() != nil {
			ex.awaitBodySender()
		}
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

// awaitBodySender waits, up to IdleTimeout, for the goroutine that sends the client's
// body to the dyno to stop. net/http cancels the request context as soon as a read
// of the client connection fails, a body read that timed out included, and so
// before that read hands its error to the bodyReader: without the wait, a client
// whose body stalled (H28) was taken for one that went away (H27) and got net/http's
// empty 200 instead of 499. A cancelled context means the read in flight is failing,
// so the wait is short.
func (ex *exchange) awaitBodySender() {
	done := ex.up.bodyDone
	if done == nil {
		return
	}
	bound := time.NewTimer(ex.r.opts.IdleTimeout)
	defer bound.Stop()
	select {
	case <-done:
	case <-bound.C:
	}
}

// respond streams the dyno's response to the client. It reports whether the client
// connection must be aborted because the response was cut short.
func (ex *exchange) respond(w http.ResponseWriter, req *http.Request, rt *route, host string, u *upstream, upgrade bool, body *bodyReader) bool {
	r := ex.r
	resp := u.resp
	ex.setPhase(phaseIdle, r.opts.IdleTimeout)
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return ex.upgrade(w, req, rt, host, u, upgrade, body)
	}
	dst := w.Header()
	removeHopHeaders(resp.Header)
	// The dyno connection's header values are reused once it is back in the pool.
	// The router's own HTTP/1.1 writer sends the head at WriteHeader, before that;
	// net/http's may send it after the handler returns, so it gets copies.
	hw, ownServer := w.(*h1.Writer)
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
	if ownServer {
		hw.ResponseEnded(ex.end)
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

// clientGoneNotifier is what the router's own server (h1.Writer) offers instead of a
// request context to watch: a callback for a vanished client without
// context.AfterFunc's per-request allocations.
type clientGoneNotifier interface {
	AfterClientGone(f func()) (stop func() bool)
}

// The own server's writer is used through these; a changed signature must fail the
// build, not silently take the slow path.
var (
	_ clientGoneNotifier                            = (*h1.Writer)(nil)
	_ http.Flusher                                  = (*h1.Writer)(nil)
	_ http.Hijacker                                 = (*h1.Writer)(nil)
	_ interface{ SetReadDeadline(time.Time) error } = (*h1.Writer)(nil)
)
