package process

import (
	"archive/tar"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func TestUnpackLayouts(t *testing.T) {
	for _, tc := range []struct {
		name    string
		entries []tar.Header
	}{
		{"heroku ./app/", []tar.Header{{Name: "./app/", Typeflag: tar.TypeDir, Mode: 0o755}, {Name: "./app/bin/web", Typeflag: tar.TypeReg, Mode: 0o755}}},
		{"app/", []tar.Header{{Name: "app/bin/web", Typeflag: tar.TypeReg, Mode: 0o4755}}},
		{"root", []tar.Header{{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755}, {Name: "bin/web", Typeflag: tar.TypeReg, Mode: 0o755}, {Name: "app/models/x.rb", Typeflag: tar.TypeReg, Mode: 0o644}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tarball := filepath.Join(t.TempDir(), "slug.tgz")
			writeTarball(t, tarball, withSizes(tc.entries), content)
			dest := t.TempDir()
			if err := unpackTarball(tarball, dest); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(filepath.Join(dest, "bin", "web"))
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o755 || fi.Mode()&os.ModeSetuid != 0 {
				t.Errorf("bin/web mode %v, want 0755 without setuid", fi.Mode())
			}
			data, _ := os.ReadFile(filepath.Join(dest, "bin", "web"))
			if string(data) != content("bin/web") {
				t.Errorf("bin/web holds %q", data)
			}
		})
	}
}

func content(name string) string { return "content of " + filepath.Base(name) }

func withSizes(entries []tar.Header) []tar.Header {
	out := make([]tar.Header, len(entries))
	for i, hdr := range entries {
		if hdr.Typeflag == tar.TypeReg {
			hdr.Size = int64(len(content(hdr.Name)))
		}
		out[i] = hdr
	}
	return out
}

func TestUnpackRefusesEscapes(t *testing.T) {
	file := func(name string) tar.Header { return tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644} }
	link := func(name, target string) tar.Header {
		return tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: target, Mode: 0o777}
	}
	for _, tc := range []struct {
		name    string
		entries []tar.Header
	}{
		{"dot-dot", []tar.Header{file("../evil")}},
		{"dot-dot inside", []tar.Header{file("app/../../evil")}},
		{"absolute", []tar.Header{file("/tmp/evil")}},
		{"symlink absolute", []tar.Header{link("etc", "/etc")}},
		{"symlink up", []tar.Header{link("up", "../..")}},
		{"symlink deep up", []tar.Header{link("a/b/up", "../../../x")}},
		{"hard link out", []tar.Header{{Name: "h", Typeflag: tar.TypeLink, Linkname: "../../etc/passwd"}}},
		{"device", []tar.Header{{Name: "dev", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3}}},
		{"fifo", []tar.Header{{Name: "fifo", Typeflag: tar.TypeFifo}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tarball := filepath.Join(dir, "slug.tgz")
			writeTarball(t, tarball, withSizes(tc.entries), content)
			dest := filepath.Join(dir, "dest", "inner")
			if err := os.MkdirAll(dest, 0o755); err != nil {
				t.Fatal(err)
			}
			err := unpackTarball(tarball, dest)
			if !errors.Is(err, ErrUnsafeSlug) {
				t.Fatalf("unpack: %v, want ErrUnsafeSlug", err)
			}
			for _, outside := range []string{"evil", "dest/evil", "x", "dest/x"} {
				if _, err := os.Lstat(filepath.Join(dir, outside)); err == nil {
					t.Errorf("%s written outside the slug", outside)
				}
			}
		})
	}
}

// A symlink that is lexically inside but resolves outside through another symlink
// still cannot carry a write out: every write goes through os.Root.
func TestUnpackSymlinkChainStaysInside(t *testing.T) {
	dir := t.TempDir()
	tarball := filepath.Join(dir, "slug.tgz")
	writeTarball(t, tarball, withSizes([]tar.Header{
		{Name: "x/y/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "x/y/s", Typeflag: tar.TypeSymlink, Linkname: "../.."},
		{Name: "t", Typeflag: tar.TypeSymlink, Linkname: "x/y/s/.."},
		{Name: "t/evil", Typeflag: tar.TypeReg, Mode: 0o644},
	}), content)
	dest := filepath.Join(dir, "dest")
	if err := os.Mkdir(dest, 0o755); err != nil {
		t.Fatal(err)
	}
	err := unpackTarball(tarball, dest)
	if err == nil {
		t.Fatal("unpack followed a symlink chain out of the slug")
	}
	if _, statErr := os.Lstat(filepath.Join(dir, "evil")); statErr == nil {
		t.Fatalf("evil written outside the slug (unpack said %v)", err)
	}
}

func TestUnpackBadTarballs(t *testing.T) {
	dir := t.TempDir()
	notGzip := filepath.Join(dir, "plain.tgz")
	if err := os.WriteFile(notGzip, []byte("not a tarball"), 0o644); err != nil {
		t.Fatal(err)
	}
	cache := &slugCache{dir: filepath.Join(dir, "slugs")}
	for name, path := range map[string]string{"not gzip": notGzip, "missing": filepath.Join(dir, "nope.tgz")} {
		t.Run(name, func(t *testing.T) {
			if _, err := cache.unpack(context.Background(), "k", path); err == nil {
				t.Fatal("no error")
			}
			leftovers, _ := filepath.Glob(filepath.Join(dir, "slugs", "*"))
			hidden, _ := filepath.Glob(filepath.Join(dir, "slugs", ".unpack-*"))
			if len(leftovers)+len(hidden) != 0 {
				t.Fatalf("left %v %v", leftovers, hidden)
			}
		})
	}
}

func TestUnpackOncePerKey(t *testing.T) {
	key, tarball := makeSlug(t, testSlugFiles)
	cache := &slugCache{dir: filepath.Join(t.TempDir(), "slugs")}
	var wg sync.WaitGroup
	dirs := make([]string, 8)
	errs := make([]error, 8)
	for i := range dirs {
		wg.Go(func() { dirs[i], errs[i] = cache.unpack(context.Background(), key, tarball) })
	}
	wg.Wait()
	for i := range dirs {
		if errs[i] != nil || dirs[i] != filepath.Join(cache.dir, key) {
			t.Fatalf("unpack %d: %q %v", i, dirs[i], errs[i])
		}
	}
	entries, _ := os.ReadDir(cache.dir)
	if len(entries) != 1 {
		t.Fatalf("slug dir holds %d entries, want 1", len(entries))
	}
	if got := keyDir("../../etc"); got == "../../etc" || filepath.Base(got) != got {
		t.Errorf("keyDir of an unsafe key = %q", got)
	}
}
