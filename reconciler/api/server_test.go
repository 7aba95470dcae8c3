package api

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/manifold-paas/manifold/drivers"
	"github.com/manifold-paas/manifold/reconciler"
	"github.com/manifold-paas/manifold/reconciler/ledger"
	"github.com/manifold-paas/manifold/spec"
)

// stubDaemon answers run and rollback as the test says; it stands in for the
// reconciler, which has its own tests.
type stubDaemon struct {
	run      func(reconciler.OneOff) (int, error)
	rollback error
}

func (stubDaemon) Status() reconciler.Status               { return reconciler.Status{} }
func (stubDaemon) Reconcile(context.Context, string) error { return nil }
func (stubDaemon) Dynos(context.Context, string, string) (spec.App, []drivers.Dyno, error) {
	return spec.App{}, nil, nil
}
func (stubDaemon) Releases(string, string) (spec.App, []ledger.Release, error) {
	return spec.App{}, nil, nil
}
func (d stubDaemon) Rollback(context.Context, string, string, int, string) (ledger.Release, error) {
	return ledger.Release{}, d.rollback
}
func (d stubDaemon) RunOneOff(_ context.Context, o reconciler.OneOff) (int, error) { return d.run(o) }
func (stubDaemon) LivePlan(context.Context) (reconciler.LivePlan, error) {
	return reconciler.LivePlan{}, nil
}

func TestErrorStatusCodes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, path, body string
		daemon           stubDaemon
		want             int
		wantBody         string
	}{
		{"run of an unknown app", "/v1/apps/nope/run", `{"command":"ls"}`, stubDaemon{run: func(reconciler.OneOff) (int, error) {
			return 0, fmt.Errorf("%w: nope", reconciler.ErrUnknownApp)
		}}, http.StatusNotFound, "no such app"},
		{"run that exits 3", "/v1/apps/hello/run", `{"command":"ls"}`, stubDaemon{run: func(o reconciler.OneOff) (int, error) {
			_, _ = io.WriteString(o.Stdout, "out\n")
			return 3, nil
		}}, http.StatusOK, `"exit":3`},
		{"run failing after output", "/v1/apps/hello/run", `{"command":"ls"}`, stubDaemon{run: func(o reconciler.OneOff) (int, error) {
			_, _ = io.WriteString(o.Stderr, "err\n")
			return 0, fmt.Errorf("driver gone")
		}}, http.StatusOK, `"error":"driver gone"`},
		{"rollback to a failed release", "/v1/apps/hello/rollback", `{"version":2}`,
			stubDaemon{rollback: fmt.Errorf("roll back: %w: v2 is failed", ledger.ErrNotLive)}, http.StatusConflict, "never went live"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(asLocal(Handler(Options{Daemon: tt.daemon})))
			defer srv.Close()
			resp, err := http.Post(srv.URL+tt.path, "application/json", bytes.NewBufferString(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.want || !strings.Contains(string(body), tt.wantBody) {
				t.Errorf("%s %s: %d %s, want %d with %q", http.MethodPost, tt.path, resp.StatusCode, body, tt.want, tt.wantBody)
			}
		})
	}
}

// TestRunStdin drives POST /v1/apps/{app}/run through the client against a real HTTP
// server: the one-off's stdin streams from the client while its output streams back
// (a stub that echoes each line as it reads it would deadlock otherwise), output that
// is not UTF-8 arrives byte for byte, and a one-off that never reads a stdin that
// never ends (a terminal) still returns its exit code.
func TestRunStdin(t *testing.T) {
	t.Parallel()
	t.Run("echo, line by line", func(t *testing.T) {
		t.Parallel()
		daemon := stubDaemon{run: func(o reconciler.OneOff) (int, error) {
			lines := bufio.NewScanner(o.Stdin)
			for lines.Scan() {
				_, _ = fmt.Fprintf(o.Stdout, "got %s\n", lines.Text())
			}
			_, _ = o.Stderr.Write([]byte{0xff, 0x00, 0xfe})
			return 7, lines.Err()
		}}
		srv := httptest.NewServer(asLocal(Handler(Options{Daemon: daemon})))
		defer srv.Close()
		client := &Client{BaseURL: srv.URL, HTTP: srv.Client()}
		// The second line is written only once the first one's echo came back: the
		// input and the output are streamed at the same time.
		in, feed := io.Pipe()
		echoed := make(chan struct{})
		stdout := &notifyWriter{match: "got one\n", matched: echoed}
		go func() {
			_, _ = io.WriteString(feed, "one\n")
			select {
			case <-echoed:
				_, _ = io.WriteString(feed, "two\n")
			case <-time.After(10 * time.Second):
			}
			_ = feed.Close()
		}()
		var stderr bytes.Buffer
		code, err := client.Run(context.Background(), "hello", RunRequest{Command: "cat"}, in, stdout, &stderr)
		if err != nil || code != 7 {
			t.Fatalf("Run: %d, %v", code, err)
		}
		if got := stdout.String(); got != "got one\ngot two\n" {
			t.Errorf("stdout %q, want both lines echoed", got)
		}
		if got := stderr.Bytes(); !bytes.Equal(got, []byte{0xff, 0x00, 0xfe}) {
			t.Errorf("stderr % x, want ff 00 fe", got)
		}
	})
	t.Run("stdin never read and never ending", func(t *testing.T) {
		t.Parallel()
		daemon := stubDaemon{run: func(o reconciler.OneOff) (int, error) {
			_, _ = io.WriteString(o.Stdout, "done\n")
			return 0, nil
		}}
		srv := httptest.NewServer(asLocal(Handler(Options{Daemon: daemon})))
		defer srv.Close()
		client := &Client{BaseURL: srv.URL, HTTP: srv.Client()}
		in, feed := io.Pipe() // nothing is ever written: like a terminal nobody types in
		defer feed.Close()
		type result struct {
			code int
			err  error
		}
		done := make(chan result, 1)
		var stdout bytes.Buffer
		go func() {
			code, err := client.Run(context.Background(), "hello", RunRequest{Command: "true"}, in, &stdout, io.Discard)
			done <- result{code, err}
		}()
		select {
		case r := <-done:
			if r.err != nil || r.code != 0 || stdout.String() != "done\n" {
				t.Errorf("Run: %d, %v, %q", r.code, r.err, stdout.String())
			}
		case <-time.After(20 * time.Second):
			t.Fatal("Run did not return once the one-off exited")
		}
	})
}

// notifyWriter collects output and closes matched once it holds match.
type notifyWriter struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	match   string
	matched chan struct{}
	closed  bool
}

func (w *notifyWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if !w.closed && strings.Contains(w.buf.String(), w.match) {
		w.closed = true
		close(w.matched)
	}
	return len(p), nil
}

func (w *notifyWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}
