package source

import (
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing/object"
)

// dirIDPrefix starts the Revision.ID of a local folder snapshot.
const dirIDPrefix = "dir:sha256:"

// Revision identifies the state a snapshot was taken at. For git it is a commit; for
// a local folder it is a content hash of the tree. Author and message become release
// descriptions and `api` log lines.
type Revision struct {
	// ID is the full commit sha for git, or "dir:sha256:<hex>" for a local folder.
	ID string `json:"id"`
	// Ref is the branch, tag or revision expression that was followed or asked for.
	Ref string `json:"ref,omitempty"`
	// Message is the first line of the commit message ("local change" for a folder).
	Message string `json:"message,omitempty"`
	// Author is the author's email address.
	Author string `json:"author,omitempty"`
	// AuthorName is the author's display name.
	AuthorName string `json:"author_name,omitempty"`
	// Time is the author time of the commit, or when a folder change was seen.
	Time time.Time `json:"time"`
}

// Short returns the first 7 characters of a commit sha (or the first 12 of a folder
// hash), for log lines and status output.
func (r Revision) Short() string {
	id := r.ID
	if h, ok := strings.CutPrefix(id, dirIDPrefix); ok {
		if len(h) > 12 {
			h = h[:12]
		}
		return "dir:" + h
	}
	if len(id) > 7 {
		return id[:7]
	}
	return id
}

// revisionOf builds a Revision from a go-git commit object.
func revisionOf(c *object.Commit, ref string) Revision {
	return Revision{
		ID:         c.Hash.String(),
		Ref:        ref,
		Message:    firstLine(c.Message),
		Author:     c.Author.Email,
		AuthorName: c.Author.Name,
		Time:       c.Author.When,
	}
}

func firstLine(msg string) string {
	msg = strings.TrimSpace(msg)
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i]
	}
	return strings.TrimSpace(msg)
}
