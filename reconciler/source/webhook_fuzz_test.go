package source_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/manifold-paas/manifold/reconciler/source"
)

// FuzzWebhook feeds arbitrary bodies and signature headers to the handler: it
// never panics, answers only the documented codes, and triggers only when the
// request is authentic and answered 202.
func FuzzWebhook(f *testing.F) {
	f.Add(pushBody, sign("s", pushBody), "", "push", "application/json")
	f.Add(pushBody, "", "s", "Push Hook", "application/json")
	f.Add("payload=%7B%7D", sign("s", "payload=%7B%7D"), "", "push", "application/x-www-form-urlencoded")
	f.Add("{", "sha256=", "", "ping", "")
	f.Add(`{"ref":null,"after":12}`, "", "", "", "text/plain; charset=\x00")
	f.Fuzz(func(t *testing.T, body, hubSig, gitlabToken, event, contentType string) {
		triggered := 0
		h := source.WebhookHandler("s", func(string) { triggered++ })
		req := httptest.NewRequest(http.MethodPost, "/hooks/git", strings.NewReader(body))
		for k, v := range map[string]string{"X-Hub-Signature-256": hubSig, "X-Gitlab-Token": gitlabToken, "X-GitHub-Event": event, "Content-Type": contentType} {
			if v != "" {
				req.Header[k] = []string{v}
			}
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case 200, 400, 401, 413:
			if triggered != 0 {
				t.Fatalf("status %d but triggered", rec.Code)
			}
		case 202:
			if triggered != 1 {
				t.Fatalf("status 202 but triggered %d times", triggered)
			}
			want := sign("s", body)
			validHub := strings.HasPrefix(hubSig, "sha256=") && strings.EqualFold(hubSig, want)
			if !validHub && gitlabToken != "s" {
				t.Fatalf("triggered without a valid signature (sig %q token %q)", hubSig, gitlabToken)
			}
		default:
			t.Fatalf("unexpected status %d", rec.Code)
		}
	})
}
