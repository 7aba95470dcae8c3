package source

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	fluxgit "github.com/fluxcd/pkg/git"
	"github.com/fluxcd/pkg/git/gogit"
	"github.com/fluxcd/pkg/git/repository"
	gogitv5 "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"github.com/go-git/go-git/v5/storage/memory"
)

// ErrUnknownRef reports that the remote has no branch or tag of the asked name (or
// that a commit is not in it). Test for it with errors.Is.
var ErrUnknownRef = errors.New("unknown ref")

// refError is an error that says which ref is unknown where; errors.Is(err,
// ErrUnknownRef) holds for it.
type refError struct{ msg string }

func (e *refError) Error() string        { return e.msg }
func (e *refError) Is(target error) bool { return target == ErrUnknownRef }

// fullSHA matches a full SHA-1 commit id; only a full id is cloned as a commit,
// because a short one cannot be told apart from a branch named like hex.
var fullSHA = regexp.MustCompile(`^[0-9a-f]{40}$`)

// scpLike matches git's scp-like ssh syntax ("git@host:org/repo.git"), which
// net/url (and so fluxcd's URL check) cannot parse.
var scpLike = regexp.MustCompile(`^([A-Za-z0-9._-]+@)?([A-Za-z0-9.-]+):([^/].*)$`)

// refKind says how a ref is checked out; it is learned once per source so a tag is
// not first tried as a branch on every poll.
type refKind int

const (
	kindUnknown refKind = iota
	kindBranch
	kindTag
	kindCommit
	kindRefName
	kindRemoteHEAD
)

// Clone clones ref (a branch, a tag, a full commit sha, a full "refs/..." name, or ""
// for the remote's HEAD) of the repository at url into dir and returns the commit
// checked out. url may be file://, https://, http://, ssh://, scp-like
// (git@host:org/repo) or a plain local path.
//
// Clone owns dir. When dir already holds a clone of url at the commit the remote ref
// points to, nothing is transferred. When the ref moved, a fresh clone is made in a
// sibling temporary directory and swapped in, so dir never holds a half-updated
// tree (fluxcd's client always works from a clean clone for the same reason). A dir
// that holds something other than a clone of url is refused, never overwritten.
func Clone(ctx context.Context, url, ref, dir string) (Revision, error) {
	c := cloner{url: url, ref: ref}
	return c.cloneTo(ctx, dir)
}

// cloner clones one url and ref; it remembers what kind of ref it is.
type cloner struct {
	url  string
	ref  string
	auth *fluxgit.AuthOptions // nil: derived from the URL scheme, anonymous
	kind refKind
}

// cloneTo implements Clone for a fixed dir (swap in place).
func (c *cloner) cloneTo(ctx context.Context, dir string) (Revision, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return Revision{}, fmt.Errorf("clone %s: %w", c.url, err)
	}
	target, err := normalizeURL(c.url)
	if err != nil {
		return Revision{}, fmt.Errorf("clone %s: %w", c.url, err)
	}
	last := ""
	if st, err := os.Stat(dir); err == nil {
		if !st.IsDir() {
			return Revision{}, fmt.Errorf("clone %s into %s: not a directory", c.url, dir)
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			return Revision{}, fmt.Errorf("clone %s into %s: %w", c.url, dir, err)
		}
		if len(entries) > 0 {
			origin, head, err := existingClone(dir)
			if err != nil {
				return Revision{}, fmt.Errorf("clone %s into %s: directory is not empty and not a clone: %w", c.url, dir, err)
			}
			if origin != target {
				return Revision{}, fmt.Errorf("clone %s into %s: directory holds a clone of %s", c.url, dir, origin)
			}
			last = head
		}
	}
	if last != "" && c.kind == kindUnknown && fullSHA.MatchString(c.ref) && last == c.ref {
		return localRevision(dir, c.ref)
	}

	tmp, rev, unchanged, err := c.fetchFresh(ctx, target, filepath.Dir(dir), last)
	if err != nil {
		return Revision{}, err
	}
	if unchanged {
		return localRevision(dir, c.ref)
	}
	if err := swapDir(tmp, dir); err != nil {
		os.RemoveAll(tmp)
		return Revision{}, fmt.Errorf("clone %s: %w", c.url, err)
	}
	return rev, nil
}

// fetchFresh clones into a new temporary directory under parent. When last (a commit
// sha) is still what the remote ref points to, nothing is cloned and unchanged is
// true. Otherwise the caller owns tmp and must move or remove it.
func (c *cloner) fetchFresh(ctx context.Context, target, parent, last string) (tmp string, rev Revision, unchanged bool, err error) {
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", Revision{}, false, fmt.Errorf("clone %s: %w", c.url, err)
	}
	if c.kind == kindCommit && last == c.ref {
		return "", Revision{}, true, nil
	}
	kinds := []refKind{c.kind}
	if c.kind == kindUnknown {
		switch {
		case c.ref == "":
			kinds = []refKind{kindRemoteHEAD}
		case fullSHA.MatchString(c.ref):
			kinds = []refKind{kindCommit}
		case strings.HasPrefix(c.ref, "refs/"):
			kinds = []refKind{kindRefName}
		default:
			kinds = []refKind{kindBranch, kindTag}
		}
	}
	for _, kind := range kinds {
		if kind == kindCommit && last == c.ref {
			return "", Revision{}, true, nil
		}
		tmp, err := os.MkdirTemp(parent, ".clone-*")
		if err != nil {
			return "", Revision{}, false, fmt.Errorf("clone %s: %w", c.url, err)
		}
		commit, err := c.cloneOnce(ctx, target, tmp, kind, last)
		if err != nil {
			os.RemoveAll(tmp)
			if isRefNotFound(err) {
				continue
			}
			return "", Revision{}, false, fmt.Errorf("clone %s at %q: %w", c.url, c.ref, err)
		}
		c.kind = kind
		if !fluxgit.IsConcreteCommit(*commit) {
			// fluxcd saw the remote ref still at last and skipped the clone.
			os.RemoveAll(tmp)
			return "", Revision{}, true, nil
		}
		if last != "" && string(commit.Hash) == last {
			os.RemoveAll(tmp)
			return "", Revision{}, true, nil
		}
		return tmp, Revision{
			ID:         string(commit.Hash),
			Ref:        c.ref,
			Message:    firstLine(commit.Message),
			Author:     commit.Author.Email,
			AuthorName: commit.Author.Name,
			Time:       commit.Author.When,
		}, false, nil
	}
	what := "no branch or tag of that name"
	if len(kinds) == 1 && kinds[0] == kindCommit {
		what = "no such commit"
	}
	return "", Revision{}, false, &refError{msg: fmt.Sprintf("clone %s: unknown ref %q: %s", c.url, c.ref, what)}
}

// cloneOnce runs one fluxcd clone of kind into the empty directory tmp.
func (c *cloner) cloneOnce(ctx context.Context, target, tmp string, kind refKind, last string) (*fluxgit.Commit, error) {
	auth, opts := c.authFor(target)
	opts = append(opts, gogit.WithDiskStorage())
	client, err := gogit.NewClient(tmp, auth, opts...)
	if err != nil {
		return nil, err
	}
	defer client.Close()
	cfg := repository.CloneConfig{}
	observed := func(name string) string {
		if last == "" {
			return ""
		}
		return name + "@sha1:" + last
	}
	switch kind {
	case kindBranch:
		cfg.Branch = c.ref
		cfg.LastObservedCommit = observed(c.ref)
	case kindTag:
		cfg.Tag = c.ref
		cfg.LastObservedCommit = observed(c.ref)
	case kindCommit:
		cfg.Commit = c.ref
	case kindRefName:
		cfg.RefName = c.ref
		cfg.LastObservedCommit = observed(c.ref)
	case kindRemoteHEAD:
		// fluxcd defaults an empty branch to "master" and cannot follow the
		// symbolic HEAD ref, so ask the remote which branch HEAD names.
		branch, err := c.remoteHEADBranch(ctx, target)
		if err != nil {
			return nil, err
		}
		cfg.Branch = branch
		cfg.LastObservedCommit = observed(branch)
	}
	commit, err := client.Clone(ctx, target, cfg)
	if err != nil {
		return nil, err
	}
	if commit == nil {
		// fluxcd returns no commit (and an initialised repo) for an empty remote.
		return nil, fmt.Errorf("repository %s has no commits", c.url)
	}
	return commit, nil
}

// authFor returns fluxcd auth options for the URL's scheme. fluxcd refuses a nil
// Transport, and file:// (or a plain path) has none of its own, so local
// repositories are given the HTTP transport without credentials: no auth method
// is built and go-git's file transport runs git-upload-pack locally.
func (c *cloner) authFor(target string) (*fluxgit.AuthOptions, []gogit.ClientOption) {
	if c.auth != nil {
		auth := *c.auth
		var opts []gogit.ClientOption
		if auth.Transport == fluxgit.SSH && len(auth.Identity) == 0 {
			opts = append(opts, gogit.WithFallbackToDefaultKnownHosts())
		}
		return &auth, opts
	}
	u, err := url.Parse(target)
	if err != nil {
		return &fluxgit.AuthOptions{Transport: fluxgit.HTTP}, nil
	}
	switch u.Scheme {
	case "https":
		return &fluxgit.AuthOptions{Transport: fluxgit.HTTPS}, nil
	case "ssh":
		user := fluxgit.DefaultPublicKeyAuthUser
		if u.User != nil && u.User.Username() != "" {
			user = u.User.Username()
		}
		// Without a key of our own, use the ssh agent and ~/.ssh/known_hosts as
		// the git CLI would.
		return &fluxgit.AuthOptions{Transport: fluxgit.SSH, Host: u.Host, Username: user},
			[]gogit.ClientOption{gogit.WithFallbackToDefaultKnownHosts()}
	default:
		return &fluxgit.AuthOptions{Transport: fluxgit.HTTP}, nil
	}
}

// remoteHEADBranch lists the remote's refs and returns the branch its HEAD names.
func (c *cloner) remoteHEADBranch(ctx context.Context, target string) (string, error) {
	var auth transport.AuthMethod
	if c.auth != nil {
		switch {
		case c.auth.BearerToken != "":
			auth = &githttp.TokenAuth{Token: c.auth.BearerToken}
		case c.auth.Username != "" && c.auth.Transport != fluxgit.SSH:
			auth = &githttp.BasicAuth{Username: c.auth.Username, Password: c.auth.Password}
		}
	}
	if auth == nil {
		if u, err := url.Parse(target); err == nil && u.Scheme == "ssh" {
			user := fluxgit.DefaultPublicKeyAuthUser
			if u.User != nil && u.User.Username() != "" {
				user = u.User.Username()
			}
			if a, err := gitssh.DefaultAuthBuilder(user); err == nil {
				auth = a
			}
		}
	}
	remote := gogitv5.NewRemote(memory.NewStorage(), &config.RemoteConfig{Name: fluxgit.DefaultRemote, URLs: []string{target}})
	refs, err := remote.ListContext(ctx, &gogitv5.ListOptions{Auth: auth})
	if err != nil {
		return "", fmt.Errorf("list refs of %s: %w", c.url, err)
	}
	var headHash plumbing.Hash
	for _, ref := range refs {
		if ref.Name() != plumbing.HEAD {
			continue
		}
		if ref.Type() == plumbing.SymbolicReference && ref.Target().IsBranch() {
			return ref.Target().Short(), nil
		}
		headHash = ref.Hash()
	}
	// Servers that do not advertise the symref: pick the branch HEAD points at,
	// preferring main and master when several do.
	var match []string
	for _, ref := range refs {
		if ref.Name().IsBranch() && ref.Hash() == headHash && !headHash.IsZero() {
			match = append(match, ref.Name().Short())
		}
	}
	for _, pref := range []string{"main", "master"} {
		if slices.Contains(match, pref) {
			return pref, nil
		}
	}
	if len(match) > 0 {
		return match[0], nil
	}
	return "", fmt.Errorf("remote %s has no HEAD branch: %w", c.url, ErrUnknownRef)
}

// normalizeURL turns a plain local path into an absolute path and scp-like ssh
// syntax into an ssh:// URL; other URLs pass through.
func normalizeURL(raw string) (string, error) {
	if raw == "" {
		return "", errors.New("empty repository URL")
	}
	if strings.Contains(raw, "://") {
		if _, err := url.Parse(raw); err != nil {
			return "", fmt.Errorf("invalid repository URL: %w", err)
		}
		return raw, nil
	}
	if m := scpLike.FindStringSubmatch(raw); m != nil && !filepath.IsAbs(raw) {
		if _, err := os.Stat(raw); err != nil { // a relative path may contain a colon
			return "ssh://" + m[1] + m[2] + "/" + m[3], nil
		}
	}
	abs, err := filepath.Abs(raw)
	if err != nil {
		return "", err
	}
	return abs, nil
}

// isRefNotFound tells a missing branch or tag from other clone failures; fluxcd
// reports both a missing repository and a missing ref as ErrRepositoryNotFound, so
// the message is the only distinction.
func isRefNotFound(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "couldn't find remote ref") ||
		strings.Contains(msg, "reference not found") ||
		strings.Contains(msg, "unable to resolve ref") ||
		strings.Contains(msg, "object not found")
}

// existingClone returns the origin URL (normalised) and HEAD commit of the clone in dir.
func existingClone(dir string) (origin, head string, err error) {
	repo, err := gogitv5.PlainOpen(dir)
	if err != nil {
		return "", "", err
	}
	remote, err := repo.Remote(fluxgit.DefaultRemote)
	if err != nil {
		return "", "", err
	}
	urls := remote.Config().URLs
	if len(urls) == 0 {
		return "", "", errors.New("origin has no URL")
	}
	h, err := repo.Head()
	if err != nil {
		return "", "", err
	}
	return urls[0], h.Hash().String(), nil
}

// localRevision reads the HEAD commit of the clone in dir.
func localRevision(dir, ref string) (Revision, error) {
	repo, err := gogitv5.PlainOpen(dir)
	if err != nil {
		return Revision{}, fmt.Errorf("open clone %s: %w", dir, err)
	}
	h, err := repo.Head()
	if err != nil {
		return Revision{}, fmt.Errorf("read HEAD of %s: %w", dir, err)
	}
	commit, err := repo.CommitObject(h.Hash())
	if err != nil {
		return Revision{}, fmt.Errorf("read commit %s in %s: %w", h.Hash(), dir, err)
	}
	return revisionOf(commit, ref), nil
}

// swapDir replaces dir with tmp (a sibling) so that dir is either the old clone or
// the new one, never a mix.
func swapDir(tmp, dir string) error {
	if _, err := os.Stat(dir); os.IsNotExist(err) {
		return os.Rename(tmp, dir)
	}
	old, err := os.MkdirTemp(filepath.Dir(dir), ".old-*")
	if err != nil {
		return err
	}
	if err := os.Remove(old); err != nil {
		return err
	}
	if err := os.Rename(dir, old); err != nil {
		return err
	}
	if err := os.Rename(tmp, dir); err != nil {
		if rerr := os.Rename(old, dir); rerr != nil {
			return fmt.Errorf("%w (and restoring %s failed: %v)", err, dir, rerr)
		}
		return err
	}
	return os.RemoveAll(old)
}
