package slug_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/manifold-paas/manifold/reconciler/slug"
)

// helloSource is the example Go app (examples/src/hello), or the testdata app of the
// same shape when the examples are not there.
func helloSource(b *testing.B) string {
	b.Helper()
	for _, dir := range []string{"../../examples/src/hello", "testdata/apps/hello-go"} {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
	}
	b.Fatal("no Go example app")
	return ""
}

// BenchmarkRebuildNoChange is a deploy of unchanged code (a config change, or staging's
// commit promoted to production): digest the source, find the key in the store.
// BuildKit takes 1-3 s for the same no-op; the goal is under 200 ms.
func BenchmarkRebuildNoChange(b *testing.B) {
	builder := newBuilder(b)
	req := slug.Request{App: "hello", SourceDir: helloSource(b), Stack: "manifold-24",
		Config: map[string]string{"GREETING": "hello"}}
	first, err := builder.Build(context.Background(), req)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		req.Config = map[string]string{"GREETING": fmt.Sprint("hello ", i)}
		s, err := builder.Build(context.Background(), req)
		if err != nil || !s.Cached || s.Key != first.Key {
			b.Fatalf("rebuild %d: cached %v key %s, %v", i, s.Cached, s.Key, err)
		}
	}
}

// BenchmarkRebuildChangedSource is a deploy of a one-line code change with a warm
// build cache: copy, go build (recompiling one package and linking), release, pack.
func BenchmarkRebuildChangedSource(b *testing.B) {
	builder := newBuilder(b)
	src := b.TempDir()
	entries, err := os.ReadDir(helloSource(b))
	if err != nil {
		b.Fatal(err)
	}
	for _, e := range entries {
		raw, err := os.ReadFile(filepath.Join(helloSource(b), e.Name()))
		if err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, e.Name()), raw, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	main := filepath.Join(src, "main.go")
	original, err := os.ReadFile(main)
	if err != nil {
		b.Fatal(err)
	}
	req := slug.Request{App: "hello", SourceDir: src, Stack: "manifold-24"}
	if _, err := builder.Build(context.Background(), req); err != nil {
		b.Fatal(err) // warms the build cache
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		// A change the compiler sees: a new package-level constant.
		changed := fmt.Appendf(append([]byte(nil), original...), "\nconst benchEdit = %d\n", i)
		if err := os.WriteFile(main, changed, 0o644); err != nil {
			b.Fatal(err)
		}
		s, err := builder.Build(context.Background(), req)
		if err != nil || s.Cached {
			b.Fatalf("rebuild %d: cached %v, %v", i, s.Cached, err)
		}
	}
}
