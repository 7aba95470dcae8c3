package promote_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/manifold-paas/manifold/reconciler/promote"
	"github.com/manifold-paas/manifold/spec"
)

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=Alice", "GIT_AUTHOR_EMAIL=alice@example.com",
		"GIT_COMMITTER_NAME=Alice", "GIT_COMMITTER_EMAIL=alice@example.com")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestCommit commits the pin on a new branch from HEAD (in a config repo that is a
// folder of the git repo), leaving the work tree's uncommitted changes alone.
func TestCommit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, file, content, want string }{
		{"hcl", "production.hcl", "environment \"production\" {\n  soak = \"30m\"\n}\n",
			"environment \"production\" {\n  soak = \"30m\"\n  app \"hello\" {\n    release {\n      slug = \"" + slugKey + "\"\n      from = \"staging v42\"\n    }\n  }\n}\n"},
		{"yaml", "production.yaml", "environment:\n  production:\n    soak: 30m\n",
			"environment:\n  production:\n    soak: 30m\n    app:\n      hello:\n        release:\n          slug: \"" + slugKey + "\"\n          from: staging v42\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			envFile := filepath.Join(dir, "config", "environments", tc.file)
			if err := os.MkdirAll(filepath.Dir(envFile), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(envFile, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			git(t, dir, "init", "-q", "-b", "main")
			git(t, dir, "add", "-A")
			git(t, dir, "commit", "-q", "-m", "first")
			head := git(t, dir, "rev-parse", "HEAD")
			// Uncommitted work: neither committed nor disturbed.
			if err := os.WriteFile(envFile, []byte("# work in progress\n"+tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			git(t, dir, "config", "user.name", "Alice") // commit-tree needs an identity
			git(t, dir, "config", "user.email", "alice@example.com")
			p := promote.Promotion{Pin: spec.ReleasePin{Slug: slugKey, From: "staging v42"}, Branch: "promote/hello-staging-v42"}
			commit, err := promote.Commit(context.Background(), dir, "config", "production", "hello", p)
			if err != nil {
				t.Fatal(err)
			}
			if got := git(t, dir, "rev-parse", p.Branch); got != commit {
				t.Errorf("branch at %s, want %s", got, commit)
			}
			if got := git(t, dir, "rev-parse", commit+"^"); got != head {
				t.Errorf("parent %s, want HEAD %s", got, head)
			}
			if got := git(t, dir, "show", commit+":config/environments/"+tc.file) + "\n"; got != tc.want {
				t.Errorf("pinned file:\n%s\nwant:\n%s", got, tc.want)
			}
			if got := git(t, dir, "rev-parse", "--abbrev-ref", "HEAD"); got != "main" {
				t.Errorf("checked out %s, want main still", got)
			}
			if got, _ := os.ReadFile(envFile); !strings.HasPrefix(string(got), "# work in progress\n") {
				t.Error("the work tree was changed")
			}
			if _, err := promote.Commit(context.Background(), dir, "config", "production", "hello", p); err == nil || !strings.Contains(err.Error(), "exists already") {
				t.Errorf("second promotion of the same release: %v", err)
			}
		})
	}
}
