package spec_test

import (
	"testing"

	"github.com/manifold-paas/manifold/spec"
)

// TestLoadAppReview reads `review = true` on an app with a git source, in HCL and
// YAML alike, and the review overlay turning it off or on.
func TestLoadAppReview(t *testing.T) {
	t.Parallel()
	review := lines(`environment "review" {`, `  app "b" {`, `    review = false`, `  }`, `}`)
	cases := []struct {
		name  string
		files map[string]string
	}{
		{"hcl", map[string]string{
			"apps/b.hcl": lines(`app "b" {`, `  source {`, `    git = "https://git.example.com/b.git"`, `  }`, `  review = true`, `}`),
		}},
		{"yaml", map[string]string{
			"apps/b.yaml": lines(`app:`, `  b:`, `    source: {git: "https://git.example.com/b.git"}`, `    review: true`),
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.files["environments/production.hcl"] = `environment "production" {}` + "\n"
			tc.files["environments/review.hcl"] = review
			desired, diags := spec.Load(repo(t, tc.files), spec.LoadOptions{})
			if diags != nil {
				t.Fatal(diags)
			}
			for env, want := range map[string]bool{"production": true, "review": false} {
				app, ok := desired.Lookup(env, "b")
				if !ok || app.Review != want {
					t.Errorf("b in %s: review = %v, want %v", env, app.Review, want)
				}
			}
		})
	}
}

// TestLoadAppReviewErrors: `review = true` needs a git source, said at the file:line:col
// of the attribute; the environment is named when an environment's source makes the
// app a folder's.
func TestLoadAppReviewErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"folder source hcl", map[string]string{"apps/a.hcl": lines(
			`app "a" {`,
			`  source { path = "../src/a" }`,
			`  review = true`,
			`}`,
		)}, `apps/a.hcl:3:12: review = true needs a git source, and app "a" builds a folder of the config repo: its review environments come from the config repo's refs (the review block of manifold.hcl)`},
		{"folder source yaml", map[string]string{"apps/a.yaml": lines(
			`app:`,
			`  a:`,
			`    source: {path: ../src/a}`,
			`    review: true`,
		)}, `apps/a.yaml:4:13: review = true needs a git source, and app "a" builds a folder of the config repo: its review environments come from the config repo's refs (the review block of manifold.hcl)`},
		{"an environment's folder source", map[string]string{
			"apps/a.hcl": lines(`app "a" {`, `  source { git = "https://git.example.com/a.git" }`, `  review = true`, `}`),
			"environments/p.hcl": lines(
				`environment "p" {`,
				`  app "a" {`,
				`    source { path = "../src/a" }`,
				`  }`,
				`}`,
			)}, `apps/a.hcl:3:12: review = true needs a git source, and app "a" in environment "p" builds a folder of the config repo: its review environments come from the config repo's refs (the review block of manifold.hcl)`},
		{"an environment named as an app source's review environment", map[string]string{"environments/a--pr-7.hcl": lines(
			`environment "a--pr-7" {}`,
		)}, `environments/a--pr-7.hcl:1:13: invalid environment name "a--pr-7": "--" is kept for the review environments of apps' git sources (hello--pr-7)`},
		{"not a bool", map[string]string{"apps/a.hcl": lines(
			`app "a" {`,
			`  source { git = "https://git.example.com/a.git" }`,
			`  review = "yes"`,
			`}`,
		)}, `apps/a.hcl:3:12: review: want a bool, got string`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, diags := spec.Load(repo(t, tc.files), spec.LoadOptions{})
			if got := diags.Error(); got != tc.want {
				t.Errorf("diagnostics:\n got: %s\nwant: %s", got, tc.want)
			}
		})
	}
}
