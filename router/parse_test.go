package router

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestReadResponseHeadBoundaries reads dyno response heads (readResponse) from raw
// bytes: each must end at its own first empty line, so that what follows is left
// for the body.
func TestReadResponseHeadBoundaries(t *testing.T) {
	t.Parallel()
	// A header line whose "\r" is the buffer's last byte: its "\n" then arrives
	// alone and must not be taken for the empty line.
	long := func(bufSize, prefix int) string {
		return "X-Long: " + strings.Repeat("a", bufSize-prefix-len("X-Long: ")-1) + "\r\n"
	}
	t.Run("dyno response line longer than the buffer", func(t *testing.T) {
		t.Parallel()
		statusLine := "HTTP/1.1 200 OK\r\n"
		raw := statusLine + long(upstreamBufSize, 0) + "Content-Length: 2\r\n\r\nok"
		c := &upConn{br: bufio.NewReaderSize(strings.NewReader(raw), upstreamBufSize)}
		resp, err := c.readResponse(&http.Request{Method: http.MethodGet})
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil || string(body) != "ok" || resp.ContentLength != 2 {
			t.Fatalf("body %q (%v), length %d; want \"ok\", 2", body, err, resp.ContentLength)
		}
	})
	t.Run("dyno response head in bare LF with CRLFCRLF in its body", func(t *testing.T) {
		t.Parallel()
		raw := "HTTP/1.1 200 OK\nContent-Length: 6\n\nab\r\n\r\n"
		c := &upConn{br: bufio.NewReaderSize(strings.NewReader(raw), upstreamBufSize)}
		resp, err := c.readResponse(&http.Request{Method: http.MethodGet})
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil || string(body) != "ab\r\n\r\n" {
			t.Fatalf("body %q (%v), want %q", body, err, "ab\r\n\r\n")
		}
	})
}

// TestDynoConnectionReuse checks that a dyno connection goes back to the pool only
// when the response left it at a message boundary: a dyno that sends bytes the
// response's framing does not account for (a body on 204 or HEAD), or frames a
// response both ways (Content-Length and chunked), gets a new connection for the
// next request instead of having its leftovers read as the next client's response.
func TestDynoConnectionReuse(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		method   string
		response string // the dyno's answer to the first request on a connection
		conns    int    // connections the dyno sees for the two requests
	}{
		{name: "sized response", method: http.MethodGet, response: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", conns: 1},
		{name: "204 with a body", method: http.MethodGet, response: "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello", conns: 2},
		{name: "HEAD answered with a body", method: http.MethodHead, response: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", conns: 2},
		{name: "both Content-Length and chunked", method: http.MethodGet, response: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", conns: 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var conns atomic.Int32
			addr := rawBackend(t, func(c net.Conn) {
				n := conns.Add(1)
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				br := bufio.NewReader(c)
				for i := 0; ; i++ {
					if _, err := http.ReadRequest(br); err != nil {
						return
					}
					answer := tc.response
					if n > 1 || i > 0 {
						answer = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext"
					}
					if _, err := io.WriteString(c, answer); err != nil {
						return
					}
				}
			})
			r := New(testOptions(&sink{}))
			r.Swap(oneApp(0, addr))
			// The empty table closes the router's pooled dyno connections, which the
			// dyno's cleanup waits for.
			t.Cleanup(func() { r.Swap(Table{}) })
			base := startRouter(t, r)
			client := newClient()
			for i, method := range []string{tc.method, http.MethodGet} {
				req, _ := http.NewRequest(method, base+"/", nil)
				req.Host = appHost
				resp, err := client.Do(req)
				if err != nil {
					t.Fatalf("request %d: %v", i+1, err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if i == 1 && (resp.StatusCode != 200 || string(body) != "next") {
					t.Fatalf("second request: %d %q, want 200 \"next\"", resp.StatusCode, body)
				}
			}
			if got := conns.Load(); got != int32(tc.conns) {
				t.Errorf("dyno saw %d connections, want %d", got, tc.conns)
			}
		})
	}
}

// TestUpgradeWithUnfinishedBody has a dyno switch protocols while the client's request
// body is still arriving: the router cannot hand over a client connection whose body
// it is still reading for the dyno (both would read it), so it answers H13. net/http's
// server allowed the takeover (101 to the client) until the core checked the body.
func TestUpgradeWithUnfinishedBody(t *testing.T) {
	t.Parallel()
	// HTTP/1 front ends only: HTTP/2 has no Upgrade (RFC 9113 8.6).
	eachHTTP1FrontEnd(t, func(t *testing.T, fe frontEnd) {
		addr := rawBackend(t, func(c net.Conn) {
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			br := bufio.NewReader(c)
			if _, err := http.ReadRequest(br); err != nil {
				return
			}
			_, _ = io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: x\r\n\r\n")
			_, _ = io.Copy(io.Discard, br)
		})
		logs := &sink{}
		r := New(testOptions(logs))
		r.Swap(oneApp(0, addr))
		t.Cleanup(func() { r.Swap(Table{}) })
		f := fe.start(t, r)
		c := f.raw(t, "POST / HTTP/1.1\r\nHost: "+appHost+"\r\nConnection: Upgrade\r\nUpgrade: x\r\nContent-Length: 10\r\n\r\nabcde")
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: http.MethodPost})
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("status %d, want 503 (H13)", resp.StatusCode)
		}
		logs.waitLine(t, "code=H13")
	})
}
