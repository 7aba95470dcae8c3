package router

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"testing"

	"golang.org/x/net/http/httpguts"
)

// FuzzDynoResponse feeds arbitrary bytes as a dyno's answer to the response parser
// (upresp.go) and reads the body to its end: it must never panic nor loop, and a head
// it accepts must be one the router can pass on (valid header names and values, a
// three-digit status, a non-negative length when sized).
func FuzzDynoResponse(f *testing.F) {
	seeds := []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.0 200 OK\r\n\r\nuntil close",
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\nx",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n2\r\nok\r\n0\r\nX-Sum: 42\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n2\r\nok\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nx-app: a\r\n  b\r\ncontent-length: 0\r\n\r\n",
		"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
		"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
		"HTTP/1.1 200 OK\nContent-Length: 1\n\nx",
		"HTTP/1.1 200 OK\r\nX-A: a\rb\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
	}
	for _, s := range seeds {
		f.Add([]byte(s), false)
	}
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"), true)

	f.Fuzz(func(t *testing.T, in []byte, head bool) {
		method := http.MethodGet
		if head {
			method = http.MethodHead
		}
		req := &http.Request{Method: method}
		c := &upConn{br: bufio.NewReaderSize(bytes.NewReader(in), upstreamBufSize)}
		resp, err := c.readResponse(req)
		if err != nil {
			return
		}
		if resp.StatusCode < 100 || resp.StatusCode > 999 {
			t.Fatalf("status %d accepted from %q", resp.StatusCode, in)
		}
		for k, vv := range resp.Header {
			if !httpguts.ValidHeaderFieldName(k) {
				t.Fatalf("header name %q accepted from %q", k, in)
			}
			for _, v := range vv {
				if !httpguts.ValidHeaderFieldValue(v) {
					t.Fatalf("header %s value %q accepted from %q", k, v, in)
				}
			}
		}
		if resp.Body != http.NoBody && c.up.body.framing == framingSized && resp.ContentLength < 0 {
			t.Fatalf("sized body of length %d from %q", resp.ContentLength, in)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		if n > int64(len(in)) {
			t.Fatalf("read %d body bytes from %d input bytes", n, len(in))
		}
	})
}
