package slug_test

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/manifold-paas/manifold/reconciler/slug"
)

// entry is one tar entry for writeTarball.
type entry struct {
	name, body, link string
	typ              byte
	mode             int64
}

func writeTarball(t *testing.T, entries []entry) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "slug.tar.gz")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	zw := gzip.NewWriter(f)
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		typ, mode := e.typ, e.mode
		if typ == 0 {
			typ = tar.TypeReg
		}
		if mode == 0 {
			mode = 0o644
		}
		hdr := &tar.Header{Name: e.name, Typeflag: typ, Mode: mode, Size: int64(len(e.body)), Linkname: e.link}
		if typ != tar.TypeReg {
			hdr.Size = 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if typ == tar.TypeReg {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, c := range []interface{ Close() error }{tw, zw, f} {
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

func TestUnpackRefusesEscapes(t *testing.T) {
	outside := t.TempDir()
	tests := []struct {
		name    string
		entries []entry
		want    string
	}{
		{"dot dot", []entry{{name: "./../pwned", body: "x"}}, "outside the slug"},
		{"deep dot dot", []entry{{name: "./a/../../pwned", body: "x"}}, "outside the slug"},
		{"absolute", []entry{{name: outside + "/pwned", body: "x"}}, "absolute"},
		{"through a symlink", []entry{
			{name: "./link", typ: tar.TypeSymlink, link: outside},
			{name: "./link/pwned", body: "x"},
		}, "link/pwned"},
		{"hard link out", []entry{{name: "./h", typ: tar.TypeLink, link: "../../etc/passwd"}}, "hard link"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "app")
			err := slug.Unpack(context.Background(), writeTarball(t, tt.entries), dir)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error with %q", err, tt.want)
			}
			if _, err := os.Stat(filepath.Join(outside, "pwned")); err == nil {
				t.Fatal("a file was written outside the slug's folder")
			}
			if _, err := os.Stat(filepath.Join(filepath.Dir(dir), "pwned")); err == nil {
				t.Fatal("a file was written next to the slug's folder")
			}
		})
	}
}

func TestUnpackKeepsModesAndLinks(t *testing.T) {
	tarball := writeTarball(t, []entry{
		{name: "./", typ: tar.TypeDir, mode: 0o755},
		{name: "./ro/", typ: tar.TypeDir, mode: 0o555},
		{name: "./ro/file", body: "inside a read-only folder", mode: 0o444},
		{name: "./bin/web", body: "#!/bin/sh\necho hi\n", mode: 0o4755},
		{name: "./web-link", typ: tar.TypeSymlink, link: "bin/web"},
		{name: "./web-hard", typ: tar.TypeLink, link: "./bin/web"},
	})
	dir := filepath.Join(t.TempDir(), "app")
	if err := slug.Unpack(context.Background(), tarball, dir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chmod(filepath.Join(dir, "ro"), 0o755) })
	checks := map[string]os.FileMode{"ro": 0o555 | os.ModeDir, "ro/file": 0o444, "bin/web": 0o755, "web-hard": 0o755}
	for name, want := range checks {
		info, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := info.Mode() & (os.ModePerm | os.ModeDir | os.ModeSetuid); got != want {
			t.Errorf("%s: mode %v, want %v (setuid dropped)", name, got, want)
		}
	}
	if target, err := os.Readlink(filepath.Join(dir, "web-link")); err != nil || target != "bin/web" {
		t.Errorf("symlink: %q, %v", target, err)
	}
	if err := slug.Unpack(context.Background(), filepath.Join(t.TempDir(), "missing.tar.gz"), dir); err == nil ||
		!strings.Contains(err.Error(), "missing.tar.gz") {
		t.Errorf("missing tarball: %v", err)
	}
}
