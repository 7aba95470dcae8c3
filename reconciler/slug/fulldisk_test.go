package slug_test

import (
	"context"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/manifold-paas/manifold/reconciler/slug"
)

// fullDiskChild makes the test binary run TestBuildOnAFullDisk's scenario itself: in
// a mount namespace of its own, where it may mount a small tmpfs.
const fullDiskChild = "MANIFOLD_SLUG_FULL_DISK_CHILD"

// TestBuildOnAFullDisk fills the store's disk during a build: a tmpfs of 8 MB holds
// the store, and the app's source has 5 MB that do not compress (5 MB copied into the
// build folder, then 5 MB of slug). The build must fail with an error naming the app
// and the full disk; nothing may be recorded for the source (a retry would otherwise
// get a truncated slug, never built again); no scratch or temporary file may stay; and
// once the failed build's files are gone, a small app builds on the same disk.
//
// The scenario runs in a child process (this test binary again) in new user and mount
// namespaces, so that it can mount the tmpfs without privileges and without touching
// the host's mounts.
func TestBuildOnAFullDisk(t *testing.T) {
	if os.Getenv(fullDiskChild) == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestBuildOnAFullDisk$", "-test.v")
		cmd.Env = append(os.Environ(), fullDiskChild+"=1")
		cmd.SysProcAttr = &syscall.SysProcAttr{
			Cloneflags:  syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS,
			UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
			GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}},
		}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("the full-disk scenario failed (%v):\n%s", err, out)
		}
		if !strings.Contains(string(out), "--- PASS: TestBuildOnAFullDisk") {
			t.Fatalf("the full-disk scenario did not run:\n%s", out)
		}
		return
	}

	disk := t.TempDir()
	// Mounts made here must not propagate back to the host's namespace.
	if err := syscall.Mount("none", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		t.Fatalf("make mounts private: %v", err)
	}
	if err := syscall.Mount("tmpfs", disk, "tmpfs", 0, "size=8m"); err != nil {
		t.Fatalf("mount an 8 MB tmpfs: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(disk, syscall.MNT_DETACH) })
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
