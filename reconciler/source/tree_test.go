package source_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/manifold-paas/manifold/reconciler/source"
)

// treeRepo has two commits: base (v1) and head (v2 with an executable, a symlink
// and a new directory), and leaves a dirty work tree behind.
func treeRepo(t *testing.T) (repo *gitRepo, base, head string) {
	t.Helper()
	repo = newGitRepo(t)
	base = repo.commit("base", map[string]string{
		"examples/apps/hello.hcl": "count = 1\n",
		"README.md":               "readme\n",
	})
	repo.git("tag", "-a", "v1", "-m", "release v1")
	repo.write(map[string]string{
		"examples/apps/hello.hcl":     "count = 2\n",
		"examples/apps/worker.yaml":   "worker: {}\n",
		"examples/bin/run":            "#!/bin/sh\necho hi\n",
		"examples/environments/p.hcl": "environment \"p\" {}\n",
	})
	if err := os.Chmod(filepath.Join(repo.dir, "examples/bin/run"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("apps", filepath.Join(repo.dir, "examples/linked")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../README.md", filepath.Join(repo.dir, "examples/apps/readme-link")); err != nil {
		t.Fatal(err)
	}
	repo.git("add", "-A")
	repo.git("commit", "-q", "-m", "head: scale hello to 2\n\nmore words")
	head = repo.git("rev-parse", "HEAD")
	return repo, base, head
}

func TestTreeAtReadsCommitsNotWorkTree(t *testing.T) {
	t.Parallel()
	repo, base, head := treeRepo(t)
	// Dirty the work tree: a changed tracked file, an untracked file, a deleted file.
	repo.write(map[string]string{"examples/apps/hello.hcl": "count = 99\n", "untracked.txt": "x"})
	if err := os.Remove(filepath.Join(repo.dir, "README.md")); err != nil {
		t.Fatal(err)
	}
	statusBefore := repo.git("status", "--porcelain")

	tests := []struct {
		rev, wantID, wantHello, wantMsg string
	}{
		{"main", head, "count = 2\n", "head: scale hello to 2"},
		{"HEAD", head, "count = 2\n", "head: scale hello to 2"},
		{"", head, "count = 2\n", "head: scale hello to 2"},
		{"HEAD~1", base, "count = 1\n", "base"},
		{"main^", base, "count = 1\n", "base"},
		{"v1", base, "count = 1\n", "base"},
		{base, base, "count = 1\n", "base"},
		{base[:8], base, "count = 1\n", "base"},
	}
	for _, tt := range tests {
		t.Run("rev="+tt.rev, func(t *testing.T) {
			tree, rev, err := source.TreeAt(repo.dir, tt.rev)
			if err != nil {
				t.Fatal(err)
			}
			if rev.ID != tt.wantID || rev.Message != tt.wantMsg || rev.Author != "ada@example.com" {
				t.Errorf("revision = %+v, want id %s message %q", rev, tt.wantID, tt.wantMsg)
			}
			got, err := fs.ReadFile(tree, "examples/apps/hello.hcl")
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.wantHello {
				t.Errorf("hello.hcl = %q, want %q", got, tt.wantHello)
			}
			if _, err := fs.Stat(tree, "README.md"); err != nil {
				t.Errorf("README.md deleted from the work tree must still be in the commit: %v", err)
			}
			if _, err := fs.Stat(tree, "untracked.txt"); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("untracked file visible: %v", err)
			}
		})
	}
	if after := repo.git("status", "--porcelain"); after != statusBefore {
		t.Errorf("git status changed:\nbefore:\n%s\nafter:\n%s", statusBefore, after)
	}
	if got := readFile(t, repo.dir, "examples/apps/hello.hcl"); got != "count = 99\n" {
		t.Errorf("work tree file changed to %q", got)
	}
}

func TestTreeAtPassesFSTest(t *testing.T) {
	t.Parallel()
	repo, _, _ := treeRepo(t)
	tree, _, err := source.TreeAt(repo.dir, "main")
	if err != nil {
		t.Fatal(err)
	}
	if err := fstest.TestFS(tree, "README.md", "examples/apps/hello.hcl", "examples/bin/run", "examples/environments/p.hcl"); err != nil {
		t.Fatal(err)
	}
	sub, err := fs.Sub(tree, "examples")
	if err != nil {
		t.Fatal(err)
	}
	if err := fstest.TestFS(sub, "apps/hello.hcl", "apps/worker.yaml", "bin/run", "environments/p.hcl"); err != nil {
		t.Fatal(err)
	}
}

func TestTreeAtModesAndSymlinks(t *testing.T) {
	t.Parallel()
	repo, _, _ := treeRepo(t)
	tree, _, err := source.TreeAt(repo.dir, "main")
	if err != nil {
		t.Fatal(err)
	}
	sub, err := fs.Sub(tree, "examples")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := sub.(fs.ReadDirFS); !ok {
		t.Error("fs.Sub view does not implement fs.ReadDirFS")
	}
	if _, ok := sub.(fs.ReadFileFS); !ok {
		t.Error("fs.Sub view does not implement fs.ReadFileFS")
	}
	modes := map[string]fs.FileMode{
		"bin/run":        0o755,
		"apps/hello.hcl": 0o644,
		"apps":           fs.ModeDir | 0o755,
		"linked":         fs.ModeDir | 0o755, // Stat follows the link
	}
	for name, want := range modes {
		fi, err := fs.Stat(sub, name)
		if err != nil {
			t.Errorf("stat %s: %v", name, err)
			continue
		}
		if fi.Mode() != want {
			t.Errorf("%s mode = %v, want %v", name, fi.Mode(), want)
		}
	}
	entries, err := fs.ReadDir(sub, ".")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
		if e.Name() == "linked" && e.Type() != fs.ModeSymlink {
			t.Errorf("linked entry type = %v, want symlink", e.Type())
		}
	}
	if got := strings.Join(names, ","); got != "apps,bin,environments,linked" {
		t.Errorf("ReadDir(examples) = %s", got)
	}
	// A symlinked directory and a link that goes up out of the sub view.
	if b, err := fs.ReadFile(sub, "linked/hello.hcl"); err != nil || string(b) != "count = 2\n" {
		t.Errorf("linked/hello.hcl = %q, %v", b, err)
	}
	if b, err := fs.ReadFile(sub, "apps/readme-link"); err != nil || string(b) != "readme\n" {
		t.Errorf("apps/readme-link = %q, %v", b, err)
	}
	if fi, err := fs.Stat(sub, "bin/run"); err != nil || fi.Size() != int64(len("#!/bin/sh\necho hi\n")) {
		t.Errorf("bin/run size: %v, %v", fi, err)
	}
	for _, e := range entries {
		if info, err := e.Info(); err != nil || (e.Name() == "linked" && info.Size() != int64(len("apps"))) {
			t.Errorf("entry %s: info %v, %v (a link's size is its target's length)", e.Name(), info, err)
		}
	}

	// ReadLink and Lstat do not follow the last element; through a linked folder they do.
	links := []struct{ name, target string }{
		{"linked", "apps"},
		{"apps/readme-link", "../../README.md"},
		{"linked/readme-link", "../../README.md"},
	}
	for _, l := range links {
		if got, err := fs.ReadLink(sub, l.name); err != nil || got != l.target {
			t.Errorf("ReadLink(%s) = %q, %v; want %q", l.name, got, err, l.target)
		}
		if fi, err := fs.Lstat(sub, l.name); err != nil || fi.Mode().Type() != fs.ModeSymlink {
			t.Errorf("Lstat(%s) = %v, %v; want a symlink", l.name, fi, err)
		}
	}
	if _, err := fs.ReadLink(sub, "bin/run"); !errors.Is(err, fs.ErrInvalid) {
		t.Errorf("ReadLink of a file: %v, want fs.ErrInvalid", err)
	}
	if fi, err := fs.Lstat(sub, "bin/run"); err != nil || fi.Mode() != 0o755 {
		t.Errorf("Lstat(bin/run) = %v, %v", fi, err)
	}
}

// TestTreeAtContentID checks that ContentID names content, not place: equal across
// commits and paths when the content is, different when it is not.
func TestTreeAtContentID(t *testing.T) {
	t.Parallel()
	repo, base, head := treeRepo(t)
	type contentIDFS interface {
		ContentID(name string) (string, error)
	}
	id := func(rev, name string) string {
		t.Helper()
		tree, _, err := source.TreeAt(repo.dir, rev)
		if err != nil {
			t.Fatal(err)
		}
		got, err := tree.(contentIDFS).ContentID(name)
		if err != nil {
			t.Fatalf("ContentID(%s) at %s: %v", name, rev, err)
		}
		return got
	}
	same := [][2]string{
		{base + ":README.md", head + ":README.md"},
		{head + ":examples/apps", head + ":examples/linked"},                   // a link to a folder is that folder
		{head + ":README.md", head + ":examples/apps/readme-link"},             // a link to a file is that file
		{base + ":examples/apps/hello.hcl", base + ":examples/apps/hello.hcl"}, // stable
	}
	differ := [][2]string{
		{base + ":examples/apps/hello.hcl", head + ":examples/apps/hello.hcl"},
		{base + ":examples", head + ":examples"},
		{head + ":examples/apps", head + ":examples/bin"},
	}
	split := func(s string) (string, string) { rev, name, _ := strings.Cut(s, ":"); return rev, name }
	for _, p := range same {
		a, b := id(split(p[0])), id(split(p[1]))
		if a != b || !strings.HasPrefix(a, "git:") {
			t.Errorf("%s = %s, %s = %s: want one id", p[0], a, p[1], b)
		}
	}
	for _, p := range differ {
		if a, b := id(split(p[0])), id(split(p[1])); a == b {
			t.Errorf("%s and %s share id %s", p[0], p[1], a)
		}
	}
	tree, _, err := source.TreeAt(repo.dir, head)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tree.(contentIDFS).ContentID("missing"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ContentID(missing): %v, want fs.ErrNotExist", err)
	}
}

// TestTreeAtReadFileOwned checks that the caller owns what ReadFile returns: small
// blobs are kept after the first read, and a caller's change must not reach them.
func TestTreeAtReadFileOwned(t *testing.T) {
	t.Parallel()
	repo, _, head := treeRepo(t)
	tree, _, err := source.TreeAt(repo.dir, head)
	if err != nil {
		t.Fatal(err)
	}
	first, err := fs.ReadFile(tree, "README.md")
	if err != nil {
		t.Fatal(err)
	}
	copy(first, "XXXX")
	for _, name := range []string{"README.md", "examples/apps/readme-link"} {
		if again, err := fs.ReadFile(tree, name); err != nil || string(again) != "readme\n" {
			t.Errorf("%s after a caller changed its copy: %q, %v", name, again, err)
		}
	}
}

func TestTreeAtErrors(t *testing.T) {
	t.Parallel()
	repo, _, _ := treeRepo(t)
	notRepo := t.TempDir()
	tests := []struct {
		name, dir, rev string
		want           []string
	}{
		{"unknown revision", repo.dir, "main~9", []string{"unknown revision main~9 in " + repo.dir}},
		{"unknown branch", repo.dir, "nope", []string{"unknown revision nope in " + repo.dir}},
		{"not a repository", notRepo, "main", []string{notRepo}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := source.TreeAt(tt.dir, tt.rev)
			if err == nil {
				t.Fatal("no error")
			}
			for _, want := range tt.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
			if wantUnknown := tt.dir == repo.dir; errors.Is(err, source.ErrUnknownRef) != wantUnknown {
				t.Errorf("errors.Is(%v, ErrUnknownRef) != %v", err, wantUnknown)
			}
		})
	}
	tree, _, err := source.TreeAt(filepath.Join(repo.dir, "examples", "apps"), "main")
	if err != nil {
		t.Fatalf("a directory inside the work tree finds its repository: %v", err)
	}
	for _, name := range []string{"missing.hcl", "README.md/x", "examples/apps/hello.hcl/x"} {
		if _, err := fs.ReadFile(tree, name); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("ReadFile(%s) = %v, want ErrNotExist", name, err)
		}
	}
	for _, name := range []string{"../x", "/abs", "a//b"} {
		if _, err := tree.Open(name); !errors.Is(err, fs.ErrInvalid) {
			t.Errorf("Open(%s) = %v, want ErrInvalid", name, err)
		}
	}
	if _, err := fs.ReadDir(tree, "README.md"); err == nil {
		t.Error("ReadDir of a file succeeded")
	}

	// Links that leave the tree or loop are errors, never a read of the host disk.
	repo.git("checkout", "-q", "-b", "links")
	for link, target := range map[string]string{"escape": "../../../../etc/passwd", "abs": "/etc/passwd", "loop": "loop"} {
		if err := os.Symlink(target, filepath.Join(repo.dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	repo.git("add", "-A")
	repo.git("commit", "-q", "-m", "links")
	tree, _, err = source.TreeAt(repo.dir, "links")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"escape", "abs", "loop"} {
		b, err := fs.ReadFile(tree, name)
		if err == nil {
			t.Errorf("ReadFile(%s) = %q, want an error", name, b)
		}
	}
}
