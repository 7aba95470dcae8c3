package main

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/manifold-paas/manifold/spec"
)

// TestLoadAppsAtCache plans between two commits with one spec.Cache, as `manifold plan`
// does, and checks each side equals a load without the cache and a load of the same
// files from disk: unchanged content is reused, changed content (a spec, a source file,
// the target of a symlinked Procfile) is read again, and a source with symlinks has the
// same digest read from git objects as from a checkout.
func TestLoadAppsAtCache(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		full := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	symlink := func(target, name string) {
		t.Helper()
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	for _, app := range []string{"a", "b", "c"} {
		write("apps/"+app+".hcl", "app \""+app+"\" {\n  source { path = \"../src/"+app+"\" }\n}\n")
		write("src/"+app+"/main.go", "package main // "+app+"\n")
	}
	write("environments/staging.hcl", "environment \"staging\" {}\n")
	write("environments/production.hcl", "environment \"production\" {\n  app \"a\" {\n    process \"web\" { count = 2 }\n  }\n}\n")
	write("src/a/Procfile", "web: ./a\n")
	write("src/b/Procfile", "web: ./b\n")
	write("src/shared/Procfile.c", "web: ./c v1\n")
	symlink("../shared/Procfile.c", "src/c/Procfile")
	symlink("main.go", "src/a/link-to-main")
	git(t, dir, "init", "-q", "-b", "main")
	git(t, dir, "add", "-A")
	git(t, dir, "commit", "-q", "-m", "base")
	base := git(t, dir, "rev-parse", "HEAD")

	write("apps/a.hcl", "app \"a\" {\n  source { path = \"../src/a\" }\n  process \"web\" { count = 3 }\n}\n")
	write("src/b/main.go", "package main // b, changed\n")
	write("src/shared/Procfile.c", "web: ./c v2\n")
	git(t, dir, "commit", "-q", "-am", "head")

	cache := spec.NewCache()
	for _, rev := range []string{base, "main"} {
		cached, err := loadAppsAt(dir, "", rev, "", cache)
		if err != nil {
			t.Fatal(err)
		}
		uncached, err := loadAppsAt(dir, "", rev, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(cached, uncached) {
			t.Errorf("at %s with the cache:\n%+v\nwithout:\n%+v", rev, cached, uncached)
		}
		git(t, dir, "checkout", "-q", rev)
		onDisk, err := loadAppsAt(dir, "", "", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(cached, onDisk) {
			t.Errorf("at %s from git objects:\n%+v\nfrom the checkout:\n%+v", rev, cached, onDisk)
		}
	}
	head, err := loadAppsAt(dir, "", "main", "staging", cache)
	if err != nil {
		t.Fatal(err)
	}
	if len(head) != 3 || head[2].Name != "c" || head[2].Processes[0].Command != "./c v2" {
		t.Errorf("staging at main: %+v, want app c running ./c v2", head)
	}
}
