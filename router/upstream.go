package router

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// The router speaks HTTP/1.1 to dynos itself instead of through http.Transport: the
// handler's goroutine writes the request and reads the response on a pooled
// connection, where the transport hands each request to a writer and a reader
// goroutine per connection. On a busy router those hand-offs were a tenth of the CPU
// (pprof of BenchmarkCompareWrk).

const (
	// upstreamIdleExpiry closes pooled connections idle this long: shorter than the
	// keep-alive timeouts of common app servers (Node 5 s), so the router rarely
	// writes to a connection the dyno is closing.
	upstreamIdleExpiry = 4 * time.Second
	// maxIdlePerDyno bounds the pool of one dyno.
	maxIdlePerDyno  = 1024
	upstreamBufSize = 16 << 10
)

// aLongTimeAgo is a deadline that makes blocked reads and writes fail at once.
var aLongTimeAgo = time.Unix(1, 0)

// upConn is one keep-alive connection to a dyno.
type upConn struct {
	conn      net.Conn
	sr        *sendRecvConn // conn, sending a held request with the response's first read
	br        *bufio.Reader
	bw        *bufio.Writer
	idleSince time.Time
	up        upResponse // the response being read, reused (upresp.go)
}

// abort makes the connection's blocked reads and writes fail now.
func (c *upConn) abort() { _ = c.conn.SetDeadline(aLongTimeAgo) }

// connPool is a dyno's idle connections, most recently used last.
type connPool struct {
	mu     sync.Mutex
	idle   []*upConn
	closed bool
}

// get returns an idle connection that has not expired, or nil.
func (p *connPool) get(now time.Time) *upConn {
	var expired []*upConn
	p.mu.Lock()
	var c *upConn
	for len(p.idle) > 0 {
		last := p.idle[len(p.idle)-1]
		p.idle[len(p.idle)-1] = nil
		p.idle = p.idle[:len(p.idle)-1]
		if now.Sub(last.idleSince) < upstreamIdleExpiry {
			c = last
			break
		}
		expired = append(expired, last)
	}
	p.mu.Unlock()
	for _, e := range expired {
		_ = e.conn.Close()
	}
	return c
}

// put returns a connection for reuse, or closes it when the pool is full or closed.
func (p *connPool) put(c *upConn, now time.Time) {
	c.idleSince = now
	p.mu.Lock()
	if p.closed || len(p.idle) >= maxIdlePerDyno {
		p.mu.Unlock()
		_ = c.conn.Close()
		return
	}
	p.idle = append(p.idle, c)
	p.mu.Unlock()
}

// isClosed reports whether the dyno left the table.
func (p *connPool) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// close closes the idle connections and every connection put back later: the dyno
// left the table.
func (p *connPool) close() {
	p.mu.Lock()
	idle := p.idle
	p.idle, p.closed = nil, true
	p.mu.Unlock()
	for _, c := range idle {
		_ = c.conn.Close()
	}
}

// dial opens a new connection to the dyno.
func (r *Router) dial(addr string) (*upConn, error) {
	conn, err := r.dialer.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	sr := newSendRecvConn(conn)
	return &upConn{
		conn: conn,
		sr:   sr,
		br:   bufio.NewReaderSize(sr, upstreamBufSize),
		bw:   bufio.NewWriterSize(sr, upstreamBufSize),
	}, nil
}

// upstream is one request's use of a dyno connection.
type upstream struct {
	c        *upConn
	pool     *connPool
	bodyDone chan error // nil without a request body
	resp     *http.Response
}

// release puts the connection back when the exchange left it clean (response read to
// its end, request body fully sent, no Connection: close), and closes it otherwise.
// now is the time the exchange ended, or zero.
func (u *upstream) release(r *Router, clean bool, now time.Time) {
	if clean && u.bodyDone != nil {
		select {
		case err := <-u.bodyDone:
			clean = err == nil
		default:
			clean = false // the dyno answered before reading the whole body
		}
	}
	// Bytes already buffered after the response are ones its framing did not account
	// for (a body on a 204 or HEAD response): read as the next request's response,
	// they would answer another client, so the connection is not reused.
	if clean && u.resp != nil && !u.resp.Close && u.c.br.Buffered() == 0 &&
		(u.resp.ContentLength >= 0 || chunked(u.resp.TransferEncoding) || bodyless(u.resp)) {
		_ = u.c.conn.SetDeadline(time.Time{})
		if now.IsZero() {
			now = r.opts.Now()
		}
		u.pool.put(u.c, now)
		return
	}
	_ = u.c.conn.Close()
}

func chunked(te []string) bool { return len(te) > 0 && te[0] == "chunked" }

func bodyless(resp *http.Response) bool {
	return resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusNotModified ||
		(resp.Request != nil && resp.Request.Method == http.MethodHead)
}

// errDialed marks a failure to connect (nothing was sent): the request may go to
// another dyno.
type errDialed struct{ err error }

func (e errDialed) Error() string { return e.err.Error() }
func (e errDialed) Unwrap() error { return e.err }

// send writes the request to dyno b and reads the response head. A pooled
// connection that turns out closed by the dyno before answering is replaced by a new
// one once, for requests that are safe to repeat (as http.Transport does).
func (ex *exchange) send(req *http.Request, b *backend, body *bodyReader) (*upstream, error) {
	r := ex.r
	c := b.pool.get(ex.arrival)
	reused := c != nil
	for {
		if c == nil {
			var err error
			if c, err = r.dial(b.Addr); err != nil {
				return nil, errDialed{err}
			}
			ex.connect = r.opts.Now().Sub(ex.arrival)
		} else if ex.waited {
			ex.connect = r.opts.Now().Sub(ex.arrival)
		}
		// A pooled connection taken at once connects in no time: connect=0ms.
		if !ex.setUpstream(c) {
			_ = c.conn.Close()
			return nil, errAborted
		}
		u := &ex.up
		*u = upstream{c: c, pool: &b.pool}
		err := writeHead(c.bw, req, body)
		if err == nil && body == nil {
			// The head goes out with the first read of the response (sendrecv.go).
			c.sr.holdNextWrite()
			err = c.bw.Flush()
			c.sr.hold = false
		}
		if err == nil && body != nil {
			if err = c.bw.Flush(); err == nil {
				u.bodyDone = make(chan error, 1)
				go sendBody(c, body, req.ContentLength < 0, &r.buffers, u.bodyDone)
			}
		}
		if err == nil {
			// Waiting for the first byte apart tells a connection the dyno had
			// closed (EOF before any byte) from a response cut short.
			if _, err = c.br.Peek(1); err == nil {
				u.resp, err = c.readResponse(req)
				if err != nil {
					err = fmt.Errorf("read response head: %w", errNotStale{err})
				}
			}
		}
		if err == nil {
			return u, nil
		}
		_ = c.conn.Close()
		ex.setUpstream(nil)
		if reused && body == nil && replayable(req) && staleConnError(err) && ex.firedPhase() == phaseNone && req.Context().Err() == nil {
			if b.pool.isClosed() {
				// The dyno left the table and is being stopped (its server closes
				// idle connections, this one with the request unread): the request
				// goes to a dyno of the current table, as after a refused connection.
				return nil, errDialed{fmt.Errorf("dyno %s is stopping: %w", b.Dyno, err)}
			}
			c, reused = nil, false
			continue
		}
		return nil, err
	}
}

var errAborted = errors.New("router: request aborted")

// errNotStale wraps failures after the dyno's first byte, which never mean a stale
// connection.
type errNotStale struct{ err error }

func (e errNotStale) Error() string { return e.err.Error() }

// staleConnError reports whether a reused connection failed the way a connection the
// dyno had already closed does: no response byte at all.
func staleConnError(err error) bool {
	var late errNotStale
	if errors.As(err, &late) {
		return false
	}
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// replayable reports whether the request may be sent twice.
func replayable(req *http.Request) bool {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	_, ok := req.Header["Idempotency-Key"]
	return ok
}

// writeHead writes the request line and headers (already rewritten for the dyno).
func writeHead(bw *bufio.Writer, req *http.Request, body *bodyReader) error {
	uri := req.RequestURI
	if uri == "" || uri[0] != '/' && uri != "*" {
		uri = req.URL.RequestURI()
	}
	bw.WriteString(req.Method)
	bw.WriteByte(' ')
	bw.WriteString(uri)
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(req.Host)
	bw.WriteString("\r\n")
	for k, vv := range req.Header {
		switch k {
		case "Host", "Content-Length", "Expect":
			continue
		}
		for _, v := range vv {
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	switch {
	case body != nil && req.ContentLength > 0:
		var num [20]byte
		bw.WriteString("Content-Length: ")
		bw.Write(strconv.AppendInt(num[:0], req.ContentLength, 10))
		bw.WriteString("\r\n")
	case body != nil:
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	case req.Method == http.MethodPost || req.Method == http.MethodPut || req.Method == http.MethodPatch:
		bw.WriteString("Content-Length: 0\r\n")
	}
	_, err := bw.WriteString("\r\n")
	return err
}

// sendBody streams the client's body to the dyno, flushing each piece as it comes,
// chunk-encoded when its length is unknown. It owns nothing of the exchange, which may
// be finished (and pooled) before it returns.
func sendBody(c *upConn, body *bodyReader, chunkedBody bool, buffers *sync.Pool, done chan<- error) {
	bufp := buffers.Get().(*[]byte)
	defer buffers.Put(bufp)
	buf := *bufp
	var err error
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			if chunkedBody {
				var size [16]byte
				c.bw.Write(strconv.AppendInt(size[:0], int64(n), 16))
				c.bw.WriteString("\r\n")
			}
			c.bw.Write(buf[:n])
			if chunkedBody {
				c.bw.WriteString("\r\n")
			}
			if err = c.bw.Flush(); err != nil {
				break
			}
		}
		if rerr == io.EOF {
			if chunkedBody {
				c.bw.WriteString("0\r\n\r\n")
				err = c.bw.Flush()
			}
			break
		}
		if rerr != nil {
			err = rerr
			// The client failed: stop the exchange on the dyno side too.
			c.abort()
			break
		}
	}
	done <- err
}
