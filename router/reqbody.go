package router

import (
	"io"
	"net/http"
	"sync"
	"time"
)

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

// finished reports whether the body was read to its end.
func (b *bodyReader) finished() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.eof
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
