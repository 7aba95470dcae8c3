// Package gc keeps a long-running daemon's disk bounded: it collects the slugs that
// neither the newest releases of an app and environment, a pinned release nor a
// running dyno use, and the build caches of apps gone from the spec. Plan decides
// (pure); Collector gathers its inputs and removes.
package gc

import (
	"slices"
	"time"

	"github.com/manifold-paas/manifold/reconciler/ledger"
	"github.com/manifold-paas/manifold/reconciler/slug"
)

// Kinds of Item.
const (
	KindSlug       = "slug"
	KindBuildCache = "build-cache"
	KindCheckout   = "checkout"
)

// DefaultGrace keeps a slug used (built or found in the store) this recently: a
// deploy may hold it before its release is in the ledger.
const DefaultGrace = time.Hour

// Item is one thing collection removes.
type Item struct {
	// Kind is KindSlug or KindBuildCache.
	Kind string `json:"kind"`
	// Key is a slug's key.
	Key string `json:"key,omitempty"`
	// App is the app a slug was built for, or whose build cache this is.
	App string `json:"app,omitempty"`
	// Path is a checkout's folder.
	Path string `json:"path,omitempty"`
	// Bytes is what removing it frees.
	Bytes int64 `json:"bytes"`
}

// Inputs is what Plan decides from.
type Inputs struct {
	// KeepReleases is how many of each app and environment's newest releases keep
	// their slugs (spec.Platform.KeepReleases); at least 1.
	KeepReleases int
	// Releases are every app and environment's releases, each list newest first.
	Releases map[ledger.AppEnv][]ledger.Release
	// Pinned are the versions rollbacks pinned apps to.
	Pinned map[ledger.AppEnv]int
	// Running are the slug keys of the dynos that exist (running or not).
	Running []string
	// SpecPins are the slug keys the loaded spec's release pins name (spec.App.Pin):
	// a promotion to deploy, whose slug its source environment may have moved past.
	SpecPins []string
	// Slugs are the store's slugs.
	Slugs []slug.Stored
	// CacheApps are the apps with a build cache; SpecApps the apps the spec names
	// (in any environment). Nil SpecApps (no spec loaded yet) collects no cache.
	CacheApps []string
	SpecApps  map[string]bool
	// Checkouts are the folders of app git source checkouts; WantedCheckouts those the
	// loaded spec uses (only looked at with a SpecApps).
	Checkouts       []string
	WantedCheckouts map[string]bool
	// Now and Grace: a slug used after Now-Grace is kept.
	Now   time.Time
	Grace time.Duration
}

// Plan returns what to collect: slugs (by key), build caches (by app), then
// checkouts (by path).
func Plan(in Inputs) []Item {
	keep := map[string]bool{}
	for _, key := range slices.Concat(in.Running, in.SpecPins) {
		keep[key] = true
	}
	n := max(in.KeepReleases, 1)
	for ae, releases := range in.Releases {
		for i, r := range releases {
			if i < n || r.Version == in.Pinned[ae] {
				keep[r.SlugKey] = true
			}
		}
		// The newest succeeded release is what runs, whatever failed after it.
		for _, r := range releases {
			if r.Status == ledger.StatusSucceeded {
				keep[r.SlugKey] = true
				break
			}
		}
	}
	var items []Item
	for _, s := range in.Slugs {
		if keep[s.Key] || in.Now.Sub(s.UsedAt) < in.Grace {
			continue
		}
		items = append(items, Item{Kind: KindSlug, Key: s.Key, App: s.App, Bytes: s.Bytes})
	}
	if in.SpecApps != nil {
		for _, app := range slices.Sorted(slices.Values(in.CacheApps)) {
			if !in.SpecApps[app] {
				items = append(items, Item{Kind: KindBuildCache, App: app})
			}
		}
		for _, dir := range slices.Sorted(slices.Values(in.Checkouts)) {
			if !in.WantedCheckouts[dir] {
				items = append(items, Item{Kind: KindCheckout, Path: dir})
			}
		}
	}
	return items
}
