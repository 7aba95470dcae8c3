package slugtar

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
)

// Layout is what one read of a slug tarball tells before it is unpacked.
type Layout struct {
	// Entries counts the archive's entries, folders included.
	Entries int
	// Bytes sums the sizes of its regular files: what it unpacks to.
	Bytes int64
	// UnderApp: every entry is under app/ (Heroku's own slug layout, "./app/Procfile"),
	// so the tarball is a tar of / holding /app; otherwise it is a tar of /app's
	// contents ("./Procfile"). False for an empty tarball.
	UnderApp bool
}

// Scan reads the gzipped slug tarball at tarball to its end without writing anything:
// its layout, and whether it is sound (a valid gzip stream with its trailer, a valid
// tar, names that stay inside the slug, within MaxEntries and MaxUnpackedBytes).
func Scan(ctx context.Context, tarball string) (Layout, error) {
	layout, err := scan(ctx, tarball, defaultLimits())
	if err != nil {
		return layout, fmt.Errorf("read slug %s: %w", tarball, err)
	}
	return layout, nil
}

func scan(ctx context.Context, tarball string, lim limits) (Layout, error) {
	var layout Layout
	anyEntry := false
	layout.UnderApp = true
	err := walk(ctx, tarball, lim, func(hdr *tar.Header, _ io.Reader) error {
		layout.Entries++
		if err := refuseSparse(hdr); err != nil {
			return err
		}
		if hdr.Typeflag == tar.TypeReg {
			if layout.Bytes += hdr.Size; hdr.Size < 0 || layout.Bytes > lim.bytes {
				return fmt.Errorf("%w: unpacks to more than %d bytes", ErrTooLarge, lim.bytes)
			}
		}
		name, err := entryName(hdr.Name, false)
		if err != nil {
			return err
		}
		if name == "" {
			return nil // the root itself says nothing of the layout
		}
		anyEntry = true
		if name != "app" && !strings.HasPrefix(name, "app/") {
			layout.UnderApp = false
		}
		return nil
	})
	layout.UnderApp = layout.UnderApp && anyEntry
	return layout, err
}

// Unpack extracts the gzipped slug tarball at tarball into dir (created when missing),
// as a driver does before it starts a dyno. A tarball whose every entry is under app/
// (Heroku's layout) has that prefix removed, so dir always holds /app's contents.
//
// It refuses, with an error wrapping ErrUnsafeSlug, entries that would land outside
// dir (absolute names, "..", symlinks and hard links leading out) and entries a slug
// may not hold (devices, fifos, sparse files); every write goes through an os.Root, so
// even a chain of symlinks cannot carry one out. Past MaxUnpackedBytes or MaxEntries it
// stops with an error wrapping ErrTooLarge. Permission bits are kept (folders' modes
// are applied last, so a read-only folder still receives its files); setuid, setgid
// and sticky bits are dropped. It stops when ctx ends. On error dir may hold part of
// the slug: callers unpack into a fresh folder and rename it into place.
func Unpack(ctx context.Context, tarball, dir string) error {
	if err := unpack(ctx, tarball, dir, defaultLimits()); err != nil {
		return fmt.Errorf("unpack slug %s into %s: %w", tarball, dir, err)
	}
	return nil
}

func unpack(ctx context.Context, tarball, dir string, lim limits) error {
	// The first pass decides the layout and refuses a bomb before anything is written.
	layout, err := scan(ctx, tarball, lim)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	x := extractor{root: root, strip: layout.UnderApp, dirModes: map[string]fs.FileMode{}, limit: lim.bytes}
	if err := walk(ctx, tarball, lim, func(hdr *tar.Header, body io.Reader) error {
		return x.entry(hdr, ctxReader{ctx, body})
	}); err != nil {
		return err
	}
	for name, perm := range x.dirModes {
		if err := root.Chmod(name, perm); err != nil {
			return fmt.Errorf("entry %q: %w", name, err)
		}
	}
	return nil
}

// walk calls fn for each entry of the gzipped tar at tarball, then checks the gzip
// trailer. Errors from fn come back naming the entry.
func walk(ctx context.Context, tarball string, lim limits, fn func(*tar.Header, io.Reader) error) error {
	f, err := os.Open(tarball)
	if err != nil {
		return err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return fmt.Errorf("not a gzipped tarball: %w", err)
	}
	defer zr.Close()
	tr := tar.NewReader(ctxReader{ctx, zr})
	for n := 1; ; n++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("entry %d: %w", n, err)
		}
		if n > lim.entries {
			return fmt.Errorf("%w: more than %d entries", ErrTooLarge, lim.entries)
		}
		if err := fn(hdr, tr); err != nil {
			return fmt.Errorf("entry %q: %w", hdr.Name, err)
		}
	}
	// The gzip trailer (CRC and length) is checked only once the stream is read to its
	// end; what follows the tar's end marker is padding, bounded so it cannot be a bomb.
	rest, err := io.Copy(io.Discard, io.LimitReader(ctxReader{ctx, zr}, maxTrailingBytes+1))
	if err != nil {
		return fmt.Errorf("after the last entry: %w", err)
	}
	if rest > maxTrailingBytes {
		return fmt.Errorf("more than %d bytes after the end of the archive", maxTrailingBytes)
	}
	return nil
}

// entryName cleans a tar entry name into a path relative to the slug's root ("" is the
// root itself), or refuses it when it would escape the root. strip removes a leading
// app/ (Heroku's layout).
func entryName(name string, strip bool) (string, error) {
	if strings.ContainsRune(name, 0) {
		return "", fmt.Errorf("%w: NUL in name", ErrUnsafeSlug)
	}
	if path.IsAbs(name) {
		return "", fmt.Errorf("%w: absolute path outside the slug", ErrUnsafeSlug)
	}
	clean := path.Clean(name)
	if clean == ".." || strings.HasPrefix(clean, "../") {
		return "", fmt.Errorf("%w: path outside the slug", ErrUnsafeSlug)
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

// refuseSparse refuses PAX sparse files: they expand holes into zeros, so a few bytes
// of stream could claim terabytes. Pack never writes them.
func refuseSparse(hdr *tar.Header) error {
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return fmt.Errorf("%w: sparse files are not supported in slugs", ErrUnsafeSlug)
		}
	}
	return nil
}

// extractor writes one slug's entries under root.
type extractor struct {
	root  *os.Root
	strip bool
	// dirModes are applied after the last entry: a read-only folder must still
	// receive its files.
	dirModes map[string]fs.FileMode
	written  int64
	limit    int64
}

func (x *extractor) entry(hdr *tar.Header, body io.Reader) error {
	name, err := entryName(hdr.Name, x.strip)
	if err != nil {
		return err
	}
	perm := fs.FileMode(hdr.Mode) & fs.ModePerm // setuid, setgid and sticky bits are dropped
	switch hdr.Typeflag {
	case tar.TypeDir:
		if name == "" {
			return nil // the root: dir keeps the mode its owner gave it
		}
		if err := x.root.MkdirAll(name, 0o755); err != nil {
			return err
		}
		x.dirModes[name] = perm
		return nil
	case tar.TypeReg: // tar.Reader reports old TypeRegA entries as TypeReg
		if name == "" {
			return fmt.Errorf("%w: a file as the slug root", ErrUnsafeSlug)
		}
		if err := refuseSparse(hdr); err != nil {
			return err
		}
		if x.written += hdr.Size; hdr.Size < 0 || x.written > x.limit {
			return fmt.Errorf("%w: unpacks to more than %d bytes", ErrTooLarge, x.limit)
		}
		if err := x.replace(name); err != nil {
			return err
		}
		out, err := x.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		if _, err := io.CopyN(out, body, hdr.Size); err != nil {
			out.Close()
			return err
		}
		if err := out.Close(); err != nil {
			return err
		}
		return x.root.Chmod(name, perm)
	case tar.TypeSymlink:
		if name == "" {
			return fmt.Errorf("%w: a symlink as the slug root", ErrUnsafeSlug)
		}
		target := hdr.Linkname
		if target == "" || path.IsAbs(target) {
			return fmt.Errorf("%w: symlink to absolute path %q", ErrUnsafeSlug, target)
		}
		if resolved := path.Join(path.Dir(name), target); resolved == ".." || strings.HasPrefix(resolved, "../") {
			return fmt.Errorf("%w: symlink to %q escapes the slug", ErrUnsafeSlug, target)
		}
		if err := x.replace(name); err != nil {
			return err
		}
		return x.root.Symlink(target, name)
	case tar.TypeLink:
		target, err := entryName(hdr.Linkname, x.strip)
		if err != nil {
			return fmt.Errorf("bad hard link target %q: %w", hdr.Linkname, err)
		}
		if name == "" || target == "" {
			return fmt.Errorf("%w: hard link to or as the slug root", ErrUnsafeSlug)
		}
		if err := x.replace(name); err != nil {
			return err
		}
		return x.root.Link(target, name)
	case tar.TypeXGlobalHeader:
		return nil // PAX defaults for the entries that follow; tar.Reader applies them
	default:
		return fmt.Errorf("%w: entry type %q (devices and fifos are not allowed)", ErrUnsafeSlug, hdr.Typeflag)
	}
}

// replace makes name's parent folder and removes what is at name, so a later entry
// replaces an earlier one and never writes through it (a symlink is replaced, not
// followed).
func (x *extractor) replace(name string) error {
	if parent := path.Dir(name); parent != "." {
		if err := x.root.MkdirAll(parent, 0o755); err != nil {
			return err
		}
	}
	_ = x.root.Remove(name)
	delete(x.dirModes, name)
	return nil
}
