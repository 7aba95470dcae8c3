package supervisor_test

import (
	"context"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/manifold-paas/manifold/drivers"
	"github.com/manifold-paas/manifold/drivers/supervisor"
	"github.com/manifold-paas/manifold/logs"
)

// waitFor is the package's one polling helper: it fails the test when cond does not
// hold within 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// sink records the platform lines.
type sink struct {
	mu    sync.Mutex
	lines []string
}

func (s *sink) Publish(line logs.Line) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lines = append(s.lines, line.Text)
}

func (s *sink) texts() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.lines)
}

// has reports whether want appear in this order among the lines (others between).
func (s *sink) has(want ...string) bool {
	i := 0
	for _, line := range s.texts() {
		if i < len(want) && line == want[i] {
			i++
		}
	}
	return i == len(want)
}

// fakeRun is a run of a fake runtime: it ends when the test (or a signal) says so.
type fakeRun struct {
	id, addr string
	exit     chan supervisor.Exit
	// onSignal decides what a signal does: the exit it causes, if any.
	onSignal func(sig syscall.Signal) (supervisor.Exit, bool)
	memory   atomic.Int64 // bytes; 0: gone

	mu      sync.Mutex
	signals []syscall.Signal
}

func (r *fakeRun) ID() string   { return r.id }
func (r *fakeRun) Addr() string { return r.addr }

func (r *fakeRun) Wait(ctx context.Context) (supervisor.Exit, error) {
	select {
	case e := <-r.exit:
		return e, nil
	case <-ctx.Done():
		return supervisor.Exit{}, ctx.Err()
	}
}

func (r *fakeRun) Signal(sig syscall.Signal) error {
	r.mu.Lock()
	r.signals = append(r.signals, sig)
	r.mu.Unlock()
	if r.onSignal != nil {
		if e, ok := r.onSignal(sig); ok {
			select {
			case r.exit <- e:
			default:
			}
		}
	}
	return nil
}

func (r *fakeRun) Memory(int64) (int64, bool) {
	used := r.memory.Load()
	return used, used > 0
}

// exitOnSignal is how a process without handlers ends: 128+signal.
func exitOnSignal(sig syscall.Signal) (supervisor.Exit, bool) {
	return supervisor.Exit{Code: 128 + int(sig)}, true
}

// fakeRuntime starts fakeRuns made by newRun.
type fakeRuntime struct {
	newRun   func(n int) (*fakeRun, error)
	mu       sync.Mutex
	runs     []*fakeRun
	downs    int
	statuses []supervisor.Status
}

func (f *fakeRuntime) Start(context.Context) (supervisor.Process, error) {
	f.mu.Lock()
	n := len(f.runs) + 1
	f.mu.Unlock()
	r, err := f.newRun(n)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.runs = append(f.runs, r)
	f.mu.Unlock()
	return r, nil
}

func (f *fakeRuntime) Changed(st supervisor.Status) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.statuses = append(f.statuses, st)
}

func (f *fakeRuntime) Down() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.downs++
}

func (f *fakeRuntime) run(i int) *fakeRun {
	f.mu.Lock()
	defer f.mu.Unlock()
	if i >= len(f.runs) {
		return nil
	}
	return f.runs[i]
}

func (f *fakeRuntime) started() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.runs)
}

// harness runs one supervisor over a fake runtime and collects its events.
type harness struct {
	t    *testing.T
	sink *sink
	rt   *fakeRuntime
	sup  *supervisor.Supervisor
	ctx  context.Context // ends at cleanup, as a driver's at Close
	ran  chan struct{}   // closed when Run (or a failed Launch) returned

	mu     sync.Mutex
	events []drivers.Event
}

func newHarness(t *testing.T, spec drivers.DynoSpec, cfg supervisor.Config, newRun func(n int) (*fakeRun, error)) *harness {
	t.Helper()
	h := &harness{t: t, sink: &sink{}, rt: &fakeRuntime{newRun: newRun}, ran: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	h.ctx = ctx
	queue := supervisor.NewQueue(nil)
	cfg.Logs, cfg.Events = h.sink, queue
	if cfg.Cooloff == nil {
		cfg.Cooloff = func(n int) time.Duration { return time.Duration(n-1) * 5 * time.Millisecond }
	}
	if cfg.BootTimeout == 0 {
		cfg.BootTimeout = 300 * time.Millisecond
	}
	var wg sync.WaitGroup
	wg.Go(func() { queue.Run(ctx) })
	wg.Go(func() {
		for ev := range queue.Out() {
			h.mu.Lock()
			h.events = append(h.events, ev)
			h.mu.Unlock()
		}
	})
	t.Cleanup(func() {
		cancel()
		<-h.ran
		wg.Wait()
	})
	h.sup = supervisor.New(cfg, supervisor.Status{Dyno: drivers.Dyno{ID: "d1", Spec: spec, State: drivers.StateDown}}, h.rt)
	return h
}

// launch starts the dyno and supervises it until the test ends.
func (h *harness) launch() error {
	h.t.Helper()
	p, err := h.sup.Launch(context.Background())
	if err != nil {
		close(h.ran)
		return err
	}
	go func() {
		defer close(h.ran)
		h.sup.Run(h.ctx, p)
	}()
	return nil
}

// event waits for the first event that matches.
func (h *harness) event(what string, match func(drivers.Event) bool) drivers.Event {
	h.t.Helper()
	var found drivers.Event
	waitFor(h.t, what, func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, ev := range h.events {
			if match(ev) {
				found = ev
				return true
			}
		}
		return false
	})
	return found
}

func to(state drivers.State) func(drivers.Event) bool {
	return func(ev drivers.Event) bool { return ev.To == state }
}

// webServer answers GET /ok with 200 and anything else 404 on 127.0.0.1.
func webServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/ok" {
			http.NotFound(w, r)
		}
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// closedAddr is an address on 127.0.0.1 where nothing listens.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
