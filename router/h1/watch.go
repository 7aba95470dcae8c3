package h1

import "time"

// Watcher states of a connection (clientConn.wstate).
const (
	watchOff      = iota // no request, or the request finished
	watchArmed           // the request's watch timer is pending
	watchWaitBody        // the timer fired while the request body was still being read
	watchRunning         // a goroutine reads the connection
	watchStopping        // the request is done; the reading goroutine is being stopped
	watchDone            // the reading goroutine returned
)

// armWatch starts the request's watch timer.
func (c *clientConn) armWatch(hasBody bool) {
	c.wmu.Lock()
	c.wstate, c.bodyOpen = watchArmed, hasBody
	c.wmu.Unlock()
	c.watchTimer.Reset(watchDelay)
}

// onWatchTimer runs when a request is still in flight after watchDelay: from now on
// the connection is read so that a client that goes away is noticed.
func (c *clientConn) onWatchTimer() {
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
func (c *clientConn) bodyEnded() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.bodyOpen = false
	if c.wstate == watchWaitBody && c.br.Buffered() == 0 {
		c.startWatchLocked()
	}
}

func (c *clientConn) startWatchLocked() {
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
func (c *clientConn) watch(done chan struct{}) {
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
func (w *Writer) AfterClientGone(f func()) (stop func() bool) {
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

func (c *clientConn) stopGone() bool {
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
func (c *clientConn) stopWatch() {
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

// aLongTimeAgo is a deadline that makes a blocked read fail at once.
var aLongTimeAgo = time.Unix(1, 0)
