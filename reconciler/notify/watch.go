package notify

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/manifold-paas/manifold/logs"
	"github.com/manifold-paas/manifold/spec"
)

// watch.go finds the conditions that only the log stream shows: router errors (the
// router's at=error lines) and drains dropping lines (L10).

// LogTail is the logplex's live stream (logs.Plex).
type LogTail interface {
	Tail(ctx context.Context, f logs.Filter, replay int) <-chan logs.Line
}

// signalEvery bounds how often one condition is signalled from the log stream: a
// burst of a thousand H12s is one signal a second, not a thousand queue writes.
const signalEvery = time.Second

// reconnectWait is the pause before a tail cut off (L11) is opened again.
const reconnectWait = time.Second

// watchLogs reads the platform's lines until ctx ends, reopening the tail when the
// logplex cuts it off for falling behind.
func (n *Notifier) watchLogs(ctx context.Context) {
	w := &lineWatcher{n: n, errors: map[string]*rateWindow{}, signalled: map[string]time.Time{}}
	for ctx.Err() == nil {
		for line := range n.opts.Logs.Tail(ctx, logs.Filter{Source: logs.SourceHeroku}, 0) {
			w.observe(ctx, line)
		}
		if ctx.Err() == nil {
			// Cut off (L11) for falling behind: lines of the gap are not seen, which a
			// rate over a window survives.
			n.log.Debug("log watch cut off: reopening", "in", reconnectWait)
		}
		select {
		case <-ctx.Done():
		case <-time.After(reconnectWait):
		}
	}
}

type lineWatcher struct {
	n         *Notifier
	errors    map[string]*rateWindow // app/env/code
	signalled map[string]time.Time   // condition -> last signal
}

func (w *lineWatcher) observe(ctx context.Context, line logs.Line) {
	var e Event
	switch {
	case line.Dyno == "router" && strings.HasPrefix(line.Text, "at=error code="):
		code, _, _ := strings.Cut(strings.TrimPrefix(line.Text, "at=error code="), " ")
		cond := fmt.Sprintf("router.errors/%s/%s/%s", line.App, line.Env, code)
		rule := w.n.rule.Load()
		rate := w.errors[cond]
		if rate == nil || len(rate.times) != rule.threshold {
			// A new threshold starts counting again.
			rate = newRateWindow(rule.threshold)
			w.errors[cond] = rate
		}
		if !rate.add(line.Time, rule.window) {
			return
		}
		e = Event{Type: RouterErrors, Severity: SeverityError, App: line.App, Env: line.Env, Code: code,
			Condition: cond, Key: cond,
			Message: fmt.Sprintf("%s (%s): %d or more %s errors within %s", line.App, line.Env,
				rule.threshold, code, rule.window)}
	case line.Dyno == "logplex" && strings.HasPrefix(line.Text, "Error L10"):
		cond := fmt.Sprintf("drain.dropping/%s/%s", line.App, line.Env)
		e = Event{Type: DrainDropping, Severity: SeverityError, App: line.App, Env: line.Env, Code: "L10",
			Condition: cond, Key: cond, Message: fmt.Sprintf("%s (%s): %s", line.App, line.Env, line.Text)}
	default:
		return
	}
	if last, ok := w.signalled[e.Condition]; ok && line.Time.Sub(last) < signalEvery {
		return
	}
	w.signalled[e.Condition] = line.Time
	w.n.Notify(ctx, e)
}

// routerRule is when router.errors fires: threshold errors of one code within
// window.
type routerRule struct {
	threshold int
	window    time.Duration
}

// ruleOf is the spec's rule (manifold.hcl's router_errors), with Options' values
// where it leaves one zero (a spec not made by spec.Load).
func (n *Notifier) ruleOf(re spec.RouterErrors) *routerRule {
	r := &routerRule{threshold: n.opts.RouterErrorThreshold, window: n.opts.RouterErrorWindow}
	if re.Threshold > 0 {
		r.threshold = re.Threshold
	}
	if re.WindowSeconds > 0 {
		r.window = time.Duration(re.WindowSeconds) * time.Second
	}
	return r
}

// rateWindow remembers the times of the last `threshold` errors: the rate is over
// the threshold when the oldest of them is within the window.
type rateWindow struct {
	times []time.Time
	next  int
	full  bool
}

func newRateWindow(threshold int) *rateWindow {
	return &rateWindow{times: make([]time.Time, threshold)}
}

// add records an error at t and tells whether the window holds threshold of them.
func (r *rateWindow) add(t time.Time, window time.Duration) bool {
	r.times[r.next] = t
	r.next = (r.next + 1) % len(r.times)
	if r.next == 0 {
		r.full = true
	}
	return r.full && t.Sub(r.times[r.next]) <= window
}

// eventSink is what RejectedWebhooks tells (a Notifier).
type eventSink interface {
	Notify(ctx context.Context, events ...Event)
}

// RejectedWebhooks wraps the git webhook's handler: each request it answers with a
// 4xx (a bad signature, a bad payload) is a webhook.rejected event.
func RejectedWebhooks(next http.Handler, sink eventSink) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, req)
		if rec.status >= 400 && rec.status < 500 {
			host, _, err := net.SplitHostPort(req.RemoteAddr)
			if err != nil {
				host = req.RemoteAddr
			}
			sink.Notify(req.Context(), WebhookRejectedEvent(rec.status, host))
		}
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status  int
	written bool
}

func (r *statusRecorder) WriteHeader(code int) {
	if !r.written {
		r.status, r.written = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	r.written = true
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the real writer.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
