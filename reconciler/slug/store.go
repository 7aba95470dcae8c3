package slug

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Store is a content-addressed folder of slugs. Each slug is two files named after
// its key's hex digest: <hex>.tar.gz (the tarball) and <hex>.json (its metadata,
// written first). The tarball's rename into place is the commit point, so a slug is
// in the store once its tarball is, and a failed or interrupted build leaves at most
// files under tmp/, which OpenStore clears. Safe for concurrent use.
type Store struct {
	dir string
}

// staleTemp is the age after which a temp file of the store belongs to a dead build.
const staleTemp = 2 * time.Hour

// slugMeta is what <hex>.json holds: what a cache hit must return without a build.
type slugMeta struct {
	Key          string            `json:"key"`
	Size         int64             `json:"size"`
	ProcessTypes map[string]string `json:"process_types"`
	Buildpacks   []string          `json:"buildpacks"`
	App          string            `json:"app"`
	BuiltAt      time.Time         `json:"built_at"`
}

// OpenStore opens (creating when missing) the slug store in dir.
func OpenStore(dir string) (*Store, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("open slug store %s: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("open slug store %s: %w", dir, err)
	}
	s := &Store{dir: abs}
	// Leftovers of builds that died midway: nothing under tmp/ is ever a slug. Only
	// old ones go, since another process may be building into this store right now.
	if entries, err := os.ReadDir(s.tmpDir()); err == nil {
		for _, e := range entries {
			if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > staleTemp {
				_ = removeTree(filepath.Join(s.tmpDir(), e.Name()))
			}
		}
	}
	if err := os.MkdirAll(s.tmpDir(), 0o755); err != nil {
		return nil, fmt.Errorf("open slug store %s: %w", dir, err)
	}
	return s, nil
}

// Dir is the store's folder (absolute).
func (s *Store) Dir() string { return s.dir }

func (s *Store) tmpDir() string { return filepath.Join(s.dir, "tmp") }

// keyHex returns the hex digest of a "sha256:<hex>" key, or false when key is not one.
func keyHex(key string) (string, bool) {
	hexPart, ok := strings.CutPrefix(key, "sha256:")
	if !ok || len(hexPart) != 64 {
		return "", false
	}
	if _, err := hex.DecodeString(hexPart); err != nil {
		return "", false
	}
	return strings.ToLower(hexPart), true
}

// Path is where the tarball of key lives (whether or not it exists yet); "" when key
// is not a "sha256:<64 hex>" key.
func (s *Store) Path(key string) string {
	h, ok := keyHex(key)
	if !ok {
		return ""
	}
	return filepath.Join(s.dir, h+".tar.gz")
}

func (s *Store) metaPath(key string) string {
	h, _ := keyHex(key)
	return filepath.Join(s.dir, h+".json")
}

// Has reports whether the slug of key is in the store.
func (s *Store) Has(key string) bool {
	_, err := s.lookup(key)
	return err == nil
}

// lookup returns the stored slug of key.
func (s *Store) lookup(key string) (Slug, error) {
	p := s.Path(key)
	if p == "" {
		return Slug{}, fmt.Errorf("slug key %q: not a sha256:<hex> key", key)
	}
	info, err := os.Stat(p)
	if err != nil {
		return Slug{}, err
	}
	raw, err := os.ReadFile(s.metaPath(key))
	if err != nil {
		return Slug{}, err
	}
	var meta slugMeta
	if err := json.Unmarshal(raw, &meta); err != nil {
		return Slug{}, fmt.Errorf("slug metadata %s: %w", s.metaPath(key), err)
	}
	return Slug{
		Key:          key,
		Path:         p,
		Size:         info.Size(),
		ProcessTypes: meta.ProcessTypes,
		Buildpacks:   meta.Buildpacks,
	}, nil
}

// commit moves a finished tarball (a file under tmp/) into the store as key, after
// writing its metadata. Both writes are atomic renames of synced files.
func (s *Store) commit(key, tarball string, meta slugMeta) error {
	raw, err := json.MarshalIndent(meta, "", "  ")
	if err != nil {
		return err
	}
	tmpMeta, err := os.CreateTemp(s.tmpDir(), "meta-*.json")
	if err != nil {
		return err
	}
	defer os.Remove(tmpMeta.Name())
	if _, err := tmpMeta.Write(raw); err != nil {
		tmpMeta.Close()
		return err
	}
	if err := tmpMeta.Sync(); err != nil {
		tmpMeta.Close()
		return err
	}
	if err := tmpMeta.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmpMeta.Name(), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmpMeta.Name(), s.metaPath(key)); err != nil {
		return err
	}
	if err := os.Rename(tarball, s.Path(key)); err != nil {
		return err
	}
	// Make the renames durable: a slug the ledger names must survive a power cut.
	if d, err := os.Open(s.dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// ErrUnknownSlug: Lookup of a key the store does not hold (or that is not a slug key).
var ErrUnknownSlug = errors.New("slug is not in the store")

// Lookup returns the stored slug of key, without building: how a release pinned to
// a slug that another environment built (a promotion) finds it. Errors wrap
// ErrUnknownSlug when the store does not hold it.
func (s *Store) Lookup(key string) (Slug, error) {
	found, err := s.lookup(key)
	switch {
	case err == nil:
		found.Cached = true
		return found, nil
	case errors.Is(err, fs.ErrNotExist) || s.Path(key) == "":
		return Slug{}, fmt.Errorf("slug %s: %w", key, ErrUnknownSlug)
	default:
		return Slug{}, fmt.Errorf("slug %s: %w", key, err)
	}
}

// Lookup is Store.Lookup of the builder's store.
func (b *Builder) Lookup(key string) (Slug, error) { return b.Store.Lookup(key) }

// SlugPath is where the tarball of the slug with this key is (Store.Path), so that a
// Builder is all a caller needs to build slugs and start dynos from them.
func (b *Builder) SlugPath(key string) string { return b.Store.Path(key) }
