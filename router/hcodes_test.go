package router

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// readRequestHead reads an HTTP request's head from a dyno-side connection.
func readRequestHead(t *testing.T, c net.Conn) *bufio.Reader {
	br := bufio.NewReader(c)
	if _, err := http.ReadRequest(br); err != nil {
		t.Errorf("dyno: read request: %v", err)
	}
	return br
}

// TestErrorCodes reproduces each router error with a real misbehaving dyno and checks
// the client's status and the app's router line.
func TestErrorCodes(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		dynos   func(t *testing.T) (Table, func())
		status  int
		line    []string
		noDyno  bool
		partial bool // the status went out before the failure
	}{
		{
			name:   "H10 app crashed",
			dynos:  func(t *testing.T) (Table, func()) { return oneApp(2), nil },
			status: 503,
			line:   []string{`at=error code=H10 desc="App crashed"`, "dyno= connect= service= status=503"},
		},
		{
			name:   "H14 no web dynos",
			dynos:  func(t *testing.T) (Table, func()) { return oneApp(0), nil },
			status: 503,
			line:   []string{`at=error code=H14 desc="No web dynos running"`, "status=503"},
		},
		{
			name: "H12 request timeout",
			dynos: func(t *testing.T) (Table, func()) {
				release := make(chan struct{})
				addr := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					select {
					case <-release:
					case <-r.Context().Done():
					}
				}))
				return oneApp(0, addr), func() { close(release) }
			},
			status: 503,
			line:   []string{`at=error code=H12 desc="Request timeout"`, "dyno=web.1", "status=503"},
		},
		{
			name: "H13 connection closed without response",
			dynos: func(t *testing.T) (Table, func()) {
				addr := rawBackend(t, func(c net.Conn) { readRequestHead(t, c) })
				return oneApp(0, addr), nil
			},
			status: 503,
			line:   []string{`at=error code=H13 desc="Connection closed without response"`, "dyno=web.1", "status=503"},
		},
		{
			name: "H15 idle connection",
			dynos: func(t *testing.T) (Table, func()) {
				release := make(chan struct{})
				addr := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					_, _ = io.WriteString(w, "first")
					w.(http.Flusher).Flush()
					select {
					case <-release:
					case <-r.Context().Done():
					}
				}))
				return oneApp(0, addr), func() { close(release) }
			},
			status:  200,
			partial: true,
			line:    []string{`at=error code=H15 desc="Idle connection"`, "dyno=web.1", "status=200", "bytes=5"},
		},
		{
			name: "H18 half-written response",
			dynos: func(t *testing.T) (Table, func()) {
				addr := rawBackend(t, func(c net.Conn) {
					readRequestHead(t, c)
					_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhalf")
				})
				return oneApp(0, addr), nil
			},
			status:  200,
			partial: true,
			line:    []string{`at=error code=H18 desc="Server Request Interrupted"`, "status=200", "bytes=4"},
		},
		{
			name: "H21 every dyno refuses",
			dynos: func(t *testing.T) (Table, func()) {
				return oneApp(0, refusedAddr(t), refusedAddr(t)), nil
			},
			status: 503,
			line:   []string{`at=error code=H21 desc="Backend connection refused"`, "status=503"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			logs := &sink{}
			r := New(testOptions(logs))
			table, cleanup := tc.dynos(t)
			if cleanup != nil {
				t.Cleanup(cleanup)
			}
			r.Swap(table)
			base := startRouter(t, r)
			status, body := get(t, newClient(), base, "/x?y=1")
			if status != tc.status {
				t.Errorf("status = %d, want %d (body %q)", status, tc.status, body)
			}
			if !tc.partial && !strings.Contains(body, "Application error") {
				t.Errorf("body = %q, want the error page", body)
			}
			line := logs.waitLine(t, tc.line...)
			if line.Source != "heroku" || line.Dyno != "router" || line.App != "hello" || line.Env != "staging" {
				t.Errorf("line = %+v, want source heroku, dyno router, app hello/staging", line)
			}
			if !strings.Contains(line.Text, `path="/x?y=1"`) || !strings.Contains(line.Text, "host="+appHost) {
				t.Errorf("line %q lacks path or host", line.Text)
			}
		})
	}
}

// TestH11BacklogTooDeep fills one dyno's slot and the app's one-request backlog; the
// next request gets H11 while the first two are served once the dyno frees up.
func TestH11BacklogTooDeep(t *testing.T) {
	t.Parallel()
	logs := &sink{}
	opts := testOptions(logs)
	opts.FirstByteTimeout = 10 * time.Second
	opts.BackendConcurrency = 1
	opts.Backlog = 1
	r := New(opts)
	arrived := make(chan struct{}, 2)
	release := make(chan struct{})
	addr := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		arrived <- struct{}{}
		<-release
		_, _ = io.WriteString(w, "ok")
	}))
	r.Swap(oneApp(0, addr))
	base := startRouter(t, r)
	client := newClient()

	results := make(chan int, 2)
	go func() { s, _ := get(t, client, base, "/1"); results <- s }()
	<-arrived
	go func() { s, _ := get(t, client, base, "/2"); results <- s }()
	a := r.table.Load().hosts[appHost].app
	deadline := time.Now().Add(5 * time.Second)
	for a.waiting.Load() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("second request never queued")
		}
		time.Sleep(time.Millisecond)
	}
	if status, _ := get(t, client, base, "/3"); status != 503 {
		t.Errorf("third request: status %d, want 503", status)
	}
	logs.waitLine(t, `code=H11 desc="Backlog too deep"`, `path="/3"`, "dyno= connect= service=")
	close(release)
	for range 2 {
		if s := <-results; s != 200 {
			t.Errorf("queued request: status %d, want 200", s)
		}
	}
}

// TestH18DynoClosesMidBody has the dyno hang up after part of a streamed request body.
func TestH18DynoClosesMidBody(t *testing.T) {
	t.Parallel()
	logs := &sink{}
	r := New(testOptions(logs))
	hungUp := make(chan struct{})
	addr := rawBackend(t, func(c net.Conn) {
		br := readRequestHead(t, c)
		buf := make([]byte, 4)
		_, _ = io.ReadFull(br, buf)
		// Reset rather than a clean close, so the router's next write fails at once.
		_ = c.(*net.TCPConn).SetLinger(0)
		_ = c.Close()
		close(hungUp)
	})
	r.Swap(oneApp(0, addr))
	base := startRouter(t, r)

	pr, pw := io.Pipe()
	go func() {
		_, _ = io.WriteString(pw, "part")
		<-hungUp
		// Keep sending: the router finds the dyno gone mid-body.
		for range 100 {
			if _, err := pw.Write(make([]byte, 32<<10)); err != nil {
				return
			}
		}
		_ = pw.Close()
	}()
	req, _ := http.NewRequest(http.MethodPost, base+"/upload", pr)
	req.Host = appHost
	resp, err := newClient().Do(req)
	if err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 503 {
			t.Errorf("status %d, want 503", resp.StatusCode)
		}
	}
	_ = pr.CloseWithError(errors.New("test done"))
	logs.waitLine(t, `code=H18 desc="Server Request Interrupted"`, `method=POST`, "dyno=web.1")
}

// rawClient sends raw bytes to the router and returns the connection.
func rawClient(t *testing.T, base, head string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if _, err := io.WriteString(c, head); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestH27ClientGoesAway has the client hang up while the dyno works.
func TestH27ClientGoesAway(t *testing.T) {
	t.Parallel()
	logs := &sink{}
	opts := testOptions(logs)
	opts.FirstByteTimeout = 10 * time.Second
	r := New(opts)
	arrived := make(chan struct{})
	addr := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		close(arrived)
		<-req.Context().Done()
	}))
	r.Swap(oneApp(0, addr))
	base := startRouter(t, r)
	c := rawClient(t, base, "GET /slow HTTP/1.1\r\nHost: "+appHost+"\r\n\r\n")
	<-arrived
	_ = c.Close()
	logs.waitLine(t, `code=H27 desc="Client Request Interrupted"`, `path="/slow"`, "status=499")
}

// TestH28ClientStallsBody has the client announce a body and send only part of it.
func TestH28ClientStallsBody(t *testing.T) {
	t.Parallel()
	logs := &sink{}
	opts := testOptions(logs)
	opts.FirstByteTimeout = 10 * time.Second
	opts.IdleTimeout = 200 * time.Millisecond
	r := New(opts)
	addr := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		_, _ = io.Copy(io.Discard, req.Body)
	}))
	r.Swap(oneApp(0, addr))
	base := startRouter(t, r)
	c := rawClient(t, base, fmt.Sprintf("POST /form HTTP/1.1\r\nHost: %s\r\nContent-Length: 100\r\n\r\nonly-ten-b", appHost))
	logs.waitLine(t, `code=H28 desc="Client Connection Idle"`, `path="/form"`, "method=POST")
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	if resp.StatusCode != 499 {
		t.Errorf("status %d, want 499; lines:\n%s", resp.StatusCode, logs.dump())
	}
}

// TestUnknownHost answers hosts no app claims with a plain 404.
func TestUnknownHost(t *testing.T) {
	t.Parallel()
	r := New(Options{})
	base := startRouter(t, r)
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, base+"/", nil)
	req.Host = "nope.staging.localhost"
	resp, err := newClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 404 || string(body) != noSuchApp {
		t.Errorf("got %d %q, want 404 %q", resp.StatusCode, body, noSuchApp)
	}
}
