package slug

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Stored is a slug in the store, as a collector sees it.
type Stored struct {
	Key string `json:"key"`
	// App is the app it was built for (another app or environment may use it too).
	App string `json:"app"`
	// Bytes is the tarball's and its metadata's size.
	Bytes int64 `json:"bytes"`
	// UsedAt is when a build last made it or found it in the store (the tarball's
	// modification time, which Build refreshes on a hit): a collector spares recent
	// ones, which a deploy may hold before its release is in the ledger.
	UsedAt time.Time `json:"used_at"`
}

// List returns the store's slugs, sorted by key.
func (s *Store) List() ([]Stored, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("list slug store %s: %w", s.dir, err)
	}
	var slugs []Stored
	for _, e := range entries {
		hexPart, ok := strings.CutSuffix(e.Name(), ".tar.gz")
		if !ok || e.IsDir() {
			continue
		}
		key := "sha256:" + hexPart
		if _, ok := keyHex(key); !ok {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		st := Stored{Key: key, Bytes: info.Size(), UsedAt: info.ModTime()}
		if raw, err := os.ReadFile(s.metaPath(key)); err == nil {
			var meta slugMeta
			if json.Unmarshal(raw, &meta) == nil {
				st.App = meta.App
			}
			st.Bytes += int64(len(raw))
		}
		slugs = append(slugs, st)
	}
	sort.Slice(slugs, func(i, j int) bool { return slugs[i].Key < slugs[j].Key })
	return slugs, nil
}

// touch marks the slug of key used now (Stored.UsedAt).
func (s *Store) touch(key string) {
	now := time.Now()
	_ = os.Chtimes(s.Path(key), now, now)
}

// Remove deletes the slug of key: the tarball first (the commit point, so a lookup
// never finds a tarball without metadata), then its metadata. A missing slug is not
// an error.
func (s *Store) Remove(key string) error {
	p := s.Path(key)
	if p == "" {
		return fmt.Errorf("remove slug %q: not a sha256:<hex> key", key)
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove slug %s: %w", key, err)
	}
	if err := os.Remove(s.metaPath(key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove slug %s: %w", key, err)
	}
	return nil
}

// CacheApps lists the apps that have a build cache (CACHE_DIR) under the Builder's
// cache dir, sorted.
func (b *Builder) CacheApps() ([]string, error) {
	entries, err := os.ReadDir(b.cacheDir())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list build caches: %w", err)
	}
	var apps []string
	for _, e := range entries {
		if e.IsDir() && appName.MatchString(e.Name()) {
			apps = append(apps, e.Name())
		}
	}
	return apps, nil
}

// CacheSize is the bytes under an app's build cache.
func (b *Builder) CacheSize(app string) int64 {
	return dirSize(filepath.Join(b.cacheDir(), app))
}

// RemoveCache deletes an app's build cache, waiting for a build of the app that is
// running (it uses the cache).
func (b *Builder) RemoveCache(app string) error {
	if !appName.MatchString(app) {
		return fmt.Errorf("remove build cache: invalid app name %q", app)
	}
	lock := b.appLock(app)
	lock.Lock()
	defer lock.Unlock()
	if err := removeTree(filepath.Join(b.cacheDir(), app)); err != nil {
		return fmt.Errorf("remove build cache of %s: %w", app, err)
	}
	return nil
}

// dirSize sums the sizes of the regular files under dir (0 when it is missing).
func dirSize(dir string) int64 {
	var total int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				total += info.Size()
			}
		}
		return nil
	})
	return total
}
