package slug

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
	"path/filepath"
	"strings"
)

// errOverLimit is what limitWriter returns once the limit is crossed; pack turns it
// into ErrTooLarge.
var errOverLimit = errors.New("over the size limit")

// limitWriter counts bytes and refuses to write past limit (0: no limit).
type limitWriter struct {
	w     io.Writer
	limit int64
	n     int64
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if l.limit > 0 && l.n+int64(len(p)) > l.limit {
		return 0, errOverLimit
	}
	n, err := l.w.Write(p)
	l.n += int64(n)
	return n, err
}

// pack writes the tree at dir as a gzipped tarball to w, entries relative to dir
// ("./bin/web"), permission bits kept, owners zeroed (the slug runs as whatever user
// the driver picks). It returns the compressed size, or errOverLimit once the
// compressed stream passes limit bytes (0: no limit).
func pack(ctx context.Context, dir string, w io.Writer, limit int64) (int64, error) {
	counted := &limitWriter{w: w, limit: limit}
	// BestSpeed: a build's latency matters more than a few percent of disk.
	zw, err := gzip.NewWriterLevel(counted, gzip.BestSpeed)
	if err != nil {
		return 0, err
	}
	tw := tar.NewWriter(zw)
	err = filepath.WalkDir(dir, func(file string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if file == dir {
			return nil
		}
		rel, err := filepath.Rel(dir, file)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		var link string
		if info.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(file); err != nil {
				return err
			}
		} else if !info.Mode().IsDir() && !info.Mode().IsRegular() {
			return nil // sockets, fifos, devices: never part of a slug
		}
		hdr, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return err
		}
		hdr.Name = "./" + filepath.ToSlash(rel)
		if info.IsDir() {
			hdr.Name += "/"
		}
		hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if !info.Mode().IsRegular() {
			return nil
		}
		f, err := os.Open(file)
		if err != nil {
			return err
		}
		defer f.Close()
		if _, err := io.CopyN(tw, f, hdr.Size); err != nil {
			return fmt.Errorf("pack %s: %w", file, err)
		}
		return nil
	})
	if err == nil {
		err = tw.Close()
	}
	if err == nil {
		err = zw.Close()
	}
	return counted.n, err
}

// Unpack extracts the slug tarball into dir (created when missing), as a driver does
// before it starts a dyno. It refuses entries that would land outside dir: absolute
// names, "..", and writes through symlinks that lead out (os.Root enforces it).
// Permission bits are kept; setuid, setgid and sticky bits are dropped.
func Unpack(ctx context.Context, tarball, dir string) error {
	if err := unpack(ctx, tarball, dir); err != nil {
		return fmt.Errorf("unpack slug %s into %s: %w", tarball, dir, err)
	}
	return nil
}

func unpack(ctx context.Context, tarball, dir string) error {
	f, err := os.Open(tarball)
	if err != nil {
		return err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return err
	}
	defer zr.Close()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()

	// Folder modes are applied last: a read-only folder must still receive its files.
	dirModes := map[string]fs.FileMode{}
	var written int64
	tr := tar.NewReader(zr)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		name, err := entryName(hdr.Name)
		if err != nil {
			return err
		}
		if name == "" {
			continue // the root itself
		}
		perm := fs.FileMode(hdr.Mode) & fs.ModePerm
		if parent := path.Dir(name); parent != "." {
			if err := root.MkdirAll(parent, 0o755); err != nil {
				return fmt.Errorf("entry %q: %w", hdr.Name, err)
			}
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := root.MkdirAll(name, 0o755); err != nil {
				return fmt.Errorf("entry %q: %w", hdr.Name, err)
			}
			dirModes[name] = perm
		case tar.TypeReg:
			// PAX sparse files expand holes into zeros: a few bytes of stream could
			// claim terabytes. pack never writes them.
			for k := range hdr.PAXRecords {
				if strings.HasPrefix(k, "GNU.sparse.") {
					return fmt.Errorf("entry %q: sparse files are not supported in slugs", hdr.Name)
				}
			}
			if written += hdr.Size; hdr.Size < 0 || written > maxUnpackBytes {
				return fmt.Errorf("entry %q: the slug unpacks to more than %s", hdr.Name, FormatSize(maxUnpackBytes))
			}
			if err := unpackFile(root, name, perm, ctxReader{ctx, tr}, hdr.Size); err != nil {
				return fmt.Errorf("entry %q: %w", hdr.Name, err)
			}
		case tar.TypeSymlink:
			_ = root.Remove(name)
			if err := root.Symlink(hdr.Linkname, name); err != nil {
				return fmt.Errorf("entry %q: %w", hdr.Name, err)
			}
		case tar.TypeLink:
			old, err := entryName(hdr.Linkname)
			if err != nil || old == "" {
				return fmt.Errorf("entry %q: bad hard link target %q", hdr.Name, hdr.Linkname)
			}
			_ = root.Remove(name)
			if err := root.Link(old, name); err != nil {
				return fmt.Errorf("entry %q: %w", hdr.Name, err)
			}
		default:
			// Devices, fifos and the like have no place in a slug: skipped.
		}
	}
	for name, perm := range dirModes {
		if err := root.Chmod(name, perm); err != nil {
			return fmt.Errorf("entry %q: %w", name, err)
		}
	}
	return nil
}

// maxUnpackBytes bounds what one slug may unpack to: a 500 MB compressed slug is far
// below it, a decompression bomb is not.
const maxUnpackBytes int64 = 16 << 30

// ctxReader stops a long copy when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// entryName cleans a tar entry name into a path relative to the slug's root, or
// refuses it when it would escape the root.
func entryName(name string) (string, error) {
	if strings.ContainsRune(name, 0) || strings.Contains(name, `\`) {
		return "", fmt.Errorf("entry %q: invalid name", name)
	}
	if path.IsAbs(name) {
		return "", fmt.Errorf("entry %q: absolute path outside the slug", name)
	}
	clean := path.Clean(name)
	if clean == ".." || strings.HasPrefix(clean, "../") {
		return "", fmt.Errorf("entry %q: path outside the slug", name)
	}
	if clean == "." {
		return "", nil
	}
	return clean, nil
}

func unpackFile(root *os.Root, name string, perm fs.FileMode, r io.Reader, size int64) error {
	// A symlink or file already at name is replaced, never written through.
	_ = root.Remove(name)
	out, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.CopyN(out, r, size); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return root.Chmod(name, perm)
}
