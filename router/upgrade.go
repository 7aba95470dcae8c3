package router

import (
	"io"
	"net/http"
)

// upgrade completes a protocol switch (WebSocket): it takes over the client's
// connection, relays the dyno's 101 response and then copies bytes both ways until
// either side closes or the connection idles for Options.IdleTimeout (H15).
// body is the client's request body, nil when it has none.
func (ex *exchange) upgrade(w http.ResponseWriter, req *http.Request, rt *route, host string, u *upstream, asked bool, body *bodyReader) bool {
	resp := u.resp
	// The connection now carries the new protocol: it never goes back to the pool.
	ex.setUpstream(nil)
	backConn := u.c.conn
	defer backConn.Close()
	if !asked {
		// A dyno switching protocols unasked sent nothing a client could use.
		ex.fail(w, req, rt, host, H13, true)
		return false
	}
	if body != nil && !body.finished() {
		// The client's request body is still being read for the dyno from the client
		// connection: handed over as well, the client's next bytes would go to both
		// the relay and the body's reader. (The own server refuses such a Hijack;
		// net/http's allows it, so the check is here, for both.) WebSocket
		// handshakes carry no body.
		ex.fail(w, req, rt, host, H13, true)
		return false
	}
	// Bytes the dyno sent right after its 101 sit in the connection's buffer.
	fromDynoReader := io.MultiReader(io.LimitReader(u.c.br, int64(u.c.br.Buffered())), backConn)
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		ex.r.logger.Warn("router: cannot take over the client connection for an upgrade", "app", rt.App, "env", rt.Env, "err", err)
		ex.fail(w, req, rt, host, H13, true)
		return false
	}
	defer conn.Close()

	_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\n")
	_ = resp.Header.Write(brw)
	_, _ = brw.WriteString("\r\n")
	if err := brw.Flush(); err != nil {
		ex.status = H27.Status()
		ex.log(req, rt, host, H27, true)
		return false
	}
	ex.status = http.StatusSwitchingProtocols
	ex.log(req, rt, host, "", true)

	closeBoth := func() {
		_ = conn.Close()
		_ = backConn.Close()
	}
	ex.mu.Lock()
	ex.closer = closeBoth
	ex.mu.Unlock()
	ex.timer.Reset(ex.r.opts.IdleTimeout)

	fromDyno := make(chan struct{})
	go func() {
		defer close(fromDyno)
		ex.relay(conn, fromDynoReader)
		closeBoth()
	}()
	// Bytes the client sent right after its upgrade request sit in the server's buffer.
	if n := brw.Reader.Buffered(); n > 0 {
		pending, _ := brw.Reader.Peek(n)
		_, _ = backConn.Write(pending)
	}
	ex.relay(backConn, conn)
	closeBoth()
	<-fromDyno
	if ex.firedPhase() == phaseIdle {
		ex.log(req, rt, host, H15, true)
	}
	return false
}

// relay copies src to dst, restarting the idle timer on every piece of data.
func (ex *exchange) relay(dst io.Writer, src io.Reader) {
	bufp := ex.r.buffers.Get().(*[]byte)
	defer ex.r.buffers.Put(bufp)
	buf := *bufp
	idle := ex.r.opts.IdleTimeout
	for {
		n, err := src.Read(buf)
		if n > 0 {
			ex.timer.Reset(idle)
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
