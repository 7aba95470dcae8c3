package spec_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/manifold-paas/manifold/spec"
)

// The fuzz targets feed arbitrary bytes in as an apps file, an environment file and a
// Procfile. Load must never panic, and a load either succeeds or explains itself
// with positioned diagnostics.

func seedFiles(f *testing.F, globs ...string) {
	for _, g := range globs {
		matches, err := filepath.Glob(g)
		if err != nil {
			f.Fatal(err)
		}
		for _, m := range matches {
			data, err := os.ReadFile(m)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
}

func checkLoad(t *testing.T, files map[string]string) {
	desired, diags := spec.Load(repo(t, files), spec.LoadOptions{})
	if (desired == nil) == (len(diags) == 0) {
		t.Fatalf("Load returned desired=%v with %d diagnostics", desired != nil, len(diags))
	}
	for _, d := range diags {
		if d.Pos.File == "" || d.Pos.Line < 1 || d.Pos.Col < 1 || d.Message == "" {
			t.Fatalf("diagnostic without a position or message: %+v", d)
		}
	}
}

func FuzzLoadHCL(f *testing.F) {
	seedFiles(f, "../examples/apps/*.hcl", "../examples/environments/*.hcl", "testdata/mirror/*/*.hcl")
	f.Add([]byte(appA))
	f.Add([]byte(`app "a" { source { path = "../src/a" } process "web" { count = 1e400 } }`))
	f.Add([]byte(`app "a" { config = { "${x}" = 1, (y) = [1] } }`))
	f.Add([]byte("app \"a\" {\n  source { path = \"../src/a\" }\n  process \"web\" { count = -0.5 }\n}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkLoad(t, map[string]string{"apps/x.hcl": string(data)})
		checkLoad(t, map[string]string{"apps/a.hcl": appA, "environments/x.hcl": string(data)})
	})
}

func FuzzLoadYAML(f *testing.F) {
	seedFiles(f, "../examples/apps/*.yaml", "../examples/environments/*.yaml", "testdata/mirror/*/*.yaml")
	f.Add([]byte("app:\n  a:\n    source: {path: ../src/a}\n    process: {web: {count: .nan}}\n"))
	f.Add([]byte("app: &x\n  a: *x\n"))
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("app:\n  a:\n    <<: {x: 1}\n---\napp: {b: ~}\n"))
	f.Add([]byte("app:\n  a:\n    source: {path: ../src/a}\n    config: {A: 0x10, B: 1e3, C: !!binary aGk=, D: 2001-12-14}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkLoad(t, map[string]string{"apps/x.yaml": string(data)})
		checkLoad(t, map[string]string{"apps/a.hcl": appA, "environments/x.yaml": string(data)})
	})
}

func FuzzProcfile(f *testing.F) {
	seedFiles(f, "testdata/procfiles/*.Procfile", "../examples/src/*/Procfile")
	if corpus := procfileCorpus(f); corpus != "" {
		seedFiles(f, filepath.Join(corpus, "*Procfile*"))
	}
	f.Add([]byte("web: a\r\nweb: b\n:\n  x:y\n\xef\xbb\xbf"))
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, diags := spec.ParseProcfile("Procfile", data)
		seen := map[string]bool{}
		for _, e := range entries {
			if e.Type == "" || strings.TrimSpace(e.Command) == "" || e.Line < 1 || seen[e.Type] {
				t.Fatalf("bad entry %+v", e)
			}
			seen[e.Type] = true
		}
		for _, d := range diags {
			if d.Pos.Line < 1 || d.Pos.Col < 1 {
				t.Fatalf("diagnostic without a position: %+v", d)
			}
		}
		// The Procfile as a source's: Load reports its problems, never panics.
		checkLoad(t, map[string]string{"apps/a.hcl": appA, "src/a/Procfile": string(data)})
	})
}

// TestYAMLAliasBombs checks that self-referencing and exponentially expanding aliases
// end in one diagnostic each, not a crash or a hang.
func TestYAMLAliasBombs(t *testing.T) {
	t.Parallel()
	bomb := "x0: &a0 [v, v, v, v, v, v, v, v, v, v]\n"
	for i := 1; i < 9; i++ {
		bomb += strings.ReplaceAll("xN: &aN [*aP, *aP, *aP, *aP, *aP, *aP, *aP, *aP, *aP, *aP]\n", "N", string(rune('0'+i)))
		bomb = strings.ReplaceAll(bomb, "aP", "a"+string(rune('0'+i-1)))
	}
	cases := map[string]struct{ src, want string }{
		"self reference": {
			src:  "app:\n  a:\n    source: {path: ../src/a}\n    domains: &d [*d]\n",
			want: "apps/x.yaml:4:14: value nested more than 32 deep (an alias inside itself?)",
		},
		"billion laughs": {
			src:  "app:\n  a:\n    source: {path: ../src/a}\n" + indent(bomb, "    ") + "    config: {A: *a8}\n",
			want: "apps/x.yaml:4:32: file too large: more than 100000 values (YAML aliases expand too far?)",
		},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, diags := spec.Load(repo(t, map[string]string{"apps/x.yaml": c.src}), spec.LoadOptions{})
			if len(diags) == 0 || !strings.Contains(diags.Error(), c.want) {
				t.Errorf("diagnostics:\n%v\nwant among them: %s", diags, c.want)
			}
			if len(diags) > 20 {
				t.Errorf("%d diagnostics; a bomb should be reported once", len(diags))
			}
		})
	}
}

func indent(s, prefix string) string {
	return prefix + strings.ReplaceAll(strings.TrimSuffix(s, "\n"), "\n", "\n"+prefix) + "\n"
}

func TestDeepNesting(t *testing.T) {
	t.Parallel()
	deep := "app \"a\" {\n  domains = " + strings.Repeat("[", 1_000_000) + "\n}\n"
	_, diags := spec.Load(repo(t, map[string]string{"apps/x.hcl": deep}), spec.LoadOptions{})
	if want := "apps/x.hcl:2:268: brackets nested more than 256 deep"; diags.Error() != want {
		t.Errorf("diagnostics: %v, want %s", diags, want)
	}
}
