package spec_test

import (
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
