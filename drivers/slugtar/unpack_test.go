package slugtar_test

import (
	"archive/tar"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/manifold-paas/manifold/drivers/slugtar"
)

func TestUnpackLayouts(t *testing.T) {
	t.Parallel()
	web := "#!/bin/sh\necho hi\n"
	for _, tc := range []struct {
		name     string
		entries  []entry
		underApp bool
	}{
		{"heroku ./app/", []entry{{name: "./app/", typ: tar.TypeDir, mode: 0o755}, {name: "./app/bin/web", body: web, mode: 0o755}}, true},
		{"app/", []entry{{name: "app/bin/web", body: web, mode: 0o4755}}, true},
		{"root", []entry{{name: "bin/", typ: tar.TypeDir, mode: 0o755}, {name: "bin/web", body: web, mode: 0o755}, {name: "app/models/x.rb", body: "x"}}, false},
		{"dot root", []entry{{name: "./", typ: tar.TypeDir, mode: 0o755}, {name: "./bin/web", body: web, mode: 0o755}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tarball := writeTarball(t, tc.entries)
			layout, err := slugtar.Scan(context.Background(), tarball)
			if err != nil {
				t.Fatal(err)
			}
			if layout.UnderApp != tc.underApp || layout.Entries != len(tc.entries) {
				t.Errorf("Scan = %+v, want UnderApp %v and %d entries", layout, tc.underApp, len(tc.entries))
			}
			dest := filepath.Join(t.TempDir(), "app")
			if err := slugtar.Unpack(context.Background(), tarball, dest); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(filepath.Join(dest, "bin", "web"))
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o755 || fi.Mode()&os.ModeSetuid != 0 {
				t.Errorf("bin/web mode %v, want 0755 without setuid", fi.Mode())
			}
			if data, _ := os.ReadFile(filepath.Join(dest, "bin", "web")); string(data) != web {
				t.Errorf("bin/web holds %q", data)
			}
		})
	}
}

func TestUnpackRefusesEscapes(t *testing.T) {
	t.Parallel()
	outside := t.TempDir()
	link := func(name, target string) entry { return entry{name: name, typ: tar.TypeSymlink, link: target} }
	for _, tc := range []struct {
		name    string
		entries []entry
		want    string
	}{
		{"dot-dot", []entry{{name: "../evil", body: "x"}}, "outside the slug"},
		{"dot-dot inside", []entry{{name: "app/../../evil", body: "x"}}, "outside the slug"},
		{"deep dot-dot", []entry{{name: "./a/../../evil", body: "x"}}, "outside the slug"},
		{"absolute", []entry{{name: outside + "/evil", body: "x"}}, "absolute"},
		{"symlink absolute", []entry{link("etc", "/etc")}, "absolute"},
		{"symlink empty", []entry{link("empty", "")}, "symlink"},
		{"symlink up", []entry{link("up", "../..")}, "escapes"},
		{"symlink deep up", []entry{link("a/b/up", "../../../x")}, "escapes"},
		{"write through a symlink out", []entry{link("./link", outside), {name: "./link/evil", body: "x"}}, "absolute"},
		{"hard link out", []entry{{name: "./h", typ: tar.TypeLink, link: "../../etc/passwd"}}, "hard link"},
		{"hard link absolute", []entry{{name: "./h", typ: tar.TypeLink, link: "/etc/passwd"}}, "hard link"},
		{"hard link to the root", []entry{{name: "./h", typ: tar.TypeLink, link: "./"}}, "slug root"},
		{"file as the root", []entry{{name: ".", body: "x"}}, "slug root"},
		{"char device", []entry{{name: "dev", typ: tar.TypeChar}}, "devices and fifos"},
		{"block device", []entry{{name: "blk", typ: tar.TypeBlock}}, "devices and fifos"},
		{"fifo", []entry{{name: "fifo", typ: tar.TypeFifo}}, "devices and fifos"},
		{"sparse", []entry{
			{raw: rawEntry("PaxHeaders/sparse", tar.TypeXHeader, paxRecords("GNU.sparse.size", "1000", "GNU.sparse.numblocks", "1", "GNU.sparse.map", "0,1"))},
			{name: "./sparse", body: "x"},
		}, "sparse"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tarball := writeTarball(t, tc.entries)
			base := t.TempDir()
			dest := filepath.Join(base, "dest", "inner")
			err := slugtar.Unpack(context.Background(), tarball, dest)
			if !errors.Is(err, slugtar.ErrUnsafeSlug) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("unpack: %v, want ErrUnsafeSlug saying %q", err, tc.want)
			}
			for _, dir := range []string{outside, base, filepath.Join(base, "dest")} {
				for _, name := range []string{"evil", "x"} {
					if _, err := os.Lstat(filepath.Join(dir, name)); err == nil {
						t.Errorf("%s written outside the slug", filepath.Join(dir, name))
					}
				}
			}
			if _, err := slugtar.Scan(context.Background(), tarball); err == nil && !strings.Contains(tc.name, "symlink") &&
				!strings.Contains(tc.name, "hard link") && !strings.Contains(tc.name, "device") && tc.name != "fifo" &&
				tc.name != "file as the root" {
				t.Errorf("Scan accepted a name Unpack refuses")
			}
		})
	}
}

// A symlink that is lexically inside but resolves outside through another symlink
// still cannot carry a write out: every write goes through os.Root.
func TestUnpackSymlinkChainStaysInside(t *testing.T) {
	t.Parallel()
	tarball := writeTarball(t, []entry{
		{name: "x/y/", typ: tar.TypeDir, mode: 0o755},
		{name: "x/y/s", typ: tar.TypeSymlink, link: "../.."},
		{name: "t", typ: tar.TypeSymlink, link: "x/y/s/.."},
		{name: "t/evil", body: "x"},
	})
	base := t.TempDir()
	err := slugtar.Unpack(context.Background(), tarball, filepath.Join(base, "dest"))
	if err == nil {
		t.Fatal("unpack followed a symlink chain out of the slug")
	}
	if _, statErr := os.Lstat(filepath.Join(base, "evil")); statErr == nil {
		t.Fatalf("evil written outside the slug (unpack said %v)", err)
	}
}

func TestUnpackKeepsModesAndLinks(t *testing.T) {
	t.Parallel()
	tarball := writeTarball(t, []entry{
		{name: "./", typ: tar.TypeDir, mode: 0o755},
		{name: "./ro/", typ: tar.TypeDir, mode: 0o555},
		{name: "./ro/file", body: "inside a read-only folder", mode: 0o444},
		{name: "./bin/web", body: "#!/bin/sh\necho hi\n", mode: 0o4755},
		{name: "./web-link", typ: tar.TypeSymlink, link: "bin/web"},
		{name: "./web-hard", typ: tar.TypeLink, link: "./bin/web"},
		{name: "./replaced", typ: tar.TypeSymlink, link: "bin/web"},
		{name: "./replaced", body: "a file now"},
		{name: "pax_global_header", typ: tar.TypeXGlobalHeader, pax: map[string]string{"comment": "made by a test"}},
	})
	dir := filepath.Join(t.TempDir(), "app")
	makeWritable(t, dir)
	if err := slugtar.Unpack(context.Background(), tarball, dir); err != nil {
		t.Fatal(err)
	}
	checks := map[string]os.FileMode{"ro": 0o555 | os.ModeDir, "ro/file": 0o444, "bin/web": 0o755, "web-hard": 0o755, "replaced": 0o644}
	for name, want := range checks {
		info, err := os.Lstat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := info.Mode() & (os.ModePerm | os.ModeDir | os.ModeSetuid | os.ModeSymlink); got != want {
			t.Errorf("%s: mode %v, want %v (setuid dropped, symlink replaced)", name, got, want)
		}
	}
	if target, err := os.Readlink(filepath.Join(dir, "web-link")); err != nil || target != "bin/web" {
		t.Errorf("symlink: %q, %v", target, err)
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "bin", "web")); string(data) != "#!/bin/sh\necho hi\n" {
		t.Errorf("bin/web holds %q (written through the replaced symlink?)", data)
	}
}

func TestUnpackBadTarballs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	notGzip := filepath.Join(dir, "plain.tgz")
	if err := os.WriteFile(notGzip, []byte("not a tarball"), 0o644); err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(writeTarball(t, []entry{{name: "./Procfile", body: "web: x\n"}}))
	if err != nil {
		t.Fatal(err)
	}
	badCRC := filepath.Join(dir, "crc.tgz")
	corrupt := append([]byte(nil), good...)
	corrupt[len(corrupt)-8] ^= 0xff // the gzip trailer's CRC-32
	if err := os.WriteFile(badCRC, corrupt, 0o644); err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(dir, "truncated.tgz")
	if err := os.WriteFile(truncated, good[:len(good)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct{ path, want string }{
		"missing":   {filepath.Join(dir, "missing.tar.gz"), "missing.tar.gz"},
		"not gzip":  {notGzip, "not a gzipped tarball"},
		"bad crc":   {badCRC, "checksum"},
		"truncated": {truncated, "EOF"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dest := filepath.Join(t.TempDir(), "app")
			err := slugtar.Unpack(context.Background(), tc.path, dest)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Unpack: %v, want an error with %q", err, tc.want)
			}
			if _, err := os.Stat(filepath.Join(dest, "Procfile")); err == nil {
				t.Error("a corrupt slug was unpacked")
			}
			if _, err := slugtar.Scan(context.Background(), tc.path); err == nil {
				t.Error("Scan accepted it")
			}
		})
	}
	// An empty tarball is sound: Scan says so (the docker driver refuses it itself).
	layout, err := slugtar.Scan(context.Background(), writeTarball(t, nil))
	if err != nil || layout != (slugtar.Layout{}) {
		t.Errorf("Scan of an empty tarball = %+v, %v", layout, err)
	}
}

func TestUnpackRefusesBombs(t *testing.T) {
	t.Parallel()
	// A header claiming more than MaxUnpackedBytes is refused before its data is read
	// (here it is not even there).
	tarball := writeTarball(t, []entry{{name: "./big", size: slugtar.MaxUnpackedBytes + 1}})
	dest := filepath.Join(t.TempDir(), "app")
	if err := slugtar.Unpack(context.Background(), tarball, dest); !errors.Is(err, slugtar.ErrTooLarge) {
		t.Fatalf("Unpack: %v, want ErrTooLarge", err)
	}
	if _, err := slugtar.Scan(context.Background(), tarball); !errors.Is(err, slugtar.ErrTooLarge) {
		t.Fatalf("Scan: %v, want ErrTooLarge", err)
	}
	if _, err := os.Stat(dest); err == nil {
		t.Error("Unpack wrote before refusing the bomb")
	}
}

func TestUnpackStopsOnCancel(t *testing.T) {
	t.Parallel()
	tarball := writeTarball(t, []entry{{name: "./Procfile", body: "web: x\n"}})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	dest := filepath.Join(t.TempDir(), "app")
	if err := slugtar.Unpack(ctx, tarball, dest); !errors.Is(err, context.Canceled) {
		t.Fatalf("Unpack: %v, want context.Canceled", err)
	}
	if _, err := slugtar.Scan(ctx, tarball); !errors.Is(err, context.Canceled) {
		t.Fatalf("Scan: %v, want context.Canceled", err)
	}
}
