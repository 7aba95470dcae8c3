package process

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
)

// Limits against a hostile or broken slug tarball: a slug is made by manifold's builder,
// but the unpacker still refuses to fill the disk.
const (
	maxSlugBytes   = 8 << 30 // unpacked bytes of regular files
	maxSlugEntries = 1 << 20
)

// ErrUnsafeSlug is wrapped by unpack errors about entries that would escape the slug
// directory (absolute names, .. components, symlinks or hard links pointing outside) or
// that a slug may not hold (devices, fifos).
var ErrUnsafeSlug = errors.New("unsafe slug entry")

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
	if err := unpackTarball(tarball, tmp); err != nil {
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

// unpackTarball extracts the gzipped tar at tarball into dest, which must exist. A slug
// holds /app: entries under a top-level app/ (or ./app/) are moved to dest's root when
// every entry is under it; otherwise the archive is taken as the root itself. Every
// write goes through an os.Root, so nothing lands outside dest even through symlinks
// the archive made; names and link targets that would escape are refused anyway.
func unpackTarball(tarball, dest string) error {
	strip, err := scanPrefix(tarball)
	if err != nil {
		return err
	}
	root, err := os.OpenRoot(dest)
	if err != nil {
		return err
	}
	defer root.Close()
	var total int64
	return walkTarball(tarball, func(hdr *tar.Header, body io.Reader) error {
		if hdr.Typeflag == tar.TypeReg {
			if total += hdr.Size; hdr.Size < 0 || total > maxSlugBytes {
				return fmt.Errorf("slug unpacks to more than %d bytes", int64(maxSlugBytes))
			}
		}
		return extractEntry(root, hdr, body, strip)
	})
}

// walkTarball calls fn for each entry of the gzipped tar at tarball.
func walkTarball(tarball string, fn func(*tar.Header, io.Reader) error) error {
	f, err := os.Open(tarball)
	if err != nil {
		return err
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return fmt.Errorf("%s: %w", tarball, err)
	}
	defer gz.Close()
	tr := tar.NewReader(gz)
	for n := 0; ; n++ {
		if n > maxSlugEntries {
			return fmt.Errorf("%s: more than %d entries", tarball, maxSlugEntries)
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: entry %d: %w", tarball, n+1, err)
		}
		if err := fn(hdr, tr); err != nil {
			return fmt.Errorf("%s: %s: %w", tarball, hdr.Name, err)
		}
	}
}

// scanPrefix reports whether every entry lives under app/ (Heroku's slug layout).
func scanPrefix(tarball string) (bool, error) {
	all, any := true, false
	err := walkTarball(tarball, func(hdr *tar.Header, _ io.Reader) error {
		name := path.Clean(strings.TrimPrefix(hdr.Name, "./"))
		if name == "." {
			return nil
		}
		any = true
		if name != "app" && !strings.HasPrefix(name, "app/") {
			all = false
		}
		return nil
	})
	return all && any, err
}

// entryName is an archive name as a path relative to the slug root; "" is the root.
func entryName(name string, strip bool) (string, error) {
	if strings.ContainsRune(name, 0) {
		return "", fmt.Errorf("%w: NUL in name", ErrUnsafeSlug)
	}
	if strings.HasPrefix(name, "/") {
		return "", fmt.Errorf("%w: absolute name", ErrUnsafeSlug)
	}
	clean := path.Clean(name)
	if clean == ".." || strings.HasPrefix(clean, "../") {
		return "", fmt.Errorf("%w: name escapes the slug", ErrUnsafeSlug)
	}
	if strip {
		if clean == "app" {
			return "", nil
		}
		clean = strings.TrimPrefix(clean, "app/")
	}
	if clean == "." {
		return "", nil
	}
	return clean, nil
}

func extractEntry(root *os.Root, hdr *tar.Header, body io.Reader, strip bool) error {
	name, err := entryName(hdr.Name, strip)
	if err != nil {
		return err
	}
	perm := fs.FileMode(hdr.Mode) & 0o777 // setuid, setgid and sticky bits are dropped
	switch hdr.Typeflag {
	case tar.TypeDir:
		if name == "" {
			return nil
		}
		return root.MkdirAll(name, perm|0o700)
	case tar.TypeReg: // tar.Reader reports old TypeRegA entries as TypeReg
		if name == "" {
			return fmt.Errorf("%w: a file as the slug root", ErrUnsafeSlug)
		}
		if err := mkParent(root, name); err != nil {
			return err
		}
		_ = root.Remove(name) // a later entry replaces an earlier one, never writes through it
		f, err := root.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, perm|0o600)
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, io.LimitReader(body, hdr.Size)); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		return root.Chmod(name, perm)
	case tar.TypeSymlink:
		if name == "" {
			return fmt.Errorf("%w: a symlink as the slug root", ErrUnsafeSlug)
		}
		target := hdr.Linkname
		if target == "" || strings.HasPrefix(target, "/") {
			return fmt.Errorf("%w: symlink to absolute path %q", ErrUnsafeSlug, target)
		}
		if resolved := path.Join(path.Dir(name), target); resolved == ".." || strings.HasPrefix(resolved, "../") {
			return fmt.Errorf("%w: symlink to %q escapes the slug", ErrUnsafeSlug, target)
		}
		if err := mkParent(root, name); err != nil {
			return err
		}
		_ = root.Remove(name)
		return root.Symlink(target, name)
	case tar.TypeLink:
		target, err := entryName(hdr.Linkname, strip)
		if err != nil {
			return fmt.Errorf("hard link: %w", err)
		}
		if name == "" || target == "" {
			return fmt.Errorf("%w: hard link to or as the slug root", ErrUnsafeSlug)
		}
		if err := mkParent(root, name); err != nil {
			return err
		}
		_ = root.Remove(name)
		return root.Link(target, name)
	case tar.TypeXGlobalHeader:
		return nil
	default:
		return fmt.Errorf("%w: entry type %q (devices and fifos are not allowed)", ErrUnsafeSlug, hdr.Typeflag)
	}
}

func mkParent(root *os.Root, name string) error {
	if dir := path.Dir(name); dir != "." {
		return root.MkdirAll(dir, 0o755)
	}
	return nil
}
