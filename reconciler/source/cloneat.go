package source

import (
	"context"
)

// CloneAt is Clone for a caller that already knows the commit ref points to (a
// listing of the remote's refs said so, as for a review app): when dir holds a
// clone of url at that commit, it is used as it is, without asking the remote;
// otherwise Clone fetches ref. The commit checked out is the remote ref's at the
// fetch, which may have moved on since the listing.
func CloneAt(ctx context.Context, url, ref, commit, dir string) (Revision, error) {
	if origin, head, err := existingClone(dir); err == nil && head == commit {
		if target, err := normalizeURL(url); err == nil && origin == target {
			return localRevision(dir, ref)
		}
	}
	return Clone(ctx, url, ref, dir)
}
