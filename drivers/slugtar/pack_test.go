package slugtar_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/manifold-paas/manifold/drivers/slugtar"
)

// Whatever Pack writes, Unpack takes back unchanged: modes, symlinks, contents; fifos
// are left out and owners zeroed.
func TestPackRoundTrip(t *testing.T) {
	t.Parallel()
	src := t.TempDir()
	files := map[string]os.FileMode{"Procfile": 0o644, "bin/web": 0o755, "lib/data/x.txt": 0o600}
	for name, mode := range files {
		file := filepath.Join(src, name)
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, []byte("content of "+name), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(file, mode); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("bin/web", filepath.Join(src, "web")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(src, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	size, err := slugtar.Pack(context.Background(), src, &out, 0)
	if err != nil {
		t.Fatal(err)
	}
	if size != int64(out.Len()) {
		t.Errorf("Pack said %d bytes, wrote %d", size, out.Len())
	}
	zr, err := gzip.NewReader(bytes.NewReader(out.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	names := map[string]bool{}
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names[hdr.Name] = true
		if hdr.Uid != 0 || hdr.Gid != 0 || hdr.Uname != "" || hdr.Gname != "" {
			t.Errorf("%s: owner %d:%d %q:%q, want zeroed", hdr.Name, hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname)
		}
	}
	for _, want := range []string{"./Procfile", "./bin/", "./bin/web", "./lib/data/x.txt", "./web"} {
		if !names[want] {
			t.Errorf("entry %s missing from %v", want, names)
		}
	}
	if names["./fifo"] {
		t.Error("the fifo was packed")
	}

	tarball := filepath.Join(t.TempDir(), "slug.tar.gz")
	if err := os.WriteFile(tarball, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(t.TempDir(), "app")
	if err := slugtar.Unpack(context.Background(), tarball, dest); err != nil {
		t.Fatal(err)
	}
	for name, mode := range files {
		info, err := os.Stat(filepath.Join(dest, name))
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, want %v", name, info.Mode().Perm(), mode)
		}
		if data, _ := os.ReadFile(filepath.Join(dest, name)); string(data) != "content of "+name {
			t.Errorf("%s holds %q", name, data)
		}
	}
	if target, err := os.Readlink(filepath.Join(dest, "web")); err != nil || target != "bin/web" {
		t.Errorf("symlink web: %q, %v", target, err)
	}
}

func TestPackLimitAndCancel(t *testing.T) {
	t.Parallel()
	src := t.TempDir()
	// Random-ish bytes do not compress: the stream passes a small limit.
	big := make([]byte, 256<<10)
	for i := range big {
		big[i] = byte(i*7919 + i>>3)
	}
	if err := os.WriteFile(filepath.Join(src, "big"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := slugtar.Pack(context.Background(), src, io.Discard, 1024); !errors.Is(err, slugtar.ErrTooLarge) {
		t.Errorf("Pack over the limit: %v, want ErrTooLarge", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := slugtar.Pack(ctx, src, io.Discard, 0); !errors.Is(err, context.Canceled) {
		t.Errorf("Pack with a cancelled ctx: %v", err)
	}
	if _, err := slugtar.Pack(context.Background(), filepath.Join(src, "missing"), io.Discard, 0); err == nil {
		t.Error("Pack of a missing folder: no error")
	}
}
