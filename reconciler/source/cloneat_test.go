package source_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/manifold-paas/manifold/reconciler/source"
)

// TestCloneAt: a checkout already at the known commit is used without the remote
// (here made unreadable); a commit it is not at is fetched by its ref.
func TestCloneAt(t *testing.T) {
	t.Parallel()
	repo := newGitRepo(t)
	first := repo.commit("first", map[string]string{"a.txt": "1"})
	repo.git("update-ref", "refs/pull/7/head", first)
	dir := filepath.Join(t.TempDir(), "checkout")
	ctx := testCtx(t)
	if rev, err := source.CloneAt(ctx, repo.url(), "refs/pull/7/head", first, dir); err != nil || rev.ID != first {
		t.Fatalf("first clone: %+v, %v", rev, err)
	}
	second := repo.commit("second", map[string]string{"a.txt": "2"})
	repo.git("update-ref", "refs/pull/7/head", second)

	if err := os.Rename(repo.dir, repo.dir+".away"); err != nil {
		t.Fatal(err)
	}
	rev, err := source.CloneAt(ctx, repo.url(), "refs/pull/7/head", first, dir)
	if err != nil || rev.ID != first || rev.Message != "first" || readFile(t, dir, "a.txt") != "1" {
		t.Errorf("at the known commit, the remote away: %+v, %v", rev, err)
	}
	if _, err := source.CloneAt(ctx, repo.url(), "refs/pull/7/head", second, dir); err == nil {
		t.Error("a commit the checkout is not at was not fetched: the remote is away, so it must fail")
	}
	if err := os.Rename(repo.dir+".away", repo.dir); err != nil {
		t.Fatal(err)
	}
	rev, err = source.CloneAt(ctx, repo.url(), "refs/pull/7/head", second, dir)
	if err != nil || rev.ID != second || readFile(t, dir, "a.txt") != "2" {
		t.Errorf("after the ref moved: %+v, %v", rev, err)
	}
}
