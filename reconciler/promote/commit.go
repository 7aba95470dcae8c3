package promote

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"

	"github.com/manifold-paas/manifold/reconciler/source"
	"github.com/manifold-paas/manifold/spec"
)

// Commit writes the pin into the environment file of To at the HEAD of the config
// repo (repoDir, a git work tree; subdir the config repo's folder inside it) and
// commits it on a new branch, with the git CLI. The work tree, the index and the
// checked-out branch are left as they are: the commit is made from HEAD's tree through
// a private index, so uncommitted work is neither committed nor disturbed. It returns
// the new commit's id; a branch that exists already is an error.
func Commit(ctx context.Context, repoDir, subdir, to, app string, p Promotion) (string, error) {
	tree, _, err := source.TreeAt(repoDir, "HEAD")
	if err != nil {
		return "", err
	}
	prefix := path.Clean(filepath.ToSlash(subdir))
	if prefix != "." && prefix != "" {
		if tree, err = fs.Sub(tree, prefix); err != nil {
			return "", err
		}
	} else {
		prefix = ""
	}
	file, err := spec.EnvironmentFile(tree, to)
	if err != nil {
		return "", err
	}
	content, err := fs.ReadFile(tree, file)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", file, err)
	}
	pinned, err := spec.PinRelease(file, content, to, app, p.Pin)
	if err != nil {
		return "", err
	}
	repoPath := path.Join(prefix, file)

	g := gitCLI{dir: repoDir}
	if _, err := g.run(ctx, nil, "rev-parse", "--verify", "--quiet", "refs/heads/"+p.Branch); err == nil {
		return "", fmt.Errorf("branch %s exists already: delete it or promote a newer release", p.Branch)
	}
	index, err := os.CreateTemp("", "manifold-promote-index-*")
	if err != nil {
		return "", err
	}
	index.Close()
	defer os.Remove(index.Name())
	g.env = []string{"GIT_INDEX_FILE=" + index.Name()}

	blob, err := g.run(ctx, pinned, "hash-object", "-w", "--stdin")
	if err != nil {
		return "", err
	}
	mode := "100644"
	if entry, err := g.run(ctx, nil, "ls-tree", "HEAD", "--", repoPath); err == nil && entry != "" {
		mode = strings.Fields(entry)[0]
	}
	if _, err := g.run(ctx, nil, "read-tree", "HEAD"); err != nil {
		return "", err
	}
	if _, err := g.run(ctx, nil, "update-index", "--cacheinfo", mode+","+blob+","+repoPath); err != nil {
		return "", err
	}
	treeID, err := g.run(ctx, nil, "write-tree")
	if err != nil {
		return "", err
	}
	message := fmt.Sprintf("Promote %s to %s: %s\n\nPins %s in %s to the slug that %s runs.\n",
		app, to, p.Pin.From, app, to, p.Pin.From)
	commit, err := g.run(ctx, []byte(message), "commit-tree", treeID, "-p", "HEAD")
	if err != nil {
		return "", err
	}
	if _, err := g.run(ctx, nil, "branch", p.Branch, commit); err != nil {
		return "", err
	}
	return commit, nil
}

// gitCLI runs git in a repository.
type gitCLI struct {
	dir string
	env []string
}

// run runs git with args (stdin when not nil) and returns its trimmed output.
func (g gitCLI) run(ctx context.Context, stdin []byte, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = g.dir
	cmd.Env = append(os.Environ(), g.env...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("git %s in %s: %w: %s", args[0], g.dir, err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(stdout.String()), nil
}
