package router

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestReadHeadBoundaries reads request heads (readHead) and dyno response heads
// (readHeadString) from raw bytes: each must end at its own first empty line, whether
// the head came in one read or line by line, so that what follows is left for the body
// or the next message.
func TestReadHeadBoundaries(t *testing.T) {
	t.Parallel()
	// A header line whose "\r" is the buffer's last byte: its "\n" then arrives
	// alone and must not be taken for the empty line.
	long := func(bufSize, prefix int) string {
		return "X-Long: " + strings.Repeat("a", bufSize-prefix-len("X-Long: ")-1) + "\r\n"
	}
	reqLine := "GET / HTTP/1.1\r\n"
	cases := []struct {
		name  string
		raw   string
		heads []string
	}{
		{
			name:  "CRLF heads",
			raw:   "GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: b\r\n\r\n",
			heads: []string{"GET /a HTTP/1.1\r\nHost: a\r\n\r\n", "GET /b HTTP/1.1\r\nHost: b\r\n\r\n"},
		},
		{
			name:  "bare LF head followed by a CRLF one",
			raw:   "GET /a HTTP/1.1\nHost: a\n\nGET /b HTTP/1.1\r\nHost: b\r\n\r\n",
			heads: []string{"GET /a HTTP/1.1\nHost: a\n\n", "GET /b HTTP/1.1\r\nHost: b\r\n\r\n"},
		},
		{
			name:  "bare LF line then CRLF empty line",
			raw:   "GET /a HTTP/1.1\r\nHost: a\n\r\nGET /b HTTP/1.1\r\nHost: b\r\n\r\n",
			heads: []string{"GET /a HTTP/1.1\r\nHost: a\n\r\n", "GET /b HTTP/1.1\r\nHost: b\r\n\r\n"},
		},
		{
			name:  "body with CRLFCRLF after a bare LF head",
			raw:   "POST / HTTP/1.1\nHost: a\nContent-Length: 9\n\nbody\r\n\r\n",
			heads: []string{"POST / HTTP/1.1\nHost: a\nContent-Length: 9\n\n"},
		},
		{
			name:  "line longer than the buffer, split between CR and LF",
			raw:   reqLine + long(connBufSize, 0) + "Host: a\r\n\r\n",
			heads: []string{reqLine + long(connBufSize, 0) + "Host: a\r\n\r\n"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := &h1Conn{br: bufio.NewReaderSize(strings.NewReader(tc.raw), connBufSize)}
			for i, want := range tc.heads {
				got, err := c.readHead()
				if err != nil {
					t.Fatalf("head %d: %v", i+1, err)
				}
				if got != want {
					t.Fatalf("head %d = %q, want %q", i+1, got, want)
				}
			}
		})
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
// it is still reading for the dyno (both would read it), so it answers H13.
func TestUpgradeWithUnfinishedBody(t *testing.T) {
	t.Parallel()
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
	base := startRouter(t, r)
	c := rawClient(t, base, "POST / HTTP/1.1\r\nHost: "+appHost+"\r\nConnection: Upgrade\r\nUpgrade: x\r\nContent-Length: 10\r\n\r\nabcde")
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: http.MethodPost})
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503 (H13)", resp.StatusCode)
	}
	logs.waitLine(t, "code=H13")
}

// TestParseRequestHead runs request heads through the own server's parser: framing
// that could be read two ways (request smuggling), malformed lines and Host handling.
func TestParseRequestHead(t *testing.T) {
	t.Parallel()
	const host = "Host: a.example\r\n"
	cases := []struct {
		name   string
		head   string
		status int    // 0: accepted
		host   string // req.Host when accepted
		length int64  // req.ContentLength when accepted
	}{
		{name: "plain", head: "GET / HTTP/1.1\r\n" + host + "\r\n", host: "a.example"},
		{name: "sized", head: "POST / HTTP/1.1\r\n" + host + "Content-Length: 5\r\n\r\n", host: "a.example", length: 5},
		{name: "repeated equal lengths", head: "POST / HTTP/1.1\r\n" + host + "Content-Length: 5\r\nContent-Length: 5\r\n\r\n", host: "a.example", length: 5},
		{name: "differing lengths", head: "POST / HTTP/1.1\r\n" + host + "Content-Length: 5\r\nContent-Length: 6\r\n\r\n", status: 400},
		{name: "length list", head: "POST / HTTP/1.1\r\n" + host + "Content-Length: 5, 5\r\n\r\n", status: 400},
		{name: "signed length", head: "POST / HTTP/1.1\r\n" + host + "Content-Length: +5\r\n\r\n", status: 400},
		{name: "negative zero length", head: "POST / HTTP/1.1\r\n" + host + "Content-Length: -0\r\n\r\n", status: 400},
		{name: "hex length", head: "POST / HTTP/1.1\r\n" + host + "Content-Length: 0x5\r\n\r\n", status: 400},
		{name: "overflowing length", head: "POST / HTTP/1.1\r\n" + host + "Content-Length: 99999999999999999999\r\n\r\n", status: 400},
		{name: "chunked", head: "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n", host: "a.example", length: -1},
		{name: "chunked and length", head: "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", host: "a.example", length: -1},
		{name: "chunked twice", head: "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", status: 501},
		{name: "coding list", head: "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: gzip, chunked\r\n\r\n", status: 501},
		{name: "not chunked", head: "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: xchunked\r\n\r\n", status: 501},
		{name: "chunked in HTTP/1.0", head: "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", status: 501},
		{name: "space before colon", head: "POST / HTTP/1.1\r\n" + host + "Content-Length : 5\r\n\r\n", status: 400},
		{name: "NUL in value", head: "GET / HTTP/1.1\r\n" + host + "X-A: a\x00b\r\n\r\n", status: 400},
		{name: "bare CR in value", head: "GET / HTTP/1.1\r\n" + host + "X-A: a\rb\r\n\r\n", status: 400},
		{name: "control in name", head: "GET / HTTP/1.1\r\n" + host + "X\x01A: a\r\n\r\n", status: 400},
		{name: "obs-fold", head: "GET / HTTP/1.1\r\n" + host + "X-A: a\r\n b\r\n\r\n", status: 400},
		{name: "no version", head: "GET /\r\n" + host + "\r\n", status: 400},
		{name: "HTTP/2 line", head: "GET / HTTP/2.0\r\n" + host + "\r\n", status: 505},
		{name: "space in target", head: "GET /a b HTTP/1.1\r\n" + host + "\r\n", status: 400},
		{name: "missing Host", head: "GET / HTTP/1.1\r\n\r\n", status: 400},
		{name: "two Hosts", head: "GET / HTTP/1.1\r\n" + host + host + "\r\n", status: 400},
		{name: "HTTP/1.0 without Host", head: "GET / HTTP/1.0\r\n\r\n", host: ""},
		{name: "Host with port", head: "GET / HTTP/1.1\r\nHost: a.example:8080\r\n\r\n", host: "a.example:8080"},
		{name: "IPv6 Host", head: "GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n", host: "[::1]:80"},
		{name: "absolute form wins over Host", head: "GET http://b.example/x HTTP/1.1\r\n" + host + "\r\n", host: "b.example"},
		{name: "bad Host", head: "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", status: 400},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			client, server := net.Pipe()
			defer client.Close()
			defer server.Close()
			s := &h1Server{base: context.Background()}
			c := s.newConn(server)
			status, msg := c.parse(tc.head, "192.0.2.1:1234")
			if status != tc.status {
				t.Fatalf("status %d (%s), want %d", status, msg, tc.status)
			}
			if status != 0 {
				return
			}
			if c.req.Host != tc.host || c.req.ContentLength != tc.length {
				t.Errorf("Host %q, length %d; want %q, %d", c.req.Host, c.req.ContentLength, tc.host, tc.length)
			}
			if _, ok := c.req.Header["Content-Length"]; ok && tc.length < 0 {
				t.Errorf("Content-Length kept on a chunked request")
			}
		})
	}
}
