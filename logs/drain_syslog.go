package logs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// Batch limits of a syslog write: one write per batch keeps syscalls few under load
// while a line still goes out at once when the stream is quiet.
const (
	syslogBatchLines = 512
	syslogBatchBytes = 256 << 10
)

// errPeerClosed says the receiver closed the connection (or it broke) before a write.
var errPeerClosed = errors.New("receiver closed the connection")

// runSyslog sends the queue over TCP or TLS as octet-counted RFC 5424 frames. A batch
// leaves the buffer only once written whole; after a failed write the connection is
// dropped and the whole batch is written again on the next one, so a receiver sees
// every frame complete (a frame cut by a broken connection is lost with that
// connection, never spliced into the next). Delivery is at least once.
func (d *drain) runSyslog() {
	var (
		conn    net.Conn
		dead    chan struct{} // closed when the receiver closes conn
		batch   []Line
		buf     []byte
		backoff = firstBackoff
		ok      bool
	)
	hangUp := func() {
		if conn != nil {
			_ = conn.Close() // the receiver is gone or broken; nothing to report
			conn = nil
		}
	}
	defer hangUp()
	for {
		if len(batch) == 0 {
			// A receiver that leaves while the stream is quiet shows as disconnected
			// at once; the next line reconnects.
			if !d.wait(dead, func() { hangUp(); d.failed(errPeerClosed) }) {
				return
			}
			batch = d.take(batch[:0], syslogBatchLines, syslogBatchBytes)
		}
		if conn == nil {
			c, err := d.dial()
			if err != nil {
				if d.ctx.Err() != nil {
					return
				}
				d.failed(fmt.Errorf("connect: %w", err))
				if backoff, ok = d.sleep(backoff); !ok {
					return
				}
				continue
			}
			conn, dead = c, make(chan struct{})
			d.p.wg.Add(1)
			go d.watch(c, dead)
			d.setConnected(true)
		}
		select {
		case <-dead:
			hangUp()
			d.failed(errPeerClosed)
			continue // reconnect at once: the receiver may be restarting
		default:
		}

		buf = buf[:0]
		for _, line := range batch {
			buf = AppendFrame(buf, line)
		}
		if err := conn.SetWriteDeadline(time.Now().Add(d.p.opts.IOTimeout)); err != nil {
			hangUp()
			d.failed(fmt.Errorf("set write deadline: %w", err))
			continue
		}
		stop := afterDone(d, conn)
		_, err := conn.Write(buf)
		stop()
		if err != nil {
			hangUp()
			if d.ctx.Err() != nil {
				return
			}
			d.failed(fmt.Errorf("write: %w", err))
			if backoff, ok = d.sleep(backoff); !ok {
				return
			}
			continue
		}
		d.delivered(batch, true)
		clear(batch) // let the texts be collected
		batch = batch[:0]
		backoff = firstBackoff
	}
}

// afterDone unblocks a write on conn when the drain stops; the returned func cancels
// that.
func afterDone(d *drain, conn net.Conn) (stop func() bool) {
	return context.AfterFunc(d.ctx, func() { _ = conn.SetWriteDeadline(time.Unix(1, 0)) })
}

// watch reads conn until it fails: syslog receivers never write, so a read that
// returns means the receiver closed or reset the connection. It learns that before
// the next write, instead of after writing a batch into a dead socket.
func (d *drain) watch(conn net.Conn, dead chan<- struct{}) {
	defer d.p.wg.Done()
	defer close(dead)
	_, _ = io.Copy(io.Discard, conn) // returns when the peer or hangUp closes conn
}
