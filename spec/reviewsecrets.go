package spec

import (
	"maps"
	"slices"
)

// reviewsecrets.go checks the one rule the review overlay adds to secrets: review
// environments run any pull request's code, so the keys their secrets are sealed to
// are their own, never another environment's.

// ReviewEnvironment is the environment whose file (environments/review.hcl|yaml)
// overlays every review environment when manifold.hcl has a review block. Its
// secrets, sealed for "review", are what every review environment (pr-7, …) runs.
const ReviewEnvironment = "review"

// checkReviewRecipients reports each recipient of the review overlay that another
// environment names too, at the overlay's recipient.
func (l *loader) checkReviewRecipients(platform Platform, envs map[string]*rawEnv) {
	overlay, ok := envs[ReviewEnvironment]
	if platform.Review == nil || !ok {
		return
	}
	owner := map[string]string{} // recipient -> the first environment (sorted) naming it
	for _, name := range slices.Sorted(maps.Keys(envs)) {
		if name == ReviewEnvironment {
			continue
		}
		for _, r := range envs[name].recipients.items {
			if _, seen := owner[r.v]; !seen {
				owner[r.v] = name
			}
		}
	}
	for _, r := range overlay.recipients.items {
		if other, shared := owner[r.v]; shared {
			l.sink.add(r.pos, "recipients: %q is also a recipient of environment %q: review environments run any pull request's code, so their secrets are sealed to keys of their own (`manifold secret keygen`)", r.v, other)
		}
	}
}
