package slugtar

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
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
	root := fuzzScratch(f)
	var runs atomic.Int64
	f.Fuzz(func(t *testing.T, raw []byte) {
		n := strconv.FormatInt(runs.Add(1), 10)
		base := filepath.Join(root, n)
		if err := os.Mkdir(base, 0o700); err != nil {
			t.Fatal(err)
		}
		defer removeAll(base)
		var gz bytes.Buffer
		zw := gzip.NewWriter(&gz)
		zw.Write(raw)
		zw.Close()
		tarball := base + ".tar.gz"
		if err := os.WriteFile(tarball, gz.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(tarball)
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
	})
}

// fuzzScratch is the folder the fuzz executions unpack into, one subfolder each: on
// tmpfs (/dev/shm) when there is one. On ext4, thousands of directories made and
// removed a second (t.TempDir per execution) send the inode allocator scanning for
// one not recently deleted (perf: ext4_mkdir -> find_inode_bit -> recently_deleted),
// and the fuzz workers stalled at 0 execs/s in mkdir.
func fuzzScratch(f *testing.F) string {
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		if dir, err := os.MkdirTemp("/dev/shm", "slugtar-fuzz-"); err == nil {
			f.Cleanup(func() { removeAll(dir) })
			return dir
		}
	}
	return f.TempDir()
}

// removeAll removes dir even when the stream made read-only folders in it.
func removeAll(dir string) {
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			os.Chmod(p, 0o755)
		}
		return nil
	})
	os.RemoveAll(dir)
}
