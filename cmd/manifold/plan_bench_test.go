package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// planBenchApps, planBenchChanged: the size of BenchmarkPlanGit's config repo.
const (
	planBenchApps    = 1000
	planBenchChanged = 100
)

// planBenchRepo makes, with the git CLI, a config repo of planBenchApps apps (one spec
// file and one small source folder each) and three environment files, then a second
// commit where planBenchChanged apps change their worker count. packed runs git gc, as
// a clone is; without it every object is loose, as after local commits.
func planBenchRepo(b *testing.B, packed bool) string {
	b.Helper()
	dir := b.TempDir()
	write := func(name, content string) {
		full := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	appSpec := func(i, workers int) string {
		return fmt.Sprintf("app \"app%04d\" {\n  source { path = \"../src/app%04d\" }\n  config = { APP = \"app%04d\", LOG_LEVEL = \"info\" }\n"+
			"  process \"web\" {\n    count = 2\n  }\n  process \"worker\" {\n    count = %d\n  }\n}\n", i, i, i, workers)
	}
	for i := range planBenchApps {
		write(fmt.Sprintf("src/app%04d/Procfile", i), "web: ./web -p $PORT\nworker: ./worker\nrelease: ./migrate\n")
		write(fmt.Sprintf("src/app%04d/main.go", i), fmt.Sprintf("package main\n\n// app %04d\nfunc main() {}\n", i))
		write(fmt.Sprintf("apps/app%04d.hcl", i), appSpec(i, 1))
	}
	for _, env := range []string{"dev", "staging", "production"} {
		var e strings.Builder
		fmt.Fprintf(&e, "environment %q {\n", env)
		for i := 0; i < planBenchApps; i += 10 {
			fmt.Fprintf(&e, "  app \"app%04d\" {\n    config = { ENV = %q }\n  }\n", i, env)
		}
		e.WriteString("}\n")
		write("environments/"+env+".hcl", e.String())
	}
	git(b, dir, "init", "-q", "-b", "main")
	git(b, dir, "add", "-A")
	git(b, dir, "commit", "-q", "-m", "base")
	for n := range planBenchChanged {
		i := n * (planBenchApps / planBenchChanged)
		write(fmt.Sprintf("apps/app%04d.hcl", i), appSpec(i, 3))
	}
	git(b, dir, "commit", "-q", "-am", "scale 100 workers")
	if packed {
		git(b, dir, "gc", "-q")
	}
	return dir
}

// BenchmarkPlanGit is `manifold plan --base HEAD~1 --head HEAD --format json` in
// process over planBenchRepo: both trees read from git objects, loaded, diffed and
// printed as JSON (300 scale changes: 100 apps in 3 environments).
func BenchmarkPlanGit(b *testing.B) {
	for _, packed := range []bool{false, true} {
		name := "loose"
		if packed {
			name = "packed"
		}
		b.Run(name, func(b *testing.B) {
			repo := planBenchRepo(b, packed)
			b.ReportAllocs()
			for b.Loop() {
				root := newRootCmd()
				var stdout, stderr strings.Builder
				root.SetOut(&stdout)
				root.SetErr(&stderr)
				root.SetArgs([]string{"plan", "--repo", repo, "--base", "HEAD~1", "--head", "HEAD", "--format", "json"})
				if code := exitCode(root.Execute(), &stderr); code != 2 {
					b.Fatalf("exit %d, want 2 (changes): %s", code, stderr.String())
				}
				if n := strings.Count(stdout.String(), `"kind": "scale"`); n != 3*planBenchChanged {
					b.Fatalf("%d scale changes, want %d", n, 3*planBenchChanged)
				}
			}
		})
	}
}
