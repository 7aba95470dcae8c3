package notify_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/manifold-paas/manifold/reconciler/notify"
	"github.com/manifold-paas/manifold/spec"
)

// deployEvents returns n distinct deploy events of one app, in order.
func deployEvents(n int) []notify.Event {
	var out []notify.Event
	for i := 1; i <= n; i++ {
		out = append(out, notify.DeploySucceededEvent("hello", "staging", fmt.Sprintf("%040x", i), i))
	}
	return out
}

func TestWebhookIsSignedAndInOrder(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t-hmac-key-never-logged"
	rcv := newReceiver(t)
	rcv.secret = []byte(secret)
	var logs lockedBuffer
	n := start(t, fastOptions(t, &logs), platform(
		spec.Notify{Name: "ops", Type: "webhook", URL: rcv.srv.URL + "/hook", SecretFile: writeSecret(t, secret), Severity: "info"},
	))
	events := deployEvents(20)
	for _, e := range events {
		n.Notify(context.Background(), e)
	}
	waitFor(t, "20 deliveries", func() bool { return len(rcv.deliveries()) == 20 })
	got := rcv.deliveries()
	for i, d := range got {
		if d.Event.Release != i+1 {
			t.Fatalf("delivery %d is v%d: out of order", i, d.Event.Release)
		}
		if d.ID == "" || d.ID != d.Event.ID {
			t.Errorf("delivery %d: %s = %q, event id %q", i, notify.HeaderDelivery, d.ID, d.Event.ID)
		}
		if d.Event.Type != notify.DeploySucceeded || d.Header.Get(notify.HeaderEvent) != "deploy.succeeded" {
			t.Errorf("delivery %d: type %q, header %q", i, d.Event.Type, d.Header.Get(notify.HeaderEvent))
		}
		if strings.Contains(string(d.Body), secret) {
			t.Errorf("the body carries the secret")
		}
	}
	if rcv.badSig != 0 {
		t.Errorf("%d requests had a bad signature", rcv.badSig)
	}
	if strings.Contains(logs.String(), secret) {
		t.Errorf("the log shows the secret:\n%s", logs.String())
	}
}

func TestWrongSecretIsRejectedNotRetried(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t)
	rcv.secret = []byte("the receiver's key")
	var logs lockedBuffer
	n := start(t, fastOptions(t, &logs), platform(
		spec.Notify{Name: "ops", Type: "webhook", URL: rcv.srv.URL, SecretFile: writeSecret(t, "another key"), Severity: "info"},
	))
	n.Notify(context.Background(), deployEvents(2)...)
	waitFor(t, "both rejected", func() bool {
		rcv.mu.Lock()
		defer rcv.mu.Unlock()
		return rcv.badSig == 2
	})
	waitFor(t, "the drops logged", func() bool { return strings.Count(logs.String(), "notification rejected: dropped") == 2 })
	if strings.Contains(logs.String(), "another key") {
		t.Errorf("the log shows the secret")
	}
}

func TestReceiverDownForAWhileGetsEverythingInOrder(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t)
	rcv.setFailing(true)
	n := start(t, fastOptions(t, nil), platform(spec.Notify{Name: "ops", Type: "webhook", URL: rcv.srv.URL, Severity: "info"}))
	events := deployEvents(10)
	for _, e := range events {
		n.Notify(context.Background(), e)
	}
	waitFor(t, "several refused attempts", func() bool {
		rcv.mu.Lock()
		defer rcv.mu.Unlock()
		return rcv.refused >= 3
	})
	rcv.setFailing(false)
	waitFor(t, "10 deliveries", func() bool { return len(unique(rcv.deliveries())) == 10 })
	for i, d := range unique(rcv.deliveries()) {
		if d.Event.Release != i+1 {
			t.Fatalf("delivery %d is v%d: out of order", i, d.Event.Release)
		}
	}
}

func TestSlowReceiverHoldsOnlyItself(t *testing.T) {
	t.Parallel()
	slow, fast := newReceiver(t), newReceiver(t)
	slow.gate = make(chan struct{})
	n := start(t, fastOptions(t, nil), platform(
		spec.Notify{Name: "fast", Type: "webhook", URL: fast.srv.URL, Severity: "info"},
		spec.Notify{Name: "slow", Type: "webhook", URL: slow.srv.URL, Severity: "info"},
	))
	n.Notify(context.Background(), deployEvents(3)...)
	waitFor(t, "the fast receiver's 3", func() bool { return len(fast.deliveries()) == 3 })
	if got := len(slow.deliveries()); got != 0 {
		t.Fatalf("slow receiver got %d before its gate opened", got)
	}
	for range 3 {
		slow.gate <- struct{}{}
	}
	waitFor(t, "the slow receiver's 3", func() bool { return len(slow.deliveries()) == 3 })
	for i, d := range slow.deliveries() {
		if d.Event.Release != i+1 {
			t.Fatalf("slow delivery %d is v%d", i, d.Event.Release)
		}
	}
}

func TestFilters(t *testing.T) {
	t.Parallel()
	all := []notify.Event{
		notify.DeployStartedEvent("hello", "staging", strings.Repeat("a", 40)),
		notify.DeploySucceededEvent("hello", "staging", strings.Repeat("a", 40), 2),
		notify.DeployFailedEvent("api", "production", strings.Repeat("b", 40), 3, notify.PhaseRelease, fmt.Errorf("exit 1")),
		notify.RollbackEvent("hello", "production", 1, 4, "ops@example.com"),
		notify.WebhookRejectedEvent(401, "127.0.0.1"),
	}
	cases := []struct {
		name string
		nb   spec.Notify
		app  string // an app receiver of hello (staging)
		want []notify.Type
	}{
		{"everything", spec.Notify{Severity: "info"}, "",
			[]notify.Type{notify.DeployStarted, notify.DeploySucceeded, notify.DeployFailed, notify.Rollback, notify.WebhookRejected}},
		{"errors only", spec.Notify{Severity: "error"}, "", []notify.Type{notify.DeployFailed}},
		{"a family less one", spec.Notify{Severity: "info", Events: []string{"deploy.*"}, Exclude: []string{"deploy.started"}}, "",
			[]notify.Type{notify.DeploySucceeded, notify.DeployFailed}},
		{"one app's", spec.Notify{Severity: "info"}, "hello", []notify.Type{notify.DeployStarted, notify.DeploySucceeded}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rcv := newReceiver(t)
			tc.nb.Name, tc.nb.Type, tc.nb.URL = "r", "webhook", rcv.srv.URL
			desired := platform(tc.nb)
			if tc.app != "" {
				desired = &spec.Desired{Apps: []spec.App{{Name: tc.app, Env: "staging", Notify: []spec.Notify{tc.nb}}}}
			}
			n := start(t, fastOptions(t, nil), desired)
			n.Notify(context.Background(), all...)
			// A last event every receiver takes marks the end of the stream.
			marker := notify.DeployFailedEvent("hello", "staging", strings.Repeat("c", 40), 9, notify.PhaseBuild, fmt.Errorf("marker"))
			n.Notify(context.Background(), marker)
			waitFor(t, "the marker", func() bool {
				ds := rcv.deliveries()
				return len(ds) > 0 && ds[len(ds)-1].Event.Release == 9
			})
			var got []notify.Type
			for _, d := range rcv.deliveries() {
				got = append(got, d.Event.Type)
			}
			got = got[:len(got)-1]
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestTypesAreTheSpecsEvents(t *testing.T) {
	t.Parallel()
	var types []string
	for _, typ := range notify.Types() {
		types = append(types, string(typ))
	}
	if !slices.Equal(types, spec.NotifyEventTypes()) {
		t.Errorf("notify.Types() = %v\nspec.NotifyEventTypes() = %v", types, spec.NotifyEventTypes())
	}
}
