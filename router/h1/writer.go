package h1

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http/httpguts"
)

// Writer is the server's http.ResponseWriter. It also implements http.Flusher,
// http.Hijacker and SetReadDeadline for http.ResponseController, and
// AfterClientGone and ResponseEnded for a handler that knows this server. It sends
// the response head at WriteHeader, so header values need not outlive that call.
type Writer struct {
	c      *clientConn
	req    *http.Request
	header http.Header

	mu            sync.Mutex // orders 100 Continue against the response head
	wroteHeader   bool
	status        int
	noBody        bool
	chunked       bool
	closeAfter    bool
	contentLength int64 // -1: unknown
	written       int64
	hijacked      bool
	// scratch formats numbers and dates without allocating (a local array would
	// escape through bufio.Writer.Write).
	scratch [64]byte
}

func (w *Writer) reset(req *http.Request) {
	clear(w.header)
	w.req = req
	w.wroteHeader, w.status, w.noBody, w.chunked, w.hijacked = false, 0, false, false, false
	w.closeAfter = req.Close
	w.contentLength, w.written = -1, 0
}

// Header returns the response headers to send.
func (w *Writer) Header() http.Header { return w.header }

// sendContinue answers Expect: 100-continue, before the first body read, unless the
// response went out already.
func (w *Writer) sendContinue() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.wroteHeader {
		_, _ = w.c.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
		_ = w.c.bw.Flush()
	}
}

// WriteHeader writes the response head into the connection's buffer: the framing
// (Content-Length, chunked, or close-delimited for HTTP/1.0), Connection and Date.
func (w *Writer) WriteHeader(status int) {
	if w.wroteHeader || w.hijacked {
		return
	}
	if w.c.expect {
		w.mu.Lock()
		defer w.mu.Unlock()
	}
	w.wroteHeader, w.status = true, status
	h, req := w.header, w.req
	w.noBody = req.Method == http.MethodHead || status == http.StatusNoContent || status == http.StatusNotModified || status < 200
	if cl := h["Content-Length"]; len(cl) == 1 {
		if n, err := strconv.ParseInt(cl[0], 10, 64); err == nil && n >= 0 {
			w.contentLength = n
		} else {
			delete(h, "Content-Length")
		}
	} else if len(cl) > 1 {
		delete(h, "Content-Length")
	}
	if w.contentLength < 0 && !w.noBody {
		if req.ProtoMinor >= 1 {
			w.chunked = true
		} else {
			w.closeAfter = true
		}
	}
	if req.Body != http.NoBody && !w.c.body.eof.Load() {
		// The body is not read to its end (the dyno answered early): the connection
		// will close after the response.
		w.closeAfter = true
	}
	if w.c.s.closing.Load() {
		w.closeAfter = true
	}
	bw := w.c.bw
	num := w.scratch[:0]
	bw.WriteString("HTTP/1.1 ")
	bw.Write(strconv.AppendInt(num, int64(status), 10))
	bw.WriteByte(' ')
	if text := http.StatusText(status); text != "" {
		bw.WriteString(text)
	} else {
		bw.WriteString("status code ")
		bw.Write(strconv.AppendInt(num, int64(status), 10))
	}
	bw.WriteString("\r\n")
	for k, vv := range h {
		for _, v := range vv {
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	if w.chunked {
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	switch {
	case w.closeAfter:
		bw.WriteString("Connection: close\r\n")
	case req.ProtoMinor == 0:
		bw.WriteString("Connection: keep-alive\r\n")
	}
	if _, ok := h["Date"]; !ok {
		bw.WriteString("Date: ")
		bw.WriteString(w.c.s.date(time.Now()))
		bw.WriteString("\r\n")
	}
	bw.WriteString("\r\n")
}

// Write writes body bytes: as they are, or as one chunk.
func (w *Writer) Write(p []byte) (int, error) {
	if w.hijacked {
		return 0, http.ErrHijacked
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.noBody || len(p) == 0 {
		return len(p), nil
	}
	var err error
	n := len(p)
	if w.contentLength >= 0 && w.written+int64(n) > w.contentLength {
		n, err = int(w.contentLength-w.written), http.ErrContentLength
		p = p[:n]
	}
	bw := w.c.bw
	if w.chunked {
		bw.Write(strconv.AppendInt(w.scratch[:0], int64(n), 16))
		bw.WriteString("\r\n")
	}
	written, werr := bw.Write(p)
	if w.chunked {
		_, werr = bw.WriteString("\r\n")
	}
	w.written += int64(written)
	if werr != nil {
		return written, werr
	}
	return written, err
}

// Flush sends what is buffered to the client now (streaming responses).
func (w *Writer) Flush() {
	if w.hijacked {
		return
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	_ = w.c.bw.Flush()
}

// finish ends the response (the last chunk) and reports whether it is complete: a
// response shorter than its Content-Length leaves the connection unusable.
func (w *Writer) finish() bool {
	if !w.wroteHeader {
		w.header.Set("Content-Length", "0")
		w.WriteHeader(http.StatusOK)
	}
	if w.chunked {
		w.writeTrailers()
	}
	return w.noBody || w.contentLength < 0 || w.written == w.contentLength
}

// Hijack hands the connection over (WebSocket after 101): the server forgets it.
func (w *Writer) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.hijacked {
		return nil, nil, http.ErrHijacked
	}
	if w.wroteHeader {
		return nil, nil, errors.New("router: hijack after the response head was written")
	}
	c := w.c
	if w.req.Body != http.NoBody && !c.body.eof.Load() {
		// The request body is still being read for the dyno from this connection:
		// handed over as well, the client's bytes would go to both readers.
		return nil, nil, errors.New("router: hijack before the request body was read to its end")
	}
	c.stopWatch()
	w.hijacked = true
	c.s.forget(c)
	_ = c.conn.SetDeadline(time.Time{})
	return c.conn, bufio.NewReadWriter(c.br, c.bw), nil
}

// ResponseEnded tells the server when the handler's response ended, by the
// handler's own clock read: the connection refreshes its idle deadline from it
// instead of reading the clock once more per request.
func (w *Writer) ResponseEnded(at time.Time) { w.c.lastNow = at }

// SetReadDeadline sets the client connection's read deadline (request body reads).
func (w *Writer) SetReadDeadline(t time.Time) error {
	return w.c.conn.SetReadDeadline(t)
}

// writeTrailers ends a chunked response: the last chunk, then the trailer fields
// the response declared in its Trailer header and set after the body.
func (w *Writer) writeTrailers() {
	bw := w.c.bw
	bw.WriteString("0\r\n")
	for _, v := range w.header["Trailer"] {
		for k := range strings.SplitSeq(v, ",") {
			k = http.CanonicalHeaderKey(strings.TrimSpace(k))
			for _, tv := range w.header[k] {
				if httpguts.ValidHeaderFieldName(k) && httpguts.ValidHeaderFieldValue(tv) {
					bw.WriteString(k)
					bw.WriteString(": ")
					bw.WriteString(tv)
					bw.WriteString("\r\n")
				}
			}
		}
	}
	bw.WriteString("\r\n")
}
