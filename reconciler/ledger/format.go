package ledger

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// FormatTable prints releases the way `heroku releases` does, one aligned line per
// release: version, description, author, age relative to now, status (with its
// reason when there is one, and a review environment's mark). releases come newest first, as List returns them. The
// "=== app Releases" header is the caller's, which knows the app when the list is
// empty.
func FormatTable(w io.Writer, releases []Release, now time.Time) error {
	if len(releases) == 0 {
		_, err := fmt.Fprintln(w, "No releases yet.")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, r := range releases {
		author := r.Author
		if author == "" {
			author = "unknown"
		}
		status := string(r.Status)
		if r.StatusReason != "" {
			status += " (" + r.StatusReason + ")"
		}
		if r.Review != nil {
			status += "  " + r.Review.String()
		}
		fmt.Fprintf(tw, "v%d\t%s\t%s\t%s\t%s\n", r.Version, r.Description, author, Age(r.CreatedAt, now), status)
	}
	return tw.Flush()
}

// Age says how long before now t was, as Heroku prints it: "12s ago", "3m ago",
// "5h ago", "2d ago"; "just now" for times at or after now.
func Age(t, now time.Time) string {
	d := now.Sub(t)
	switch {
	case d <= 0:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d/time.Minute))
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh ago", int(d/time.Hour))
	}
	return fmt.Sprintf("%dd ago", int(d/(24*time.Hour)))
}

// String is how the ledger's readers show the mark: "review refs/pull/7/head@1a2b3c4".
func (r *Review) String() string {
	commit := r.Commit
	if len(commit) > 7 {
		commit = commit[:7]
	}
	return "review " + r.Ref + "@" + commit
}
