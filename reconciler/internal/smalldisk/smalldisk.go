// Package smalldisk lets a test see what a full disk does: it runs the test again in
// a child process, in new user and mount namespaces (no privileges needed, the host's
// mounts untouched), with a small tmpfs mounted for it to fill.
package smalldisk

import (
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

// childEnv marks the child process and carries the test it runs.
const childEnv = "MANIFOLD_SMALLDISK_CHILD"

// Mount returns, in the child process, the folder of a fresh tmpfs of size (a tmpfs
// size option: "8m") and true: the caller then runs its scenario there. In the
// calling test it runs the test again in the child, fails t if the child failed or
// did not run the test, and returns false: the caller returns.
func Mount(t *testing.T, size string) (dir string, inChild bool) {
	t.Helper()
	if os.Getenv(childEnv) != t.Name() {
		cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), childEnv+"="+t.Name())
		cmd.SysProcAttr = &syscall.SysProcAttr{
			Cloneflags:  syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS,
			UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
			GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}},
		}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("the scenario on a %s disk failed (%v):\n%s", size, err, out)
		}
		if !strings.Contains(string(out), "--- PASS: "+t.Name()) {
			t.Fatalf("the scenario on a %s disk did not run:\n%s", size, out)
		}
		t.Logf("the scenario on a %s disk:\n%s", size, out)
		return "", false
	}
	dir = t.TempDir()
	// Mounts made here must not propagate back to the host's namespace.
	if err := syscall.Mount("none", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		t.Fatalf("make mounts private: %v", err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		t.Fatalf("mount a %s tmpfs: %v", size, err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir, true
}
