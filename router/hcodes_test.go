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
	eachFrontEnd(t, func(t *testing.T, fe frontEnd) {
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
				f := fe.start(t, r)
				status, body, readErr := fetch(t, f.client, f.base, "/x?y=1")
				if status != tc.status {
					t.Errorf("status = %d, want %d (body %q)", status, tc.status, body)
				}
				if !tc.partial && (readErr != nil || !strings.Contains(body, "Application error")) {
					t.Errorf("body = %q (%v), want the error page", body, readErr)
				}
				if tc.partial && readErr == nil {
					// Cut short after the status went out: the client must see the
					// truncation (a reset HTTP/1 connection or HTTP/2 stream), not a
					// well-formed short response.
					t.Errorf("body = %q read without error, want the response aborted", body)
				}
				line := logs.waitLine(t, tc.line...)
				if line.Source != "heroku" || line.Dyno != "router" || line.App != "hello" || line.Env != "staging" {
					t.Errorf("line = %+v, want source heroku, dyno router, app hello/staging", line)
				}
				if !strings.Contains(line.Text, `path="/x?y=1"`) || !strings.Contains(line.Text, "host="+appHost) ||
					!strings.HasSuffix(line.Text, "protocol="+fe.scheme) {
					t.Errorf("line %q lacks path, host or protocol=%s", line.Text, fe.scheme)
				}
			})
		}
	})
}

// fetch sends a GET for path with the app's Host and returns the status, the body
// and the error that ended reading it (nil at a clean end).
func fetch(t *testing.T, client *http.Client, base, path string) (int, string, error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = appHost
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// TestH11BacklogTooDeep fills one dyno's slot and the app's one-request backlog; the
// next request gets H11 while the first two are served once the dyno frees up.
func TestH11BacklogTooDeep(t *testing.T) {
	t.Parallel()
	eachFrontEnd(t, func(t *testing.T, fe frontEnd) {
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
		f := fe.start(t, r)

		results := make(chan int, 2)
		go func() { s, _, _ := fetch(t, f.client, f.base, "/1"); results <- s }()
		<-arrived
		go func() { s, _, _ := fetch(t, f.client, f.base, "/2"); results <- s }()
		a := r.table.Load().hosts[appHost].app
		eventually(t, 5*time.Second, "the second request queued", func() error {
			if n := a.waiting.Load(); n != 1 {
				return fmt.Errorf("%d waiting", n)
			}
			return nil
		})
		if status, _, _ := fetch(t, f.client, f.base, "/3"); status != 503 {
			t.Errorf("third request: status %d, want 503", status)
		}
		logs.waitLine(t, `code=H11 desc="Backlog too deep"`, `path="/3"`, "dyno= connect= service=")
		close(release)
		for range 2 {
			if s := <-results; s != 200 {
				t.Errorf("queued request: status %d, want 200", s)
			}
		}
	})
}

// TestH18DynoClosesMidBody has the dyno hang up after part of a streamed request body.
func TestH18DynoClosesMidBody(t *testing.T) {
	t.Parallel()
	eachFrontEnd(t, func(t *testing.T, fe frontEnd) {
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
		f := fe.start(t, r)

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
		req, _ := http.NewRequest(http.MethodPost, f.base+"/upload", pr)
		req.Host = appHost
		resp, err := f.client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 503 {
				t.Errorf("status %d, want 503", resp.StatusCode)
			}
		}
		_ = pr.CloseWithError(errors.New("test done"))
		logs.waitLine(t, `code=H18 desc="Server Request Interrupted"`, `method=POST`, "dyno=web.1", "protocol="+fe.scheme)
	})
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

// TestH27ClientGoesAway has the client give up on its request while the dyno works:
// an HTTP/1.1 client closes its connection, an HTTP/2 one resets the stream.
func TestH27ClientGoesAway(t *testing.T) {
	t.Parallel()
	eachFrontEnd(t, func(t *testing.T, fe frontEnd) {
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
		f := fe.start(t, r)
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, f.base+"/slow", nil)
		req.Host = appHost
		failed := make(chan error, 1)
		go func() {
			resp, err := f.client.Do(req)
			if err == nil {
				resp.Body.Close()
			}
			failed <- err
		}()
		<-arrived
		cancel()
		if err := <-failed; err == nil {
			t.Error("cancelled request succeeded")
		}
		logs.waitLine(t, `code=H27 desc="Client Request Interrupted"`, `path="/slow"`, "status=499", "protocol="+fe.scheme)
	})
}

// TestH28ClientStallsBody has the client announce a body and send only part of it:
// after IdleTimeout the router gives up on it and answers 499.
func TestH28ClientStallsBody(t *testing.T) {
	t.Parallel()
	eachFrontEnd(t, func(t *testing.T, fe frontEnd) {
		logs := &sink{}
		opts := testOptions(logs)
		opts.FirstByteTimeout = 10 * time.Second
		opts.IdleTimeout = 200 * time.Millisecond
		r := New(opts)
		addr := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			_, _ = io.Copy(io.Discard, req.Body)
		}))
		r.Swap(oneApp(0, addr))
		f := fe.start(t, r)
		pr, pw := io.Pipe()
		t.Cleanup(func() { _ = pw.Close() })
		go func() { _, _ = io.WriteString(pw, "only-ten-b") }()
		req, _ := http.NewRequest(http.MethodPost, f.base+"/form", pr)
		req.Host = appHost
		req.ContentLength = 100
		resp, err := f.client.Do(req)
		if err != nil {
			t.Fatalf("POST with a stalled body: %v; lines:\n%s", err, logs.dump())
		}
		resp.Body.Close()
		if resp.StatusCode != 499 {
			t.Errorf("status %d, want 499; lines:\n%s", resp.StatusCode, logs.dump())
		}
		logs.waitLine(t, `code=H28 desc="Client Connection Idle"`, `path="/form"`, "method=POST", "protocol="+fe.scheme)
	})
}

// TestUnknownHost answers hosts no app claims with a plain 404.
func TestUnknownHost(t *testing.T) {
	t.Parallel()
	eachFrontEnd(t, func(t *testing.T, fe frontEnd) {
		f := fe.start(t, New(Options{}))
		req, _ := http.NewRequest(http.MethodGet, f.base+"/", nil)
		req.Host = "nope.staging.localhost"
		resp, err := f.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 404 || string(body) != noSuchApp {
			t.Errorf("got %d %q, want 404 %q", resp.StatusCode, body, noSuchApp)
		}
	})
}
