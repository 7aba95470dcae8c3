package router

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// frontEnd is one of the router's servers as clients reach it. The behaviour tests
// (H-codes, headers, routing) run against each, since both hand every request to the
// same core (Router.handle) but frame, watch and abort connections differently.
type frontEnd struct {
	name string
	// scheme is what the dyno's X-Forwarded-Proto and the router line's protocol say.
	scheme string
	// http2 is set when clients speak HTTP/2 to it.
	http2 bool
	start func(t *testing.T, r *Router) *front
}

// front is a started front end: where it listens and how to talk to it.
type front struct {
	base      string // scheme://127.0.0.1:port
	port      string
	client    *http.Client
	tlsConfig *tls.Config // nil for plain HTTP
}

// frontEnds are the router's servers: its own HTTP/1.1 server on the plain listener
// (Serve) and net/http's on the TLS listener (ServeTLS), which clients reach with
// HTTP/1.1 or, by ALPN, HTTP/2.
var frontEnds = []frontEnd{
	{name: "own-http1", scheme: "http", start: startOwn},
	{name: "nethttp-tls-http1", scheme: "https", start: func(t *testing.T, r *Router) *front { return startTLS(t, r, false) }},
	{name: "nethttp-tls-http2", scheme: "https", http2: true, start: func(t *testing.T, r *Router) *front { return startTLS(t, r, true) }},
}

// eachFrontEnd runs test once per front end, in parallel subtests named after it.
func eachFrontEnd(t *testing.T, test func(t *testing.T, fe frontEnd)) {
	t.Helper()
	eachOf(t, frontEnds, test)
}

// eachHTTP1FrontEnd is eachFrontEnd for what HTTP/2 lacks (Upgrade, raw HTTP/1.1
// bytes).
func eachHTTP1FrontEnd(t *testing.T, test func(t *testing.T, fe frontEnd)) {
	t.Helper()
	var http1 []frontEnd
	for _, fe := range frontEnds {
		if !fe.http2 {
			http1 = append(http1, fe)
		}
	}
	eachOf(t, http1, test)
}

func eachOf(t *testing.T, fes []frontEnd, test func(t *testing.T, fe frontEnd)) {
	t.Helper()
	for _, fe := range fes {
		t.Run(fe.name, func(t *testing.T) {
			t.Parallel()
			test(t, fe)
		})
	}
}

func startOwn(t *testing.T, r *Router) *front {
	t.Helper()
	base := startRouter(t, r)
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(base, "http://"))
	client := newClient()
	t.Cleanup(client.CloseIdleConnections)
	return &front{base: base, port: port, client: client}
}

func startTLS(t *testing.T, r *Router, http2 bool) *front {
	t.Helper()
	certFile, keyFile, pool := writeCert(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.ServeTLS(ctx, ln, certFile, keyFile) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeTLS: %v", err)
		}
	})
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	// A Transport with its own TLS config speaks HTTP/1.1 unless told to try HTTP/2.
	transport := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64, TLSClientConfig: cfg, ForceAttemptHTTP2: http2}
	client := &http.Client{Transport: transport, Timeout: 20 * time.Second}
	t.Cleanup(client.CloseIdleConnections)
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return &front{base: "https://" + ln.Addr().String(), port: port, client: client, tlsConfig: cfg}
}

// raw opens a connection speaking HTTP/1.1 to the front end (TLS when it is) and
// sends head; it is closed when the test ends.
func (f *front) raw(t *testing.T, head string) net.Conn {
	t.Helper()
	addr := strings.TrimPrefix(strings.TrimPrefix(f.base, "http://"), "https://")
	var c net.Conn
	var err error
	if f.tlsConfig != nil {
		cfg := f.tlsConfig.Clone()
		cfg.NextProtos = []string{"http/1.1"}
		c, err = tls.Dial("tcp", addr, cfg)
	} else {
		c, err = net.Dial("tcp", addr)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if _, err := io.WriteString(c, head); err != nil {
		t.Fatal(err)
	}
	return c
}
