package source_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/time/rate"

	"github.com/manifold-paas/manifold/reconciler/source"
)

func postHook(t *testing.T, h http.Handler, headers map[string]string, body string) int {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/hooks/git", strings.NewReader(body))
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code
}

// TestWebhookRedelivery: a delivery id seen before triggers nothing, for each forge's
// header; an id is only remembered once the request is authentic.
func TestWebhookRedelivery(t *testing.T) {
	t.Parallel()
	const secret = "s3cret"
	for _, header := range []string{"X-GitHub-Delivery", "X-Gitea-Delivery", "X-Gitlab-Event-UUID"} {
		t.Run(header, func(t *testing.T) {
			t.Parallel()
			var triggers atomic.Int32
			h := source.NewWebhook(source.WebhookOptions{Secret: secret, Trigger: func(string) { triggers.Add(1) }})
			forged := map[string]string{"X-Hub-Signature-256": sign("wrong", pushBody), header: "d-1"}
			if code := postHook(t, h, forged, pushBody); code != http.StatusUnauthorized {
				t.Fatalf("forged: %d", code)
			}
			signed := map[string]string{"X-Hub-Signature-256": sign(secret, pushBody), header: "d-1"}
			for i, want := range []int{http.StatusAccepted, http.StatusOK, http.StatusOK} {
				if code := postHook(t, h, signed, pushBody); code != want {
					t.Errorf("delivery %d: %d, want %d", i+1, code, want)
				}
			}
			signed[header] = "d-2"
			if code := postHook(t, h, signed, pushBody); code != http.StatusAccepted {
				t.Errorf("a new delivery: %d", code)
			}
			if got := triggers.Load(); got != 2 {
				t.Errorf("%d triggers, want 2", got)
			}
		})
	}
}

// TestWebhookRateLimit: past the burst, requests are answered 429 and trigger nothing.
func TestWebhookRateLimit(t *testing.T) {
	t.Parallel()
	var triggers atomic.Int32
	h := source.NewWebhook(source.WebhookOptions{
		Trigger: func(string) { triggers.Add(1) },
		Limiter: rate.NewLimiter(rate.Limit(0.001), 3),
	})
	codes := make([]int, 0, 10)
	for range 10 {
		codes = append(codes, postHook(t, h, nil, ""))
	}
	for i, code := range codes {
		want := http.StatusAccepted
		if i >= 3 {
			want = http.StatusTooManyRequests
		}
		if code != want {
			t.Errorf("request %d: %d, want %d (all: %v)", i+1, code, want, codes)
		}
	}
	if got := triggers.Load(); got != 3 {
		t.Errorf("%d triggers, want 3", got)
	}
}
