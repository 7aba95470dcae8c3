package h1

import (
	"bufio"
	"context"
	"net"
	"strings"
	"testing"
)

// TestReadHeadBoundaries reads request heads (readHead) from raw bytes: each must end
// at its own first empty line, whether the head came in one read or line by line, so
// that what follows is left for the body or the next request.
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
			c := &clientConn{br: bufio.NewReaderSize(strings.NewReader(tc.raw), connBufSize)}
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
}

// TestParseRequestHead runs request heads through the server's parser: framing
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
			s := &Server{base: context.Background()}
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
