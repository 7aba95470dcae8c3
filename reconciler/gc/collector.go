package gc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/manifold-paas/manifold/drivers"
	"github.com/manifold-paas/manifold/reconciler/ledger"
	"github.com/manifold-paas/manifold/reconciler/slug"
	"github.com/manifold-paas/manifold/spec"
)

// Ledger is what collection reads of the release ledger (*ledger.Ledger).
type Ledger interface {
	Apps() ([]ledger.AppEnv, error)
	List(app, env string) ([]ledger.Release, error)
	Pinned(app, env string) (int, bool)
}

// Dynos lists the dynos that exist (a drivers.Driver).
type Dynos interface {
	List(ctx context.Context) ([]drivers.Dyno, error)
}

// Spec is the loaded config repo (*reconciler.Reconciler): its apps, platform
// settings and the checkouts of its git sources. A zero Platform (KeepReleases 0)
// means nothing has loaded: collection waits for it.
type Spec interface {
	Apps() []spec.App
	Platform() spec.Platform
	// SourcesDir holds one folder per git source checkout; GitSourceDirs are those
	// the spec uses.
	SourcesDir() string
	GitSourceDirs() []string
}

// Report is what one collection removed (or, dry, would remove).
type Report struct {
	DryRun bool   `json:"dry_run"`
	Items  []Item `json:"items"`
	// Bytes is the sum of the items' Bytes.
	Bytes int64 `json:"bytes"`
	// KeptSlugs is how many slugs stay.
	KeptSlugs int `json:"kept_slugs"`
}

// Collector collects a daemon's disk. Collect is safe for concurrent use (calls run
// one at a time).
type Collector struct {
	Builder *slug.Builder
	Ledger  Ledger
	Dynos   Dynos
	Spec    Spec
	// Grace: DefaultGrace when 0.
	Grace  time.Duration
	Logger *slog.Logger

	mu sync.Mutex
}

// ErrNotLoaded: no spec has loaded yet, so how many releases to keep is unknown.
var ErrNotLoaded = errors.New("gc: the config repo has not loaded yet")

// Collect gathers the inputs, plans and (unless dryRun) removes. A removal that fails
// is logged and left out of the report; the others go on.
func (c *Collector) Collect(ctx context.Context, dryRun bool) (Report, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	platform := c.Spec.Platform()
	if platform.KeepReleases == 0 {
		return Report{}, ErrNotLoaded
	}
	in := Inputs{KeepReleases: platform.KeepReleases, Releases: map[ledger.AppEnv][]ledger.Release{},
		Pinned: map[ledger.AppEnv]int{}, SpecApps: map[string]bool{}, Now: time.Now(), Grace: c.Grace}
	if in.Grace == 0 {
		in.Grace = DefaultGrace
	}
	// Dynos first: a slug a dyno starts on after this listing was in the ledger or
	// used within the grace before it.
	dynos, err := c.Dynos.List(ctx)
	if err != nil {
		return Report{}, fmt.Errorf("gc: list dynos: %w", err)
	}
	for _, d := range dynos {
		in.Running = append(in.Running, d.Spec.SlugKey)
	}
	apps, err := c.Ledger.Apps()
	if err != nil {
		return Report{}, fmt.Errorf("gc: %w", err)
	}
	for _, ae := range apps {
		releases, err := c.Ledger.List(ae.App, ae.Env)
		if err != nil {
			return Report{}, fmt.Errorf("gc: %w", err)
		}
		in.Releases[ae] = releases
		if v, ok := c.Ledger.Pinned(ae.App, ae.Env); ok {
			in.Pinned[ae] = v
		}
	}
	// The checkouts present before the ones wanted: one a pass makes meanwhile is
	// not listed, so never removed.
	if entries, err := os.ReadDir(c.Spec.SourcesDir()); err == nil {
		for _, e := range entries {
			in.Checkouts = append(in.Checkouts, filepath.Join(c.Spec.SourcesDir(), e.Name()))
		}
	}
	in.WantedCheckouts = map[string]bool{}
	for _, dir := range c.Spec.GitSourceDirs() {
		in.WantedCheckouts[dir] = true
	}
	for _, app := range c.Spec.Apps() {
		in.SpecApps[app.Name] = true
		if app.Pin != nil {
			in.SpecPins = append(in.SpecPins, app.Pin.Slug)
		}
	}
	if in.Slugs, err = c.Builder.Store.List(); err != nil {
		return Report{}, fmt.Errorf("gc: %w", err)
	}
	if in.CacheApps, err = c.Builder.CacheApps(); err != nil {
		return Report{}, fmt.Errorf("gc: %w", err)
	}

	report := Report{DryRun: dryRun, Items: []Item{}}
	removed := 0
	for _, item := range Plan(in) {
		switch item.Kind {
		case KindBuildCache:
			item.Bytes = c.Builder.CacheSize(item.App)
		case KindCheckout:
			item.Bytes = dirBytes(item.Path)
		}
		if !dryRun {
			var err error
			switch item.Kind {
			case KindSlug:
				err = c.Builder.Store.Remove(item.Key)
			case KindBuildCache:
				err = c.Builder.RemoveCache(item.App)
			case KindCheckout:
				err = os.RemoveAll(item.Path)
			}
			if err != nil {
				c.logger().Warn("gc: remove", "kind", item.Kind, "app", item.App, "key", item.Key, "err", err)
				continue
			}
		}
		if item.Kind == KindSlug {
			removed++
		}
		report.Items = append(report.Items, item)
		report.Bytes += item.Bytes
	}
	report.KeptSlugs = len(in.Slugs) - removed
	return report, nil
}

// dirBytes sums the sizes of the regular files under dir.
func dirBytes(dir string) int64 {
	var total int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				total += info.Size()
			}
		}
		return nil
	})
	return total
}

func (c *Collector) logger() *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// Run collects every interval until ctx ends, logging what went.
func (c *Collector) Run(ctx context.Context, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		report, err := c.Collect(ctx, false)
		switch {
		case errors.Is(err, ErrNotLoaded):
		case err != nil:
			c.logger().Error("gc", "err", err)
		case len(report.Items) > 0:
			c.logger().Info("gc", "removed", len(report.Items), "bytes", report.Bytes, "kept_slugs", report.KeptSlugs)
		}
	}
}

// Handler serves POST /gc (?dry_run=1): the Report as JSON.
func (c *Collector) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		dry := r.URL.Query().Get("dry_run") == "1"
		report, err := c.Collect(r.Context(), dry)
		if err != nil {
			status := http.StatusInternalServerError
			if errors.Is(err, ErrNotLoaded) {
				status = http.StatusConflict
			}
			http.Error(w, err.Error(), status)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(report)
	})
}
