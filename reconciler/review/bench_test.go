package review_test

import (
	"context"
	"fmt"
	"io"
	"net/http/cgi"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/manifold-paas/manifold/reconciler/review"
	"github.com/manifold-paas/manifold/spec"
)

// BenchmarkRefToDecision measures the listing half of a review app's start: from
// `git update-ref refs/pull/N/head` in the config repo (served over HTTP by git
// http-backend) to the tracker deciding to create pr-N, one listing later (what a
// webhook triggers).
func BenchmarkRefToDecision(b *testing.B) {
	backend, err := exec.LookPath("git")
	if err != nil {
		b.Fatal(err)
	}
	bare, _, second := bareRepo(b)
	server := httptest.NewServer(&cgi.Handler{Path: backend, Args: []string{"http-backend"}, Stderr: io.Discard,
		Env: []string{"GIT_PROJECT_ROOT=" + filepath.Dir(bare), "GIT_HTTP_EXPORT_ALL=1"}})
	b.Cleanup(server.Close)
	lister := review.GitLister{URL: server.URL + "/" + filepath.Base(bare)}
	tracker := review.NewTracker(spec.Review{Refs: []string{"refs/pull/*/head"}, Max: 1 << 20})
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		ref := fmt.Sprintf("refs/pull/%d/head", i+1)
		git(b, bare, "update-ref", ref, second)
		refs, err := lister.List(context.Background())
		d := tracker.Observe(time.Now(), refs, err)
		if len(d.Create) != 1 || d.Create[0].Name != fmt.Sprintf("pr-%d", i+1) {
			b.Fatalf("decisions %+v, err %v", d, err)
		}
	}
}
