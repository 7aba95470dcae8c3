package notify_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/manifold-paas/manifold/reconciler/notify"
	"github.com/manifold-paas/manifold/spec"
)

// forgeStatus is a commit status as GitHub's and Gitea's APIs take it
// (POST /repos/{owner}/{repo}/statuses/{sha}).
type forgeStatus struct {
	Path, Auth  string
	State       string `json:"state"`
	TargetURL   string `json:"target_url"`
	Description string `json:"description"`
	Context     string `json:"context"`
}

// fakeForge is a fake GitHub or Gitea API: it checks the token and the payload's
// shape as the real ones do (422 for an unknown state or a missing context) and
// answers 201 with the created status.
type fakeForge struct {
	srv        *httptest.Server
	authPrefix string // "Bearer " (GitHub) or "token " (Gitea)
	apiPrefix  string // "" (api.github.com) or "/api/v1" (Gitea)

	mu       sync.Mutex
	statuses []forgeStatus
}

func newFakeForge(t *testing.T, authPrefix, apiPrefix, token string) *fakeForge {
	f := &fakeForge{authPrefix: authPrefix, apiPrefix: apiPrefix}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || !strings.HasPrefix(r.URL.Path, apiPrefix+"/repos/acme/config/statuses/") {
			http.NotFound(w, r)
			return
		}
		if r.Header.Get("Authorization") != authPrefix+token {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"message":"Bad credentials"}`)
			return
		}
		var s forgeStatus
		if err := json.NewDecoder(r.Body).Decode(&s); err != nil || s.Context == "" ||
			!strings.Contains(" pending success failure error ", " "+s.State+" ") || len(s.Description) > 140*3 {
			w.WriteHeader(http.StatusUnprocessableEntity)
			_, _ = io.WriteString(w, `{"message":"Validation Failed"}`)
			return
		}
		s.Path, s.Auth = strings.TrimPrefix(r.URL.Path, apiPrefix), r.Header.Get("Authorization")
		f.mu.Lock()
		f.statuses = append(f.statuses, s)
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(map[string]any{"id": len(f.statuses), "state": s.State, "context": s.Context,
			"description": s.Description, "url": f.srv.URL + r.URL.Path})
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeForge) got() []forgeStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]forgeStatus(nil), f.statuses...)
}

func TestCommitStatuses(t *testing.T) {
	t.Parallel()
	const token = "ghp_not-a-real-token"
	for _, tc := range []struct {
		typ, authPrefix, apiPrefix string
	}{
		{spec.NotifyGitHubStatus, "Bearer ", ""},
		{spec.NotifyGiteaStatus, "token ", "/api/v1"},
	} {
		t.Run(tc.typ, func(t *testing.T) {
			t.Parallel()
			forge := newFakeForge(t, tc.authPrefix, tc.apiPrefix, token)
			var logs lockedBuffer
			n := start(t, fastOptions(t, &logs), platform(spec.Notify{Name: "commits", Type: tc.typ,
				API: forge.srv.URL + tc.apiPrefix, Repo: "acme/config", TokenFile: writeSecret(t, token), Severity: "info"}))
			commit, bad := strings.Repeat("1f", 20), strings.Repeat("2e", 20)
			ctx := context.Background()
			// Two apps of one commit in staging: a's success must not hide b's failure.
			n.Notify(ctx, notify.DeployStartedEvent("a", "staging", commit))
			n.Notify(ctx, notify.DeploySucceededEvent("a", "staging", commit, 3))
			n.Notify(ctx, notify.DeployStartedEvent("b", "staging", commit))
			n.Notify(ctx, notify.DeployFailedEvent("b", "staging", commit, 0, notify.PhaseBuild, errors.New("buildpack go: compile failed")))
			n.Notify(ctx, notify.DeploySucceededEvent("a", "production", commit, 7))
			// A folder revision is no commit of the forge: no status.
			n.Notify(ctx, notify.DeployStartedEvent("a", "staging", "dir:sha256:abc"))
			// A commit that does not load fails every environment.
			n.Notify(ctx, notify.SpecLoadedEvent(bad, errors.New("apps/a.hcl:3:3: unknown attribute")))
			waitFor(t, "7 statuses", func() bool { return len(forge.got()) == 7 })
			want := []struct{ sha, state, context string }{
				{commit, "pending", "manifold/staging"},
				{commit, "success", "manifold/staging"},
				{commit, "pending", "manifold/staging"},
				{commit, "failure", "manifold/staging"},
				{commit, "success", "manifold/production"},
				{bad, "failure", "manifold/production"},
				{bad, "failure", "manifold/staging"},
			}
			for i, s := range forge.got() {
				w := want[i]
				if s.Path != "/repos/acme/config/statuses/"+w.sha || s.State != w.state || s.Context != w.context {
					t.Errorf("status %d = %s %s %s, want %s %s %s", i, s.Path, s.State, s.Context, w.sha, w.state, w.context)
				}
				if s.Description == "" {
					t.Errorf("status %d has no description", i)
				}
			}
			if strings.Contains(logs.String(), token) {
				t.Errorf("the log shows the token")
			}
		})
	}
}
