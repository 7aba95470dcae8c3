package gc_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/manifold-paas/manifold/drivers"
	"github.com/manifold-paas/manifold/reconciler/gc"
	"github.com/manifold-paas/manifold/reconciler/ledger"
	"github.com/manifold-paas/manifold/reconciler/slug"
	"github.com/manifold-paas/manifold/spec"
)

func key(n int) string { return fmt.Sprintf("sha256:%064x", n) }

// TestPlan: what stays and what goes.
func TestPlan(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	old := now.Add(-2 * time.Hour)
	hello := ledger.AppEnv{App: "hello", Env: "staging"}
	// v5 newest ... v1 oldest; v4 succeeded, v5 failed.
	releases := []ledger.Release{
		{Version: 5, SlugKey: key(5), Status: ledger.StatusFailed},
		{Version: 4, SlugKey: key(4), Status: ledger.StatusSucceeded},
		{Version: 3, SlugKey: key(3), Status: ledger.StatusSucceeded},
		{Version: 2, SlugKey: key(2), Status: ledger.StatusSucceeded},
		{Version: 1, SlugKey: key(1), Status: ledger.StatusSucceeded},
	}
	var slugs []slug.Stored
	for i := 1; i <= 7; i++ {
		slugs = append(slugs, slug.Stored{Key: key(i), App: "hello", Bytes: 100, UsedAt: old})
	}
	slugs[6].UsedAt = now.Add(-time.Minute) // key(7): just built, not in the ledger yet
	tests := []struct {
		name   string
		keep   int
		pinned map[ledger.AppEnv]int
		run    []string
		pins   []string
		spec   map[string]bool
		// checkouts are present; /s/hello-new is the one wanted.
		checkouts []string
		want      []gc.Item
	}{
		{
			name: "keep 1: the newest (failed) and the current succeeded one",
			keep: 1, spec: map[string]bool{"hello": true},
			want: []gc.Item{slugItem(1), slugItem(2), slugItem(3), slugItem(6), goneCache},
		},
		{
			name: "a pinned release and a running dyno keep theirs",
			keep: 1, pinned: map[ledger.AppEnv]int{hello: 1}, run: []string{key(6)}, spec: map[string]bool{"hello": true},
			want: []gc.Item{slugItem(2), slugItem(3), goneCache},
		},
		{
			name: "a slug a spec's release pin names is kept",
			keep: 1, pins: []string{key(2)}, spec: map[string]bool{"hello": true},
			want: []gc.Item{slugItem(1), slugItem(3), slugItem(6), goneCache},
		},
		{
			name: "build caches of apps gone from the spec",
			keep: 20, spec: map[string]bool{"hello": true},
			want: []gc.Item{slugItem(6), goneCache},
		},
		{name: "no spec loaded: no cache or checkout goes", keep: 20, want: []gc.Item{slugItem(6)}},
		{
			name: "checkouts the spec no longer uses",
			keep: 20, spec: map[string]bool{"hello": true}, checkouts: []string{"/s/hello-new", "/s/hello-old"},
			want: []gc.Item{slugItem(6), goneCache, {Kind: gc.KindCheckout, Path: "/s/hello-old"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := gc.Plan(gc.Inputs{
				KeepReleases: tt.keep, Releases: map[ledger.AppEnv][]ledger.Release{hello: releases},
				Pinned: tt.pinned, Running: tt.run, SpecPins: tt.pins, Slugs: slugs, CacheApps: []string{"hello", "gone"},
				SpecApps: tt.spec, Now: now, Grace: time.Hour,
				Checkouts: tt.checkouts, WantedCheckouts: map[string]bool{"/s/hello-new": true},
			})
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Plan =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

var goneCache = gc.Item{Kind: gc.KindBuildCache, App: "gone"}

func slugItem(n int) gc.Item {
	return gc.Item{Kind: gc.KindSlug, Key: key(n), App: "hello", Bytes: 100}
}

type noDynos struct{}

func (noDynos) List(context.Context) ([]drivers.Dyno, error) { return nil, nil }

type fixedSpec struct {
	platform spec.Platform
	sources  string
}

func (s fixedSpec) Apps() []spec.App        { return []spec.App{{Name: "app", Env: "default"}} }
func (s fixedSpec) Platform() spec.Platform { return s.platform }
func (s fixedSpec) SourcesDir() string      { return s.sources }
func (s fixedSpec) GitSourceDirs() []string {
	return []string{filepath.Join(s.sources, "app-0123")}
}

// TestCollect200Builds builds one app 200 times (a new source each time, 256 KiB of
// incompressible data), appending a release per build, with and without collection
// after each, and reports the state dir's size: with it, the store holds the last
// keep_releases slugs.
func TestCollect200Builds(t *testing.T) {
	t.Parallel()
	const builds, keep = 200, 20
	for _, collect := range []bool{false, true} {
		t.Run(fmt.Sprintf("collect=%t", collect), func(t *testing.T) {
			t.Parallel()
			state := t.TempDir()
			store, err := slug.OpenStore(filepath.Join(state, "slugs"))
			if err != nil {
				t.Fatal(err)
			}
			releases, err := ledger.Open(filepath.Join(state, "ledger.db"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { releases.Close() })
			builder := &slug.Builder{Store: store}
			c := &gc.Collector{Builder: builder, Ledger: releases, Dynos: noDynos{}, Grace: time.Nanosecond,
				Spec: fixedSpec{platform: spec.Platform{KeepReleases: keep}, sources: filepath.Join(state, "sources")}}
			// A checkout the spec uses, one it no longer does, and the build cache of
			// an app gone from the spec.
			for _, dir := range []string{"sources/app-0123", "sources/old-9999", "slugs/cache/gone"} {
				if err := os.MkdirAll(filepath.Join(state, dir), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(state, dir, "file"), []byte("x"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			src := t.TempDir()
			blob := make([]byte, 256<<10)
			for i := range builds {
				rand.Read(blob)
				if err := os.WriteFile(filepath.Join(src, "data"), blob, 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(src, "Procfile"), []byte("web: sleep 1\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				s, err := builder.Build(context.Background(), slug.Request{App: "app", SourceDir: src})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := releases.Append(context.Background(), ledger.Release{App: "app", Env: "default", SlugKey: s.Key,
					Status: ledger.StatusSucceeded, Description: fmt.Sprintf("build %d", i)}); err != nil {
					t.Fatal(err)
				}
				if collect {
					if _, err := c.Collect(context.Background(), false); err != nil {
						t.Fatal(err)
					}
				}
			}
			left, err := store.List()
			if err != nil {
				t.Fatal(err)
			}
			want := builds
			if collect {
				want = keep
			}
			if len(left) != want {
				t.Errorf("%d slugs left after %d builds, want %d", len(left), builds, want)
			}
			dry, err := c.Collect(context.Background(), true)
			if err != nil {
				t.Fatal(err)
			}
			slugItems := 0
			for _, item := range dry.Items {
				if item.Kind == gc.KindSlug {
					slugItems++
				}
			}
			if slugItems != len(left)-keep {
				t.Errorf("dry run lists %d slugs, want %d", slugItems, len(left)-keep)
			}
			for dir, wantThere := range map[string]bool{"sources/app-0123": true, "sources/old-9999": !collect, "slugs/cache/gone": !collect, "slugs/cache/app": true} {
				if _, err := os.Stat(filepath.Join(state, dir)); (err == nil) != wantThere {
					t.Errorf("%s there = %v, want %v", dir, err == nil, wantThere)
				}
			}
			if again, _ := store.List(); len(again) != len(left) {
				t.Errorf("a dry run removed slugs: %d -> %d", len(left), len(again))
			}
			t.Logf("state dir after %d builds of one app, collection %t: %s (%d slugs)", builds, collect, slug.FormatSize(dirBytes(t, state)), len(left))
		})
	}
}

func dirBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var total int64
	err := filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() {
			total += info.Size()
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return total
}
