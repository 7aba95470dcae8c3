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

func TestLoadReview(t *testing.T) {
	t.Parallel()
	desired, diags := spec.Load(repo(t, map[string]string{
		"apps/a.hcl":   lines(`app "a" {`, `  source { path = "../src/a" }`, `}`),
		"manifold.hcl": lines(`review {`, `  refs = ["refs/pull/*/head"]`, `  branches = ["review/*"]`, `  ttl = "72h"`, `}`),
	}), spec.LoadOptions{})
	if diags != nil {
		t.Fatal(diags)
	}
	want := spec.Review{Refs: []string{"refs/pull/*/head"}, Branches: []string{"review/*"}, TTLSeconds: 72 * 3600, Max: spec.DefaultReviewMax}
	if r := desired.Platform.Review; r == nil || !slices.Equal(r.Refs, want.Refs) || !slices.Equal(r.Branches, want.Branches) || r.TTLSeconds != want.TTLSeconds || r.Max != want.Max {
		t.Errorf("review = %+v, want %+v", desired.Platform.Review, want)
	}
	for ref, name := range map[string]string{
		"refs/pull/7/head":             "pr-7",
		"refs/heads/review/login-form": "review-login-form",
		"refs/heads/review/Fix_Bug#12": "review-fix-bug-12",
		"refs/heads/main":              "",
		"refs/pull/7/merge":            "",
		"refs/heads/review/a/b":        "", // * does not cross /
	} {
		got, ok := want.EnvName(ref)
		if ok != (name != "") || got != name && ok {
			t.Errorf("EnvName(%s) = %q, %v; want %q", ref, got, ok, name)
		}
	}
	_, diags = spec.Load(repo(t, map[string]string{
		"apps/a.hcl":   lines(`app "a" {`, `  source { path = "../src/a" }`, `}`),
		"manifold.hcl": lines(`review {`, `  branches = ["refs/heads/x"]`, `  max = 0`, `}`),
	}), spec.LoadOptions{})
	wantDiags := "manifold.hcl:1:1: review: set refs = [\"refs/pull/*/head\"] or branches = [\"review/*\"]\n" +
		"manifold.hcl:2:15: branches: \"refs/heads/x\" is not a branch pattern: want a branch name such as \"review/*\"\n" +
		"manifold.hcl:3:9: max: must be at least 1, got 0"
	if got := diags.Error(); got != wantDiags {
		t.Errorf("diagnostics:\n%s\nwant:\n%s", got, wantDiags)
	}
}
