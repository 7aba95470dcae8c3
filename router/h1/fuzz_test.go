package h1

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fuzzServeBound is how long one fuzz input may keep its client connection open: far
// above the linger (200 ms), far below the keep-alive idle timeout, so a connection
// the server forgets to close fails.
const fuzzServeBound = 10 * time.Second

// fuzzHandler uses the Writer as the router's core does: it reads the body, echoes
// it sized or streamed, cuts a response short (/abort), takes over the connection
// for an upgrade, and registers for a vanished client around each request.
func fuzzHandler(w http.ResponseWriter, req *http.Request) bool {
	hw := w.(*Writer)
	stop := hw.AfterClientGone(func() {})
	defer stop()
	defer hw.ResponseEnded(time.Now())
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(time.Second))
	body, err := io.ReadAll(req.Body)
	if err != nil {
		w.Header().Set("Content-Length", "4")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, "fail")
		return false
	}
	switch {
	case req.Header.Get("Upgrade") != "":
		conn, rw, err := rc.Hijack()
		if err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			return false
		}
		_, _ = rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n\r\n")
		_ = rw.Flush()
		_ = conn.Close()
	case req.URL.Path == "/stream":
		_, _ = io.WriteString(w, "a")
		_ = rc.Flush()
		_, _ = w.Write(body)
	case req.URL.Path == "/abort":
		w.Header().Set("Content-Length", "100")
		_, _ = io.WriteString(w, "partial")
		return true
	default:
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		_, _ = w.Write(body)
	}
	return false
}

// FuzzServeRequest feeds arbitrary bytes as one client connection into the server (a
// real loopback listener) and asserts that it answers only with HTTP/1.1 responses,
// never panics and closes the connection soon after the client's half-close.
func FuzzServeRequest(f *testing.F) {
	host := "Host: a.example\r\n"
	seeds := []string{
		"GET / HTTP/1.1\r\n" + host + "\r\n",
		"GET /1 HTTP/1.1\r\n" + host + "\r\nGET /2 HTTP/1.1\r\n" + host + "\r\n",
		"POST /p HTTP/1.1\r\n" + host + "Content-Length: 5\r\n\r\nhello",
		"POST /stream HTTP/1.1\r\n" + host + "Content-Length: 5\r\n\r\nhello",
		"POST /abort HTTP/1.1\r\n" + host + "Content-Length: 5\r\n\r\nhello",
		"POST /c HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n0\r\nX-T: 1\r\n\r\n",
		"POST /c HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		"POST /c HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n",
		"POST /c HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n3\nabc\n0\n\n",
		"POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: gzip, chunked\r\n\r\n",
		"POST / HTTP/1.1\r\n" + host + "Content-Length: 1\r\nContent-Length: 2\r\n\r\nab",
		"POST / HTTP/1.1\r\n" + host + "Content-Length: 3\r\nExpect: 100-continue\r\n\r\nabc",
		"GET / HTTP/1.1\nHost: a.example\n\nGET /b HTTP/1.1\r\n" + host + "\r\n",
		"GET / HTTP/1.1\r\n" + host + "X-A: a\r\n b\r\n\r\n",
		"GET / HTTP/1.1\r\n" + host + "X A: b\r\n\r\n",
		"GET / HTTP/1.1\r\n" + host + "X-A: a\x00b\r\n\r\n",
		"GET http://a.example/abs HTTP/1.1\r\nHost: other\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n",
		"GET /\r\n\r\n",
		"GET / HTTP/1.0\r\n\r\n",
		"GET /stream HTTP/1.0\r\n\r\n",
		"GET / HTTP/1.1\r\n" + host + "Connection: Upgrade, X-Secret\r\nUpgrade: websocket\r\nX-Secret: 1\r\n\r\n",
		"HEAD / HTTP/1.1\r\n" + host + "\r\n",
		"GET / HTTP/2.0\r\n" + host + "\r\n",
		"\r\n\r\nGET / HTTP/1.1\r\n" + host + "\r\n",
		"GET / HTTP/1.1\r\n" + host + "X-Big: " + strings.Repeat("a", 70<<10) + "\r\n\r\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}

	// One server for every input: starting one per input would dominate.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	s := New(ln, Config{Handler: fuzzHandler})
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()
	f.Cleanup(func() {
		if !s.Shutdown(5 * time.Second) {
			f.Errorf("connections still open at shutdown")
		}
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
