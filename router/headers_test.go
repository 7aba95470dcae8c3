package router

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// recordingBackend answers "ok" and keeps the last request's headers and Host.
type recordingBackend struct {
	mu     sync.Mutex
	header http.Header
	host   string
}

func (rb *recordingBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rb.mu.Lock()
	rb.header, rb.host = r.Header.Clone(), r.Host
	rb.mu.Unlock()
	_, _ = w.Write([]byte("ok"))
}

func (rb *recordingBackend) last() (http.Header, string) {
	rb.mu.Lock()
	defer rb.mu.Unlock()
	return rb.header, rb.host
}

// TestHeadersAtDyno checks Heroku's headers as the dyno receives them.
func TestHeadersAtDyno(t *testing.T) {
	t.Parallel()
	eachFrontEnd(t, testHeadersAtDyno)
}

func testHeadersAtDyno(t *testing.T, fe frontEnd) {
	logs := &sink{}
	r := New(testOptions(logs))
	rb := &recordingBackend{}
	r.Swap(oneApp(0, startBackend(t, rb)))
	f := fe.start(t, r)
	base, routerPort, client := f.base, f.port, f.client
	validID := "abcdefghij-KLMNOP+/=0123"

	cases := []struct {
		name   string
		sent   map[string]string
		check  func(t *testing.T, h http.Header)
		wantID string // "" means a generated UUID
	}{
		{
			name: "fresh request",
			check: func(t *testing.T, h http.Header) {
				if got := h.Get("X-Forwarded-For"); got != "127.0.0.1" {
					t.Errorf("X-Forwarded-For = %q", got)
				}
				if got := h.Get("Via"); got != "1.1 manifold" {
					t.Errorf("Via = %q", got)
				}
			},
		},
		{
			name:   "appended forwarding and kept request id",
			sent:   map[string]string{"X-Forwarded-For": "203.0.113.9", "X-Request-Id": validID, "Via": "1.1 cdn"},
			wantID: validID,
			check: func(t *testing.T, h http.Header) {
				if got := h.Get("X-Forwarded-For"); got != "203.0.113.9, 127.0.0.1" {
					t.Errorf("X-Forwarded-For = %q", got)
				}
				if got := h.Get("Via"); got != "1.1 cdn, 1.1 manifold" {
					t.Errorf("Via = %q", got)
				}
			},
		},
		{name: "too short request id replaced", sent: map[string]string{"X-Request-Id": "short"}},
		{name: "bad characters in request id replaced", sent: map[string]string{"X-Request-Id": "abcdefghij klmnopqrstu!"}},
		{name: "too long request id replaced", sent: map[string]string{"X-Request-Id": strings.Repeat("a", 201)}},
		{
			name: "hop-by-hop headers dropped",
			sent: map[string]string{"Connection": "X-Secret", "X-Secret": "1", "Proxy-Connection": "keep-alive", "X-Forwarded-Proto": "https", "X-Forwarded-Port": "1"},
			check: func(t *testing.T, h http.Header) {
				for _, k := range []string{"X-Secret", "Connection", "Proxy-Connection"} {
					v, ok := h[k]
					if k == "X-Secret" && fe.http2 {
						// Inherent: HTTP/2 has no Connection header (RFC 9113 8.2.2),
						// so nothing names X-Secret as hop-by-hop and it is an
						// ordinary header that reaches the dyno.
						ok = !ok
					}
					if ok {
						t.Errorf("%s reached the dyno (or, over HTTP/2, did not): %q", k, v)
					}
				}
			},
		},
	}
	uuid := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, base+"/h", nil)
			req.Host = "Hello.Staging.Localhost:5000"
			for k, v := range tc.sent {
				if fe.http2 && (k == "Connection" || k == "Proxy-Connection") {
					// Connection-specific headers make an HTTP/2 request malformed
					// (RFC 9113 8.2.2); Go's client refuses to send them.
					continue
				}
				req.Header.Set(k, v)
			}
			before := time.Now().UnixMilli()
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			after := time.Now().UnixMilli()
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			h, host := rb.last()
			if host != "Hello.Staging.Localhost:5000" {
				t.Errorf("Host at dyno = %q, want the client's", host)
			}
			if got := h.Get("X-Forwarded-Proto"); got != fe.scheme {
				t.Errorf("X-Forwarded-Proto = %q, want %s", got, fe.scheme)
			}
			if got := h.Get("X-Forwarded-Port"); got != routerPort {
				t.Errorf("X-Forwarded-Port = %q, want %s", got, routerPort)
			}
			start, err := strconv.ParseInt(h.Get("X-Request-Start"), 10, 64)
			if err != nil || start < before || start > after {
				t.Errorf("X-Request-Start = %q, want ms in [%d, %d]", h.Get("X-Request-Start"), before, after)
			}
			id := h.Get("X-Request-Id")
			if tc.wantID != "" && id != tc.wantID {
				t.Errorf("X-Request-Id = %q, want the client's %q", id, tc.wantID)
			}
			if tc.wantID == "" && !uuid.MatchString(id) {
				t.Errorf("X-Request-Id = %q, want a generated UUID", id)
			}
			if len(h["X-Request-Id"]) != 1 {
				t.Errorf("X-Request-Id values = %q, want one", h["X-Request-Id"])
			}
			if tc.check != nil {
				tc.check(t, h)
			}
			logs.waitLine(t, "request_id="+id)
		})
	}
}

// TestRouterLine checks the info line's exact shape.
func TestRouterLine(t *testing.T) {
	t.Parallel()
	eachFrontEnd(t, func(t *testing.T, fe frontEnd) {
		logs := &sink{}
		r := New(testOptions(logs))
		r.Swap(oneApp(0, startBackend(t, &recordingBackend{})))
		f := fe.start(t, r)
		if status, body := get(t, f.client, f.base, "/path?q=1"); status != 200 || body != "ok" {
			t.Fatalf("got %d %q", status, body)
		}
		line := logs.waitLine(t, "at=info")
		want := regexp.MustCompile(`^at=info method=GET path="/path\?q=1" host=hello\.staging\.localhost request_id=[0-9a-f-]{36} ` +
			`fwd="127\.0\.0\.1" dyno=web\.1 connect=\d+ms service=\d+ms status=200 bytes=2 protocol=` + fe.scheme + `$`)
		if !want.MatchString(line.Text) {
			t.Errorf("line = %q, want %s", line.Text, want)
		}
		if line.Time.IsZero() || line.Source != "heroku" || line.Dyno != "router" {
			t.Errorf("line = %+v", line)
		}
	})
}

// TestRoutingByHost sends each host to its own app, ignoring case and port.
func TestRoutingByHost(t *testing.T) {
	t.Parallel()
	eachFrontEnd(t, testRoutingByHost)
}

func testRoutingByHost(t *testing.T, fe frontEnd) {
	r := New(Options{})
	answer := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(name)) })
	}
	hello := &Route{App: "hello", Env: "staging", Backends: []Backend{{Dyno: "web.1", Addr: startBackend(t, answer("hello"))}}}
	shop := &Route{App: "shop", Env: "production", Backends: []Backend{{Dyno: "web.1", Addr: startBackend(t, answer("shop"))}}}
	r.Swap(Table{Hosts: map[string]*Route{
		"hello.staging.localhost":   hello,
		"www.example.com":           hello,
		"shop.production.localhost": shop,
	}})
	f := fe.start(t, r)
	base, client := f.base, f.client
	for host, want := range map[string]string{
		"hello.staging.localhost":      "hello",
		"HELLO.staging.localhost:5000": "hello",
		"www.example.com.":             "hello",
		"shop.production.localhost":    "shop",
		"shop.staging.localhost":       noSuchApp,
	} {
		req, _ := http.NewRequest(http.MethodGet, base+"/", nil)
		req.Host = host
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != want {
			t.Errorf("host %s: got %q, want %q", host, body, want)
		}
	}
}

func TestNormalizeHost(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"a.localhost":    "a.localhost",
		"A.LocalHost:80": "a.localhost",
		"a.localhost.":   "a.localhost",
		"[::1]:8080":     "[::1]",
		"[::1]":          "[::1]",
		"":               "",
		"127.0.0.1:5000": "127.0.0.1",
	} {
		if got := normalizeHost(in); got != want {
			t.Errorf("normalizeHost(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestRemoveHopHeaders checks both ways of removing hop-by-hop headers (walking a
// small map, probing a large one) and the headers a Connection header names.
func TestRemoveHopHeaders(t *testing.T) {
	for _, k := range hopHeaders {
		if !isHopHeader(k) {
			t.Errorf("isHopHeader(%q) = false; hopHeaders lists it", k)
		}
	}
	for _, k := range []string{"Content-Type", "Connectionx", "Via", ""} {
		if isHopHeader(k) {
			t.Errorf("isHopHeader(%q) = true", k)
		}
	}
	for _, extra := range []int{0, 20} {
		h := http.Header{
			"Connection":        {"close, X-Secret"},
			"Keep-Alive":        {"timeout=5"},
			"Transfer-Encoding": {"chunked"},
			"X-Secret":          {"1"},
			"Content-Type":      {"text/plain"},
		}
		for i := range extra {
			h.Set(fmt.Sprintf("X-Extra-%d", i), "v")
		}
		removeHopHeaders(h)
		if len(h) != 1+extra || h.Get("Content-Type") != "text/plain" {
			t.Errorf("with %d extra headers left %v; want Content-Type and the extras", extra, h)
		}
	}
}
