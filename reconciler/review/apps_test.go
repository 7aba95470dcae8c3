package review_test

import (
	"io/fs"
	"os"
	"slices"
	"testing"
	"testing/fstest"

	"github.com/manifold-paas/manifold/reconciler/review"
)

// TestApps loads the examples as review environment pr-7: without an overlay the
// base apps as they are, with environments/review.hcl its overrides; never the
// custom domains production answers, nor production's config.
func TestApps(t *testing.T) {
	t.Parallel()
	examples := os.DirFS("../../examples")
	withOverlay := fstest.MapFS{"environments/review.hcl": {Data: []byte(
		"environment \"review\" {\n  app \"hello\" {\n    config = { GREETING = \"hello from review\" }\n    process \"worker\" { count = 0 }\n  }\n}\n")}}
	tests := []struct {
		name     string
		overlay  fstest.MapFS
		greeting string
		workers  int
	}{
		{"base apps", nil, "hello", 1},
		{"review overlay", withOverlay, "hello from review", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tree := fstest.MapFS{}
			if err := copyInto(tree, examples); err != nil {
				t.Fatal(err)
			}
			for name, f := range tt.overlay {
				tree[name] = f
			}
			apps, err := review.Apps(tree, "pr-7")
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, app := range apps {
				names = append(names, app.Name)
				if app.Env != "pr-7" || !slices.Equal(app.Domains, []string{app.Name + ".pr-7.localhost"}) {
					t.Errorf("%s: env %s, domains %v", app.Name, app.Env, app.Domains)
				}
				if app.Name != "hello" {
					continue
				}
				if app.Config["GREETING"] != tt.greeting {
					t.Errorf("hello's GREETING = %q, want %q", app.Config["GREETING"], tt.greeting)
				}
				if worker, _ := app.Process("worker"); worker.Count != tt.workers {
					t.Errorf("hello runs %d workers, want %d", worker.Count, tt.workers)
				}
			}
			if !slices.Contains(names, "hello") || len(names) < 3 {
				t.Errorf("apps %v, want every app of the examples", names)
			}
		})
	}
}

func copyInto(dst fstest.MapFS, src fs.FS) error {
	return fs.WalkDir(src, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(src, name)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		dst[name] = &fstest.MapFile{Data: data, Mode: info.Mode()}
		return nil
	})
}
