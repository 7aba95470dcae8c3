package notify_test

import (
	"context"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/manifold-paas/manifold/drivers"
	"github.com/manifold-paas/manifold/logs"
	"github.com/manifold-paas/manifold/reconciler/notify"
	"github.com/manifold-paas/manifold/spec"
)

func dynoEvent(from, to drivers.State, code string) drivers.Event {
	return drivers.Event{From: from, To: to, Code: code, Dyno: drivers.Dyno{
		Name: "web.1", State: to, Reason: "Process exited with status 1",
		Spec: drivers.DynoSpec{App: "hello", Env: "staging", Type: "web", Index: 1, Release: 4},
	}}
}

// summary is "type[/resolved] xN" of each delivery, for comparing sequences.
func summary(ds []delivery) []string {
	var out []string
	for _, d := range ds {
		s := string(d.Event.Type)
		if d.Event.Resolved {
			s += "/resolved"
		}
		if d.Event.Repeats > 0 {
			s += " +" + strconv.Itoa(d.Event.Repeats)
		}
		out = append(out, s)
	}
	return out
}

func TestCrashesFoldAndRecover(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t)
	opts := fastOptions(t, nil)
	opts.FoldWindow = time.Second
	n := start(t, opts, platform(spec.Notify{Name: "ops", Type: "webhook", URL: rcv.srv.URL, Severity: "error"}))
	ctx := context.Background()
	n.Notify(ctx, notify.DynoEvents(dynoEvent(drivers.StateUp, drivers.StateCrashed, ""))...)
	for range 3 { // a crash loop: the same condition, folded
		n.Notify(ctx, notify.DynoEvents(dynoEvent(drivers.StateStarting, drivers.StateCrashed, ""))...)
	}
	n.Notify(ctx, notify.DynoEvents(dynoEvent(drivers.StateStarting, drivers.StateUp, ""))...)
	// Flapping within the window: held, not sent again at once.
	n.Notify(ctx, notify.DynoEvents(dynoEvent(drivers.StateUp, drivers.StateCrashed, ""))...)
	n.Notify(ctx, notify.DynoEvents(dynoEvent(drivers.StateStarting, drivers.StateUp, ""))...)
	n.Notify(ctx, notify.DynoEvents(dynoEvent(drivers.StateUp, drivers.StateCrashed, ""))...)
	// R14 is its own condition; a normal boot of another dyno resolves nothing.
	n.Notify(ctx, notify.DynoEvents(dynoEvent(drivers.StateUp, drivers.StateUp, "R14"))...)
	n.Notify(ctx, notify.DeployFailedEvent("hello", "staging", "", 5, notify.PhaseBoot, os.ErrDeadlineExceeded))
	want := []string{"dyno.crashed", "dyno.recovered/resolved +3", "dyno.memory", "deploy.failed", "dyno.crashed +2"}
	waitFor(t, "the held crash at the window's end", func() bool { return len(rcv.deliveries()) >= len(want) })
	if got := summary(rcv.deliveries()); !slices.Equal(got, want) {
		t.Errorf("deliveries:\n got %q\nwant %q", got, want)
	}
	// Stopping the dyno clears what it had: the crash, and the memory condition.
	n.Notify(ctx, notify.DynoEvents(dynoEvent(drivers.StateCrashed, drivers.StateDown, ""))...)
	want = append(want, "dyno.recovered/resolved", "dyno.memory/resolved")
	waitFor(t, "both resolutions", func() bool { return len(rcv.deliveries()) >= len(want) })
	if got := summary(rcv.deliveries()); !slices.Equal(got, want) {
		t.Errorf("deliveries:\n got %q\nwant %q", got, want)
	}
}

func TestLogConditionsFireAndClear(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t)
	plex := logs.New(logs.Options{})
	t.Cleanup(plex.Close)
	opts := fastOptions(t, nil)
	opts.Logs = plex
	opts.RouterErrorThreshold = 5
	opts.QuietAfter = 300 * time.Millisecond
	start(t, opts, platform(spec.Notify{Name: "ops", Type: "webhook", URL: rcv.srv.URL, Severity: "info"}))
	has := func(typ notify.Type, resolved bool) bool {
		return slices.ContainsFunc(rcv.deliveries(), func(d delivery) bool { return d.Event.Type == typ && d.Event.Resolved == resolved })
	}
	// Fewer than the threshold: no event. The tail may start after the first lines,
	// so lines go on until the condition fires.
	waitFor(t, "router.errors", func() bool {
		plex.Publish(logs.Line{App: "hello", Env: "staging", Source: logs.SourceHeroku, Dyno: "router",
			Text: `at=error code=H12 desc="Request timeout" method=GET path="/" host=hello.staging.localhost`})
		plex.Publish(logs.Line{App: "hello", Env: "staging", Source: logs.SourceHeroku, Dyno: "router",
			Text: `at=info method=GET path="/" host=hello.staging.localhost status=200`})
		return has(notify.RouterErrors, false)
	})
	waitFor(t, "drain.dropping", func() bool {
		plex.Publish(logs.Line{App: "hello", Env: "staging", Source: logs.SourceHeroku, Dyno: "logplex",
			Text: "Error L10 (output buffer overflow): 12 messages dropped since 2026-01-01T00:00:00+00:00."})
		return has(notify.DrainDropping, false)
	})
	waitFor(t, "both resolved once quiet", func() bool { return has(notify.RouterErrors, true) && has(notify.DrainDropping, true) })
	for _, d := range rcv.deliveries() {
		if d.Event.Type == notify.RouterErrors && d.Event.Code != "H12" {
			t.Errorf("router.errors code %q, want H12", d.Event.Code)
		}
	}
	if got := len(rcv.deliveries()); got != 4 {
		t.Errorf("%d deliveries, want 4 (fire and clear of each): %q", got, summary(rcv.deliveries()))
	}
}

func TestQueueSurvivesRestart(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t)
	rcv.setFailing(true)
	opts := fastOptions(t, nil)
	first, err := notify.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	first.Configure(platform(spec.Notify{Name: "ops", Type: "webhook", URL: rcv.srv.URL, Severity: "info"}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = first.Run(ctx) }()
	first.Notify(ctx, deployEvents(5)...)
	waitFor(t, "a refused attempt", func() bool {
		rcv.mu.Lock()
		defer rcv.mu.Unlock()
		return rcv.refused > 0
	})
	cancel()
	<-done
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(opts.Path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want 0600", opts.Path, info.Mode().Perm())
	}
	rcv.setFailing(false)
	// No Configure: the receivers of the last run are known before the first pass.
	start(t, opts, nil)
	waitFor(t, "5 deliveries after the restart", func() bool { return len(unique(rcv.deliveries())) == 5 })
	for i, d := range unique(rcv.deliveries()) {
		if d.Event.Release != i+1 {
			t.Fatalf("delivery %d is v%d", i, d.Event.Release)
		}
	}
}
