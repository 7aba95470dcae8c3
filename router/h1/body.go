package h1

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"sync"
	"sync/atomic"
)

// requestBody is a request body read from the client connection: Content-Length bytes or
// chunked. It is reused for every request of the connection.
type requestBody struct {
	c *clientConn

	mu        sync.Mutex // held during reads, so finish waits for one in progress
	remaining int64
	chunked   io.Reader // nil for a sized body
	closed    bool
	continued bool        // 100 Continue was sent, or not needed
	eof       atomic.Bool // read by the response writer without the lock
	err       error
}

func (b *requestBody) reset(n int64, chunked bool) {
	b.remaining, b.chunked, b.closed, b.err = n, nil, false, nil
	b.continued = !b.c.expect
	b.eof.Store(false)
	if chunked {
		b.chunked = httputil.NewChunkedReader(b.c.br)
	}
}

func (b *requestBody) Read(p []byte) (int, error) {
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

// readTrailer consumes a chunked body's trailer section (dropped: the
// handler never sees request trailers) up to its empty line.
func (b *requestBody) readTrailer() error {
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
func (b *requestBody) Close() error { return nil }

// finish closes the body for good once the request is answered and reports whether
// it was read to its end (else the connection cannot carry another request).
func (b *requestBody) finish() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	return b.eof.Load()
}
