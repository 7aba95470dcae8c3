package source_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/manifold-paas/manifold/reconciler/source"
)

// notes collects notify calls from a watcher goroutine.
type notes struct {
	mu      sync.Mutex
	reasons []string
}

func (n *notes) add(reason string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.reasons = append(n.reasons, reason)
}

func (n *notes) list() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.reasons...)
}

// waitFor polls until cond holds or the deadline passes.
func waitFor(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// checker is a source that counts its checks (source.Git, source.Folder).
type checker interface{ Checks() uint64 }

// checked runs act and waits until the source has finished a check after it: the
// positive signal that act was handled, before a test asserts nothing followed.
func checked(t *testing.T, src checker, act func()) {
	t.Helper()
	before := src.Checks()
	act()
	waitFor(t, "the source to check", 10*time.Second, func() bool { return src.Checks() > before })
}

// watch runs src.Watch until the test ends and returns the collected reasons.
func watch(t *testing.T, src source.Source) *notes {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	n := &notes{}
	done := make(chan error, 1)
	go func() { done <- src.Watch(ctx, n.add) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Watch: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Watch did not return after cancel")
		}
	})
	return n
}

func TestGitSourceFetchAndWatch(t *testing.T) {
	t.Parallel()
	repo := newGitRepo(t)
	first := repo.commit("first", map[string]string{"examples/apps/hello.hcl": "v1"})
	state := t.TempDir()
	src, err := source.NewGit(source.GitOptions{URL: repo.url(), Ref: "main", Path: "examples", Dir: state, Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	snap, err := src.Fetch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Rev.ID != first || snap.Rev.Message != "first" || snap.Rev.Ref != "main" {
		t.Fatalf("first snapshot rev = %+v", snap.Rev)
	}
	if filepath.Base(snap.Dir) != "examples" || filepath.Dir(snap.Dir) != snap.Root {
		t.Errorf("Dir %s is not Root %s + examples", snap.Dir, snap.Root)
	}
	if got := readFile(t, snap.Dir, "apps/hello.hcl"); got != "v1" {
		t.Errorf("hello.hcl = %q", got)
	}

	n := watch(t, src)
	// A trigger with nothing new does not notify.
	checked(t, src, func() { src.Trigger("webhook") })
	if got := n.list(); len(got) != 0 {
		t.Errorf("notified for an unchanged ref: %q", got)
	}

	second := repo.commit("second: scale up", map[string]string{"examples/apps/hello.hcl": "v2"})
	src.Trigger("webhook push refs/heads/main")
	waitFor(t, "a notify for the new commit", 10*time.Second, func() bool { return len(n.list()) == 1 })
	if r := n.list()[0]; !strings.Contains(r, second[:7]) || !strings.Contains(r, "webhook push") {
		t.Errorf("reason %q names neither the trigger nor the commit", r)
	}
	// Further checks before the caller fetched do not repeat the notify.
	checked(t, src, func() { src.Trigger("again") })
	if got := n.list(); len(got) != 1 {
		t.Errorf("notified %d times for one commit: %q", len(got), got)
	}

	snap2, err := src.Fetch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if snap2.Rev.ID != second || readFile(t, snap2.Dir, "apps/hello.hcl") != "v2" {
		t.Fatalf("second snapshot: %+v", snap2.Rev)
	}
	// The previous snapshot stays readable and unchanged.
	if got := readFile(t, snap.Dir, "apps/hello.hcl"); got != "v1" {
		t.Errorf("old snapshot changed to %q", got)
	}

	// After a third commit the first checkout is pruned, the second kept.
	repo.commit("third", map[string]string{"examples/apps/hello.hcl": "v3"})
	snap3, err := src.Fetch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if readFile(t, snap3.Dir, "apps/hello.hcl") != "v3" || readFile(t, snap2.Dir, "apps/hello.hcl") != "v2" {
		t.Error("third or second snapshot wrong")
	}
	if _, err := os.Stat(snap.Root); !os.IsNotExist(err) {
		t.Errorf("first checkout %s not pruned: %v", snap.Root, err)
	}
	// The Fetch by the caller got ahead of Watch: no notify for the third commit.
	checked(t, src, func() { src.Trigger("late") })
	if got := n.list(); len(got) != 1 {
		t.Errorf("notified for a commit already fetched: %q", got)
	}
}

func TestGitSourcePollsOnInterval(t *testing.T) {
	t.Parallel()
	repo := newGitRepo(t)
	repo.commit("first", map[string]string{"a": "1"})
	src, err := source.NewGit(source.GitOptions{URL: repo.url(), Ref: "main", Dir: t.TempDir(), Interval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.Fetch(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	n := watch(t, src)
	sha := repo.commit("polled", map[string]string{"a": "2"})
	waitFor(t, "a poll to notice the commit", 10*time.Second, func() bool { return len(n.list()) >= 1 })
	// Two more polls of the same commit notify nothing more.
	checked(t, src, func() {})
	checked(t, src, func() {})
	if got := n.list(); len(got) != 1 {
		t.Errorf("notified %d times for one commit: %q", len(got), got)
	}
	if r := n.list()[0]; !strings.HasPrefix(r, "poll:") || !strings.Contains(r, sha[:7]) {
		t.Errorf("reason = %q", r)
	}
}

func TestGitSourceErrors(t *testing.T) {
	t.Parallel()
	repo := newGitRepo(t)
	good := repo.commit("good", map[string]string{"examples/a.hcl": "1"})
	src, err := source.NewGit(source.GitOptions{URL: repo.url(), Ref: "main", Path: "examples", Dir: t.TempDir(), Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	if _, err := src.Fetch(ctx); err != nil {
		t.Fatal(err)
	}
	repo.git("rm", "-q", "-r", "examples")
	repo.git("commit", "-q", "-m", "remove examples")
	n := watch(t, src)
	for range 2 { // the error is reported again, without a new clone
		_, err = src.Fetch(ctx)
		if err == nil || !strings.Contains(err.Error(), `no directory "examples"`) || !strings.Contains(err.Error(), "remove examples") {
			t.Fatalf("fetch of a commit without Path: %v", err)
		}
	}
	src.Trigger("check")
	waitFor(t, "a notify for the failing state", 10*time.Second, func() bool { return len(n.list()) == 1 })
	if r := n.list()[0]; !strings.HasPrefix(r, "fetch failed:") {
		t.Errorf("reason = %q", r)
	}
	_ = good

	for name, opts := range map[string]source.GitOptions{
		"no url":       {Dir: t.TempDir()},
		"no dir":       {URL: repo.url()},
		"path escapes": {URL: repo.url(), Dir: t.TempDir(), Path: "../x"},
	} {
		if _, err := source.NewGit(opts); err == nil {
			t.Errorf("%s: NewGit accepted %+v", name, opts)
		}
	}
	missing, err := source.NewGit(source.GitOptions{URL: repo.url(), Ref: "nope", Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := missing.Fetch(ctx); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("missing ref: %v", err)
	}
}

func TestFolderSource(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "examples", "apps"), 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name, content string) {
		t.Helper()
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("examples/apps/hello.hcl", "v1")
	src, err := source.NewDir(source.DirOptions{Dir: root, Path: "examples", Debounce: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	snap, err := src.Fetch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(snap.Rev.ID, "dir:sha256:") || snap.Rev.Message != "local change" {
		t.Errorf("rev = %+v", snap.Rev)
	}
	if snap.Dir != filepath.Join(root, "examples") || snap.Root != root {
		t.Errorf("dirs = %s, %s", snap.Dir, snap.Root)
	}
	n := watch(t, src)
	count := func(want int) func() bool { return func() bool { return len(n.list()) == want } }

	// Once Watch answers a trigger, its watches are in place.
	checked(t, src, func() { src.Trigger("ready") })
	// Editors' temp files never notify: Watch sees their events and drops them.
	ignoredBefore, checksBefore := src.Ignored(), src.Checks()
	write("examples/apps/.hello.hcl.swp", "swap")
	write("examples/apps/hello.hcl~", "backup")
	write("examples/apps/4913", "")
	write("examples/.#hello.hcl", "lock")
	write("examples/#hello.hcl#", "autosave")
	write(".git/HEAD", "ref: refs/heads/main")
	waitFor(t, "the temp files' events dropped", 10*time.Second, func() bool { return src.Ignored() >= ignoredBefore+5 })
	if got := n.list(); len(got) != 0 || src.Checks() != checksBefore {
		t.Errorf("temp files: notified %q, %d checks", got, src.Checks()-checksBefore)
	}

	// Saving identical content does not notify either: the quiet period's check finds
	// the same content.
	checked(t, src, func() { write("examples/apps/hello.hcl", "v1") })
	if got := n.list(); len(got) != 0 {
		t.Errorf("notified for an unchanged save: %q", got)
	}

	// A burst of writes gives one notify after the quiet period.
	for i := range 5 {
		write("examples/apps/hello.hcl", strings.Repeat("v", i+2))
	}
	waitFor(t, "one notify for a burst", 5*time.Second, count(1))
	checked(t, src, func() { src.Trigger("probe") })
	if got := n.list(); len(got) != 1 {
		t.Errorf("a burst of writes notified %d times: %q", len(got), got)
	}
	if r := n.list()[0]; r != "local change: examples/apps/hello.hcl" {
		t.Errorf("reason = %q", r)
	}
	snap2, err := src.Fetch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if snap2.Rev.ID == snap.Rev.ID {
		t.Error("content changed but the ID did not")
	}

	// A new subdirectory is watched: a file inside it notifies.
	if err := os.Mkdir(filepath.Join(root, "examples", "environments"), 0o755); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a notify for the new directory", 5*time.Second, count(2))
	if _, err := src.Fetch(ctx); err != nil {
		t.Fatal(err)
	}
	// Wait for the new directory's watch: creating a file deeper must be seen.
	write("examples/environments/staging.hcl", "environment \"staging\" {}")
	waitFor(t, "a notify for a file in the new directory", 5*time.Second, count(3))
	if r := n.list()[2]; !strings.Contains(r, "examples/environments") {
		t.Errorf("reason = %q", r)
	}
	if _, err := src.Fetch(ctx); err != nil {
		t.Fatal(err)
	}
	write("examples/environments/deeper/more/x.hcl", "x")
	waitFor(t, "a notify for nested new directories", 5*time.Second, count(4))

	// Trigger re-checks at once; after Fetch there is nothing new.
	if _, err := src.Fetch(ctx); err != nil {
		t.Fatal(err)
	}
	checked(t, src, func() { src.Trigger("manual") })
	if got := n.list(); len(got) != 4 {
		t.Errorf("a trigger without change notified: %q", got)
	}
}

func TestHashDir(t *testing.T) {
	t.Parallel()
	a, b := t.TempDir(), t.TempDir()
	for _, dir := range []string{a, b} {
		if err := os.WriteFile(filepath.Join(dir, "f"), []byte("same"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(b, "x.swp"), []byte("ignored"), 0o644); err != nil {
		t.Fatal(err)
	}
	ha, err := source.HashDir(a)
	if err != nil {
		t.Fatal(err)
	}
	hb, err := source.HashDir(b)
	if err != nil {
		t.Fatal(err)
	}
	if ha != hb {
		t.Errorf("equal trees hash differently: %s %s", ha, hb)
	}
	if err := os.Chmod(filepath.Join(b, "f"), 0o755); err != nil {
		t.Fatal(err)
	}
	if hb2, _ := source.HashDir(b); hb2 == hb {
		t.Error("exec bit does not change the hash")
	}
	if _, err := source.HashDir(filepath.Join(a, "missing")); err == nil {
		t.Error("missing dir hashed")
	}
	if _, err := source.NewDir(source.DirOptions{Dir: filepath.Join(a, "missing")}); err == nil {
		t.Error("NewDir accepted a missing folder")
	}
}

// TestGitSourceKeepsHandedOutSnapshot: polls that run ahead of the reader never
// remove the checkout the reader was given.
func TestGitSourceKeepsHandedOutSnapshot(t *testing.T) {
	t.Parallel()
	repo := newGitRepo(t)
	repo.commit("a", map[string]string{"f": "a"})
	src, err := source.NewGit(source.GitOptions{URL: repo.url(), Ref: "main", Dir: t.TempDir(), Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := src.Fetch(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	n := watch(t, src)
	for i, content := range []string{"b", "c", "d"} {
		repo.commit(content, map[string]string{"f": content})
		src.Trigger("push " + content)
		waitFor(t, "notify for commit "+content, 10*time.Second, func() bool { return len(n.list()) == i+1 })
	}
	if got := readFile(t, snap.Dir, "f"); got != "a" {
		t.Errorf("handed-out snapshot reads %q, want a", got)
	}
}

func TestGitSourceFollowsRefs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		ref  string
		move func(r *gitRepo) string // moves the followed ref, returns the new sha
	}{
		{"branch", "main", func(r *gitRepo) string { return r.commit("next", map[string]string{"f": "2"}) }},
		{"moving tag", "live", func(r *gitRepo) string {
			sha := r.commit("next", map[string]string{"f": "2"})
			r.git("tag", "-f", "-a", "live", "-m", "promote")
			return sha
		}},
		{"remote HEAD", "", func(r *gitRepo) string { return r.commit("next", map[string]string{"f": "2"}) }},
		{"full ref name", "refs/heads/main", func(r *gitRepo) string { return r.commit("next", map[string]string{"f": "2"}) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			repo := newGitRepo(t)
			first := repo.commit("first", map[string]string{"f": "1"})
			repo.git("tag", "-a", "live", "-m", "first release")
			src, err := source.NewGit(source.GitOptions{URL: repo.url(), Ref: tt.ref, Dir: t.TempDir(), Interval: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			ctx := testCtx(t)
			snap, err := src.Fetch(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if snap.Rev.ID != first {
				t.Fatalf("first fetch at %s, want %s", snap.Rev.ID, first)
			}
			next := tt.move(repo)
			snap, err = src.Fetch(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if snap.Rev.ID != next || readFile(t, snap.Dir, "f") != "2" {
				t.Errorf("after the ref moved: %+v", snap.Rev)
			}
		})
	}
}
