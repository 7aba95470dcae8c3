package slugtar

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// The limits are constants too large to reach in a test; unpack takes them as a value.
func TestUnpackLimits(t *testing.T) {
	t.Parallel()
	var raw bytes.Buffer
	zw := gzip.NewWriter(&raw)
	tw := tar.NewWriter(zw)
	for _, name := range []string{"./a", "./b", "./c"} {
		if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: 4}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte("1234")); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	tarball := filepath.Join(t.TempDir(), "slug.tar.gz")
	if err := os.WriteFile(tarball, raw.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		lim  limits
		ok   bool
	}{
		{"at the limits", limits{bytes: 12, entries: 3}, true},
		{"one byte over", limits{bytes: 11, entries: 3}, false},
		{"one entry over", limits{bytes: 12, entries: 2}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dest := filepath.Join(t.TempDir(), "app")
			err := unpack(context.Background(), tarball, dest, tc.lim)
			if tc.ok != (err == nil) || (!tc.ok && !errors.Is(err, ErrTooLarge)) {
				t.Fatalf("unpack under %+v: %v", tc.lim, err)
			}
			if _, statErr := os.Stat(filepath.Join(dest, "a")); (statErr == nil) != tc.ok {
				t.Errorf("./a unpacked: %v, want %v (the scan refuses before writing)", statErr == nil, tc.ok)
			}
		})
	}
}

// NUL cannot reach entryName through archive/tar (it refuses such names itself); the
// check stays for any other reader.
func TestEntryName(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		strip bool
		want  string
		ok    bool
	}{
		{"./bin/web", false, "bin/web", true},
		{"./", false, "", true},
		{"app", true, "", true},
		{"./app/bin/web", true, "bin/web", true},
		{"./app/bin/web", false, "app/bin/web", true},
		{"a/./b//c", false, "a/b/c", true},
		{`a\b`, false, `a\b`, true},
		{"a\x00b", false, "", false},
		{"/etc/passwd", false, "", false},
		{"..", false, "", false},
		{"a/../../b", true, "", false},
	} {
		got, err := entryName(tc.name, tc.strip)
		if got != tc.want || (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrUnsafeSlug)) {
			t.Errorf("entryName(%q, %v) = %q, %v; want %q, ok %v", tc.name, tc.strip, got, err, tc.want, tc.ok)
		}
	}
}
