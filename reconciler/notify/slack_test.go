package notify_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/manifold-paas/manifold/drivers"
	"github.com/manifold-paas/manifold/reconciler/notify"
	"github.com/manifold-paas/manifold/spec"
)

func TestSlackGetsIncomingWebhookText(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t)
	n := start(t, fastOptions(t, nil), platform(spec.Notify{Name: "team", Type: "slack", URL: rcv.srv.URL + "/services/T0/B0/X", Severity: "info"}))
	n.Notify(context.Background(), notify.DeployFailedEvent("hello", "staging", strings.Repeat("a", 40), 3, notify.PhaseBoot, errors.New("web.1 did not bind $PORT within 60s (R10)")))
	n.Notify(context.Background(), notify.DynoEvents(dynoEvent(drivers.StateUp, drivers.StateCrashed, ""))...)
	n.Notify(context.Background(), notify.DynoEvents(dynoEvent(drivers.StateStarting, drivers.StateUp, ""))...)
	waitFor(t, "3 messages", func() bool { return len(rcv.deliveries()) == 3 })
	want := []string{"*deploy.failed* Deploy of hello (staging) at aaaaaaa failed (boot): web.1 did not bind $PORT within 60s (R10)",
		"*dyno.crashed* web.1 of hello (staging) crashed", "*dyno.recovered* web.1 of hello (staging) is up again"}
	for i, d := range rcv.deliveries() {
		var body map[string]any
		if err := json.Unmarshal(d.Body, &body); err != nil {
			t.Fatal(err)
		}
		text, ok := body["text"].(string)
		if len(body) != 1 || !ok {
			t.Fatalf("slack body %s: want only a text", d.Body)
		}
		if !strings.Contains(text, want[i]) {
			t.Errorf("text %q, want it to hold %q", text, want[i])
		}
	}
}

// recorder is an eventSink that keeps what it is told.
type recorder struct {
	mu     sync.Mutex
	events []notify.Event
}

func (r *recorder) Notify(_ context.Context, events ...notify.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, events...)
}

func (r *recorder) told() []notify.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]notify.Event(nil), r.events...)
}

func TestRejectedWebhooks(t *testing.T) {
	t.Parallel()
	sink := &recorder{}
	hook := notify.RejectedWebhooks(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Hub-Signature-256") == "" {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}), sink)
	srv := httptest.NewServer(hook)
	t.Cleanup(srv.Close)
	for _, signed := range []bool{true, false} {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/hooks/git", strings.NewReader("{}"))
		if signed {
			req.Header.Set("X-Hub-Signature-256", "sha256=00")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	waitFor(t, "the rejection", func() bool { return len(sink.told()) > 0 })
	events := sink.told()
	if len(events) != 1 || events[0].Type != notify.WebhookRejected || !strings.Contains(events[0].Message, "HTTP 401") ||
		!strings.Contains(events[0].Message, "127.0.0.1") {
		t.Errorf("events %+v, want one webhook.rejected (401, from 127.0.0.1)", events)
	}
}
