// Package secrettest makes age identities for tests of sealed values with Debian's
// age-keygen: the tool a user seals with, not manifold's own code, so that a test
// of opening a value does not grade manifold against itself.
package secrettest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Keygen writes a new identity to a file of its own (0600, as the daemon requires)
// in a folder of the test and returns the file and its public key.
func Keygen(t testing.TB) (path, recipient string) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "key.txt")
	out, err := exec.Command("age-keygen", "-o", path).CombinedOutput()
	if err != nil {
		t.Fatalf("age-keygen (install Debian's age package: .ci/deps): %v\n%s", err, out)
	}
	// age-keygen prints "Public key: age1…" on stderr.
	_, recipient, ok := strings.Cut(strings.TrimSpace(string(out)), "Public key: ")
	if !ok || !strings.HasPrefix(recipient, "age1") {
		t.Fatalf("age-keygen said %q", out)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, recipient
}
