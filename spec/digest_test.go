package spec_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"testing/fstest"

	"github.com/manifold-paas/manifold/spec"
)

func TestDigestDir(t *testing.T) {
	t.Parallel()
	base := func() fstest.MapFS {
		return fstest.MapFS{
			"app/Procfile":       {Data: []byte("web: ./run\n")},
			"app/run":            {Data: []byte("#!/bin/sh\n"), Mode: 0o755},
			"app/lib/a.txt":      {Data: []byte("a")},
			"app/.git/HEAD":      {Data: []byte("ref: refs/heads/main\n")},
			"other/unrelated.go": {Data: []byte("package other")},
		}
	}
	digest := func(t *testing.T, fsys fstest.MapFS) string {
		t.Helper()
		d, err := spec.DigestDir(fsys, "app")
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	ref := digest(t, base())

	same := []struct {
		name   string
		change func(fstest.MapFS)
	}{
		{"files outside the folder", func(m fstest.MapFS) { m["other/new"] = &fstest.MapFile{Data: []byte("x")} }},
		{".git contents", func(m fstest.MapFS) { m["app/.git/HEAD"] = &fstest.MapFile{Data: []byte("changed")} }},
		{"read permission", func(m fstest.MapFS) { m["app/lib/a.txt"].Mode = 0o600 }},
		{"an empty folder", func(m fstest.MapFS) { m["app/empty"] = &fstest.MapFile{Mode: os.ModeDir | 0o755} }},
	}
	for _, c := range same {
		m := base()
		c.change(m)
		if got := digest(t, m); got != ref {
			t.Errorf("%s changed the digest", c.name)
		}
	}
	differ := []struct {
		name   string
		change func(fstest.MapFS)
	}{
		{"contents", func(m fstest.MapFS) { m["app/lib/a.txt"].Data = []byte("b") }},
		{"exec bit", func(m fstest.MapFS) { m["app/run"].Mode = 0o644 }},
		{"a rename", func(m fstest.MapFS) { m["app/lib/b.txt"] = m["app/lib/a.txt"]; delete(m, "app/lib/a.txt") }},
		{"a new file", func(m fstest.MapFS) { m["app/new"] = &fstest.MapFile{} }},
		{"bytes moved between files", func(m fstest.MapFS) {
			m["app/Procfile"].Data = []byte("web: ./run\na")
			m["app/lib/a.txt"].Data = []byte("")
		}},
	}
	for _, c := range differ {
		m := base()
		c.change(m)
		if got := digest(t, m); got == ref {
			t.Errorf("%s left the digest unchanged", c.name)
		}
	}

	if _, err := spec.DigestDir(base(), "missing"); err == nil {
		t.Error("no error for a missing folder")
	}
}

// TestDigestDirOnDisk checks that a folder on disk (os.DirFS, with a symlink)
// and the same tree in memory agree except where links differ, and that a git
// checkout's .git does not count.
func TestDigestDirOnDisk(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "app", "lib"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "app", "Procfile"), []byte("web: ./run\n"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "app", "run"), []byte("#!/bin/sh\n"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "app", "lib", "a.txt"), []byte("a"), 0o644))
	mem := fstest.MapFS{
		"app/Procfile":  {Data: []byte("web: ./run\n")},
		"app/run":       {Data: []byte("#!/bin/sh\n"), Mode: 0o755},
		"app/lib/a.txt": {Data: []byte("a")},
	}
	onDisk, err := spec.DigestDir(os.DirFS(dir), "app")
	must(err)
	inMem, err := spec.DigestDir(mem, "app")
	must(err)
	if onDisk != inMem {
		t.Errorf("disk %s != memory %s", onDisk, inMem)
	}

	git := exec.Command("git", "init", "-q", filepath.Join(dir, "app"))
	if out, err := git.CombinedOutput(); err != nil {
		t.Fatalf("git init: %v: %s", err, out)
	}
	afterGit, err := spec.DigestDir(os.DirFS(dir), "app")
	must(err)
	if afterGit != onDisk {
		t.Error("git init changed the digest")
	}

	must(os.Symlink("lib/a.txt", filepath.Join(dir, "app", "link")))
	withLink, err := spec.DigestDir(os.DirFS(dir), "app")
	must(err)
	if withLink == onDisk {
		t.Error("a new symlink left the digest unchanged")
	}
	must(os.Remove(filepath.Join(dir, "app", "link")))
	must(os.Symlink("lib", filepath.Join(dir, "app", "link")))
	retargeted, err := spec.DigestDir(os.DirFS(dir), "app")
	must(err)
	if retargeted == withLink {
		t.Error("retargeting a symlink left the digest unchanged")
	}
}
