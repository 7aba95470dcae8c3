package router

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"golang.org/x/net/http/httpguts"
)

// fuzzServeBound is how long one fuzz input may keep its client connection open: far
// above the router's test timeouts (300 ms) and linger (200 ms), far below the
// keep-alive idle timeout, so a connection the server forgets to close fails.
const fuzzServeBound = 10 * time.Second

// FuzzServeRequest feeds arbitrary bytes as one client connection into the router's
// own HTTP/1.1 server (a real loopback listener, a real in-process dyno) and asserts
// that the server answers only with HTTP/1.1 responses, never panics and closes the
// connection soon after the client's half-close.
func FuzzServeRequest(f *testing.F) {
	host := "Host: " + appHost + "\r\n"
	seeds := []string{
		"GET / HTTP/1.1\r\n" + host + "\r\n",
		"GET /1 HTTP/1.1\r\n" + host + "\r\nGET /2 HTTP/1.1\r\n" + host + "\r\n",
		"POST /p HTTP/1.1\r\n" + host + "Content-Length: 5\r\n\r\nhello",
		"POST /c HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n0\r\nX-T: 1\r\n\r\n",
		"POST /c HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		"POST /c HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n",
		"POST /c HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n3\nabc\n0\n\n",
		"POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: gzip, chunked\r\n\r\n",
		"POST / HTTP/1.1\r\n" + host + "Content-Length: 1\r\nContent-Length: 2\r\n\r\nab",
		"POST / HTTP/1.1\r\n" + host + "Content-Length: 3\r\nExpect: 100-continue\r\n\r\nabc",
		"GET / HTTP/1.1\n" + "Host: " + appHost + "\n\nGET /b HTTP/1.1\r\n" + host + "\r\n",
		"GET / HTTP/1.1\r\n" + host + "X-A: a\r\n b\r\n\r\n",
		"GET / HTTP/1.1\r\n" + host + "X A: b\r\n\r\n",
		"GET / HTTP/1.1\r\n" + host + "X-A: a\x00b\r\n\r\n",
		"GET http://" + appHost + "/abs HTTP/1.1\r\nHost: other\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n",
		"GET /\r\n\r\n",
		"GET / HTTP/1.0\r\n\r\n",
		"GET / HTTP/1.1\r\n" + host + "Connection: Upgrade, X-Secret\r\nUpgrade: websocket\r\nX-Secret: 1\r\n\r\n",
		"HEAD / HTTP/1.1\r\n" + host + "\r\n",
		"GET / HTTP/2.0\r\n" + host + "\r\n",
		"\r\n\r\nGET / HTTP/1.1\r\n" + host + "\r\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}

	// One router and dyno for every input: starting them per input would dominate.
	backendLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	backend := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		if req.URL.Path == "/stream" {
			_, _ = io.WriteString(w, "a")
			w.(http.Flusher).Flush()
		}
		_, _ = w.Write(body)
	})}
	go func() { _ = backend.Serve(backendLn) }()
	f.Cleanup(func() { _ = backend.Close() })

	r := New(testOptions(&sink{}))
	r.Swap(oneApp(0, backendLn.Addr().String()))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- r.Serve(ctx, ln) }()
	f.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			f.Errorf("Serve: %v", err)
		}
	})
	addr := ln.Addr().String()

	f.Fuzz(func(t *testing.T, in []byte) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(fuzzServeBound))
		// The server may answer and close before it read everything: a failed write
		// is not the server's fault.
		go func() {
			_, _ = conn.Write(in)
			_ = conn.(*net.TCPConn).CloseWrite()
		}()
		out, err := io.ReadAll(conn)
		if isTimeout(err) {
			t.Fatalf("connection still open %s after the client's half-close; input %q, got %q", fuzzServeBound, in, out)
		}
		if len(out) > 0 && !bytes.HasPrefix(out, []byte("HTTP/1.1 ")) {
			t.Fatalf("answer does not start with a status line: %q (input %q)", out, in)
		}
	})
}

// isTimeout reports whether err is a deadline expiry.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

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
