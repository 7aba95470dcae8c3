package router

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestQuarantineAndRetry puts a refusing dyno beside a good one: no request fails, the
// refusing one is quarantined after its first refusal and not tried again.
func TestQuarantineAndRetry(t *testing.T) {
	t.Parallel()
	logs := &sink{}
	r := New(testOptions(logs))
	r.Swap(oneApp(0, refusedAddr(t), startBackend(t, &recordingBackend{})))
	base := startRouter(t, r)
	client := newClient()
	const requests = 50
	for i := range requests {
		if status, body := get(t, client, base, "/"); status != 200 || body != "ok" {
			t.Fatalf("request %d: %d %q", i, status, body)
		}
	}
	refusing := r.table.Load().hosts[appHost].backends[0]
	if !refusing.quarantined(time.Now().UnixNano()) {
		t.Error("refusing dyno is not quarantined")
	}
	for _, l := range logs.all() {
		if !strings.Contains(l.Text, "dyno=web.2 ") || !strings.Contains(l.Text, "status=200") {
			t.Errorf("line %q: want every request served by web.2", l.Text)
		}
	}
	if n := len(logs.all()); n != requests {
		t.Errorf("%d lines, want %d", n, requests)
	}
}

// TestQuarantineExpires tries a quarantined dyno again once its quarantine is over.
func TestQuarantineExpires(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_000, 0)
	rt := &route{backends: []*backend{{Backend: Backend{Dyno: "web.1"}}, {Backend: Backend{Dyno: "web.2"}}}}
	rt.backends[0].quarantineUntil.Store(now.Add(5 * time.Second).UnixNano())
	for range 100 {
		idx := rt.pick(now.UnixNano(), 0, 0)
		if idx != 1 {
			t.Fatalf("picked %d while web.1 is quarantined", idx)
		}
		rt.backends[idx].outstanding.Add(-1)
	}
	seen := map[int]bool{}
	for range 100 {
		idx := rt.pick(now.Add(6*time.Second).UnixNano(), 0, 0)
		seen[idx] = true
		rt.backends[idx].outstanding.Add(-1)
	}
	if !seen[0] || !seen[1] {
		t.Errorf("after the quarantine picked %v, want both dynos", seen)
	}
}

// TestPickPowerOfTwo prefers the less loaded of two dynos and honours the limit.
func TestPickPowerOfTwo(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		loads []int64
		limit int64
		done  tried
		want  []int // acceptable picks; nil means -1
	}{
		{name: "less loaded of two", loads: []int64{10, 0}, want: []int{1}},
		{name: "single dyno", loads: []int64{3}, want: []int{0}},
		{name: "at the limit waits", loads: []int64{2, 2}, limit: 2},
		{name: "one below the limit", loads: []int64{2, 1, 2}, limit: 2, want: []int{1}},
		{name: "all tried", loads: []int64{0, 0}, done: 0b11},
		{name: "tried skipped", loads: []int64{0, 5}, done: 0b01, want: []int{1}},
		{name: "no dynos", loads: nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for range 50 {
				rt := &route{}
				for _, l := range tc.loads {
					b := &backend{}
					b.outstanding.Store(l)
					rt.backends = append(rt.backends, b)
				}
				got := rt.pick(1, tc.limit, tc.done)
				ok := got == -1 && tc.want == nil
				for _, w := range tc.want {
					ok = ok || got == w
				}
				if !ok {
					t.Fatalf("pick = %d, want one of %v", got, tc.want)
				}
				if got >= 0 && rt.backends[got].outstanding.Load() != tc.loads[got]+1 {
					t.Fatalf("pick did not take a slot")
				}
			}
		})
	}
}

// TestRemovedDynoFinishes swaps a dyno out while it serves a request: the request
// completes, and new requests go to the new table.
func TestRemovedDynoFinishes(t *testing.T) {
	t.Parallel()
	logs := &sink{}
	opts := testOptions(logs)
	opts.FirstByteTimeout = 10 * time.Second
	r := New(opts)
	arrived, release := make(chan struct{}), make(chan struct{})
	old := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		close(arrived)
		<-release
		_, _ = io.WriteString(w, "old")
	}))
	newer := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "new") }))
	r.Swap(oneApp(0, old))
	base := startRouter(t, r)
	client := newClient()
	done := make(chan string, 1)
	go func() { _, body := get(t, client, base, "/"); done <- body }()
	<-arrived
	r.Swap(oneApp(0, newer))
	if _, body := get(t, client, base, "/"); body != "new" {
		t.Errorf("after the swap got %q, want new", body)
	}
	close(release)
	if body := <-done; body != "old" {
		t.Errorf("in-flight request got %q, want old", body)
	}
}

// TestSwapKeepsState keeps a dyno's quarantine across swaps that keep its address.
func TestSwapKeepsState(t *testing.T) {
	t.Parallel()
	r := New(Options{})
	r.Swap(oneApp(0, "127.0.0.1:1", "127.0.0.1:2"))
	first := r.table.Load().hosts[appHost]
	first.backends[0].quarantineUntil.Store(42)
	r.Swap(oneApp(0, "127.0.0.1:1", "127.0.0.1:3"))
	second := r.table.Load().hosts[appHost]
	if second.backends[0] != first.backends[0] || second.app != first.app {
		t.Error("swap did not keep the live state of a dyno and app that stayed")
	}
	if second.backends[1] == first.backends[1] {
		t.Error("a new address reused an old dyno's state")
	}
	r.Swap(Table{})
	if len(r.backends) != 0 || len(r.apps) != 0 {
		t.Errorf("empty table kept %d dynos and %d apps", len(r.backends), len(r.apps))
	}
}

// TestStalePooledConnection: the dyno closes a keep-alive connection while it sits in
// the router's pool; the next request notices and goes over a new connection.
func TestStalePooledConnection(t *testing.T) {
	t.Parallel()
	logs := &sink{}
	r := New(testOptions(logs))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{}, 16)
	srv := &http.Server{
		Handler:     &recordingBackend{},
		IdleTimeout: 20 * time.Millisecond,
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateClosed {
				closed <- struct{}{}
			}
		},
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	r.Swap(oneApp(0, ln.Addr().String()))
	base := startRouter(t, r)
	client := newClient()
	for i := range 3 {
		if status, body := get(t, client, base, "/"); status != 200 || body != "ok" {
			t.Fatalf("request %d: %d %q", i, status, body)
		}
		select {
		case <-closed: // the dyno dropped the router's idle connection
		case <-time.After(5 * time.Second):
			t.Fatal("dyno never closed the idle connection")
		}
	}
}

// TestRetryGoesToTheCurrentTable: a request whose dyno turned out to be gone before
// anything was sent (refused, or a stopping dyno that closed the pooled connection with
// the request unread) is retried on the dynos of the current table, not on the
// draining dynos of the table it came in with: what a deploy looks like from the
// router when the old dynos get SIGTERM right after the swap.
func TestRetryGoesToTheCurrentTable(t *testing.T) {
	t.Parallel()
	newDyno := func(t *testing.T, body string) string {
		return startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, body) }))
	}

	t.Run("refused", func(t *testing.T) {
		t.Parallel()
		logs := &sink{}
		r := New(testOptions(logs))
		gone := refusedAddr(t)
		fresh := newDyno(t, "new")
		r.Swap(oneApp(0, gone))
		// The swap happens while the router dials the old dyno.
		r.dialer.Control = func(_, addr string, _ syscall.RawConn) error {
			if addr == gone {
				r.Swap(oneApp(0, fresh))
			}
			return nil
		}
		base := startRouter(t, r)
		if status, body := get(t, newClient(), base, "/"); status != 200 || body != "new" {
			t.Fatalf("got %d %q; want the new dyno's answer\n%s", status, body, logs.dump())
		}
	})

	t.Run("stopping", func(t *testing.T) {
		t.Parallel()
		logs := &sink{}
		r := New(testOptions(logs))
		fresh := newDyno(t, "new")
		// The old dyno answers one request on a keep-alive connection. When the
		// next one comes on it, a deploy has swapped the table; the dyno, being
		// stopped, closes the connection without reading it and every connection
		// after (its listener is still open: a new connection would be accepted
		// and dropped too).
		var stopping atomic.Bool
		old := rawBackend(t, func(c net.Conn) {
			br := bufio.NewReader(c)
			for served := 0; !stopping.Load(); served++ {
				if _, err := http.ReadRequest(br); err != nil {
					return
				}
				if served > 0 {
					// The second request: the deploy swapped the table and this
					// dyno is being stopped.
					r.Swap(oneApp(0, fresh))
					stopping.Store(true)
					return
				}
				_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nold")
			}
		})
		r.Swap(oneApp(0, old))
		base := startRouter(t, r)
		client := newClient()
		if status, body := get(t, client, base, "/"); status != 200 || body != "old" {
			t.Fatalf("first request: %d %q", status, body)
		}
		if status, body := get(t, client, base, "/"); status != 200 || body != "new" {
			t.Fatalf("second request: %d %q; want the new dyno's answer\n%s", status, body, logs.dump())
		}
		for _, l := range logs.all() {
			if strings.Contains(l.Text, "code=") {
				t.Errorf("router error line: %s", l.Text)
			}
		}
	})
}
