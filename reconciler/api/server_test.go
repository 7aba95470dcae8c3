package api

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

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
			srv := httptest.NewServer(Handler(tt.daemon, nil, nil, nil))
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
