package slugtar

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FuzzUnpack feeds arbitrary tar streams to the unpacker: it may refuse them, but it
// must never panic nor write outside its folder. It runs with small limits and a
// deadline: with the production limits one mutated header may legitimately ask for
// gigabytes of zeros, which stalls a fuzz worker without being a bug.
func FuzzUnpack(f *testing.F) {
	var seed bytes.Buffer
	tw := tar.NewWriter(&seed)
	for _, h := range []*tar.Header{
		{Name: "./bin/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "./bin/web", Typeflag: tar.TypeReg, Mode: 0o755, Size: 3},
		{Name: "./link", Typeflag: tar.TypeSymlink, Linkname: "../.."},
		{Name: "./link/x", Typeflag: tar.TypeReg, Mode: 0o644},
		{Name: "./hard", Typeflag: tar.TypeLink, Linkname: "./bin/web"},
		{Name: "./app/up", Typeflag: tar.TypeSymlink, Linkname: "../../x"},
		{Name: "./fifo", Typeflag: tar.TypeFifo},
	} {
		if err := tw.WriteHeader(h); err != nil {
			f.Fatal(err)
		}
		if h.Size > 0 {
			tw.Write([]byte("hi\n"))
		}
	}
	tw.Close()
	f.Add(seed.Bytes())
	f.Add([]byte{})
	// A sound slug in Heroku's layout, so mutations reach the extraction and the app/
	// prefix stripping, not only the refusals above.
	var heroku bytes.Buffer
	tw = tar.NewWriter(&heroku)
	for _, h := range []*tar.Header{
		{Name: "./app/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "./app/ro/", Typeflag: tar.TypeDir, Mode: 0o555},
		{Name: "./app/ro/web", Typeflag: tar.TypeReg, Mode: 0o4755, Size: 3},
		{Name: "./app/web", Typeflag: tar.TypeSymlink, Linkname: "ro/web"},
		{Name: "./app/hard", Typeflag: tar.TypeLink, Linkname: "./app/ro/web"},
	} {
		if err := tw.WriteHeader(h); err != nil {
			f.Fatal(err)
		}
		if h.Size > 0 {
			tw.Write([]byte("hi\n"))
		}
	}
	tw.Close()
	f.Add(heroku.Bytes())
	f.Fuzz(func(t *testing.T, raw []byte) {
		base := t.TempDir()
		var gz bytes.Buffer
		zw := gzip.NewWriter(&gz)
		zw.Write(raw)
		zw.Close()
		tarball := filepath.Join(t.TempDir(), "slug.tar.gz")
		if err := os.WriteFile(tarball, gz.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = unpack(ctx, tarball, filepath.Join(base, "app"), limits{bytes: 1 << 20, entries: 1000})
		entries, err := os.ReadDir(base)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.Name() != "app" {
				t.Fatalf("Unpack wrote %s outside its folder", e.Name())
			}
		}
		// Read-only folders from the stream must not stop TempDir's cleanup.
		filepath.WalkDir(base, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				os.Chmod(p, 0o755)
			}
			return nil
		})
	})
}
