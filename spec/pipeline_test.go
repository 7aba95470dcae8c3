package spec_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/manifold-paas/manifold/spec"
)

var slugKey = "sha256:" + strings.Repeat("ab", 32)

// TestLoadPipeline reads a pin, build_config and soak, in HCL and YAML alike.
func TestLoadPipeline(t *testing.T) {
	t.Parallel()
	base := lines(
		`app "a" {`,
		`  source { path = "../src/a" }`,
		`  config = { BUILD_FLAGS = "-x", SECRET = "s" }`,
		`  build_config = ["BUILD_FLAGS", "BUILD_FLAGS"]`,
		`}`,
	)
	for _, tc := range []struct{ name, file, content string }{
		{"hcl", "environments/production.hcl", lines(
			`environment "production" {`,
			`  soak = "30m"`,
			`  app "a" {`,
			`    release {`,
			`      slug = "`+slugKey+`"`,
			`      from = "staging v42"`,
			`    }`,
			`  }`,
			`}`,
		)},
		{"yaml", "environments/production.yaml", lines(
			`environment:`,
			`  production:`,
			`    soak: 30m`,
			`    app:`,
			`      a:`,
			`        release:`,
			`          slug: "`+slugKey+`"`,
			`          from: staging v42`,
		)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			desired, diags := spec.Load(repo(t, map[string]string{
				"apps/a.hcl": base, tc.file: tc.content,
				"environments/staging.hcl": `environment "staging" {}` + "\n",
			}), spec.LoadOptions{})
			if diags != nil {
				t.Fatal(diags)
			}
			prod, _ := desired.Lookup("production", "a")
			if prod.Pin == nil || *prod.Pin != (spec.ReleasePin{Slug: slugKey, From: "staging v42"}) {
				t.Errorf("pin = %+v", prod.Pin)
			}
			if prod.SoakSeconds != 1800 {
				t.Errorf("soak = %d s, want 1800", prod.SoakSeconds)
			}
			if !slices.Equal(prod.BuildConfig, []string{"BUILD_FLAGS"}) {
				t.Errorf("build_config = %v", prod.BuildConfig)
			}
			staging, _ := desired.Lookup("staging", "a")
			if staging.Pin != nil || staging.SoakSeconds != 0 {
				t.Errorf("staging got production's pin or soak: %+v %d", staging.Pin, staging.SoakSeconds)
			}
		})
	}
}

func TestLoadPipelineErrors(t *testing.T) {
	t.Parallel()
	base := lines(`app "a" {`, `  source { path = "../src/a" }`, `}`)
	cases := []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"malformed slug hcl", map[string]string{"environments/p.hcl": lines(
			`environment "p" {`,
			`  app "a" {`,
			`    release { slug = "sha256:nothex" }`,
			`  }`,
			`}`,
		)}, `environments/p.hcl:3:22: release: slug "sha256:nothex" is not a slug key: want "sha256:" and 64 lowercase hex digits`},
		{"malformed slug yaml", map[string]string{"environments/p.yaml": lines(
			`environment:`,
			`  p:`,
			`    app:`,
			`      a:`,
			`        release: {slug: "md5:1234"}`,
		)}, `environments/p.yaml:5:25: release: slug "md5:1234" is not a slug key: want "sha256:" and 64 lowercase hex digits`},
		{"pin without slug", map[string]string{"environments/p.hcl": lines(
			`environment "p" {`,
			`  app "a" {`,
			`    release { from = "staging v1" }`,
			`  }`,
			`}`,
		)}, `environments/p.hcl:3:5: release: set slug = "sha256:<64 hex digits>" (the slug to run)`},
		{"pin in a base spec", map[string]string{"apps/a.hcl": lines(
			`app "a" {`,
			`  source { path = "../src/a" }`,
			`  release { slug = "`+slugKey+`" }`,
			`}`,
		)}, `apps/a.hcl:3:3: release: a slug is pinned per environment: move this block into the app block of an environment file`},
		{"bad soak", map[string]string{"environments/p.hcl": lines(
			`environment "p" {`,
			`  soak = "30 minutes"`,
			`}`,
		)}, `environments/p.hcl:2:10: soak: "30 minutes" is not a duration: want e.g. "30m", "2h" or "0s"`},
		{"bad build_config name", map[string]string{"apps/a.hcl": lines(
			`app "a" {`,
			`  source { path = "../src/a" }`,
			`  build_config = ["OK", "NOT-OK"]`,
			`}`,
		)}, `apps/a.hcl:3:25: build_config: invalid config var name "NOT-OK": want [A-Za-z_][A-Za-z0-9_]*`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			files := map[string]string{"apps/a.hcl": base}
			for k, v := range tc.files {
				files[k] = v
			}
			_, diags := spec.Load(repo(t, files), spec.LoadOptions{})
			if got := diags.Error(); got != tc.want {
				t.Errorf("diagnostics:\n got: %s\nwant: %s", got, tc.want)
			}
		})
	}
}
