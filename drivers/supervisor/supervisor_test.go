package supervisor_test

import (
	"context"
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/manifold-paas/manifold/drivers"
	"github.com/manifold-paas/manifold/drivers/supervisor"
)

func worker() drivers.DynoSpec {
	return drivers.DynoSpec{App: "app", Type: "worker", Index: 1, Command: "run-it"}
}

func web(healthCheck string) drivers.DynoSpec {
	return drivers.DynoSpec{App: "app", Type: "web", Index: 1, Command: "serve", HealthCheck: healthCheck}
}

func runAt(addr string) func(n int) (*fakeRun, error) {
	return func(n int) (*fakeRun, error) {
		return &fakeRun{id: "run", addr: addr, exit: make(chan supervisor.Exit, 1), onSignal: exitOnSignal}, nil
	}
}

// TestBoot: a dyno is up once it runs (a worker) or answers on $PORT and its health
// check; else R10 kills it and it crashes.
func TestBoot(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		spec     drivers.DynoSpec
		addr     func(t *testing.T) string
		wantUp   bool
		wantLine string
	}{
		{"worker is up once running", worker(), func(*testing.T) string { return "" }, true, ""},
		{"web bound", web(""), webServer, true, ""},
		{"web healthy", web("ok"), webServer, true, ""},
		{"web never bound", web(""), closedAddr, false,
			"Error R10 (Boot timeout) -> Web process failed to bind to $PORT within 0.3 seconds of launch"},
		{"web bound but unhealthy", web("/missing"), webServer, false,
			"Error R10 (Boot timeout) -> Web process did not answer GET /missing with 2xx within 0.3 seconds of launch"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, tc.spec, supervisor.Config{}, runAt(tc.addr(t)))
			if err := h.launch(); err != nil {
				t.Fatal(err)
			}
			ev := h.event("the end of starting", func(ev drivers.Event) bool { return ev.From == drivers.StateStarting })
			if gotUp := ev.To == drivers.StateUp; gotUp != tc.wantUp {
				t.Fatalf("starting -> %s (%s), want up %v", ev.To, ev.Dyno.Reason, tc.wantUp)
			}
			if tc.wantUp {
				if !h.sink.has("State changed from down to starting", "Starting process with command `"+tc.spec.Command+"`", "State changed from starting to up") {
					t.Errorf("lines %q", h.sink.texts())
				}
				return
			}
			if ev.Code != "R10" || ev.Dyno.Reason != supervisor.ReasonR10 {
				t.Errorf("crash %+v, want R10", ev)
			}
			if !h.sink.has(tc.wantLine, supervisor.MsgKill, "Process exited with status 137", "State changed from starting to crashed") {
				t.Errorf("lines %q", h.sink.texts())
			}
		})
	}
}

// TestCrashes: how a run ends decides the crash's reason, code and lines; the dyno is
// restarted after the cool-off (or at once when its container vanished).
func TestCrashes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		exit       supervisor.Exit
		wantReason string
		wantCode   string
		wantLines  []string
	}{
		{"exit status", supervisor.Exit{Code: 3}, "Process exited with status 3", "",
			[]string{"Process exited with status 3", "State changed from up to crashed", "State changed from crashed to starting"}},
		{"unknown status", supervisor.Exit{Unknown: "adopted"}, "Process exited with status unknown (adopted)", "",
			[]string{"Process exited with status unknown (adopted)", "State changed from up to crashed"}},
		{"killed by the OOM killer", supervisor.Exit{Code: 137, OOM: true}, supervisor.MsgR15, "R15",
			[]string{supervisor.MsgR15, "Process exited with status 137", "State changed from up to crashed"}},
		{"gone from outside", supervisor.Exit{Gone: "Container x was removed"}, "Container x was removed", "",
			[]string{"Container x was removed", "State changed from up to crashed", "State changed from crashed to starting"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, worker(), supervisor.Config{}, runAt(""))
			if err := h.launch(); err != nil {
				t.Fatal(err)
			}
			h.event("up", to(drivers.StateUp))
			h.rt.run(0).exit <- tc.exit
			crash := h.event("the crash", to(drivers.StateCrashed))
			if crash.Dyno.Reason != tc.wantReason || crash.Code != tc.wantCode || crash.From != drivers.StateUp {
				t.Errorf("crash %s -> %s reason %q code %q, want reason %q code %q", crash.From, crash.To, crash.Dyno.Reason, crash.Code, tc.wantReason, tc.wantCode)
			}
			waitFor(t, "the restart", func() bool { return h.sup.Dyno().Restarts == 1 && h.sup.Dyno().State == drivers.StateUp })
			if !h.sink.has(tc.wantLines...) {
				t.Errorf("lines %q, want in order %q", h.sink.texts(), tc.wantLines)
			}
			wantCrashes := 1
			if tc.exit.Gone != "" {
				wantCrashes = 0 // not the app's fault
			}
			if got := h.sup.Status().Crashes; got != wantCrashes {
				t.Errorf("crash count %d, want %d", got, wantCrashes)
			}
		})
	}
}

// TestCooloffGrows: each crash in a row waits the cool-off of its number.
func TestCooloffGrows(t *testing.T) {
	t.Parallel()
	var asked []int
	cooloff := func(n int) time.Duration {
		asked = append(asked, n) // called from the supervisor's goroutine only
		return time.Millisecond
	}
	h := newHarness(t, worker(), supervisor.Config{Cooloff: cooloff}, runAt(""))
	if err := h.launch(); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		waitFor(t, "run started", func() bool { return h.rt.started() == i+1 && h.sup.Dyno().State == drivers.StateUp })
		h.rt.run(i).exit <- supervisor.Exit{Code: 1}
	}
	waitFor(t, "third restart", func() bool { return h.sup.Dyno().Restarts == 3 })
	if st := h.sup.Status(); st.Crashes != 3 {
		t.Errorf("crashes %d, want 3", st.Crashes)
	}
	_ = h.sup.Stop(context.Background())
	if len(asked) != 3 || asked[0] != 1 || asked[2] != 3 {
		t.Errorf("cool-off asked for %v, want [1 2 3]", asked)
	}
}

// TestStop: SIGTERM, and SIGKILL after the grace (R12) when the process ignores it.
func TestStop(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		ignore    bool
		wantCode  string
		wantLines []string
	}{
		{"exits on SIGTERM", false, "", []string{supervisor.MsgTerm, "Process exited with status 143", "State changed from up to down"}},
		{"ignores SIGTERM", true, "R12", []string{supervisor.MsgTerm,
			"Error R12 (Exit timeout) -> At least one process failed to exit within 0.05 seconds of SIGTERM",
			supervisor.MsgKillRemaining, "Process exited with status 137", "State changed from up to down"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			spec := worker()
			spec.StopTimeout = 50 * time.Millisecond
			newRun := func(int) (*fakeRun, error) {
				r := &fakeRun{id: "run", exit: make(chan supervisor.Exit, 1), onSignal: exitOnSignal}
				if tc.ignore {
					r.onSignal = func(sig syscall.Signal) (supervisor.Exit, bool) {
						if sig == syscall.SIGTERM {
							return supervisor.Exit{}, false
						}
						return exitOnSignal(sig)
					}
				}
				return r, nil
			}
			h := newHarness(t, spec, supervisor.Config{}, newRun)
			if err := h.launch(); err != nil {
				t.Fatal(err)
			}
			h.event("up", to(drivers.StateUp))
			if err := h.sup.Stop(context.Background()); err != nil {
				t.Fatal(err)
			}
			down := h.event("down", to(drivers.StateDown))
			if down.Code != tc.wantCode {
				t.Errorf("down code %q, want %q", down.Code, tc.wantCode)
			}
			if !h.sink.has(tc.wantLines...) {
				t.Errorf("lines %q, want in order %q", h.sink.texts(), tc.wantLines)
			}
			if h.rt.downs != 1 || !h.sup.Stopped() {
				t.Errorf("Down called %d times, stopped %v; want once, true", h.rt.downs, h.sup.Stopped())
			}
			// A second Stop is a no-op.
			if err := h.sup.Stop(context.Background()); err != nil {
				t.Errorf("second Stop: %v", err)
			}
		})
	}
}

// TestStopWhileCrashed: a crashed dyno waiting for its cool-off goes down at once.
func TestStopWhileCrashed(t *testing.T) {
	t.Parallel()
	h := newHarness(t, worker(), supervisor.Config{Cooloff: func(int) time.Duration { return time.Hour }}, runAt(""))
	if err := h.launch(); err != nil {
		t.Fatal(err)
	}
	h.event("up", to(drivers.StateUp))
	h.rt.run(0).exit <- supervisor.Exit{Code: 1}
	h.event("crashed", to(drivers.StateCrashed))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.sup.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if ev := h.event("down", to(drivers.StateDown)); ev.From != drivers.StateCrashed {
		t.Errorf("down from %s, want crashed", ev.From)
	}
	if h.sink.has(supervisor.MsgTerm) {
		t.Error("SIGTERM logged for a dyno without a process")
	}
}

// TestLaunchFails: the dyno is down with the error, and Stop does not wait for a Run.
func TestLaunchFails(t *testing.T) {
	t.Parallel()
	boom := errors.New("no slug")
	h := newHarness(t, worker(), supervisor.Config{}, func(int) (*fakeRun, error) { return nil, boom })
	if err := h.launch(); !errors.Is(err, boom) {
		t.Fatalf("launch: %v, want %v", err, boom)
	}
	ev := h.event("down", to(drivers.StateDown))
	if ev.From != drivers.StateStarting || ev.Dyno.Reason != "no slug" {
		t.Errorf("event %+v", ev)
	}
	if !h.sink.has("Starting process with command `run-it`", "Error starting process: no slug", "State changed from starting to down") {
		t.Errorf("lines %q", h.sink.texts())
	}
	if err := h.sup.Stop(context.Background()); err != nil {
		t.Errorf("Stop after a failed launch: %v", err)
	}
}

// TestCloseLeavesTheRun: when the driver closes, the run is neither signalled nor
// taken down; Stop then says it could not stop it.
func TestCloseLeavesTheRun(t *testing.T) {
	t.Parallel()
	h := newHarness(t, worker(), supervisor.Config{}, runAt(""))
	ctx, cancel := context.WithCancel(context.Background())
	h.ctx = ctx
	if err := h.launch(); err != nil {
		t.Fatal(err)
	}
	h.event("up", to(drivers.StateUp))
	cancel()
	<-h.sup.Done()
	if err := h.sup.Stop(context.Background()); !errors.Is(err, supervisor.ErrNotStopped) {
		t.Errorf("Stop after close: %v, want ErrNotStopped", err)
	}
	r := h.rt.run(0)
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.signals) != 0 || h.rt.downs != 0 {
		t.Errorf("signals %v, downs %d; want none", r.signals, h.rt.downs)
	}
}

// TestMemory: over the quota R14 (an event, the dyno stays up); over the hard limit
// R15 kills the run, which crashes with R15.
func TestMemory(t *testing.T) {
	t.Parallel()
	spec := worker()
	spec.MemoryBytes = 100 << 20
	cfg := supervisor.Config{Memory: supervisor.MemoryConfig{Interval: time.Millisecond, ReportInterval: time.Hour, HardLimit: 2}}
	h := newHarness(t, spec, cfg, runAt(""))
	if err := h.launch(); err != nil {
		t.Fatal(err)
	}
	h.event("up", to(drivers.StateUp))
	run := h.rt.run(0)
	run.memory.Store(150 << 20)
	r14 := h.event("R14", func(ev drivers.Event) bool { return ev.Code == "R14" })
	if r14.From != drivers.StateUp || r14.To != drivers.StateUp {
		t.Errorf("R14 event %s -> %s, want up -> up", r14.From, r14.To)
	}
	waitFor(t, "the sample in the record", func() bool { return h.sup.Dyno().MemoryBytes == 150<<20 })
	run.memory.Store(250 << 20)
	crash := h.event("the R15 crash", to(drivers.StateCrashed))
	if crash.Code != "R15" || crash.Dyno.Reason != supervisor.MsgR15 || crash.Dyno.MemoryBytes != 0 {
		t.Errorf("crash %+v, want R15", crash)
	}
	if !h.sink.has("Process running mem=150M(150.0%)", supervisor.MsgR14,
		"Process running mem=250M(250.0%)", supervisor.MsgR15, supervisor.MsgKill, "Process exited with status 137") {
		t.Errorf("lines %q", h.sink.texts())
	}
}

// TestQueueNeverBlocks: Push returns with nobody reading, and Run delivers in order.
func TestQueueNeverBlocks(t *testing.T) {
	t.Parallel()
	q := supervisor.NewQueue(nil)
	for i := range 1000 {
		q.Push(drivers.Event{Dyno: drivers.Dyno{Restarts: i}})
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); q.Run(ctx) }()
	for i := range 1000 {
		if ev := <-q.Out(); ev.Dyno.Restarts != i {
			t.Fatalf("event %d is %d", i, ev.Dyno.Restarts)
		}
	}
	cancel()
	<-done
	if _, open := <-q.Out(); open {
		t.Error("Out still open after Run returned")
	}
}
