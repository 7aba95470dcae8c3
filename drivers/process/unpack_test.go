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

// The unpacking rules themselves are tested in drivers/slugtar; these tests cover the
// cache around it: one unpack per key, nothing left behind on failure, errors a caller
// can tell apart.

func TestUnpackBadTarballs(t *testing.T) {
	dir := t.TempDir()
	notGzip := filepath.Join(dir, "plain.tgz")
	if err := os.WriteFile(notGzip, []byte("not a tarball"), 0o644); err != nil {
		t.Fatal(err)
	}
	escaping := filepath.Join(dir, "escaping.tgz")
	writeTarball(t, escaping, []tar.Header{
		{Name: "./app/bin/web", Typeflag: tar.TypeReg, Mode: 0o755, Size: 2},
		{Name: "./app/../../evil", Typeflag: tar.TypeReg, Mode: 0o644, Size: 2},
	}, func(string) string { return "hi" })
	cache := &slugCache{dir: filepath.Join(dir, "slugs")}
	for _, tc := range []struct {
		name, path string
		unsafe     bool
	}{
		{"not gzip", notGzip, false},
		{"missing", filepath.Join(dir, "nope.tgz"), false},
		{"escaping", escaping, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := cache.unpack(context.Background(), "k", tc.path)
			if err == nil {
				t.Fatal("no error")
			}
			if errors.Is(err, ErrUnsafeSlug) != tc.unsafe {
				t.Errorf("unpack: %v; errors.Is(ErrUnsafeSlug) should be %v", err, tc.unsafe)
			}
			leftovers, err := filepath.Glob(filepath.Join(dir, "slugs", "*"))
			if err != nil {
				t.Fatal(err)
			}
			hidden, err := filepath.Glob(filepath.Join(dir, "slugs", ".unpack-*"))
			if err != nil {
				t.Fatal(err)
			}
			if len(leftovers)+len(hidden) != 0 {
				t.Fatalf("left %v %v", leftovers, hidden)
			}
			if _, err := os.Lstat(filepath.Join(dir, "evil")); err == nil {
				t.Fatal("evil written outside the slug")
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
	entries, err := os.ReadDir(cache.dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Fatalf("slug dir holds %d entries, want 1", len(entries))
	}
	// makeSlug writes Heroku's ./app/ layout: the prefix is gone in the cache.
	for name := range testSlugFiles {
		if _, err := os.Lstat(filepath.Join(dirs[0], name)); err != nil {
			t.Errorf("%s not at the slug's root: %v", name, err)
		}
	}
	if got := keyDir("../../etc"); got == "../../etc" || filepath.Base(got) != got {
		t.Errorf("keyDir of an unsafe key = %q", got)
	}
}

func TestUnpackStopsOnCancel(t *testing.T) {
	key, tarball := makeSlug(t, testSlugFiles)
	cache := &slugCache{dir: filepath.Join(t.TempDir(), "slugs")}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := cache.unpack(ctx, key, tarball); !errors.Is(err, context.Canceled) {
		t.Fatalf("unpack with a cancelled ctx: %v", err)
	}
	if _, err := os.Stat(filepath.Join(cache.dir, key)); err == nil {
		t.Fatal("a cancelled unpack left the slug in place")
	}
}
