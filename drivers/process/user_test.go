package process

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/manifold-paas/manifold/drivers"
)

// TestDynoUser: with Options.User, a one-off runs as that user with its group only
// (none of root's), and a driver whose slugs that user cannot reach refuses to start.
func TestDynoUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("running dynos as another user needs root, as CI has")
	}
	nobody, err := LookupUser("nobody")
	if err != nil {
		t.Fatal(err)
	}
	hidden := t.TempDir() // 0700
	if _, err := New(context.Background(), Options{StateDir: filepath.Join(hidden, "dynos"), User: nobody}); err == nil ||
		!strings.Contains(err.Error(), "dynos run as nobody, which cannot reach") {
		t.Fatalf("New under a 0700 dir: %v", err)
	}

	root := t.TempDir()
	for _, dir := range []string{root, filepath.Dir(root)} {
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	d, err := New(context.Background(), Options{StateDir: filepath.Join(root, "dynos"), SlugDir: filepath.Join(root, "slugs"), User: nobody})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	key, slug := makeSlug(t, testSlugFiles)
	spec := drivers.DynoSpec{App: "hello", Env: "staging", SlugKey: key, SlugPath: slug, Release: 1,
		Command: `id -u; id -G`, StopTimeout: 5 * time.Second}
	var stdout, stderr bytes.Buffer
	code, err := d.Run(context.Background(), drivers.OneOff{DynoSpec: spec, Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr})
	if err != nil || code != 0 {
		t.Fatalf("one-off: %d, %v, %s", code, err, stderr.String())
	}
	want := []string{strconv.Itoa(int(nobody.UID)), strconv.Itoa(int(nobody.GID))}
	if got := strings.Fields(stdout.String()); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("one-off ran as uid, groups %v; want %v", got, want)
	}
}
