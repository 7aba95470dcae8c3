package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// gitRepoWithExamples makes a git repository whose first commit is examples/ and
// returns its directory.
func gitRepoWithExamples(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS("../../examples")); err != nil {
		t.Fatal(err)
	}
	git(t, dir, "init", "-q", "-b", "main")
	git(t, dir, "add", "-A")
	git(t, dir, "commit", "-q", "-m", "examples")
	return dir
}

func git(t testing.TB, dir string, args ...string) string {
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

// runCLI runs the manifold CLI in process and returns its exit code and output.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return runCLIWithStdin(t, strings.NewReader(""), args...)
}

// runCLIWithStdin runs the CLI in this process with stdin as its standard input.
func runCLIWithStdin(t *testing.T, stdin io.Reader, args ...string) (int, string, string) {
	t.Helper()
	root := newRootCmd()
	var stdout, stderr bytes.Buffer
	root.SetIn(stdin)
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	root.SetArgs(args)
	code := exitCode(root.ExecuteContext(context.Background()), &stderr)
	return code, stdout.String(), stderr.String()
}

func TestPlanScaleProductionWeb(t *testing.T) {
	t.Parallel()
	repo := gitRepoWithExamples(t)
	prod := filepath.Join(repo, "environments", "production.yaml")
	data, err := os.ReadFile(prod)
	if err != nil {
		t.Fatal(err)
	}
	// production's hello web runs 3 in the examples; make the base 1, the head 3.
	one := strings.Replace(string(data), "count: 3", "count: 1", 1)
	if one == string(data) {
		t.Fatal("examples/environments/production.yaml has no `count: 3` to edit")
	}
	if err := os.WriteFile(prod, []byte(one), 0o644); err != nil {
		t.Fatal(err)
	}
	git(t, repo, "commit", "-q", "-am", "production web at 1")
	if err := os.WriteFile(prod, data, 0o644); err != nil {
		t.Fatal(err)
	}
	git(t, repo, "commit", "-q", "-am", "scale production web to 3")
	// Dirty the work tree: plan must read git objects, not files.
	if err := os.WriteFile(prod, []byte("not: [valid"), 0o644); err != nil {
		t.Fatal(err)
	}

	for _, format := range []string{"text", "markdown", "json"} {
		t.Run(format, func(t *testing.T) {
			code, out, errOut := runCLI(t, "plan", "--repo", repo, "--base", "HEAD~1", "--head", "HEAD", "--env", "production", "--format", format)
			if code != 2 {
				t.Fatalf("exit %d, want 2 (changes)\n%s%s", code, out, errOut)
			}
			switch format {
			case "text":
				if !strings.Contains(out, "~ scale web: 1 -> 3  [scale web]") || strings.Contains(out, "staging") {
					t.Errorf("text plan lacks the scale or shows staging:\n%s", out)
				}
			case "markdown":
				if !strings.Contains(out, "| hello | ~ scale web | 1 | 3 | scale web |") {
					t.Errorf("markdown plan lacks the scale row:\n%s", out)
				}
			case "json":
				var plan struct {
					Changes []map[string]any `json:"changes"`
				}
				if err := json.Unmarshal([]byte(out), &plan); err != nil {
					t.Fatalf("%v\n%s", err, out)
				}
				want := map[string]any{"env": "production", "app": "hello", "kind": "scale", "process": "web",
					"from": float64(1), "to": float64(3), "effect": "scale", "release": false}
				if len(plan.Changes) != 1 || !equalJSON(t, plan.Changes[0], want) {
					t.Errorf("changes = %v, want [%v]", plan.Changes, want)
				}
			}
		})
	}
	if got := git(t, repo, "status", "--porcelain"); got != "M environments/production.yaml" {
		t.Errorf("plan touched the work tree: git status = %q", got)
	}

	code, out, errOut := runCLI(t, "plan", "--repo", repo, "--base", "HEAD", "--head", "HEAD")
	if code != 0 || !strings.Contains(out, "No changes in 2 environments.") {
		t.Errorf("unchanged pair: exit %d, want 0\n%s%s", code, out, errOut)
	}
}

func TestPlanErrors(t *testing.T) {
	t.Parallel()
	repo := gitRepoWithExamples(t)
	if err := os.WriteFile(filepath.Join(repo, "apps", "hello.hcl"), []byte("app \"hello\" {\n  bogus = 1\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	git(t, repo, "commit", "-q", "-am", "break hello")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"spec does not load", []string{"plan", "--repo", repo, "--base", "HEAD~1", "--head", "HEAD"}, "apps/hello.hcl:2:3: "},
		{"unknown revision", []string{"plan", "--repo", repo, "--base", "nope", "--head", "HEAD"}, "nope"},
		{"bad format", []string{"plan", "--repo", repo, "--format", "xml"}, "--format"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, tt.args...)
			if code != 1 || !strings.Contains(errOut, tt.want) {
				t.Errorf("exit %d, stderr %q; want exit 1 and %q\n%s", code, errOut, tt.want, out)
			}
		})
	}
}

func equalJSON(t *testing.T, a, b map[string]any) bool {
	t.Helper()
	x, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	y, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(x, y)
}
