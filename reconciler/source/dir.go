package source

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
)

// DirOptions configure a local folder source.
type DirOptions struct {
	// Dir is the folder (usually a git work tree) holding the config repository.
	Dir string
	// Path is the subdirectory holding the config repo; "" for all of Dir. The
	// whole of Dir is watched and hashed, so app sources beside Path count too.
	Path string
	// Debounce is the quiet period after the last change before notifying;
	// 0 means DefaultDebounce (200 ms).
	Debounce time.Duration
	// Logger receives watch errors; nil means slog.Default().
	Logger *slog.Logger
}

// Folder follows a local folder with fsnotify: recursive, debounced, blind to
// editors' temporary files and .git. Its Revision.ID is a hash of the content, so a
// save that changes nothing does not notify. Create it with NewDir.
type Folder struct {
	root     string
	dir      string
	debounce time.Duration
	log      *slog.Logger
	author   string
	trigger  chan string

	mu           sync.Mutex
	delivered    Revision // what Fetch last returned
	lastNotified string

	// checks counts the comparisons Watch made (after a quiet period or a trigger), and
	// ignored the file events it dropped (editors' temporary files, .git): positive
	// signals that an event was handled, for tests that nothing followed from it.
	checks, ignored atomic.Uint64
}

var _ Source = (*Folder)(nil)

// NewDir returns a folder source; the folder must exist.
func NewDir(opts DirOptions) (*Folder, error) {
	if opts.Dir == "" {
		return nil, errors.New("dir source: no folder")
	}
	root, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("dir source %s: %w", opts.Dir, err)
	}
	if st, err := os.Stat(root); err != nil {
		return nil, fmt.Errorf("dir source: %w", err)
	} else if !st.IsDir() {
		return nil, fmt.Errorf("dir source %s: not a directory", root)
	}
	sub, err := cleanSubPath(opts.Path)
	if err != nil {
		return nil, fmt.Errorf("dir source %s: %w", root, err)
	}
	if opts.Debounce <= 0 {
		opts.Debounce = DefaultDebounce
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	author := ""
	if u, err := user.Current(); err == nil {
		author = u.Username
	}
	return &Folder{
		root:     root,
		dir:      filepath.Join(root, filepath.FromSlash(sub)),
		debounce: opts.Debounce,
		log:      logger.With("source", root),
		author:   author,
		trigger:  make(chan string, 1),
	}, nil
}

// Fetch implements Source: it hashes the folder. Time is when this content was
// first seen; AuthorName is the local user.
func (d *Folder) Fetch(ctx context.Context) (Snapshot, error) {
	id, err := HashDir(d.root)
	if err != nil {
		return Snapshot{}, err
	}
	if st, err := os.Stat(d.dir); err != nil || !st.IsDir() {
		return Snapshot{}, fmt.Errorf("dir source %s: no directory %s", d.root, d.dir)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.delivered.ID != id {
		d.delivered = Revision{ID: id, Message: "local change", AuthorName: d.author, Time: time.Now()}
	}
	return Snapshot{Rev: d.delivered, Dir: d.dir, Root: d.root}, nil
}

// Trigger implements Source.
func (d *Folder) Trigger(reason string) {
	select {
	case d.trigger <- reason:
	default:
	}
}

// Watch implements Source. notify fires once per quiet period after changes, and
// only when the content hash differs from what Fetch last returned.
func (d *Folder) Watch(ctx context.Context, notify func(reason string)) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch %s: %w", d.root, err)
	}
	defer w.Close()
	if err := d.addTree(w, d.root); err != nil {
		return fmt.Errorf("watch %s: %w", d.root, err)
	}

	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	pending := "" // first changed path since the last check
	for {
		select {
		case <-ctx.Done():
			return nil
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			d.log.Warn("watch error", "err", err)
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			rel, ok := d.relevant(ev.Name)
			if !ok {
				d.ignored.Add(1)
				continue
			}
			if ev.Has(fsnotify.Create) {
				if st, err := os.Lstat(ev.Name); err == nil && st.IsDir() {
					// Files created before the watch lands are caught by the hash.
					if err := d.addTree(w, ev.Name); err != nil {
						d.log.Warn("watch new directory", "dir", ev.Name, "err", err)
					}
				}
			}
			if pending == "" {
				pending = rel
			}
			timer.Reset(d.debounce)
		case <-timer.C:
			d.check(notify, "local change: "+pending)
			pending = ""
		case reason := <-d.trigger:
			d.check(notify, reason)
		}
	}
}

// Checks is how many times Watch compared the folder with what Fetch delivered.
func (d *Folder) Checks() uint64 { return d.checks.Load() }

// Ignored is how many file events Watch dropped as never relevant.
func (d *Folder) Ignored() uint64 { return d.ignored.Load() }

// check hashes the folder and notifies when it moved past what was delivered.
func (d *Folder) check(notify func(string), reason string) {
	defer d.checks.Add(1)
	id, err := HashDir(d.root)
	if err != nil {
		d.log.Warn("hash folder", "err", err)
		return
	}
	d.mu.Lock()
	fresh := id != d.delivered.ID && id != d.lastNotified
	if fresh {
		d.lastNotified = id
	}
	d.mu.Unlock()
	if fresh {
		notify(reason)
	}
}

// relevant returns the slash path of name relative to the root, or false for
// paths that never count (editors' temporary files, .git).
func (d *Folder) relevant(name string) (string, bool) {
	rel, err := filepath.Rel(d.root, name)
	if err != nil || rel == "." {
		return "", false
	}
	rel = filepath.ToSlash(rel)
	for _, part := range strings.Split(rel, "/") {
		if ignored(part) {
			return "", false
		}
	}
	return rel, true
}

// addTree watches dir and every directory beneath it that is not ignored.
func (d *Folder) addTree(w *fsnotify.Watcher, dir string) error {
	return filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if p == dir {
				return err
			}
			return nil // vanished while walking: its parent's events cover it
		}
		if !e.IsDir() {
			return nil
		}
		if p != dir && ignored(e.Name()) {
			return filepath.SkipDir
		}
		if err := w.Add(p); err != nil {
			return fmt.Errorf("watch %s: %w", p, err)
		}
		return nil
	})
}

// ignored reports names editors and tools write beside real files: vim swap files
// and its 4913 probe, emacs lock and autosave files, backups ending in ~, macOS
// metadata, and git's own directory.
func ignored(name string) bool {
	switch {
	case name == ".git", name == ".DS_Store", name == "4913":
		return true
	case strings.HasSuffix(name, ".swp"), strings.HasSuffix(name, ".swx"), strings.HasSuffix(name, ".swo"):
		return true
	case strings.HasSuffix(name, "~"), strings.HasPrefix(name, ".#"):
		return true
	case len(name) > 1 && strings.HasPrefix(name, "#") && strings.HasSuffix(name, "#"):
		return true
	}
	return false
}

// HashDir returns "dir:sha256:<hex>" over the paths, exec bits, symlink targets and
// contents beneath root, skipping what the watcher ignores. Equal trees hash equal
// whatever their mtimes.
func HashDir(root string) (string, error) {
	sum := sha256.New()
	err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if p != root && errors.Is(err, fs.ErrNotExist) {
				return nil // removed while walking
			}
			return err
		}
		if p == root {
			return nil
		}
		if ignored(e.Name()) {
			if e.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		rel := filepath.ToSlash(p[len(root)+1:])
		switch {
		case e.IsDir():
			fmt.Fprintf(sum, "d %s\n", rel)
		case e.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return nil
			}
			fmt.Fprintf(sum, "l %s %s\n", rel, target)
		case e.Type().IsRegular():
			info, err := e.Info()
			if err != nil {
				return nil
			}
			f, err := os.Open(p)
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
			content := sha256.New()
			_, err = io.Copy(content, f)
			f.Close()
			if err != nil {
				return err
			}
			fmt.Fprintf(sum, "f %s %o %x\n", rel, info.Mode().Perm()&0o111, content.Sum(nil))
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("hash %s: %w", root, err)
	}
	return dirIDPrefix + hex.EncodeToString(sum.Sum(nil)), nil
}
