package spec_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/manifold-paas/manifold/spec"
)

func TestPinRelease(t *testing.T) {
	t.Parallel()
	pin := spec.ReleasePin{Slug: "sha256:" + repeat("a", 64), From: "staging v42"}
	tests := []struct {
		name, file, content, want string
	}{
		{
			name: "hcl, app named", file: "environments/production.hcl",
			content: "# production\nenvironment \"production\" {\n  app \"hello\" {\n    config = { A = \"1\" }\n  }\n}\n",
			want:    "# production\nenvironment \"production\" {\n  app \"hello\" {\n    config = { A = \"1\" }\n    release {\n      slug = \"" + pin.Slug + "\"\n      from = \"staging v42\"\n    }\n  }\n}\n",
		},
		{
			name: "hcl, app not named, pin replaced", file: "environments/production.hcl",
			content: "environment \"staging\" {}\nenvironment \"production\" {\n}\n",
			want:    "environment \"staging\" {}\nenvironment \"production\" {\n  app \"hello\" {\n    release {\n      slug = \"" + pin.Slug + "\"\n      from = \"staging v42\"\n    }\n  }\n}\n",
		},
		{
			name: "yaml", file: "environments/production.yaml",
			content: "# production\nenvironment:\n  production:\n    app:\n      hello:\n        domains: [hello.example.com]\n",
			want:    "# production\nenvironment:\n  production:\n    app:\n      hello:\n        domains: [hello.example.com]\n        release:\n          slug: \"" + pin.Slug + "\"\n          from: staging v42\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := spec.PinRelease(tt.file, []byte(tt.content), "production", "hello", pin)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("got\n%s\nwant\n%s", got, tt.want)
			}
			// Pinning again replaces the pin: the result is the same.
			again, err := spec.PinRelease(tt.file, got, "production", "hello", pin)
			if err != nil || string(again) != string(got) {
				t.Errorf("pinning twice: %v\n%s", err, again)
			}
		})
	}
	if _, err := spec.PinRelease("environments/x.hcl", []byte("environment \"staging\" {}\n"), "production", "hello", pin); err == nil {
		t.Error("pinned into a file without the environment")
	}
}

func TestEnvironmentFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "environments"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{
		"staging.hcl":     "environment \"staging\" {}\n",
		"production.yaml": "environment:\n  production: {}\n",
		"README.md":       "environment \"production\"",
	} {
		if err := os.WriteFile(filepath.Join(dir, "environments", name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for env, want := range map[string]string{"staging": "environments/staging.hcl", "production": "environments/production.yaml"} {
		got, err := spec.EnvironmentFile(os.DirFS(dir), env)
		if err != nil || got != want {
			t.Errorf("EnvironmentFile(%s) = %q, %v; want %q", env, got, err, want)
		}
	}
	if _, err := spec.EnvironmentFile(os.DirFS(dir), "review"); err == nil {
		t.Error("found a file for an environment no file declares")
	}
}

func repeat(s string, n int) string {
	out := ""
	for range n {
		out += s
	}
	return out
}
