package review

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// listTimeout bounds one listing: a hung remote is a failed listing, never a hang.
const listTimeout = 30 * time.Second

// GitLister lists the refs of a git repository with `git ls-remote` (file://, HTTP(S),
// SSH: whatever the git CLI reaches).
type GitLister struct {
	// URL is the config repo's URL.
	URL string
}

// List returns every ref of the repository (full name to commit id). Any failure
// (unreachable, unreadable, not a repository, malformed output) is an error: the
// caller must never read a failed listing as "no refs".
func (g GitLister) List(ctx context.Context) (map[string]string, error) {
	ctx, cancel := context.WithTimeout(ctx, listTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "git", "ls-remote", "--refs", g.URL)
	// Never prompt for credentials: a daemon has no terminal.
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("list refs of %s: %w: %s", g.URL, err, strings.TrimSpace(stderr.String()))
	}
	refs := map[string]string{}
	for line := range strings.Lines(stdout.String()) {
		commit, ref, ok := strings.Cut(strings.TrimRight(line, "\n"), "\t")
		if !ok || len(commit) < 40 || !strings.HasPrefix(ref, "refs/") {
			return nil, fmt.Errorf("list refs of %s: unexpected line %q", g.URL, line)
		}
		refs[ref] = commit
	}
	return refs, nil
}
