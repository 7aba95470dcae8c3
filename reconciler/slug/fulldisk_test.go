package slug_test

import (
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/manifold-paas/manifold/reconciler/internal/smalldisk"
	"github.com/manifold-paas/manifold/reconciler/slug"
)

// TestBuildOnAFullDisk fills the store's disk during a build: a tmpfs of 8 MB holds
// the store, and the app's source has 5 MB that do not compress (5 MB copied into the
// build folder, then 5 MB of slug). The build must fail with an error naming the app
// and the full disk; nothing may be recorded for the source (a retry would otherwise
// get a truncated slug, never built again); no scratch or temporary file may stay; and
// once the failed build's files are gone, a small app builds on the same disk.
func TestBuildOnAFullDisk(t *testing.T) {
	disk, inChild := smalldisk.Mount(t, "8m")
	if !inChild {
		return
	}
	store, err := slug.OpenStore(filepath.Join(disk, "slugs"))
	if err != nil {
		t.Fatal(err)
	}
	b := &slug.Builder{Store: store}

	blob := make([]byte, 5<<20)
	if _, err := rand.Read(blob); err != nil {
		t.Fatal(err)
	}
	big := app(t, map[string]string{"Procfile": "web: sh run.sh\n", "run.sh": "echo hi\n"})
	if err := os.WriteFile(filepath.Join(big, "blob.bin"), blob, 0o644); err != nil {
		t.Fatal(err)
	}
	var out syncBuffer
	_, err = b.Build(context.Background(), slug.Request{App: "bulky", SourceDir: big, Output: &out})
	if err == nil {
		t.Fatalf("a build that cannot fit the disk succeeded\n%s", out.String())
	}
	t.Logf("the build failed as it should: %v", err)
	if msg := err.Error(); !strings.Contains(msg, "bulky") || !strings.Contains(msg, "no space left on device") {
		t.Errorf("error %q; want it to name the app and the full disk", msg)
	}
	if files := storeFiles(t, b); len(files) != 0 {
		t.Errorf("the failed build left %v in the store", files)
	}
	digest, err := slug.DigestDir(big)
	if err != nil {
		t.Fatal(err)
	}
	for _, bp := range []string{"", "procfile"} {
		var buildpacks []string
		if bp != "" {
			buildpacks = []string{bp}
		}
		if _, err := b.Build(context.Background(), slug.Request{App: "bulky", SourceDir: big, SourceDigest: digest, Buildpacks: buildpacks}); err == nil {
			t.Errorf("a retry of the failed build (buildpacks %v) was served from the store", buildpacks)
		}
	}
	_ = filepath.WalkDir(filepath.Join(disk, "slugs"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil && info.Size() > 1<<20 {
				t.Errorf("the failed builds left %s (%d bytes)", p, info.Size())

			}
		}
		return nil
	})

	small := app(t, map[string]string{"Procfile": "web: sh run.sh\n", "run.sh": "echo hi\n"})
	s := mustBuild(t, b, slug.Request{App: "small", SourceDir: small})
	if _, err := os.Stat(s.Path); err != nil {
		t.Errorf("the small app's slug: %v", err)
	}
}
