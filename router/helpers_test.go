package router

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/manifold-paas/manifold/logs"
)

// sink collects the router's log lines.
type sink struct {
	mu    sync.Mutex
	lines []logs.Line
}

func (s *sink) Publish(l logs.Line) {
	s.mu.Lock()
	s.lines = append(s.lines, l)
	s.mu.Unlock()
}

func (s *sink) all() []logs.Line {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]logs.Line(nil), s.lines...)
}

// eventually calls check until it returns nil, and fails the test with check's last
// error when timeout passes first: the package's one way to wait for something.
func eventually(t testing.TB, timeout time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, timeout, err)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitLine polls until a line containing every fragment appears, or fails.
func (s *sink) waitLine(t *testing.T, fragments ...string) logs.Line {
	t.Helper()
	var found logs.Line
	eventually(t, 10*time.Second, fmt.Sprintf("a router line with %q", fragments), func() error {
		for _, l := range s.all() {
			ok := true
			for _, f := range fragments {
				if !strings.Contains(l.Text, f) {
					ok = false
					break
				}
			}
			if ok {
				found = l
				return nil
			}
		}
		return errors.New("lines so far:\n" + s.dump())
	})
	return found
}

func (s *sink) dump() string {
	var b strings.Builder
	for _, l := range s.all() {
		b.WriteString(l.Text)
		b.WriteByte('\n')
	}
	return b.String()
}

// testOptions are small timeouts so misbehaving dynos fail fast.
func testOptions(logs *sink) Options {
	return Options{
		Logs:             logs,
		FirstByteTimeout: 300 * time.Millisecond,
		IdleTimeout:      300 * time.Millisecond,
		Quarantine:       5 * time.Second,
		ShutdownTimeout:  5 * time.Second,
	}
}

// startRouter serves r on a fresh 127.0.0.1 port until the test ends and returns its
// base URL.
func startRouter(t *testing.T, r *Router) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return "http://" + ln.Addr().String()
}

// startBackend runs a real HTTP server on 127.0.0.1 until the test ends.
func startBackend(t testing.TB, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// rawBackend accepts connections on 127.0.0.1 and hands each to handle (after which
// the connection is closed), for dynos that misbehave below HTTP.
func rawBackend(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(c)
			}()
		}
	}()
	t.Cleanup(func() { _ = ln.Close(); wg.Wait() })
	return ln.Addr().String()
}

// refusedAddr is a 127.0.0.1 address where nothing listens.
func refusedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// oneApp is a table with the app "hello" in "staging" at hello.staging.localhost.
func oneApp(crashed int, addrs ...string) Table {
	rt := &Route{App: "hello", Env: "staging", Crashed: crashed}
	for i, a := range addrs {
		rt.Backends = append(rt.Backends, Backend{Dyno: "web." + string(rune('1'+i)), Addr: a})
	}
	return Table{Hosts: map[string]*Route{"hello.staging.localhost": rt}}
}

const appHost = "hello.staging.localhost"

// get sends a GET for path with the app's Host and returns status and body.
func get(t *testing.T, client *http.Client, base, path string) (int, string) {
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
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("read body of %s: %v", path, err)
	}
	return resp.StatusCode, string(body)
}

func newClient() *http.Client {
	return &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64}, Timeout: 20 * time.Second}
}
