package process

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/manifold-paas/manifold/drivers"
	"github.com/manifold-paas/manifold/logs"
)

// holds waits until cond holds, through the package's one polling helper.
func holds(t *testing.T, what string, cond func() bool) {
	t.Helper()
	eventually(t, waitLimit, what, func() error {
		if !cond() {
			return errors.New("not yet")
		}
		return nil
	})
}

// woken waits for one wake of ch.
func woken(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(waitLimit):
		t.Fatalf("no wake: %s", what)
	}
}

// startOutputWatch runs an outputWatch on dir until the test ends.
func startOutputWatch(t *testing.T, ow *outputWatch, cancel context.CancelFunc) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); ow.run() }()
	t.Cleanup(func() { cancel(); <-done })
}

// A follower is woken once per arm: by the first write after it (a one-shot watch,
// so a busy file raises one event per read), by the creation of its file when it was
// missing, and never by another follower's file.
func TestOutputWatchWakesOncePerArm(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	ow := newOutputWatch(ctx, dir, slog.New(slog.DiscardHandler))
	if ow.file == nil {
		t.Fatal("no inotify instance: followers would poll")
	}
	startOutputWatch(t, ow, cancel)

	path := filepath.Join(dir, "app.web.1.abcd.log")
	sub := ow.subscribe(path)
	other := ow.subscribe(filepath.Join(dir, "other.log"))
	defer other.cancel()
	other.arm()
	sub.arm() // the file is missing: the directory watch stands in
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	woken(t, sub.wake, "file created")
	for i := range 3 {
		sub.arm()
		for range 5 { // five writes, one wake: the watch is one-shot
			if _, err := f.WriteString("line " + strconv.Itoa(i) + "\n"); err != nil {
				t.Fatal(err)
			}
		}
		woken(t, sub.wake, "lines written")
		holds(t, "the watch fired", func() bool { ow.mu.Lock(); defer ow.mu.Unlock(); return !sub.armed })
		ow.mu.Lock()
		pending := len(sub.wake)
		ow.mu.Unlock()
		if pending != 0 {
			t.Fatalf("woken twice for writes after one arm")
		}
	}
	select {
	case <-other.wake:
		t.Fatal("another dyno's follower was woken by this file")
	default:
	}
	sub.arm()
	sub.cancel()
	if _, err := f.WriteString("after\n"); err != nil {
		t.Fatal(err)
	}
	ow.mu.Lock()
	defer ow.mu.Unlock()
	for _, s := range ow.byWd {
		if s == sub {
			t.Error("cancelled subscription still has a watch")
		}
	}
	if ow.byName[sub.name] != nil || ow.byName[other.name] != other {
		t.Error("cancel removed the wrong subscription")
	}
}

// Without inotify every follower is woken on one ticker.
func TestOutputWatchPollsWithoutInotify(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	ow := &outputWatch{dir: t.TempDir(), log: slog.New(slog.DiscardHandler), fd: -1, ctx: ctx,
		byWd: make(map[int32]*outputSub), byName: make(map[string]*outputSub), polled: make(map[*outputSub]bool)}
	startOutputWatch(t, ow, cancel)
	a := ow.subscribe(filepath.Join(ow.dir, "a.log"))
	b := ow.subscribe(filepath.Join(ow.dir, "b.log"))
	a.arm()
	woken(t, a.wake, "poll tick")
	woken(t, b.wake, "poll tick")
}

// The follower saves the offset of the last line it published even when nothing is
// written after it (no event comes to wake it): a daemon restarted then neither
// loses nor repeats it.
func TestFollowSavesOffsetWithoutFurtherWrites(t *testing.T) {
	h := newHarness(t, Options{})
	// The lines come after the dyno is up: no state change saves the offset by the way.
	goFile := filepath.Join(t.TempDir(), "go")
	dyno := h.start(h.spec("worker", 1, `while [ ! -e "$GO_FILE" ]; do sleep 0.01; done; echo one; echo two; exec sleep 60`,
		map[string]string{"GO_FILE": goFile}))
	waitState(t, h.d, dyno.ID, drivers.StateUp, nil)
	if err := os.WriteFile(goFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	h.sink.waitLine(t, "worker.1", logs.SourceApp, "two")
	statePath := filepath.Join(h.opts.StateDir, dyno.ID+".json")
	holds(t, "log offset 8 saved", func() bool {
		raw, err := os.ReadFile(statePath)
		var st stateFile
		return err == nil && json.Unmarshal(raw, &st) == nil && st.LogOffset == int64(len("one\ntwo\n"))
	})
	if err := h.d.Close(); err != nil {
		t.Fatal(err)
	}
	sink := &recorder{}
	h.d = h.newDriver(sink)
	waitState(t, h.d, dyno.ID, drivers.StateUp, nil)
	if _, err := os.ReadFile(filepath.Join(h.opts.StateDir, dyno.ID+".log")); err != nil {
		t.Fatal(err)
	}
	// A line written now is the adopting driver's first: nothing before it repeats.
	pid := pidOf(h.d, dyno.ID)
	f, err := os.OpenFile(filepath.Join(h.opts.StateDir, dyno.ID+".log"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("three\n"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	sink.waitLine(t, "worker.1", logs.SourceApp, "three")
	if got := sink.texts("worker.1", logs.SourceApp); strings.Join(got, ",") != "three" {
		t.Errorf("adopting driver (pid %d) published %q, want only three", pid, got)
	}
}

// osThreadCount is the Threads line of /proc/self/status.
func osThreadCount(t *testing.T) int {
	t.Helper()
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(raw)) {
		if value, ok := strings.CutPrefix(line, "Threads:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(value))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("/proc/self/status: no Threads line")
	return 0
}

// Waiting for many processes holds no OS thread each: the pidfds are parked in the
// netpoller. Exits are still seen at once, and a cancelled wait leaves its process.
func TestWaitHoldsNoThreadPerProcess(t *testing.T) {
	const n = 64
	before := osThreadCount(t)
	type waiter struct {
		pid    int
		cancel context.CancelFunc
		result chan error
		status exitStatus
	}
	waiters := make([]*waiter, n)
	for i := range waiters {
		proc, err := os.StartProcess("/bin/sleep", []string{"sleep", "60"}, &os.ProcAttr{Sys: &syscall.SysProcAttr{Setpgid: true}})
		if err != nil {
			t.Fatal(err)
		}
		pid := proc.Pid
		_ = proc.Release()
		t.Cleanup(func() { _ = syscall.Kill(-pid, syscall.SIGKILL); _, _ = syscall.Wait4(pid, nil, 0, nil) })
		_, start, err := procStat(pid)
		if err != nil {
			t.Fatal(err)
		}
		p := newProc(pid, start)
		if p.pidfd == nil {
			t.Fatal("no pollable pidfd: waits would poll /proc")
		}
		ctx, cancel := context.WithCancel(context.Background())
		w := &waiter{pid: pid, cancel: cancel, result: make(chan error, 1)}
		waiters[i] = w
		go func() {
			status, err := p.wait(ctx)
			w.status = status
			w.result <- err
		}()
	}
	// Half exit (SIGTERM): their waits return with the status; the other half wait on.
	for _, w := range waiters[:n/2] {
		if err := syscall.Kill(w.pid, syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
	}
	for _, w := range waiters[:n/2] {
		select {
		case err := <-w.result:
			if err != nil || !w.status.Known || w.status.Code != 143 {
				t.Fatalf("wait for %d: %+v %v, want known status 143", w.pid, w.status, err)
			}
		case <-time.After(waitLimit):
			t.Fatalf("wait for %d did not return after its exit", w.pid)
		}
	}
	if grown := osThreadCount(t) - before; grown >= n/4 {
		t.Errorf("%d OS threads more while %d waits are pending: a thread per wait", grown, n/2)
	}
	// A cancelled wait returns ctx's error and leaves the process running.
	for _, w := range waiters[n/2:] {
		w.cancel()
		select {
		case err := <-w.result:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("cancelled wait for %d: %v", w.pid, err)
			}
		case <-time.After(waitLimit):
			t.Fatalf("cancelled wait for %d did not return", w.pid)
		}
		if state, _, err := procStat(w.pid); err != nil || state == 'Z' {
			t.Fatalf("process %d gone after a cancelled wait (%c, %v)", w.pid, state, err)
		}
	}
}

// One ticker runs every sample; a sample that returns true is dropped and its done
// closed, a removed one runs no more.
func TestMemSamplerOneTicker(t *testing.T) {
	s := newMemSampler(5 * time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.run(ctx) }()
	defer func() { cancel(); <-done }()
	var kept, stopping, removed atomic.Int64
	s.add(func() bool { kept.Add(1); return false })
	stop := s.add(func() bool { return stopping.Add(1) == 2 })
	gone := s.add(func() bool { removed.Add(1); return false })
	holds(t, "samples run", func() bool { return kept.Load() >= 3 && removed.Load() >= 1 })
	s.remove(gone)
	select {
	case <-stop.done:
	case <-time.After(waitLimit):
		t.Fatal("a sample that returned true was not stopped")
	}
	afterRemove, afterStop := removed.Load(), stopping.Load()
	mark := kept.Load()
	holds(t, "more ticks", func() bool { return kept.Load() >= mark+3 })
	if removed.Load() != afterRemove || stopping.Load() != afterStop || afterStop != 2 {
		t.Errorf("removed sample ran %d more times, stopped one %d (want 2 in all)", removed.Load()-afterRemove, stopping.Load())
	}
}
