package source_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/manifold-paas/manifold/reconciler/source"
)

const pushBody = `{"ref":"refs/heads/main","before":"0000000000000000000000000000000000000000","after":"1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d","repository":{"full_name":"acme/platform"}}`

func sign(secret, body string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(body))
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

func TestWebhookHandler(t *testing.T) {
	t.Parallel()
	const secret = "s3cret"
	tests := []struct {
		name        string
		secret      string
		method      string
		headers     map[string]string
		body        string
		wantStatus  int
		wantTrigger string // substring of the reason; "" means no trigger
	}{
		{"github valid signature", secret, "POST", map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": sign(secret, pushBody), "Content-Type": "application/json"}, pushBody, 202, "webhook (github) push refs/heads/main 1a2b3c4"},
		{"github wrong secret", secret, "POST", map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": sign("other", pushBody)}, pushBody, 401, ""},
		{"github garbage signature", secret, "POST", map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=zz"}, pushBody, 401, ""},
		{"github body tampered", secret, "POST", map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": sign(secret, pushBody)}, strings.Replace(pushBody, "main", "evil", 1), 401, ""},
		{"no signature with a secret", secret, "POST", nil, pushBody, 401, ""},
		{"github form payload", secret, "POST", map[string]string{"X-GitHub-Event": "push", "Content-Type": "application/x-www-form-urlencoded", "X-Hub-Signature-256": sign(secret, "payload="+url.QueryEscape(pushBody))}, "payload=" + url.QueryEscape(pushBody), 202, "push refs/heads/main 1a2b3c4"},
		{"github ping", secret, "POST", map[string]string{"X-GitHub-Event": "ping", "X-Hub-Signature-256": sign(secret, `{"zen":"hi"}`)}, `{"zen":"hi"}`, 200, ""},
		{"github other event", secret, "POST", map[string]string{"X-GitHub-Event": "issues", "X-Hub-Signature-256": sign(secret, `{}`)}, `{}`, 200, ""},
		{"gitlab token", secret, "POST", map[string]string{"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": secret}, `{"ref":"refs/tags/v1","checkout_sha":"abcdef0123456789"}`, 202, "webhook (gitlab) push refs/tags/v1 abcdef0"},
		{"gitlab wrong token", secret, "POST", map[string]string{"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": "nope"}, pushBody, 401, ""},
		{"gitea signature", secret, "POST", map[string]string{"X-Gitea-Event": "push", "X-Gitea-Signature": strings.TrimPrefix(sign(secret, pushBody), "sha256=")}, pushBody, 202, "webhook (gitea)"},
		{"no secret accepts anything", "", "POST", nil, "", 202, "webhook (generic)"},
		{"no secret ignores bad signature", "", "POST", map[string]string{"X-Hub-Signature-256": "sha256=00"}, pushBody, 202, "refs/heads/main"},
		{"invalid json", "", "POST", nil, "{not json", 400, ""},
		{"GET", secret, "GET", nil, "", 405, ""},
		{"PUT", "", "PUT", nil, pushBody, 405, ""},
		{"too large", "", "POST", nil, `{"ref":"` + strings.Repeat("x", source.MaxWebhookBytes) + `"}`, 413, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			var reasons []string
			srv := httptest.NewServer(source.WebhookHandler(tt.secret, func(reason string) {
				mu.Lock()
				defer mu.Unlock()
				reasons = append(reasons, reason)
			}))
			t.Cleanup(srv.Close)
			req, err := http.NewRequest(tt.method, srv.URL+"/hooks/git", strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.headers {
				req.Header.Set(k, v)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("status = %d, want %d (%s)", resp.StatusCode, tt.wantStatus, body)
			}
			mu.Lock()
			defer mu.Unlock()
			switch {
			case tt.wantTrigger == "" && len(reasons) != 0:
				t.Errorf("triggered %q, want no trigger", reasons)
			case tt.wantTrigger != "" && (len(reasons) != 1 || !strings.Contains(reasons[0], tt.wantTrigger)):
				t.Errorf("reasons = %q, want one containing %q", reasons, tt.wantTrigger)
			}
		})
	}
}

// TestWebhookTriggersGitSource wires the handler to a git source end to end.
func TestWebhookTriggersGitSource(t *testing.T) {
	t.Parallel()
	repo := newGitRepo(t)
	repo.commit("first", map[string]string{"a": "1"})
	src, err := source.NewGit(source.GitOptions{URL: repo.url(), Ref: "main", Dir: t.TempDir(), Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.Fetch(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	n := watch(t, src)
	srv := httptest.NewServer(source.WebhookHandler("", src.Trigger))
	t.Cleanup(srv.Close)
	sha := repo.commit("pushed", map[string]string{"a": "2"})
	resp, err := srv.Client().Post(srv.URL+"/hooks/git", "application/json", strings.NewReader(`{"ref":"refs/heads/main","after":"`+sha+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("status %d", resp.StatusCode)
	}
	waitFor(t, "the webhook to cause a notify", 10*time.Second, func() bool { return len(n.list()) == 1 })
	if r := n.list()[0]; !strings.Contains(r, "webhook (generic) push refs/heads/main "+sha[:7]) {
		t.Errorf("reason = %q", r)
	}
}
