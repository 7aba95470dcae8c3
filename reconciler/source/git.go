package source

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	fluxgit "github.com/fluxcd/pkg/git"
)

// GitOptions configure a git source.
type GitOptions struct {
	// URL of the config repository: file://, https://, http://, ssh://, scp-like
	// (git@host:org/repo) or a local path.
	URL string
	// Ref is the branch or tag to follow (a full commit sha pins it); "" follows
	// the branch the remote's HEAD names.
	Ref string
	// Path is the subdirectory of the repository that holds the config repo
	// (`--path examples`); "" for the whole repository.
	Path string
	// Dir is a state directory the source owns; checkouts live beneath it.
	Dir string
	// Interval between polls; 0 means DefaultInterval (1 m). Each wait is spread ±10%.
	Interval time.Duration
	// Auth holds credentials (https basic auth or token, ssh key and known_hosts);
	// nil means anonymous https, or the ssh agent and ~/.ssh/known_hosts for ssh.
	Auth *fluxgit.AuthOptions
	// Logger receives poll failures; nil means slog.Default().
	Logger *slog.Logger
}

// Git follows a branch or tag of a git repository. Each commit is checked out into
// its own directory under Dir/checkouts, so a snapshot handed out is never changed
// underneath its reader. Create it with NewGit.
type Git struct {
	opts     GitOptions
	path     string // cleaned opts.Path
	checkout string // opts.Dir/checkouts
	log      *slog.Logger
	trigger  chan string

	// fetchMu serialises fetches (Fetch and Watch's polls) and guards the fields below.
	fetchMu   sync.Mutex
	cloner    cloner
	current   Snapshot  // the newest commit fetched whose tree is usable
	handedOut [2]string // checkout dirs of the last two snapshots Fetch returned, kept for readers
	failedID  string    // a commit fetched but rejected (Path missing), not retried until it moves
	failedErr error

	// notifyMu guards what Watch has told and what Fetch has handed out.
	notifyMu     sync.Mutex
	delivered    string // Rev.ID Fetch last returned
	lastNotified string

	// checks counts Watch's polls, for tests that nothing followed from one.
	checks atomic.Uint64
}

// Checks is how many times Watch polled the ref (on the interval or a trigger).
func (g *Git) Checks() uint64 { return g.checks.Load() }

var _ Source = (*Git)(nil)

// NewGit returns a git source. Nothing is fetched until Fetch or Watch runs.
func NewGit(opts GitOptions) (*Git, error) {
	if opts.URL == "" {
		return nil, errors.New("git source: no repository URL")
	}
	if opts.Dir == "" {
		return nil, fmt.Errorf("git source %s: no state directory", opts.URL)
	}
	sub, err := cleanSubPath(opts.Path)
	if err != nil {
		return nil, fmt.Errorf("git source %s: %w", opts.URL, err)
	}
	if _, err := normalizeURL(opts.URL); err != nil {
		return nil, fmt.Errorf("git source %s: %w", opts.URL, err)
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("git source %s: %w", opts.URL, err)
	}
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	return &Git{
		opts:     opts,
		path:     sub,
		checkout: filepath.Join(dir, "checkouts"),
		log:      logger.With("source", opts.URL, "ref", opts.Ref),
		trigger:  make(chan string, 1),
		cloner:   cloner{url: opts.URL, ref: opts.Ref, auth: opts.Auth},
	}, nil
}

// Fetch implements Source: it asks the remote where the ref points and clones only
// when that moved since the last fetch.
func (g *Git) Fetch(ctx context.Context) (Snapshot, error) {
	snap, err := g.update(ctx, true)
	if err != nil {
		return Snapshot{}, err
	}
	g.notifyMu.Lock()
	g.delivered = snap.Rev.ID
	g.notifyMu.Unlock()
	return snap, nil
}

// update fetches and returns the newest usable snapshot; handOut records that the
// caller gives it to a reader, so its checkout outlives the next commit.
func (g *Git) update(ctx context.Context, handOut bool) (Snapshot, error) {
	g.fetchMu.Lock()
	defer g.fetchMu.Unlock()
	target, err := normalizeURL(g.opts.URL)
	if err != nil {
		return Snapshot{}, fmt.Errorf("fetch %s: %w", g.opts.URL, err)
	}
	last := g.current.Rev.ID
	if g.failedID != "" {
		last = g.failedID
	}
	tmp, rev, unchanged, err := g.cloner.fetchFresh(ctx, target, g.checkout, last)
	if err != nil {
		return Snapshot{}, fmt.Errorf("fetch %s: %w", g.describe(), err)
	}
	if unchanged {
		if g.failedID != "" {
			return Snapshot{}, g.failedErr
		}
		g.recordHandOut(handOut)
		return g.current, nil
	}
	final := filepath.Join(g.checkout, rev.ID)
	if _, err := os.Stat(final); err == nil {
		// The ref went back to a commit still on disk (perhaps being read): keep it.
		os.RemoveAll(tmp)
	} else if err := os.Rename(tmp, final); err != nil {
		os.RemoveAll(tmp)
		return Snapshot{}, fmt.Errorf("fetch %s: %w", g.describe(), err)
	}
	snap := Snapshot{Rev: rev, Root: final, Dir: final}
	if g.path != "" {
		snap.Dir = filepath.Join(final, filepath.FromSlash(g.path))
		if st, err := os.Stat(snap.Dir); err != nil || !st.IsDir() {
			g.failedID = rev.ID
			g.failedErr = fmt.Errorf("fetch %s: commit %s (%s) has no directory %q", g.describe(), rev.Short(), rev.Message, g.path)
			g.prune(final)
			return Snapshot{}, g.failedErr
		}
	}
	g.failedID, g.failedErr = "", nil
	g.current = snap
	g.recordHandOut(handOut)
	g.prune(final)
	return snap, nil
}

// recordHandOut notes that current is being handed to a reader. Callers hold fetchMu.
func (g *Git) recordHandOut(handOut bool) {
	if handOut && g.handedOut[0] != g.current.Root {
		g.handedOut[1], g.handedOut[0] = g.handedOut[0], g.current.Root
	}
}

// prune removes checkouts other than current, the last two handed out and keep
// (and temporary directories left by a crash); fetches are serialised, so none is
// in progress.
func (g *Git) prune(keep string) {
	entries, err := os.ReadDir(g.checkout)
	if err != nil {
		return
	}
	for _, e := range entries {
		p := filepath.Join(g.checkout, e.Name())
		if p == keep || p == g.current.Root || p == g.handedOut[0] || p == g.handedOut[1] {
			continue
		}
		if err := os.RemoveAll(p); err != nil {
			g.log.Warn("remove old checkout", "dir", p, "err", err)
		}
	}
}

// describe names the source in errors.
func (g *Git) describe() string {
	ref := g.opts.Ref
	if ref == "" {
		ref = "HEAD"
	}
	return g.opts.URL + " at " + ref
}

// Trigger implements Source.
func (g *Git) Trigger(reason string) {
	select {
	case g.trigger <- reason:
	default: // a check is already pending; it will see this change too
	}
}

// Watch implements Source: it polls every Interval (±10%) and at once on Trigger.
// notify fires when the ref points at a commit that Fetch has not returned yet
// (once per commit), and once when polling starts failing, so that the caller's
// next Fetch reports the error; failures are also logged.
func (g *Git) Watch(ctx context.Context, notify func(reason string)) error {
	failing := false
	timer := time.NewTimer(jittered(g.opts.Interval))
	defer timer.Stop()
	for {
		reason := "poll"
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		case r := <-g.trigger:
			reason = r
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
		}
		snap, err := g.update(ctx, false)
		timer.Reset(jittered(g.opts.Interval))
		g.afterCheck(ctx, snap, err, reason, &failing, notify)
	}
}

// afterCheck notifies what a poll found, then counts the poll.
func (g *Git) afterCheck(ctx context.Context, snap Snapshot, err error, reason string, failing *bool, notify func(string)) {
	defer g.checks.Add(1)
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		g.log.Warn("git poll failed", "err", err)
		if !*failing {
			*failing = true
			notify("fetch failed: " + err.Error())
		}
		return
	}
	*failing = false
	g.notifyMu.Lock()
	fresh := snap.Rev.ID != g.delivered && snap.Rev.ID != g.lastNotified
	if fresh {
		g.lastNotified = snap.Rev.ID
	}
	g.notifyMu.Unlock()
	if fresh {
		notify(fmt.Sprintf("%s: %s is at %s %q by %s", reason, g.refName(), snap.Rev.Short(), snap.Rev.Message, snap.Rev.Author))
	}
}

// refName is the ref for reason strings.
func (g *Git) refName() string {
	if g.opts.Ref == "" {
		return "HEAD"
	}
	return strings.TrimPrefix(g.opts.Ref, "refs/heads/")
}
