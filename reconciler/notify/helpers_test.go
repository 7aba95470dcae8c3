package notify_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/manifold-paas/manifold/reconciler/notify"
	"github.com/manifold-paas/manifold/spec"
)

// waitFor polls cond until it holds or 10 s pass: the package's one polling helper.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// delivery is one request a receiver got.
type delivery struct {
	ID     string
	Header http.Header
	Body   []byte
	Event  notify.Event
	At     time.Time
}

// receiver is a real HTTP server on 127.0.0.1 that records what it gets. failing
// makes it answer 500 while it is set; gate, when set, holds each request until
// the test sends on it (a slow receiver); secret, when set, makes it check the
// signature and answer 401 to a wrong one.
type receiver struct {
	t      testing.TB
	srv    *httptest.Server
	secret []byte
	gate   chan struct{}

	mu      sync.Mutex
	failing bool
	got     []delivery
	refused int
	badSig  int
}

func newReceiver(t testing.TB) *receiver {
	t.Helper()
	r := &receiver{t: t}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	if r.gate != nil {
		select {
		case <-r.gate:
		case <-req.Context().Done():
			return
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failing {
		r.refused++
		http.Error(w, "down for maintenance", http.StatusInternalServerError)
		return
	}
	if r.secret != nil {
		mac := hmac.New(sha256.New, r.secret)
		mac.Write(body)
		want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
		if !hmac.Equal([]byte(req.Header.Get(notify.HeaderSignature)), []byte(want)) {
			r.badSig++
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
	}
	d := delivery{ID: req.Header.Get(notify.HeaderDelivery), Header: req.Header.Clone(), Body: body, At: time.Now()}
	_ = json.Unmarshal(body, &d.Event)
	r.got = append(r.got, d)
	w.WriteHeader(http.StatusNoContent)
}

func (r *receiver) setFailing(v bool) {
	r.mu.Lock()
	r.failing = v
	r.mu.Unlock()
}

func (r *receiver) deliveries() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivery(nil), r.got...)
}

// unique drops repeated deliveries (the same X-Manifold-Delivery), as a receiver
// honouring at-least-once does.
func unique(ds []delivery) []delivery {
	seen := map[string]bool{}
	var out []delivery
	for _, d := range ds {
		if !seen[d.ID] {
			seen[d.ID] = true
			out = append(out, d)
		}
	}
	return out
}

// fastOptions are Options for tests: short backoffs and ticks.
func fastOptions(t testing.TB, logTo io.Writer) notify.Options {
	t.Helper()
	if logTo == nil {
		logTo = io.Discard
	}
	return notify.Options{
		Path:       filepath.Join(t.TempDir(), "notify.db"),
		MinBackoff: 10 * time.Millisecond,
		MaxBackoff: 100 * time.Millisecond,
		Tick:       10 * time.Millisecond,
		Logger:     slog.New(slog.NewTextHandler(logTo, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

// start opens a Notifier, configures it and runs it until the test ends.
func start(t testing.TB, opts notify.Options, desired *spec.Desired) *notify.Notifier {
	t.Helper()
	n, err := notify.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	if desired != nil {
		n.Configure(desired)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = n.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		if err := n.Close(); err != nil {
			t.Error(err)
		}
	})
	return n
}

func platform(receivers ...spec.Notify) *spec.Desired {
	return &spec.Desired{Platform: spec.Platform{Notify: receivers}, Environments: []string{"production", "staging"}}
}

func writeSecret(t testing.TB, value string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "ops.secret")
	if err := os.WriteFile(file, []byte(value+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// lockedBuffer is a log sink safe for the notifier's goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
