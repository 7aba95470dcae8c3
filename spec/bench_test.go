package spec_test

import (
	"os"
	"testing"

	"github.com/manifold-paas/manifold/spec"
)

// BenchmarkLoadExamples loads the examples repo from disk: parsing both formats,
// merging two environments, reading the Procfiles and hashing every source file.
func BenchmarkLoadExamples(b *testing.B) {
	fsys := os.DirFS(examplesDir)
	b.ReportAllocs()
	for b.Loop() {
		if _, diags := spec.Load(fsys, spec.LoadOptions{}); diags != nil {
			b.Fatal(diags)
		}
	}
}
