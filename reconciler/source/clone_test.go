package source_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/manifold-paas/manifold/reconciler/source"
)

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestClone(t *testing.T) {
	t.Parallel()
	repo := newGitRepo(t)
	first := repo.commit("first: v1 of the spec\n\nbody", map[string]string{"apps/hello.hcl": "v1"})
	repo.git("tag", "v1")
	repo.git("tag", "-a", "v1-annotated", "-m", "annotated tag")
	second := repo.commit("second", map[string]string{"apps/hello.hcl": "v2"})
	repo.git("branch", "feature", first)

	tests := []struct {
		name, url, ref, wantID, wantContent, wantMsg string
	}{
		{"branch", repo.url(), "main", second, "v2", "second"},
		{"other branch", repo.url(), "feature", first, "v1", "first: v1 of the spec"},
		{"tag", repo.url(), "v1", first, "v1", "first: v1 of the spec"},
		{"annotated tag", repo.url(), "v1-annotated", first, "v1", "first: v1 of the spec"},
		{"commit", repo.url(), first, first, "v1", "first: v1 of the spec"},
		{"full ref name", repo.url(), "refs/heads/feature", first, "v1", "first: v1 of the spec"},
		{"remote HEAD", repo.url(), "", second, "v2", "second"},
		{"plain path", repo.dir, "main", second, "v2", "second"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "checkout")
			rev, err := source.Clone(testCtx(t), tt.url, tt.ref, dir)
			if err != nil {
				t.Fatal(err)
			}
			if rev.ID != tt.wantID {
				t.Errorf("ID = %s, want %s", rev.ID, tt.wantID)
			}
			if rev.Message != tt.wantMsg {
				t.Errorf("Message = %q, want %q", rev.Message, tt.wantMsg)
			}
			if rev.Author != "ada@example.com" || rev.AuthorName != "Ada Lovelace" {
				t.Errorf("author = %q <%s>", rev.AuthorName, rev.Author)
			}
			if rev.Ref != tt.ref {
				t.Errorf("Ref = %q, want %q", rev.Ref, tt.ref)
			}
			if rev.Time.IsZero() {
				t.Error("Time is zero")
			}
			if got := readFile(t, dir, "apps/hello.hcl"); got != tt.wantContent {
				t.Errorf("apps/hello.hcl = %q, want %q", got, tt.wantContent)
			}
		})
	}
}

func TestCloneAgainUpdatesInPlace(t *testing.T) {
	t.Parallel()
	repo := newGitRepo(t)
	repo.commit("one", map[string]string{"a.txt": "1"})
	dir := filepath.Join(t.TempDir(), "checkout")
	ctx := testCtx(t)
	if _, err := source.Clone(ctx, repo.url(), "main", dir); err != nil {
		t.Fatal(err)
	}
	// Unchanged remote: same commit, tree intact.
	rev, err := source.Clone(ctx, repo.url(), "main", dir)
	if err != nil {
		t.Fatal(err)
	}
	if rev.Message != "one" || readFile(t, dir, "a.txt") != "1" {
		t.Fatalf("second clone: %+v, a.txt=%q", rev, readFile(t, dir, "a.txt"))
	}
	two := repo.commit("two", map[string]string{"a.txt": "2", "b.txt": "new"})
	rev, err = source.Clone(ctx, repo.url(), "main", dir)
	if err != nil {
		t.Fatal(err)
	}
	if rev.ID != two || readFile(t, dir, "a.txt") != "2" || readFile(t, dir, "b.txt") != "new" {
		t.Fatalf("after new commit: %+v", rev)
	}
	// No temporary directories are left beside the checkout.
	entries, err := os.ReadDir(filepath.Dir(dir))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("parent holds %d entries, want only the checkout: %v", len(entries), entries)
	}
}

func TestCloneErrors(t *testing.T) {
	t.Parallel()
	repo := newGitRepo(t)
	repo.commit("one", map[string]string{"a.txt": "1"})
	other := newGitRepo(t)
	other.commit("other", nil)
	occupied := t.TempDir()
	if err := os.WriteFile(filepath.Join(occupied, "precious.txt"), []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	cloneOfOther := filepath.Join(t.TempDir(), "c")
	if _, err := source.Clone(testCtx(t), other.url(), "main", cloneOfOther); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name, url, ref, dir string
		unknownRef          bool
		wantIn              []string
	}{
		{"missing branch", repo.url(), "nope", "", true, []string{`unknown ref "nope"`, repo.url()}},
		{"missing commit", repo.url(), strings.Repeat("ab", 20), "", true, []string{"abab"}},
		{"missing repo", "file://" + filepath.Join(t.TempDir(), "none"), "main", "", false, []string{"none"}},
		{"empty url", "", "main", "", false, []string{"empty repository URL"}},
		{"occupied dir", repo.url(), "main", occupied, false, []string{"not a clone"}},
		{"clone of another repo", repo.url(), "main", cloneOfOther, false, []string{other.url()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := tt.dir
			if dir == "" {
				dir = filepath.Join(t.TempDir(), "checkout")
			}
			_, err := source.Clone(testCtx(t), tt.url, tt.ref, dir)
			if err == nil {
				t.Fatal("no error")
			}
			if got := errors.Is(err, source.ErrUnknownRef); got != tt.unknownRef {
				t.Errorf("errors.Is(ErrUnknownRef) = %v for %v", got, err)
			}
			for _, want := range tt.wantIn {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
		})
	}
	if readFile(t, occupied, "precious.txt") != "keep" {
		t.Error("an occupied directory was touched")
	}
}
