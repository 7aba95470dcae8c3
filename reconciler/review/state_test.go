package review_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/manifold-paas/manifold/reconciler/review"
	"github.com/manifold-paas/manifold/spec"
)

// TestManagerRestart: the Manager keeps its Tracker's state under Dir, so a daemon
// restart (a new Manager on the same Dir) neither counts the ttl anew, nor
// revives what the ttl destroyed, nor destroys anything on its first listing; a
// state file that does not read is as none.
func TestManagerRestart(t *testing.T) {
	t.Parallel()
	bare, first, second := bareRepo(t)
	dir := t.TempDir()
	settings := &spec.Review{Refs: []string{"refs/pull/*/head"}, TTLSeconds: 3600, Max: 5}
	start := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	manager := &review.Manager{URL: "file://" + bare, Dir: dir}
	sync := func(what string, at time.Duration, settled bool, create, destroy string) {
		t.Helper()
		_, d := manager.Sync(context.Background(), settings, start.Add(at))
		if got := names(d.Create); got != create {
			t.Errorf("%s: create %q, want %q", what, got, create)
		}
		if got := destroyed(d.Destroy); got != destroy {
			t.Errorf("%s: destroy %q, want %q", what, got, destroy)
		}
		if d.Settled != settled {
			t.Errorf("%s: settled %v, want %v", what, d.Settled, settled)
		}
	}
	restart := func() { manager = &review.Manager{URL: "file://" + bare, Dir: dir} }

	git(t, bare, "update-ref", "refs/pull/7/head", first)
	git(t, bare, "update-ref", "refs/pull/8/head", first)
	sync("two pull requests", 0, false, "pr-7@"+first[:1]+" pr-8@"+first[:1], "")
	info, err := os.Stat(filepath.Join(dir, "tracker.json"))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("state file: %v, %v; want mode 0600", info, err)
	}
	git(t, bare, "update-ref", "refs/pull/8/head", second)
	sync("a push to pr-8", 20*time.Minute, true, "", "")

	restart()
	git(t, bare, "update-ref", "-d", "refs/pull/7/head")
	sync("after a restart, pr-7's ref gone once", 30*time.Minute, true, "", "")
	envs, _ := manager.Envs()
	if len(envs) != 2 || envs[0].Name != "pr-7" || !envs[0].PushedAt.Equal(start) || envs[0].State != review.StateActive {
		t.Fatalf("after a restart: %+v, want pr-7 and pr-8 active, pr-7 pushed at %s", envs, start)
	}
	git(t, bare, "update-ref", "refs/pull/7/head", first)
	sync("pr-7's ref back", 40*time.Minute, true, "", "")

	restart()
	// The ttl counts from the pushes before the restarts: pr-7's hour is up, pr-8's
	// (pushed at 20m) not.
	sync("an hour after pr-7's push", 61*time.Minute, true, "", "pr-7: no push for 1h0m0s")

	restart()
	bare2 := bare + ".away"
	if err := os.Rename(bare, bare2); err != nil {
		t.Fatal(err)
	}
	// A restart's failed listing is not settled: what runs stays.
	sync("a failed listing after a restart", 61*time.Minute+30*time.Second, false, "", "")
	if err := os.Rename(bare2, bare); err != nil {
		t.Fatal(err)
	}
	sync("an expired environment stays gone across a restart", 62*time.Minute, true, "", "")
	git(t, bare, "update-ref", "refs/pull/7/head", second)
	sync("until its ref moves", 63*time.Minute, true, "pr-7@"+second[:1], "")

	// A state file that does not read is as none: the Manager waits for two listings.
	if err := os.WriteFile(filepath.Join(dir, "tracker.json"), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	restart()
	sync("a damaged state file", 64*time.Minute, false, "pr-7@"+second[:1]+" pr-8@"+second[:1], "")
	sync("its second listing", 65*time.Minute, true, "", "")

	// No review block: nothing to remember.
	manager.Sync(context.Background(), nil, start.Add(66*time.Minute))
	if _, err := os.Stat(filepath.Join(dir, "tracker.json")); !os.IsNotExist(err) {
		t.Errorf("state file without a review block: %v", err)
	}
}
