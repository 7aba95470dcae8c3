package reconciler_test

import (
	"context"
	"os"
	"strings"
	"testing"
)

// TestRollbackToACollectedSlug: a release whose slug collection removed cannot be
// rolled back to; the error says why, and nothing changes.
func TestRollbackToACollectedSlug(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.reconcile("")
	h.driver.mu.Lock()
	var v1Slug string
	for _, d := range h.driver.dynos {
		v1Slug = d.Spec.SlugPath
	}
	h.driver.mu.Unlock()
	h.write("src/hello/web.sh", "#!/bin/sh\necho web v2\n")
	h.commit()
	h.reconcile("")
	h.expectDynos("web.1@v2 worker.1@v2")
	if err := os.Remove(v1Slug); err != nil { // what `manifold gc` does past keep_releases
		t.Fatal(err)
	}
	_, err := h.rec.Rollback(context.Background(), "hello", "", 1, "bob@example.com")
	if err == nil || !strings.Contains(err.Error(), "roll back hello (default) to v1: its slug sha256:") || !strings.Contains(err.Error(), "was collected") {
		t.Fatalf("err = %v, want the slug named as collected", err)
	}
	if n := len(h.releases()); n != 2 {
		t.Errorf("%d releases after a refused rollback, want 2", n)
	}
	h.expectDynos("web.1@v2 worker.1@v2")
}
