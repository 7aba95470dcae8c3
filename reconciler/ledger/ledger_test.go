package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/manifold-paas/manifold/reconciler/ledger"
	bolt "go.etcd.io/bbolt"
)

func open(t *testing.T, path string) *ledger.Ledger {
	t.Helper()
	l, err := ledger.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func deploy(app, env, slug string, config map[string]string) ledger.Release {
	return ledger.Release{App: app, Env: env, SlugKey: slug, Config: config,
		ProcessTypes: map[string]string{"web": "bin/hello"}, Description: "Deploy " + slug[:7],
		Commit: slug, Author: "alice@example.com"}
}

func TestAppendGetListCurrent(t *testing.T) {
	ctx := context.Background()
	l := open(t, filepath.Join(t.TempDir(), "ledger.db"))
	if _, err := l.Current("hello", "production"); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("Current of an empty ledger: %v", err)
	}
	for i, slug := range []string{"aaaaaaa1", "bbbbbbb2", "ccccccc3"} {
		r, err := l.Append(ctx, deploy("hello", "production", slug, map[string]string{"N": fmt.Sprint(i)}))
		if err != nil {
			t.Fatal(err)
		}
		if r.Version != i+1 || r.Status != ledger.StatusPending || r.CreatedAt.IsZero() {
			t.Errorf("append %d returned %+v", i, r)
		}
	}
	// Another environment of the same app counts on its own.
	if r := value(l.Append(ctx, deploy("hello", "staging", "ddddddd4", nil)))(t); r.Version != 1 {
		t.Errorf("staging's first release is v%d", r.Version)
	}
	must(t, l.SetStatus(ctx, "hello", "production", 1, ledger.StatusSucceeded, ""))
	must(t, l.SetStatus(ctx, "hello", "production", 2, ledger.StatusSucceeded, ""))
	must(t, l.SetStatus(ctx, "hello", "production", 3, ledger.StatusFailed, "release command exited with status 1"))

	cur, err := l.Current("hello", "production")
	if err != nil || cur.Version != 2 || cur.SlugKey != "bbbbbbb2" {
		t.Errorf("Current = v%d %s, %v; want v2 (v3 failed)", cur.Version, cur.SlugKey, err)
	}
	list, err := l.List("hello", "production")
	if err != nil {
		t.Fatal(err)
	}
	var versions []int
	for _, r := range list {
		versions = append(versions, r.Version)
	}
	if !reflect.DeepEqual(versions, []int{3, 2, 1}) {
		t.Errorf("List versions %v, want newest first", versions)
	}
	got, err := l.Get("hello", "production", 3)
	if err != nil || got.StatusReason != "release command exited with status 1" || got.Config["N"] != "2" {
		t.Errorf("Get v3 = %+v, %v", got, err)
	}
	if _, err := l.Get("hello", "production", 9); !errors.Is(err, ledger.ErrNotFound) || !strings.Contains(err.Error(), "v9 of hello (production)") {
		t.Errorf("Get v9: %v", err)
	}
	if list, err := l.List("nobody", "production"); err != nil || len(list) != 0 {
		t.Errorf("List of an unknown app: %v, %v", list, err)
	}
	apps, err := l.Apps()
	if want := []ledger.AppEnv{{App: "hello", Env: "production"}, {App: "hello", Env: "staging"}}; err != nil || !reflect.DeepEqual(apps, want) {
		t.Errorf("Apps = %v, %v", apps, err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestStatusChangesOnce(t *testing.T) {
	ctx := context.Background()
	l := open(t, filepath.Join(t.TempDir(), "ledger.db"))
	r, err := l.Append(ctx, deploy("a", "e", "1234567x", nil))
	must(t, err)
	tests := []struct {
		name    string
		version int
		status  ledger.Status
		wantErr error
	}{
		{"to pending", r.Version, ledger.StatusPending, nil},
		{"bogus status", r.Version, "done", nil},
		{"missing version", 7, ledger.StatusSucceeded, ledger.ErrNotFound},
		{"first change", r.Version, ledger.StatusSucceeded, nil},
		{"second change", r.Version, ledger.StatusFailed, ledger.ErrStatusFinal},
	}
	for _, tt := range tests {
		err := l.SetStatus(ctx, "a", "e", tt.version, tt.status, "why")
		switch {
		case tt.name == "to pending" || tt.name == "bogus status":
			if err == nil {
				t.Errorf("%s: accepted", tt.name)
			}
		case !errors.Is(err, tt.wantErr) && (tt.wantErr != nil || err != nil):
			t.Errorf("%s: got %v, want %v", tt.name, err, tt.wantErr)
		}
	}
	if got := value(l.Get("a", "e", r.Version))(t); got.Status != ledger.StatusSucceeded || got.SlugKey != r.SlugKey {
		t.Errorf("release after status changes: %+v", got)
	}
	if _, err := l.Append(ctx, ledger.Release{App: "a", Env: ""}); err == nil {
		t.Error("release without an environment accepted")
	}
	if _, err := l.Append(ctx, ledger.Release{App: "a", Env: "e", Status: "weird"}); err == nil {
		t.Error("release with a bogus status accepted")
	}
}

func TestRollbackThenNewCommit(t *testing.T) {
	ctx := context.Background()
	l := open(t, filepath.Join(t.TempDir(), "ledger.db"))
	first := deploy("hello", "prod", "slug1111", map[string]string{"GREETING": "hi"})
	first.ReleaseCommand, first.SpecDigest = "bin/migrate", "sha256:spec1"
	v1 := value(l.Append(ctx, first))(t)
	must(t, l.SetStatus(ctx, "hello", "prod", v1.Version, ledger.StatusSucceeded, ""))
	v2 := value(l.Append(ctx, deploy("hello", "prod", "slug2222", map[string]string{"GREETING": "yo"})))(t)
	must(t, l.SetStatus(ctx, "hello", "prod", v2.Version, ledger.StatusSucceeded, ""))
	v3 := value(l.Append(ctx, deploy("hello", "prod", "slug3333", nil)))(t)
	must(t, l.SetStatus(ctx, "hello", "prod", v3.Version, ledger.StatusFailed, "exit 1"))

	if _, ok := l.Pinned("hello", "prod"); ok {
		t.Error("pinned before any rollback")
	}
	if _, err := l.Rollback(ctx, "hello", "prod", 3, "bob", ""); !errors.Is(err, ledger.ErrNotLive) {
		t.Errorf("rollback to a failed release: %v", err)
	}
	if _, err := l.Rollback(ctx, "hello", "prod", 12, "bob", ""); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("rollback to a missing release: %v", err)
	}
	rb, err := l.Rollback(ctx, "hello", "prod", 1, "bob@example.com", "sha256:spec3")
	must(t, err)
	want := ledger.Release{Version: 4, App: "hello", Env: "prod", SlugKey: "slug1111", Config: map[string]string{"GREETING": "hi"},
		ProcessTypes: v1.ProcessTypes, ReleaseCommand: "bin/migrate", SpecDigest: "sha256:spec3", Description: "Rollback to v1", Commit: v1.Commit, Author: "bob@example.com",
		CreatedAt: rb.CreatedAt, Status: ledger.StatusPending, RollbackOf: 1}
	if !reflect.DeepEqual(rb, want) {
		t.Errorf("rollback release\n got %+v\nwant %+v", rb, want)
	}
	if pin, ok := l.Pinned("hello", "prod"); !ok || pin != 4 {
		t.Errorf("Pinned = %d, %v; want 4, true", pin, ok)
	}
	must(t, l.SetStatus(ctx, "hello", "prod", 4, ledger.StatusSucceeded, ""))
	if cur := value(l.Current("hello", "prod"))(t); cur.Version != 4 || cur.SlugKey != "slug1111" {
		t.Errorf("current after rollback: v%d %s", cur.Version, cur.SlugKey)
	}
	// The next commit that changes the app: a new release, and the pin goes.
	v5, err := l.Append(ctx, deploy("hello", "prod", "slug5555", nil))
	must(t, err)
	must(t, l.Unpin(ctx, "hello", "prod"))
	if v5.Version != 5 {
		t.Errorf("release after rollback is v%d, want v5", v5.Version)
	}
	if _, ok := l.Pinned("hello", "prod"); ok {
		t.Error("still pinned after Unpin")
	}
	// History is untouched: v1 is as it was.
	if got := value(l.Get("hello", "prod", 1))(t); !reflect.DeepEqual(got, v1Succeeded(v1)) {
		t.Errorf("v1 changed: %+v", got)
	}
}

func v1Succeeded(r ledger.Release) ledger.Release {
	r.Status = ledger.StatusSucceeded
	return r
}

func TestConcurrentAppends(t *testing.T) {
	ctx := context.Background()
	l := open(t, filepath.Join(t.TempDir(), "ledger.db"))
	const goroutines, each = 8, 25
	var wg sync.WaitGroup
	got := make(chan int, goroutines*each)
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				r, err := l.Append(ctx, deploy("busy", "prod", fmt.Sprintf("slug-%02d-%02d", g, i), nil))
				if err != nil {
					t.Error(err)
					return
				}
				got <- r.Version
			}
		})
	}
	wg.Wait()
	close(got)
	seen := map[int]bool{}
	for v := range got {
		if seen[v] {
			t.Errorf("v%d handed out twice", v)
		}
		seen[v] = true
	}
	for v := 1; v <= goroutines*each; v++ {
		if !seen[v] {
			t.Errorf("v%d missing", v)
		}
	}
	list, err := l.List("busy", "prod")
	if err != nil || len(list) != goroutines*each || list[0].Version != goroutines*each {
		t.Errorf("List: %d releases, newest v%d, %v", len(list), list[0].Version, err)
	}
}

func TestOpenRefusesForeignAndCorruptFiles(t *testing.T) {
	dir := t.TempDir()
	foreign := filepath.Join(dir, "foreign.db")
	db, err := bolt.Open(foreign, 0o600, nil)
	must(t, err)
	must(t, db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("widgets")); return err }))
	must(t, db.Close())

	garbage := make([]byte, 64<<10)
	for i := range garbage {
		garbage[i] = byte(i * 31)
	}
	// A real ledger whose first pages are then overwritten.
	damaged := filepath.Join(dir, "damaged.db")
	l, err := ledger.Open(damaged)
	must(t, err)
	_, err = l.Append(context.Background(), deploy("a", "e", "1234567x", nil))
	must(t, err)
	must(t, l.Close())
	raw, err := os.ReadFile(damaged)
	must(t, err)
	copy(raw[:8192], garbage)
	must(t, os.WriteFile(damaged, raw, 0o600))
	// And one whose meta pages are intact but whose data pages are not.
	damagedData := filepath.Join(dir, "damaged-data.db")
	l, err = ledger.Open(damagedData)
	must(t, err)
	for range 50 {
		_, err = l.Append(context.Background(), deploy("a", "e", "1234567x", nil))
		must(t, err)
	}
	must(t, l.Close())
	raw, err = os.ReadFile(damagedData)
	must(t, err)
	for off := 8192; off < len(raw); off += len(garbage) {
		copy(raw[off:], garbage)
	}
	must(t, os.WriteFile(damagedData, raw, 0o600))

	files := map[string][]byte{
		"text.db":    []byte("this is a README, not a ledger\n"),
		"garbage.db": garbage,
	}
	for name, content := range files {
		must(t, os.WriteFile(filepath.Join(dir, name), content, 0o600))
	}
	for _, name := range []string{"foreign.db", "damaged.db", "damaged-data.db", "text.db", "garbage.db"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, name)
			before := value(os.ReadFile(path))(t)
			l, err := ledger.Open(path)
			if err == nil {
				l.Close()
				t.Fatal("opened")
			}
			t.Log(err)
			if !errors.Is(err, ledger.ErrCorrupt) || !strings.Contains(err.Error(), path) {
				t.Errorf("error %v: want ErrCorrupt naming %s", err, path)
			}
			if after := value(os.ReadFile(path))(t); string(after) != string(before) {
				t.Error("the file was changed")
			}
		})
	}
}

func TestOpenLockedByAnotherProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	open(t, path)
	// flock locks belong to the open file, so a second Open in this process is
	// refused just as a second daemon's would be.
	start := time.Now()
	_, err := ledger.OpenWithOptions(path, ledger.Options{LockTimeout: 100 * time.Millisecond})
	if !errors.Is(err, ledger.ErrLocked) || !strings.Contains(err.Error(), "locked by another process") || !strings.Contains(err.Error(), path) {
		t.Errorf("second open: %v", err)
	}
	if time.Since(start) > 30*time.Second {
		t.Error("the lock timeout was not honoured")
	}
}

func TestReopenKeepsEverything(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	l, err := ledger.Open(path)
	must(t, err)
	ctx := context.Background()
	r, err := l.Append(ctx, deploy("a", "e", "1234567x", map[string]string{"K": "V"}))
	must(t, err)
	_, err = l.Rollback(ctx, "a", "e", 1, "x", "")
	if !errors.Is(err, ledger.ErrNotLive) {
		t.Errorf("rollback to pending: %v", err)
	}
	must(t, l.Close())
	l = open(t, path)
	got, err := l.Get("a", "e", 1)
	if err != nil || !reflect.DeepEqual(got, r) {
		t.Errorf("after reopen: %+v, %v; want %+v", got, err, r)
	}
}

// value returns a function that fails the test on a non-nil err and returns v
// otherwise: value(l.Append(ctx, release))(t) keeps an assertion from checking a
// value whose error was dropped.
func value[T any](v T, err error) func(t testing.TB) T {
	return func(t testing.TB) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}
