package spec_test

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"reflect"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/manifold-paas/manifold/spec"
)

// idFS is a config repo in memory that names content as git does (spec.ContentIDFS)
// and counts what a load opens, to see what a Cache spares.
type idFS struct {
	files fstest.MapFS
	mu    sync.Mutex
	opens map[string]int
}

var (
	_ spec.ContentIDFS = (*idFS)(nil)
	_ fs.ReadLinkFS    = (*idFS)(nil)
)

func newIDFS(files fstest.MapFS) *idFS { return &idFS{files: files, opens: map[string]int{}} }

func (f *idFS) Open(name string) (fs.File, error) {
	f.mu.Lock()
	f.opens[name]++
	f.mu.Unlock()
	return f.files.Open(name)
}

func (f *idFS) ReadLink(name string) (string, error)   { return f.files.ReadLink(name) }
func (f *idFS) Lstat(name string) (fs.FileInfo, error) { return f.files.Lstat(name) }

// ContentID hashes what the id stands for, read from the map directly (not counted):
// a file's bytes; a folder's names, exec bits, link targets and file contents.
func (f *idFS) ContentID(name string) (string, error) {
	info, err := fs.Stat(f.files, name)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	if !info.IsDir() {
		data, err := fs.ReadFile(f.files, name)
		if err != nil {
			return "", err
		}
		h.Write([]byte("file\x00"))
		h.Write(data)
		return hex.EncodeToString(h.Sum(nil)), nil
	}
	err = fs.WalkDir(f.files, name, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		h.Write([]byte(p[len(name):] + "\x00"))
		if d.Type()&fs.ModeSymlink != 0 {
			target, err := f.files.ReadLink(p)
			h.Write([]byte("link\x00" + target + "\x00"))
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		data, err := fs.ReadFile(f.files, p)
		h.Write([]byte(fi.Mode().Perm().String() + "\x00" + string(data) + "\x00"))
		return err
	})
	return "dir:" + hex.EncodeToString(h.Sum(nil)), err
}

func (f *idFS) opened(name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.opens[name]
}

func cacheRepo(workers string, extra fstest.MapFS) fstest.MapFS {
	files := fstest.MapFS{
		"apps/a.hcl":         {Data: []byte("app \"a\" {\n  source { path = \"../src/a\" }\n  process \"worker\" { count = " + workers + " }\n}\n")},
		"apps/b.hcl":         {Data: []byte("app \"b\" {\n  source { path = \"../src/b\" }\n}\n")},
		"environments/p.hcl": {Data: []byte("environment \"p\" {\n  app \"b\" {\n    process \"web\" { count = 3 }\n  }\n}\n")},
		"environments/s.hcl": {Data: []byte("environment \"s\" {}\n")},
		"src/a/Procfile":     {Data: []byte("web: ./web\nworker: ./work\n")},
		"src/a/web":          {Data: []byte("#!/bin/sh\n"), Mode: 0o755},
		"src/b/Procfile":     {Data: []byte("web: ./b\n")},
		"src/b/main.go":      {Data: []byte("package main\n")},
		"src/b/lib":          {Data: []byte("../a"), Mode: fs.ModeSymlink},
	}
	for name, file := range extra {
		files[name] = file
	}
	return files
}

// TestLoadCacheReusesUnchangedContent loads a base and then a head that changes one
// app with one Cache, as `manifold plan` does: the head must come out exactly as a
// load without the cache, while unchanged spec files and source folders are not read
// again.
func TestLoadCacheReusesUnchangedContent(t *testing.T) {
	t.Parallel()
	cache := spec.NewCache()
	base := newIDFS(cacheRepo("1", nil))
	if _, diags := spec.Load(base, spec.LoadOptions{Cache: cache}); diags != nil {
		t.Fatal(diags)
	}
	head := newIDFS(cacheRepo("3", nil))
	got, diags := spec.Load(head, spec.LoadOptions{Cache: cache})
	if diags != nil {
		t.Fatal(diags)
	}
	want, diags := spec.Load(cacheRepo("3", nil), spec.LoadOptions{})
	if diags != nil {
		t.Fatal(diags)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("with the cache:\n%+v\nwithout:\n%+v", got, want)
	}
	for name, wantOpens := range map[string]int{
		"apps/a.hcl":         1, // changed
		"apps/b.hcl":         0,
		"environments/p.hcl": 0,
		"src/a/Procfile":     0,
		"src/a/web":          0,
		"src/b/main.go":      0,
	} {
		if n := head.opened(name); n != wantOpens {
			t.Errorf("head load opened %s %d times, want %d", name, n, wantOpens)
		}
		if base.opened(name) == 0 {
			t.Errorf("base load never opened %s: the test does not test the cache", name)
		}
	}
}

// TestLoadCacheSymlinkedProcfile changes only what a source folder's Procfile links
// to: the folder's content id stays the same, yet the new Procfile must be read.
func TestLoadCacheSymlinkedProcfile(t *testing.T) {
	t.Parallel()
	cache := spec.NewCache()
	moved := fstest.MapFS{
		"src/b/Procfile":      {Data: []byte("../shared/Procfile"), Mode: fs.ModeSymlink},
		"src/shared/Procfile": {Data: []byte("web: ./old\n")},
	}
	if _, diags := spec.Load(newIDFS(cacheRepo("1", moved)), spec.LoadOptions{Cache: cache}); diags != nil {
		t.Fatal(diags)
	}
	moved["src/shared/Procfile"] = &fstest.MapFile{Data: []byte("web: ./new\n")}
	got, diags := spec.Load(newIDFS(cacheRepo("1", moved)), spec.LoadOptions{Cache: cache})
	if diags != nil {
		t.Fatal(diags)
	}
	b, ok := got.Lookup("p", "b")
	if !ok {
		t.Fatal("no app b in environment p")
	}
	if web, _ := b.Process("web"); web.Command != "./new" {
		t.Errorf("web command = %q, want ./new (a stale Procfile from the cache)", web.Command)
	}
}

// TestLoadCacheReplaysDiagnostics loads a repo with problems twice with one Cache:
// the second load, served from the cache, must report the same problems.
func TestLoadCacheReplaysDiagnostics(t *testing.T) {
	t.Parallel()
	bad := fstest.MapFS{
		"apps/c.hcl":     {Data: []byte("app \"c\" {\n  source { path = \"../src/c\" }\n  process \"web\" { count = }\n}\n")},
		"apps/d.yaml":    {Data: []byte("app:\n  d:\n    source: {path: ../src/d}\n    domains: [\n")},
		"apps/e.hcl":     {Data: []byte("app \"e\" {\n  source { path = \"../src/e\" }\n}\n")},
		"src/e/Procfile": {Data: []byte("web ./e\n")},
	}
	cache := spec.NewCache()
	_, first := spec.Load(newIDFS(cacheRepo("1", bad)), spec.LoadOptions{Cache: cache})
	if len(first) < 3 {
		t.Fatalf("want a diagnostic for each of apps/c.hcl, apps/d.yaml and src/e/Procfile, got:\n%v", first)
	}
	_, second := spec.Load(newIDFS(cacheRepo("1", bad)), spec.LoadOptions{Cache: cache})
	if !reflect.DeepEqual(first, second) {
		t.Errorf("first load:\n%v\nsecond load, from the cache:\n%v", first, second)
	}
}
