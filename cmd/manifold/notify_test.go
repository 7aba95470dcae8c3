package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/manifold-paas/manifold/reconciler/notify"
)

// hookReceiver is a real HTTP receiver on 127.0.0.1 that answers 500 while down and
// records, in order, the events it accepted.
type hookReceiver struct {
	srv *httptest.Server

	mu      sync.Mutex
	down    bool
	refused int
	got     []notify.Event
	ids     []string // X-Manifold-Delivery of each accepted request
}

func newHookReceiver(t *testing.T, down bool) *hookReceiver {
	h := &hookReceiver{down: down}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		h.mu.Lock()
		defer h.mu.Unlock()
		if err != nil { // answered as a bad request: the test sees no event and fails
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if h.down {
			h.refused++
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		var e notify.Event
		if err := json.Unmarshal(body, &e); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		h.got = append(h.got, e)
		h.ids = append(h.ids, r.Header.Get(notify.HeaderDelivery))
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hookReceiver) events() []notify.Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.got)
}

func (h *hookReceiver) has(typ notify.Type, resolved bool) bool {
	return slices.ContainsFunc(h.events(), func(e notify.Event) bool { return e.Type == typ && e.Resolved == resolved })
}

const notifyManifold = `notify "ops" {
  type = "webhook"
  url  = "%OPS%"
}
notify "probe" {
  type = "webhook"
  url  = "%PROBE%"
}
`

const notifyApp = `app "w" {
  source { path = "../src/w" }
  buildpacks = ["procfile"]
  config = { ROUND = "%ROUND%" }
  process "worker" { count = 1 }
}
`

// TestNotifyAfterKill9 runs `manifold up` with two receivers: probe, up, shows what
// the daemon queued; ops is down (500) the whole time. The daemon deploys, meets a
// broken commit and a fixed one, and is killed with -9 while every one of those
// events waits for ops. Once ops and a new daemon are both up, ops gets each event
// probe got, once per delivery id, in the same order; then a refused webhook request
// reaches ops too.
func TestNotifyAfterKill9(t *testing.T) {
	ops, probe := newHookReceiver(t, true), newHookReceiver(t, false)
	repo := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(repo, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(repo, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("manifold.hcl", strings.NewReplacer("%OPS%", ops.srv.URL+"/ops", "%PROBE%", probe.srv.URL+"/probe").Replace(notifyManifold))
	write("src/w/Procfile", "worker: sleep 600\n")
	write("apps/w.hcl", strings.ReplaceAll(notifyApp, "%ROUND%", "1"))
	git(t, repo, "init", "-q", "-b", "main")
	git(t, repo, "add", "-A")
	git(t, repo, "commit", "-q", "-m", "w, and receivers")

	state := t.TempDir()
	t.Cleanup(func() { killDynos(filepath.Join(state, "dynos")) })
	routerAddr := freeAddr(t)
	d := startDaemon(t, state, "file://"+repo, routerAddr, "300ms")

	eventually(t, 90*time.Second, "probe hears v1 deployed", func() error {
		if !probe.has(notify.DeploySucceeded, false) {
			return fmt.Errorf("probe got %d events", len(probe.events()))
		}
		return nil
	})
	write("apps/w.hcl", "app \"w\" {\n  colour = \"red\"\n}\n")
	git(t, repo, "commit", "-q", "-am", "a broken spec")
	eventually(t, 30*time.Second, "probe hears spec.invalid", func() error {
		if !probe.has(notify.SpecInvalid, false) {
			return fmt.Errorf("probe got %d events", len(probe.events()))
		}
		return nil
	})
	write("apps/w.hcl", strings.ReplaceAll(notifyApp, "%ROUND%", "2"))
	git(t, repo, "commit", "-q", "-am", "fixed, round 2")
	eventually(t, 60*time.Second, "probe hears v2 deployed", func() error {
		succeeded := 0
		for _, e := range probe.events() {
			if e.Type == notify.DeploySucceeded {
				succeeded++
			}
		}
		if succeeded < 2 || !probe.has(notify.SpecInvalid, true) {
			return fmt.Errorf("probe got %v", probe.events())
		}
		return nil
	})
	ops.mu.Lock()
	refused := ops.refused
	ops.mu.Unlock()
	if refused == 0 {
		t.Fatalf("ops was never tried while down")
	}
	d.kill()
	queued := probe.events()

	ops.mu.Lock()
	ops.down = false
	ops.mu.Unlock()
	d2 := startDaemon(t, state, "file://"+repo, routerAddr, "300ms")
	eventually(t, 60*time.Second, "ops gets what was queued", func() error {
		if got := len(ops.events()); got < len(queued) {
			return fmt.Errorf("ops got %d of %d", got, len(queued))
		}
		return nil
	})
	got := ops.events()
	ops.mu.Lock()
	ids := slices.Clone(ops.ids)
	ops.mu.Unlock()
	seen := map[string]bool{}
	var unique []notify.Event
	for i, e := range got {
		if ids[i] != e.ID {
			t.Errorf("delivery %d: X-Manifold-Delivery %q, event id %q", i, ids[i], e.ID)
		}
		if !seen[e.ID] {
			seen[e.ID] = true
			unique = append(unique, e)
		}
	}
	for i, want := range queued {
		if i >= len(unique) || unique[i].ID != want.ID {
			t.Fatalf("ops event %d is not probe's %s %s (%s)\nops:   %v\nprobe: %v", i, want.Type, want.Message, want.ID, unique, queued)
		}
	}
	wantTypes := []notify.Type{notify.DeployStarted, notify.DeploySucceeded, notify.SpecInvalid, notify.SpecInvalid, notify.DeployStarted, notify.DeploySucceeded}
	var types []notify.Type
	for _, e := range queued {
		types = append(types, e.Type)
	}
	if !slices.Equal(types, wantTypes) {
		t.Errorf("queued %v, want %v", types, wantTypes)
	}
	// A request the webhook refuses (here a GET) is an event too.
	resp, err := http.Get("http://" + d2.webhook + "/hooks/git")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET /hooks/git: %s, want 405", resp.Status)
	}
	eventually(t, 30*time.Second, "ops hears webhook.rejected", func() error {
		if !ops.has(notify.WebhookRejected, false) {
			return fmt.Errorf("ops got %d events", len(ops.events()))
		}
		return nil
	})
}
