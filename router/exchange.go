package router

import (
	"net/url"
	"sync"
	"time"
)

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
