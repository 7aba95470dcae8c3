package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	t.Parallel()
	broken := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		p := filepath.Join(broken, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("apps/a.hcl", "app \"a\" {\n  source { path = \"../src/a\" }\n  process \"web\" { count = -1 }\n}\n")
	write("apps/b.yaml", "app:\n  b:\n    source: {path: ../src/missing}\n")
	write("src/a/Procfile", "web: ./web\nnot a line\n")
	empty := t.TempDir()

	cases := []struct {
		name           string
		args           []string
		code           int
		stdout, stderr string
	}{
		{
			name:   "examples",
			args:   []string{"validate", "../../examples"},
			code:   0,
			stdout: "OK: 4 apps × 2 environments (production, staging)\n",
		},
		{
			name:   "an empty repo",
			args:   []string{"validate", empty},
			code:   0,
			stdout: "OK: 0 apps × 1 environment (default)\n",
		},
		{
			name: "every problem of a broken repo",
			args: []string{"validate", broken},
			code: 1,
			stderr: strings.Join([]string{
				"apps/a.hcl:3:27: count: must not be negative, got -1",
				`apps/b.yaml:3:20: source path "../src/missing" (src/missing) does not exist`,
				`src/a/Procfile:2:1: malformed Procfile line: want "name: command"`,
			}, "\n") + "\n",
		},
		{
			name:   "a folder that does not exist",
			args:   []string{"validate", filepath.Join(empty, "nope")},
			code:   1,
			stderr: "manifold: validate: stat " + filepath.Join(empty, "nope") + ": no such file or directory\n",
		},
		{
			name:   "too many arguments",
			args:   []string{"validate", "a", "b"},
			code:   1,
			stderr: "manifold: accepts at most 1 arg(s), received 2\n",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, stdout, stderr := runCLI(t, tc.args...)
			if code != tc.code || stdout != tc.stdout || stderr != tc.stderr {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nwant:\n%s\nstderr:\n%s\nwant:\n%s", code, tc.code, stdout, tc.stdout, stderr, tc.stderr)
			}
		})
	}
}
