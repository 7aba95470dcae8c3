package spec_test

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"testing/fstest"

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

// BenchmarkLoad1000Apps loads a generated repo: 1000 apps in 20 files (half HCL, half
// YAML) over 10 source folders, 3 environments overriding every tenth app.
func BenchmarkLoad1000Apps(b *testing.B) {
	files := map[string]string{}
	for s := range 10 {
		files[fmt.Sprintf("src/s%d/Procfile", s)] = "web: ./web\nworker: ./work\nrelease: ./migrate\n"
		files[fmt.Sprintf("src/s%d/main.go", s)] = strings.Repeat("// source code\n", 200)
	}
	for f := range 20 {
		var hcl, yaml strings.Builder
		yaml.WriteString("app:\n")
		for i := range 50 {
			n := f*50 + i
			if f%2 == 0 {
				fmt.Fprintf(&hcl, "app \"app%d\" {\n  source { path = \"../src/s%d\" }\n  config = { N = \"%d\" }\n  process \"web\" { count = 2 }\n}\n", n, n%10, n)
			} else {
				fmt.Fprintf(&yaml, "  app%d:\n    source: {path: ../src/s%d}\n    config: {N: \"%d\"}\n    process: {web: {count: 2}}\n", n, n%10, n)
			}
		}
		if f%2 == 0 {
			files[fmt.Sprintf("apps/f%d.hcl", f)] = hcl.String()
		} else {
			files[fmt.Sprintf("apps/f%d.yaml", f)] = yaml.String()
		}
	}
	for _, env := range []string{"dev", "staging", "production"} {
		var e strings.Builder
		fmt.Fprintf(&e, "environment %q {\n", env)
		for n := 0; n < 1000; n += 10 {
			fmt.Fprintf(&e, "  app \"app%d\" {\n    process \"web\" { count = 4 }\n  }\n", n)
		}
		e.WriteString("}\n")
		files["environments/"+env+".hcl"] = e.String()
	}
	fsys := fstest.MapFS{}
	for name, content := range files {
		fsys[name] = &fstest.MapFile{Data: []byte(content)}
	}
	b.ReportAllocs()
	for b.Loop() {
		d, diags := spec.Load(fsys, spec.LoadOptions{})
		if diags != nil {
			b.Fatal(diags)
		}
		if len(d.Apps) != 3000 {
			b.Fatalf("%d apps, want 3000", len(d.Apps))
		}
	}
}
