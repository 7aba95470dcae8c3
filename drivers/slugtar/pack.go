package slugtar

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// limitWriter counts bytes and refuses to write past limit (0: no limit).
type limitWriter struct {
	w     io.Writer
	limit int64
	n     int64
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if l.limit > 0 && l.n+int64(len(p)) > l.limit {
		return 0, fmt.Errorf("%w: over %d compressed bytes", ErrTooLarge, l.limit)
	}
	n, err := l.w.Write(p)
	l.n += int64(n)
	return n, err
}

// Pack writes the tree at dir as a gzipped tarball to w, entries relative to dir
// ("./bin/web", folders "./bin/"), permission bits kept, owners zeroed (the slug runs
// as whatever user the driver picks). Sockets, fifos and devices are left out. It
// returns the compressed size, or an error wrapping ErrTooLarge once the compressed
// stream passes limit bytes (0: no limit). The caller owns w and discards it on error.
func Pack(ctx context.Context, dir string, w io.Writer, limit int64) (int64, error) {
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
