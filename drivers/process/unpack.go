package process

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sync"

	"github.com/manifold-paas/manifold/drivers/slugtar"
)

// ErrUnsafeSlug is wrapped by unpack errors about entries that would escape the slug
// directory (absolute names, .. components, symlinks or hard links pointing outside) or
// that a slug may not hold (devices, fifos). It is slugtar.ErrUnsafeSlug, which does
// the unpacking (limits: slugtar.MaxUnpackedBytes, slugtar.MaxEntries).
var ErrUnsafeSlug = slugtar.ErrUnsafeSlug

// slugCache unpacks each slug once into dir/<key>/ and shares it between dynos.
type slugCache struct {
	dir string
	mu  sync.Mutex
	// keys serializes unpacking per key inside this daemon; other daemons racing on
	// the same SlugDir are handled by the atomic rename.
	keys map[string]*sync.Mutex
}

var slugKeyPlain = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// keyDir is the directory name of a slug key: the key itself when it is a plain name
// (the usual content hash), else the hex SHA-256 of it so no key can name a path.
func keyDir(key string) string {
	if slugKeyPlain.MatchString(key) {
		return key
	}
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// unpack returns the unpacked directory of the slug, unpacking tarball first when
// needed. The directory appears atomically (extracted beside it, then renamed), so a
// half-unpacked slug is never used, even after a crash of the daemon mid-way.
func (c *slugCache) unpack(ctx context.Context, key, tarball string) (string, error) {
	final := filepath.Join(c.dir, keyDir(key))
	if fi, err := os.Stat(final); err == nil && fi.IsDir() {
		return final, nil
	}
	c.mu.Lock()
	if c.keys == nil {
		c.keys = make(map[string]*sync.Mutex)
	}
	keyMu := c.keys[key]
	if keyMu == nil {
		keyMu = new(sync.Mutex)
		c.keys[key] = keyMu
	}
	c.mu.Unlock()
	keyMu.Lock()
	defer keyMu.Unlock()
	if fi, err := os.Stat(final); err == nil && fi.IsDir() {
		return final, nil
	}
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("unpack slug %s: %w", key, err)
	}
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return "", fmt.Errorf("unpack slug %s: %w", key, err)
	}
	tmp, err := os.MkdirTemp(c.dir, ".unpack-")
	if err != nil {
		return "", fmt.Errorf("unpack slug %s: %w", key, err)
	}
	if err := slugtar.Unpack(ctx, tarball, tmp); err != nil {
		_ = os.RemoveAll(tmp)
		return "", fmt.Errorf("unpack slug %s: %w", key, err)
	}
	// MkdirTemp made it 0700; dynos only need the owner, but keep it readable like /app.
	_ = os.Chmod(tmp, 0o755)
	if err := os.Rename(tmp, final); err != nil {
		_ = os.RemoveAll(tmp)
		// Another daemon won the race: its copy is as good as ours.
		if fi, statErr := os.Stat(final); statErr == nil && fi.IsDir() {
			return final, nil
		}
		return "", fmt.Errorf("unpack slug %s: %w", key, err)
	}
	return final, nil
}
