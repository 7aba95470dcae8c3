package notify_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/manifold-paas/manifold/logs"
	"github.com/manifold-paas/manifold/reconciler/notify"
	"github.com/manifold-paas/manifold/spec"
)

// TestRouterErrorRuleFromSpec: manifold.hcl's router_errors { threshold = 3,
// window = "30s" } replaces the daemon's rule (10 a minute): router.errors fires at
// the third error of a code within 30 s of the router's clock, not at the second,
// and not for three errors spread over more than 30 s.
func TestRouterErrorRuleFromSpec(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t)
	plex := logs.New(logs.Options{})
	t.Cleanup(plex.Close)
	opts := fastOptions(t, nil)
	opts.Logs = plex // RouterErrorThreshold is left at its default, 10
	desired := platform(spec.Notify{Name: "ops", Type: "webhook", URL: rcv.srv.URL, Severity: "info"})
	desired.Platform.RouterErrors = spec.RouterErrors{Threshold: 3, WindowSeconds: 30}
	start(t, opts, desired)

	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	routerError := func(app, code string, at time.Duration) {
		plex.Publish(logs.Line{App: app, Env: "staging", Source: logs.SourceHeroku, Dyno: "router", Time: t0.Add(at),
			Text: fmt.Sprintf(`at=error code=%s desc="Request timeout" method=GET path="/" host=%s.staging.localhost`, code, app)})
	}
	fired := func() []string {
		var out []string
		for _, d := range rcv.deliveries() {
			if d.Event.Type == notify.RouterErrors && !d.Event.Resolved {
				out = append(out, d.Event.App+"/"+d.Event.Code)
			}
		}
		return out
	}
	// barrier makes a marker app fire: the log watch reads lines in order and the
	// receiver gets its events in order, so every line published before it has been
	// looked at, and any event it made has arrived, once the marker's has.
	barrier := func(marker string) {
		t.Helper()
		waitFor(t, "the marker "+marker+" to fire", func() bool {
			routerError(marker, "H99", 0)
			return slices.Contains(fired(), marker+"/H99")
		})
	}

	barrier("sync-a") // the watch is live
	routerError("hello", "H12", 0)
	routerError("hello", "H12", time.Second)
	barrier("sync-b")
	if got := fired(); slices.Contains(got, "hello/H12") {
		t.Fatalf("router.errors fired at the second H12 of a threshold of 3: %q", got)
	}
	routerError("hello", "H12", 2*time.Second)
	waitFor(t, "router.errors at the third H12", func() bool { return slices.Contains(fired(), "hello/H12") })
	for _, d := range rcv.deliveries() {
		if d.Event.App == "hello" && d.Event.Type == notify.RouterErrors &&
			!strings.Contains(d.Event.Message, "3 or more H12 errors within 30s") {
			t.Errorf("message %q does not state the spec's rule", d.Event.Message)
		}
	}

	// The window: three H10s over 40 s are not three within 30 s; a fourth 5 s later
	// makes the last three span 25 s.
	routerError("api", "H10", 0)
	routerError("api", "H10", 20*time.Second)
	routerError("api", "H10", 40*time.Second)
	barrier("sync-c")
	if got := fired(); slices.Contains(got, "api/H10") {
		t.Fatalf("router.errors fired for 3 errors over 40 s with a window of 30 s: %q", got)
	}
	routerError("api", "H10", 45*time.Second)
	waitFor(t, "router.errors for the fourth H10", func() bool { return slices.Contains(fired(), "api/H10") })
}
