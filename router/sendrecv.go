package router

import (
	"io"
	"net"
	"os"
	"syscall"
)

// sendRecvConn is the net.Conn under a dyno connection's bufio pair. For a request
// without a body the router holds the request head back at Flush and sends it from
// the first Read of the response, in one step with waiting for that response: the
// head is written and the goroutine parks until the dyno's answer is readable, then
// reads it. A plain write then read always tries the read at once, before the dyno
// could have answered, and gets EAGAIN: counted with perf on BenchmarkCompareWrk,
// that futile read was one of the router's six syscalls per request against nginx's
// four (nginx reads only when epoll says so).
//
// Waiting without reading first is safe only because nothing can be readable before
// the request went out: the runtime forgets a readiness event that came before the
// wait (internal/poll resets it), and here the wait is set up before the write, so
// the answer's event cannot be missed. Anything else the dyno sends (a close, a
// reset) is also an event after the write, and a dyno that sends nothing is cut off by
// the first-byte timer, which sets the deadline the wait honours.
type sendRecvConn struct {
	net.Conn
	raw syscall.RawConn // nil when the connection has no file descriptor of its own

	// hold makes the next Write keep its bytes in pending instead of sending them.
	hold    bool
	pending []byte

	step   sendRecvStep
	stepFn func(fd uintptr) bool // c.onReadable, bound once
}

func newSendRecvConn(conn net.Conn) *sendRecvConn {
	c := &sendRecvConn{Conn: conn}
	c.stepFn = c.onReadable
	if sc, ok := conn.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			c.raw = raw
		}
	}
	return c
}

// holdNextWrite makes the next Write wait for the next Read. It reports false when
// the connection cannot do that, and the write goes out at once.
func (c *sendRecvConn) holdNextWrite() bool {
	c.hold = c.raw != nil
	return c.hold
}

func (c *sendRecvConn) Write(p []byte) (int, error) {
	if c.hold {
		c.hold = false
		c.pending = append(c.pending[:0], p...)
		return len(p), nil
	}
	return c.Conn.Write(p)
}

func (c *sendRecvConn) Read(p []byte) (int, error) {
	if len(c.pending) == 0 {
		return c.Conn.Read(p)
	}
	return c.sendThenRead(p)
}

// sendThenRead writes the held bytes and reads the answer into p.
func (c *sendRecvConn) sendThenRead(p []byte) (int, error) {
	st := &c.step
	*st = sendRecvStep{out: c.pending, p: p}
	c.pending = c.pending[:0]
	err := c.raw.Read(c.stepFn)
	out, sent, n, opErr, unsent := st.out, st.sent, st.n, st.opErr, st.unsent
	*st = sendRecvStep{}
	if err != nil {
		return 0, err
	}
	if opErr != nil {
		return 0, &net.OpError{Op: "read", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: opErr}
	}
	if unsent {
		if _, err := c.Conn.Write(out[sent:]); err != nil {
			return 0, err
		}
		return c.Conn.Read(p)
	}
	if n < 0 {
		return 0, io.EOF
	}
	return n, nil
}

// sendRecvStep is the state of one sendThenRead, kept in the connection so that the
// callback handed to the runtime is bound once and nothing is allocated per request.
type sendRecvStep struct {
	out    []byte // the held bytes
	sent   int    // how many of them went out
	p      []byte // where the answer goes
	n      int    // bytes read into p; -1 at end of file
	opErr  error  // of the write or the read
	unsent bool   // the socket buffer was full: the rest goes out by Write
}

// onReadable is called by the runtime first at once, then each time the connection
// is readable: the first call sends, the others read. It reports whether it is done.
func (c *sendRecvConn) onReadable(fd uintptr) bool {
	st := &c.step
	if st.sent < len(st.out) {
		for st.sent < len(st.out) {
			m, err := syscall.Write(int(fd), st.out[st.sent:])
			if m > 0 {
				st.sent += m
			}
			switch {
			case err == syscall.EINTR:
				continue
			case err == syscall.EAGAIN:
				st.unsent = true
				return true
			case err != nil:
				st.opErr = os.NewSyscallError("write", err)
				return true
			}
		}
		return false // wait until the answer is readable
	}
	m, err := syscall.Read(int(fd), st.p)
	switch {
	case err == syscall.EINTR || err == syscall.EAGAIN:
		return false
	case err != nil:
		st.opErr = os.NewSyscallError("read", err)
	case m == 0 && len(st.p) > 0:
		st.n = -1
	default:
		st.n = m
	}
	return true
}
