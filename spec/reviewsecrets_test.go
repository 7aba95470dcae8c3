package spec_test

import (
	"slices"
	"testing"

	"github.com/manifold-paas/manifold/spec"
)

// recipient2 is another real X25519 public key: the review overlay's own.
const recipient2 = "age1qyp6p942rmxk5qt07fpmzamwaha46d5azsv4r5k9p2yyee9zecssn7x640"

// TestReviewRecipients: with a review block, environments/review.hcl seals to keys of
// its own; one it shares with another environment is refused where it is written.
// Without a review block, "review" is an environment like any other.
func TestReviewRecipients(t *testing.T) {
	t.Parallel()
	env := func(name, recipient string) string {
		return lines(
			`environment "`+name+`" {`,
			`  recipients = ["`+recipient+`"]`,
			`  app "a" {`,
			`    secrets = { TOKEN = "`+sealedDB+`" }`,
			`  }`,
			`}`,
		)
	}
	const reviewBlock = "review {\n  refs = [\"refs/pull/*/head\"]\n}\n"
	tests := []struct {
		name, manifold, reviewKey string
		want                      string
	}{
		{"own key", reviewBlock, recipient2, ""},
		{"production's key", reviewBlock, recipient1,
			`environments/review.hcl:2:17: recipients: "` + recipient1 + `" is also a recipient of environment "production": review environments run any pull request's code, so their secrets are sealed to keys of their own (` + "`manifold secret keygen`" + `)`},
		{"no review block", "", recipient1, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			files := map[string]string{
				"apps/a.hcl":                  appA,
				"environments/production.hcl": env("production", recipient1),
				"environments/review.hcl":     env("review", tt.reviewKey),
			}
			if tt.manifold != "" {
				files["manifold.hcl"] = tt.manifold
			}
			desired, diags := spec.Load(repo(t, files), spec.LoadOptions{Env: spec.ReviewEnvironment})
			if tt.want != "" {
				if diags.Error() != tt.want {
					t.Errorf("diagnostics:\n got: %v\nwant: %s", diags, tt.want)
				}
				return
			}
			if diags != nil {
				t.Fatal(diags)
			}
			app, _ := desired.Lookup(spec.ReviewEnvironment, "a")
			if got := app.Secrets["TOKEN"]; got.Env != spec.ReviewEnvironment || got.Sealed != sealedDB {
				t.Errorf("review's TOKEN = %+v, want sealed for %q", got, spec.ReviewEnvironment)
			}
		})
	}
}

// TestReviewOverlayIsNoEnvironment: with a review block, environments/review.hcl is
// the overlay of the review environments, so a load of every environment leaves it
// out (nothing deploys hello.review.localhost) and only a load by name reads it.
// Without a review block it is an environment like any other.
func TestReviewOverlayIsNoEnvironment(t *testing.T) {
	t.Parallel()
	const reviewBlock = "review {\n  refs = [\"refs/pull/*/head\"]\n}\n"
	tests := []struct {
		name, manifold string
		env            string
		want           []string
	}{
		{"review block, every environment", reviewBlock, "", []string{"production"}},
		{"review block, the overlay by name", reviewBlock, spec.ReviewEnvironment, []string{"review"}},
		{"no review block", "", "", []string{"production", "review"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			files := map[string]string{
				"apps/a.hcl":                  appA,
				"environments/production.hcl": "environment \"production\" {}\n",
				"environments/review.hcl":     "environment \"review\" {}\n",
			}
			if tt.manifold != "" {
				files["manifold.hcl"] = tt.manifold
			}
			desired, diags := spec.Load(repo(t, files), spec.LoadOptions{Env: tt.env})
			if diags != nil {
				t.Fatal(diags)
			}
			if !slices.Equal(desired.Environments, tt.want) {
				t.Errorf("environments = %v, want %v", desired.Environments, tt.want)
			}
			for _, app := range desired.Apps {
				if !slices.Contains(tt.want, app.Env) {
					t.Errorf("app %s/%s of an environment not loaded", app.Name, app.Env)
				}
			}
		})
	}
}
