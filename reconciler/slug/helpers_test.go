package slug_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/manifold-paas/manifold/reconciler/slug"
)

// newBuilder returns a Builder over a fresh store in a temp dir.
func newBuilder(t testing.TB) *slug.Builder {
	t.Helper()
	store, err := slug.OpenStore(filepath.Join(t.TempDir(), "slugs"))
	if err != nil {
		t.Fatal(err)
	}
	// The Go build cache of the test run, shared: a cold one would recompile the
	// standard library in every test (tens of seconds on a busy machine).
	return &slug.Builder{Store: store, Env: []string{"GOCACHE=" + goCache(t)}}
}

func goCache(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOCACHE").Output()
	if err != nil {
		t.Fatalf("go env GOCACHE: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// writeTree writes files (path -> content) under dir; a path ending in "*" is made
// executable (the star is dropped).
func writeTree(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		mode := os.FileMode(0o644)
		if strings.HasSuffix(name, "*") {
			name, mode = strings.TrimSuffix(name, "*"), 0o755
		}
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
}

// app writes files into a new source dir and returns it.
func app(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	writeTree(t, dir, files)
	return dir
}

// syncBuffer is a bytes.Buffer safe for a build's concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// tarEntries lists a slug tarball's entries: name -> mode (with a trailing "@target"
// for symlinks).
func tarEntries(t *testing.T, path string) map[string]os.FileMode {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	entries := map[string]os.FileMode{}
	tr := tar.NewReader(zr)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return entries
		}
		if err != nil {
			t.Fatal(err)
		}
		entries[hdr.Name] = os.FileMode(hdr.Mode) & os.ModePerm
	}
}

// storeFiles lists the store's slug files (tarballs and metadata), not its folders.
func storeFiles(t *testing.T, b *slug.Builder) []string {
	t.Helper()
	var files []string
	entries, err := os.ReadDir(b.Store.Dir())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.IsDir() {
			files = append(files, e.Name())
		}
	}
	tmp, _ := os.ReadDir(filepath.Join(b.Store.Dir(), "tmp"))
	for _, e := range tmp {
		files = append(files, "tmp/"+e.Name())
	}
	return files
}

// eventually calls check until it returns nil, and fails the test with check's last
// error when timeout passes first: the package's one way to wait for something.
func eventually(t testing.TB, timeout time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, timeout, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
