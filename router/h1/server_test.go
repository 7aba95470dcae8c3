package h1

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// startServer serves handler on a fresh 127.0.0.1 port until the test ends.
func startServer(t *testing.T, handler Handler) (*Server, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := New(ln, Config{Handler: handler})
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()
	t.Cleanup(func() {
		s.Shutdown(5 * time.Second)
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return s, ln.Addr().String()
}

// dial opens a client connection that is closed when the test ends.
func dial(t *testing.T, addr, send string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, send); err != nil {
		t.Fatal(err)
	}
	return c, bufio.NewReader(c)
}

// TestHandlerContract checks what the server does with what a handler does: a
// response cut short (abort) reaches the client truncated on a closed connection,
// a Hijack while the request body is unread is refused, and a handler that writes
// nothing sends an empty 200 and keeps the connection.
func TestHandlerContract(t *testing.T) {
	t.Parallel()
	hijackErr := make(chan error, 1)
	_, addr := startServer(t, func(w http.ResponseWriter, req *http.Request) bool {
		switch req.URL.Path {
		case "/abort":
			// Chunked: only the abort keeps the last chunk from going out.
			_, _ = io.WriteString(w, "part")
			return true
		case "/hijack":
			_, _, err := http.NewResponseController(w).Hijack()
			hijackErr <- err
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		return false
	})

	t.Run("abort", func(t *testing.T) {
		t.Parallel()
		_, br := dial(t, addr, "GET /abort HTTP/1.1\r\nHost: a\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		if string(body) != "part" || err != io.ErrUnexpectedEOF {
			t.Errorf("body %q (%v), want \"part\" cut short (unexpected EOF)", body, err)
		}
	})
	t.Run("hijack with unread body", func(t *testing.T) {
		t.Parallel()
		_, br := dial(t, addr, "POST /hijack HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusServiceUnavailable || !resp.Close {
			t.Errorf("status %d close=%v, want 503 and Connection: close", resp.StatusCode, resp.Close)
		}
		if err := <-hijackErr; err == nil {
			t.Error("Hijack with the request body unread succeeded")
		}
	})
	t.Run("empty response keeps the connection", func(t *testing.T) {
		t.Parallel()
		_, br := dial(t, addr, "GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n")
		for i := range 2 {
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("response %d: %v", i+1, err)
			}
			if resp.StatusCode != 200 || resp.ContentLength != 0 || resp.Close {
				t.Errorf("response %d: %d length %d close=%v, want 200, 0, keep-alive", i+1, resp.StatusCode, resp.ContentLength, resp.Close)
			}
		}
	})
}

// TestShutdown: Shutdown closes idle connections at once, lets a request in flight
// finish with Connection: close, and then reports that everything finished.
func TestShutdown(t *testing.T) {
	t.Parallel()
	arrived, release := make(chan struct{}), make(chan struct{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := New(ln, Config{Handler: func(w http.ResponseWriter, req *http.Request) bool {
		close(arrived)
		<-release
		_, _ = io.WriteString(w, "done")
		return false
	}})
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()
	addr := ln.Addr().String()
	idle, _ := dial(t, addr, "")
	_, busy := dial(t, addr, "GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
	<-arrived
	finished := make(chan bool, 1)
	go func() { finished <- s.Shutdown(5 * time.Second) }()
	if n, err := idle.Read(make([]byte, 1)); err == nil {
		t.Errorf("idle connection got %d bytes during shutdown, want it closed", n)
	}
	select {
	case <-finished:
		t.Fatal("Shutdown returned with a request in flight")
	default:
	}
	close(release)
	resp, err := http.ReadResponse(busy, nil)
	if err != nil {
		t.Fatalf("request in flight at shutdown: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(body) != "done" || !resp.Close {
		t.Errorf("got %d %q close=%v, want 200 \"done\" with Connection: close", resp.StatusCode, body, resp.Close)
	}
	if !<-finished {
		t.Error("Shutdown reported connections left over")
	}
	if err := <-served; err != nil {
		t.Errorf("Serve after Shutdown: %v", err)
	}
}
