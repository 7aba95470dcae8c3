package router

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/manifold-paas/manifold/router/internal/h1wire"
)

// echoBackend answers with the request's method, body length and selected headers,
// so a test sees what reached the dyno.
func echoBackend(t *testing.T) string {
	return startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(req.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if req.URL.Path == "/stream" {
			// No Content-Length: the router frames it for the client.
			_, _ = io.WriteString(w, "a")
			w.(http.Flusher).Flush()
			_, _ = io.WriteString(w, "b")
			return
		}
		fmt.Fprintf(w, "%s %s body=%q te=%q", req.Method, req.RequestURI, body, req.TransferEncoding)
	}))
}

// exchangeRaw writes raw bytes to the router and reads n responses from the same
// connection.
func exchangeRaw(t *testing.T, f *front, raw string, methods ...string) ([]*http.Response, []string, net.Conn, *bufio.Reader) {
	t.Helper()
	c := f.raw(t, raw)
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	var resps []*http.Response
	var bodies []string
	for _, m := range methods {
		resp, err := http.ReadResponse(br, &http.Request{Method: m})
		if err != nil {
			t.Fatalf("response %d of %q: %v", len(resps)+1, raw, err)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("body %d of %q: %v", len(resps)+1, raw, err)
		}
		resps, bodies = append(resps, resp), append(bodies, string(body))
	}
	return resps, bodies, c, br
}

// TestServerHTTP1 drives each HTTP/1 front end with raw requests: framing,
// keep-alive, pipelining, HTTP/1.0, Expect and malformed input.
func TestServerHTTP1(t *testing.T) {
	t.Parallel()
	eachHTTP1FrontEnd(t, testServerHTTP1)
}

func testServerHTTP1(t *testing.T, fe frontEnd) {
	r := New(testOptions(&sink{}))
	r.Swap(oneApp(0, echoBackend(t)))
	f := fe.start(t, r)
	host := "Host: " + appHost + "\r\n"

	cases := []struct {
		name    string
		raw     string
		methods []string // one per expected response
		status  []int
		body    []string // substrings, one per response
		closed  bool     // the router closes the connection after the last response
		check   func(t *testing.T, resps []*http.Response)
		// nethttp and nethttpClosed are the status of the one response and whether
		// the connection closes on net/http's server, where it differs inherently
		// from the own server (which is stricter).
		nethttp       int
		nethttpClosed bool
	}{
		{
			name:    "pipelined keep-alive requests",
			raw:     "GET /1 HTTP/1.1\r\n" + host + "\r\nGET /2 HTTP/1.1\r\n" + host + "\r\n",
			methods: []string{"GET", "GET"},
			status:  []int{200, 200},
			body:    []string{"GET /1 body=", "GET /2 body="},
		},
		{
			name:    "sized body then another request",
			raw:     "POST /p HTTP/1.1\r\n" + host + "Content-Length: 5\r\n\r\nhelloGET /n HTTP/1.1\r\n" + host + "\r\n",
			methods: []string{"POST", "GET"},
			status:  []int{200, 200},
			body:    []string{`POST /p body="hello"`, "GET /n"},
		},
		{
			name:    "chunked body with trailer",
			raw:     "POST /c HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\nX-T: 1\r\n\r\nGET /after HTTP/1.1\r\n" + host + "\r\n",
			methods: []string{"POST", "GET"},
			status:  []int{200, 200},
			body:    []string{`body="abcde" te=["chunked"]`, "GET /after"},
		},
		{
			name:    "chunked response to HTTP/1.1",
			raw:     "GET /stream HTTP/1.1\r\n" + host + "\r\n",
			methods: []string{"GET"},
			status:  []int{200},
			body:    []string{"ab"},
			check: func(t *testing.T, resps []*http.Response) {
				if len(resps[0].TransferEncoding) != 1 || resps[0].TransferEncoding[0] != "chunked" {
					t.Errorf("Transfer-Encoding %q, want chunked", resps[0].TransferEncoding)
				}
			},
		},
		{
			name:    "HTTP/1.0 closes after the response",
			raw:     "GET /old HTTP/1.0\r\n" + host + "\r\n",
			methods: []string{"GET"},
			status:  []int{200},
			body:    []string{"GET /old"},
			closed:  true,
		},
		{
			name:    "HTTP/1.0 stream is close-delimited",
			raw:     "GET /stream HTTP/1.0\r\n" + host + "\r\n",
			methods: []string{"GET"},
			status:  []int{200},
			body:    []string{"ab"},
			closed:  true,
		},
		{
			name:    "HTTP/1.0 keep-alive",
			raw:     "GET /a HTTP/1.0\r\n" + host + "Connection: keep-alive\r\n\r\nGET /b HTTP/1.0\r\n" + host + "\r\n",
			methods: []string{"GET", "GET"},
			status:  []int{200, 200},
			body:    []string{"GET /a", "GET /b"},
			closed:  true,
		},
		{
			name:    "Connection: close",
			raw:     "GET /x HTTP/1.1\r\n" + host + "Connection: close\r\n\r\n",
			methods: []string{"GET"},
			status:  []int{200},
			body:    []string{"GET /x"},
			closed:  true,
		},
		{
			name:    "HEAD has no body",
			raw:     "HEAD /h HTTP/1.1\r\n" + host + "\r\nGET /g HTTP/1.1\r\n" + host + "\r\n",
			methods: []string{"HEAD", "GET"},
			status:  []int{200, 200},
			body:    []string{"", "GET /g"},
		},
		{
			name:    "Expect 100-continue",
			raw:     "PUT /e HTTP/1.1\r\n" + host + "Expect: 100-continue\r\nContent-Length: 2\r\n\r\nhi",
			methods: []string{"PUT", "PUT"},
			status:  []int{100, 200},
			body:    []string{"", `PUT /e body="hi"`},
		},
		{name: "unsupported Expect", raw: "GET / HTTP/1.1\r\n" + host + "Expect: magic\r\n\r\n", methods: []string{"GET"}, status: []int{417}, closed: true},
		{name: "missing Host", raw: "GET / HTTP/1.1\r\n\r\n", methods: []string{"GET"}, status: []int{400}, closed: true},
		{name: "two Hosts", raw: "GET / HTTP/1.1\r\n" + host + host + "\r\n", methods: []string{"GET"}, status: []int{400}, closed: true},
		{name: "malformed request line", raw: "GET /\r\n" + host + "\r\n", methods: []string{"GET"}, status: []int{400}, closed: true},
		// net/http lets the HTTP/2 preface through as a request (for h2c handlers),
		// which the router answers as an unknown host; the "SM" after it then
		// closes the connection.
		{name: "HTTP/2 preface", raw: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", methods: []string{"GET"}, status: []int{505}, closed: true, nethttp: 404, nethttpClosed: true},
		{name: "header without colon", raw: "GET / HTTP/1.1\r\n" + host + "Oops\r\n\r\n", methods: []string{"GET"}, status: []int{400}, closed: true},
		// RFC 9112 5.2 lets a server refuse obs-fold (the own server) or unfold it
		// (net/http).
		{name: "obsolete line folding", raw: "GET / HTTP/1.1\r\n" + host + "X-A: 1\r\n  folded\r\n\r\n", methods: []string{"GET"}, status: []int{400}, closed: true, nethttp: 200},
		{name: "bad Content-Length", raw: "POST / HTTP/1.1\r\n" + host + "Content-Length: -1\r\n\r\n", methods: []string{"POST"}, status: []int{400}, closed: true},
		{name: "conflicting Content-Length", raw: "POST / HTTP/1.1\r\n" + host + "Content-Length: 1\r\nContent-Length: 2\r\n\r\nab", methods: []string{"POST"}, status: []int{400}, closed: true},
		{name: "unknown Transfer-Encoding", raw: "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: gzip\r\n\r\n", methods: []string{"POST"}, status: []int{501}, closed: true},
		{name: "control byte in target", raw: "GET /a\x01b HTTP/1.1\r\n" + host + "\r\n", methods: []string{"GET"}, status: []int{400}, closed: true},
		{
			name:    "head too large",
			raw:     "GET / HTTP/1.1\r\n" + host + "X-Big: " + strings.Repeat("a", h1wire.MaxHeadBytes) + "\r\n\r\n",
			methods: []string{"GET"},
			status:  []int{431},
			closed:  true,
		},
		{
			name:    "unread body of an unknown host: answered, then closed",
			raw:     "POST / HTTP/1.1\r\nHost: nope.localhost\r\nContent-Length: 300000\r\n\r\n" + strings.Repeat("b", 300000),
			methods: []string{"POST"},
			status:  []int{404},
			closed:  true,
		},
		{
			name:    "unknown host keeps the connection",
			raw:     "GET / HTTP/1.1\r\nHost: nope.localhost\r\n\r\nGET /k HTTP/1.1\r\n" + host + "\r\n",
			methods: []string{"GET", "GET"},
			status:  []int{404, 200},
			body:    []string{noSuchApp, "GET /k"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if tc.nethttp != 0 && fe.name != "own-http1" {
				tc.status, tc.closed = []int{tc.nethttp}, tc.nethttpClosed
			}
			resps, bodies, c, br := exchangeRaw(t, f, tc.raw, tc.methods...)
			for i, resp := range resps {
				if resp.StatusCode != tc.status[i] {
					t.Errorf("response %d: status %d, want %d (body %q)", i+1, resp.StatusCode, tc.status[i], bodies[i])
				}
				if i < len(tc.body) && !strings.Contains(bodies[i], tc.body[i]) {
					t.Errorf("response %d: body %q, want it to contain %q", i+1, bodies[i], tc.body[i])
				}
			}
			if tc.check != nil {
				tc.check(t, resps)
			}
			// The connection is open (a further request is answered) or closed.
			_, err := io.WriteString(c, "GET /more HTTP/1.1\r\n"+host+"\r\n")
			if err == nil {
				_, err = http.ReadResponse(br, nil)
			}
			if open := err == nil; open == tc.closed {
				t.Errorf("connection open = %v, want %v (%v)", open, !tc.closed, err)
			}
		})
	}
}

// TestServerShutdownWaits: Serve returns only after a request in flight has been
// answered, and closes idle connections at once.
func TestServerShutdownWaits(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	arrived := make(chan struct{})
	r := New(Options{ShutdownTimeout: 5 * time.Second})
	r.Swap(oneApp(0, startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		close(arrived)
		<-release
		_, _ = io.WriteString(w, "done")
	}))))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- r.Serve(ctx, ln) }()
	base := "http://" + ln.Addr().String()

	idle, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	busy := rawClient(t, base, "GET /slow HTTP/1.1\r\nHost: "+appHost+"\r\n\r\n")
	<-arrived
	cancel()
	_ = idle.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := idle.Read(make([]byte, 1)); err == nil {
		t.Errorf("idle connection got %d bytes during shutdown, want it closed", n)
	}
	select {
	case err := <-served:
		t.Fatalf("Serve returned %v with a request in flight", err)
	default:
	}
	close(release)
	_ = busy.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(busy), nil)
	if err != nil {
		t.Fatalf("request in flight at shutdown: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(body) != "done" || !resp.Close {
		t.Errorf("got %d %q close=%v, want 200 \"done\" with Connection: close", resp.StatusCode, body, resp.Close)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after the last request")
	}
}

// TestDynoResponseFraming sends raw dyno responses through each front end: each
// framing the router parses itself reaches the client intact, and a malformed head
// is H13.
func TestDynoResponseFraming(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, raw  string
		method     string
		status     int
		body       string
		header     map[string]string
		trailer    map[string]string
		bodyLength int64 // the client's ContentLength; 0 means not checked
	}{
		{name: "sized", raw: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", status: 200, body: "ok", bodyLength: 2},
		{name: "close-delimited HTTP/1.0", raw: "HTTP/1.0 200 OK\r\n\r\nuntil close", status: 200, body: "until close"},
		{name: "interim 100 skipped", raw: "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\nx", status: 201, body: "x"},
		{
			name:    "chunked with trailer",
			raw:     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n2\r\nok\r\n3\r\n!!!\r\n0\r\nX-Sum: 42\r\n\r\n",
			status:  200,
			body:    "ok!!!",
			trailer: map[string]string{"X-Sum": "42"},
		},
		{name: "folded and lower-case headers", raw: "HTTP/1.1 200 OK\r\nx-app: a\r\n  b\r\ncontent-length: 0\r\n\r\n", status: 200, header: map[string]string{"X-App": "a b"}},
		{name: "no content", raw: "HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n", status: 204, header: map[string]string{"X-A": "1"}},
		{name: "HEAD keeps the length", method: http.MethodHead, raw: "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n", status: 200, bodyLength: 1234},
		{name: "malformed status line", raw: "HTTP/1.1 abc\r\n\r\n", status: 503, body: "H13"},
		{name: "unknown transfer coding", raw: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", status: 503, body: "H13"},
		{name: "bare CR in a header value", raw: "HTTP/1.1 200 OK\r\nX-A: a\rX-Injected: 1\r\nContent-Length: 0\r\n\r\n", status: 503, body: "H13"},
		{name: "NUL in a header name", raw: "HTTP/1.1 200 OK\r\nX-\x00A: 1\r\nContent-Length: 0\r\n\r\n", status: 503, body: "H13"},
		{name: "bare CR in a folded value", raw: "HTTP/1.1 200 OK\r\nX-A: a\r\n b\rc\r\nContent-Length: 0\r\n\r\n", status: 503, body: "H13"},
		{name: "signed length", raw: "HTTP/1.1 200 OK\r\nContent-Length: -0\r\n\r\n", status: 503, body: "H13"},
		{name: "conflicting lengths", raw: "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", status: 503, body: "H13"},
	}
	eachFrontEnd(t, func(t *testing.T, fe frontEnd) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				r := New(testOptions(&sink{}))
				r.Swap(oneApp(0, rawBackend(t, func(c net.Conn) {
					readRequestHead(t, c)
					_, _ = io.WriteString(c, tc.raw)
				})))
				f := fe.start(t, r)
				method := tc.method
				if method == "" {
					method = http.MethodGet
				}
				req, _ := http.NewRequest(method, f.base+"/", nil)
				req.Host = appHost
				resp, err := f.client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				body, err := io.ReadAll(resp.Body)
				if err != nil {
					t.Fatalf("read body: %v", err)
				}
				if resp.StatusCode != tc.status || !strings.Contains(string(body), tc.body) {
					t.Errorf("got %d %q, want %d with %q", resp.StatusCode, body, tc.status, tc.body)
				}
				for k, v := range tc.header {
					if got := resp.Header.Get(k); got != v {
						t.Errorf("header %s = %q, want %q", k, got, v)
					}
				}
				for k, v := range tc.trailer {
					if got := resp.Trailer.Get(k); got != v {
						t.Errorf("trailer %s = %q, want %q", k, got, v)
					}
				}
				if tc.bodyLength != 0 && resp.ContentLength != tc.bodyLength {
					t.Errorf("Content-Length %d, want %d", resp.ContentLength, tc.bodyLength)
				}
			})
		}
	})
}
