package reconciler_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/manifold-paas/manifold/reconciler/notify"
	"github.com/manifold-paas/manifold/spec"
)

// noteRecorder is a reconciler.Notifier that keeps what it is told.
type noteRecorder struct {
	mu         sync.Mutex
	events     []notify.Event
	configured int
	loaded     int // spec.invalid resolutions: one per pass that loads
}

func (n *noteRecorder) Notify(_ context.Context, events ...notify.Event) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, e := range events {
		if e.Type != "" {
			n.events = append(n.events, e)
		}
	}
}

func (n *noteRecorder) Configure(*spec.Desired) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.configured++
	return nil
}

// take returns the deploy, rollback and spec.invalid events told since the last
// take, as "type phase vN". Dyno events vary with the fake driver's timing, and the
// "loads again" of each pass with how many passes ran: both are left out.
func (n *noteRecorder) take() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for _, e := range n.events {
		if strings.HasPrefix(string(e.Type), "dyno.") {
			continue
		}
		if e.Type == notify.SpecInvalid && e.Resolved {
			n.loaded++
			continue
		}
		s := string(e.Type)
		if e.Resolved {
			s += " resolved"
		}
		if e.Phase != "" {
			s += " " + e.Phase
		}
		if e.Release != 0 {
			s += fmt.Sprintf(" v%d", e.Release)
		}
		out = append(out, s)
	}
	n.events = nil
	return out
}

func TestTheLoopTellsDeploysAndTheirFailures(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	expect := func(step string, want ...string) {
		t.Helper()
		if got := h.notes.take(); !slices.Equal(got, want) {
			t.Errorf("%s: events %q, want %q", step, got, want)
		}
	}
	h.reconcile("")
	expect("first deploy", "deploy.started", "deploy.succeeded v1")
	h.write("src/hello/Procfile", "web: ./web.sh\nworker: ./worker.sh\nrelease: exit 1\n")
	h.commit()
	h.reconcile("")
	expect("release phase fails", "deploy.started", "deploy.failed release v2")
	h.write("src/hello/Procfile", "web: ./web.sh never-binds\nworker: ./worker.sh\n")
	h.commit()
	h.reconcile("")
	expect("boot fails", "deploy.started", "deploy.failed boot v3")
	h.write("apps/hello.hcl", strings.ReplaceAll(strings.ReplaceAll(helloSpec, "%WEB%", "1"), `"procfile"`, `"no-such-buildpack"`))
	h.commit()
	h.reconcile("")
	expect("build fails", "deploy.started", "deploy.failed build")
	h.write("apps/hello.hcl", "app \"hello\" {\n  colour = \"red\"\n}\n")
	h.commit()
	h.reconcile("")
	expect("a broken commit", "spec.invalid")
	if _, err := h.rec.Rollback(context.Background(), "hello", "", 1, "bob@example.com"); err != nil {
		t.Fatal(err)
	}
	expect("rollback", "rollback v4")
	h.notes.mu.Lock()
	defer h.notes.mu.Unlock()
	if h.notes.configured == 0 || h.notes.loaded == 0 {
		t.Errorf("the notifier got %d specs and %d passes that loaded, want some", h.notes.configured, h.notes.loaded)
	}
}
