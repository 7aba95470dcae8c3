package source

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	gogitv5 "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// maxSymlinkHops bounds symlink resolution inside a tree, as the kernel's ELOOP does.
const maxSymlinkHops = 40

// TreeAt returns a read-only file system over the tree of the commit that rev names
// in the repository at repoDir (or any directory inside its work tree). rev is
// anything go-git's ResolveRevision accepts: a branch, a tag, a sha (full or short),
// HEAD~1, main^2; "" means HEAD. Everything is read from git objects: the work tree
// and index are never read or touched, so uncommitted changes do not show.
//
// The returned fs.FS also implements fs.ReadDirFS, fs.ReadFileFS, fs.StatFS,
// fs.SubFS and fs.ReadLinkFS, and has a ContentID method (see treeFS.ContentID). File
// modes carry the exec bit (0755 vs 0644); directory entries of symlinks report
// fs.ModeSymlink while Open, Stat, ReadFile and ReadDir follow them inside the tree (a
// link that leaves the tree is not found), and ReadLink and Lstat do not. Every
// file's ModTime is the commit's committer time, since git stores none. Safe for
// concurrent use.
func TreeAt(repoDir, rev string) (fs.FS, Revision, error) {
	repo, err := gogitv5.PlainOpenWithOptions(repoDir, &gogitv5.PlainOpenOptions{DetectDotGit: true})
	if err != nil {
		return nil, Revision{}, fmt.Errorf("open git repository %s: %w", repoDir, err)
	}
	if rev == "" {
		rev = "HEAD"
	}
	hash, err := repo.ResolveRevision(plumbing.Revision(rev))
	if err != nil {
		// go-git's reason is often a bare EOF or "reference not found"; the rev and
		// the repository say it better.
		return nil, Revision{}, &refError{msg: fmt.Sprintf("unknown revision %s in %s", rev, repoDir)}
	}
	commit, err := repo.CommitObject(*hash)
	if err != nil {
		return nil, Revision{}, fmt.Errorf("revision %s in %s is not a commit: %w", rev, repoDir, err)
	}
	root, err := commit.Tree()
	if err != nil {
		return nil, Revision{}, fmt.Errorf("read tree of %s (%s) in %s: %w", rev, commit.Hash, repoDir, err)
	}
	tfs := &treeFS{
		shared: &treeShared{repo: repo, root: root, modTime: commit.Committer.When, trees: map[plumbing.Hash]*object.Tree{root.Hash: root}, blobs: map[plumbing.Hash][]byte{}},
	}
	return tfs, revisionOf(commit, rev), nil
}

// treeShared is the state every sub-view of one tree shares. go-git's trees and
// storage are not safe for concurrent use, so mu guards every object read.
type treeShared struct {
	mu      sync.Mutex
	repo    *gogitv5.Repository
	root    *object.Tree
	modTime time.Time
	// trees holds every tree object decoded so far, by hash. Without it each lookup
	// decodes every folder on its path again, and go-git's FindEntry builds a map of
	// the whole folder each time: reading the 1000 source folders under src/ cost
	// 1000 decodes of src itself (the profile's top entry).
	trees map[plumbing.Hash]*object.Tree
	// blobs holds small blobs once read (see maxCachedBlobBytes), blobBytes their
	// total size.
	blobs     map[plumbing.Hash][]byte
	blobBytes int
}

// tree returns the decoded tree object of hash. Callers hold mu.
func (s *treeShared) tree(h plumbing.Hash) (*object.Tree, error) {
	if t, ok := s.trees[h]; ok {
		return t, nil
	}
	t, err := s.repo.TreeObject(h)
	if err != nil {
		return nil, err
	}
	s.trees[h] = t
	return t, nil
}

// treeFS is a view of a commit's tree rooted at prefix ("" for the whole tree).
type treeFS struct {
	shared *treeShared
	prefix string
}

var (
	_ fs.ReadDirFS  = (*treeFS)(nil)
	_ fs.ReadFileFS = (*treeFS)(nil)
	_ fs.StatFS     = (*treeFS)(nil)
	_ fs.SubFS      = (*treeFS)(nil)
	_ fs.ReadLinkFS = (*treeFS)(nil)
)

// node is one resolved tree entry.
type node struct {
	name string // base name as the caller spelled it
	mode filemode.FileMode
	hash plumbing.Hash
}

// full joins the view's prefix and a valid fs path.
func (t *treeFS) full(name string) string {
	if name == "." {
		return t.prefix
	}
	if t.prefix == "" {
		return name
	}
	return t.prefix + "/" + name
}

// lookup resolves name (a valid fs path) to its entry, following symlinks in every
// component and, when follow is set, in the last one too. Callers hold mu.
func (t *treeFS) lookup(op, name string, follow bool) (node, error) {
	want := t.full(name)
	for hop := 0; ; hop++ {
		if hop > maxSymlinkHops {
			return node{}, &fs.PathError{Op: op, Path: name, Err: errors.New("too many levels of symbolic links")}
		}
		n, next, redirected, err := t.walk(want, follow)
		if err != nil {
			return node{}, &fs.PathError{Op: op, Path: name, Err: err}
		}
		if !redirected {
			n.name = path.Base(name)
			return n, nil
		}
		want = next
	}
}

// walk descends the tree along p. When it meets a symlink it returns redirected and
// the path the link sends p to (cleaned, relative to the tree root, "" for the root)
// instead of a node.
func (t *treeFS) walk(p string, follow bool) (n node, next string, redirected bool, err error) {
	cur := t.shared.root
	n = node{name: ".", mode: filemode.Dir, hash: cur.Hash}
	if p == "" {
		return n, "", false, nil
	}
	parts := strings.Split(p, "/")
	for i, part := range parts {
		if n.mode != filemode.Dir {
			return node{}, "", false, fs.ErrNotExist
		}
		if i > 0 {
			tree, terr := t.shared.tree(n.hash)
			if terr != nil {
				return node{}, "", false, fmt.Errorf("read tree %s: %w", n.hash, terr)
			}
			cur = tree
		}
		entry, ferr := cur.FindEntry(part)
		if ferr != nil {
			return node{}, "", false, fs.ErrNotExist
		}
		n = node{name: part, mode: entry.Mode, hash: entry.Hash}
		last := i == len(parts)-1
		if n.mode == filemode.Symlink && (!last || follow) {
			target, berr := t.blob(n.hash)
			if berr != nil {
				return node{}, "", false, berr
			}
			dir := strings.Join(parts[:i], "/")
			next := path.Join(dir, string(target))
			if path.IsAbs(string(target)) || next == ".." || strings.HasPrefix(next, "../") {
				return node{}, "", false, fmt.Errorf("symlink %s -> %s leaves the tree: %w", strings.Join(parts[:i+1], "/"), target, fs.ErrNotExist)
			}
			if !last {
				next = path.Join(next, strings.Join(parts[i+1:], "/"))
			}
			if next == "." {
				next = ""
			}
			return node{}, next, true, nil
		}
	}
	return n, "", false, nil
}

// Small blobs are kept once read: a loader reads a Procfile to parse it and again to
// digest its folder, and go-git opens and inflates the object each time.
const (
	maxCachedBlobBytes = 64 << 10
	blobCacheBytes     = 16 << 20
)

// blob reads a whole blob; the returned slice may be shared, so callers must not
// change it. Callers hold mu.
func (t *treeFS) blob(h plumbing.Hash) ([]byte, error) {
	s := t.shared
	if data, ok := s.blobs[h]; ok {
		return data, nil
	}
	b, err := s.repo.BlobObject(h)
	if err != nil {
		return nil, fmt.Errorf("read blob %s: %w", h, err)
	}
	r, err := b.Reader()
	if err != nil {
		return nil, fmt.Errorf("read blob %s: %w", h, err)
	}
	defer r.Close()
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read blob %s: %w", h, err)
	}
	if len(data) <= maxCachedBlobBytes && s.blobBytes+len(data) <= blobCacheBytes {
		s.blobs[h] = data
		s.blobBytes += len(data)
	}
	return data, nil
}

// isDir reports whether a mode is listed as a directory; submodules show as empty
// directories because their content is not in this repository.
func isDir(m filemode.FileMode) bool { return m == filemode.Dir || m == filemode.Submodule }

// entries lists a directory node sorted by name. Callers hold mu.
func (t *treeFS) entries(n node) ([]fs.DirEntry, error) {
	if n.mode == filemode.Submodule {
		return []fs.DirEntry{}, nil
	}
	tree, err := t.shared.tree(n.hash)
	if err != nil {
		return nil, fmt.Errorf("read tree %s: %w", n.hash, err)
	}
	out := make([]fs.DirEntry, 0, len(tree.Entries))
	for _, e := range tree.Entries {
		out = append(out, t.info(node{name: e.Name, mode: e.Mode, hash: e.Hash}))
	}
	slices.SortFunc(out, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return out, nil
}

// info builds the FileInfo of a node. A blob's size is read when Size is first
// called, not here: a listing of 1000 entries would otherwise look up 1000 objects
// that fs.WalkDir never asks the size of.
func (t *treeFS) info(n node) *treeInfo {
	fi := &treeInfo{name: n.name, modTime: t.shared.modTime}
	switch n.mode {
	case filemode.Dir, filemode.Submodule:
		fi.mode = fs.ModeDir | 0o755
		return fi
	case filemode.Executable:
		fi.mode = 0o755
	case filemode.Symlink:
		fi.mode = fs.ModeSymlink | 0o777
	default:
		fi.mode = 0o644
	}
	fi.blob = &lazySize{shared: t.shared, hash: n.hash}
	return fi
}

// lazySize reads a blob's size from its object header once, when first asked.
type lazySize struct {
	shared *treeShared
	hash   plumbing.Hash
	once   sync.Once
	size   int64
}

func (l *lazySize) get() int64 {
	l.once.Do(func() {
		l.shared.mu.Lock()
		defer l.shared.mu.Unlock()
		b, err := l.shared.repo.BlobObject(l.hash)
		if err == nil {
			l.size = b.Size
		}
	})
	return l.size
}

// known records a size already learnt by reading the blob.
func (l *lazySize) known(size int64) {
	l.once.Do(func() { l.size = size })
}

// Open implements fs.FS.
func (t *treeFS) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	t.shared.mu.Lock()
	defer t.shared.mu.Unlock()
	n, err := t.lookup("open", name, true)
	if err != nil {
		return nil, err
	}
	fi := t.info(n)
	if isDir(n.mode) {
		entries, err := t.entries(n)
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
		return &treeDir{info: fi, path: name, entries: entries}, nil
	}
	data, err := t.blob(n.hash)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	fi.blob.known(int64(len(data)))
	return &treeFile{info: fi, Reader: bytes.NewReader(data)}, nil
}

// ReadFile implements fs.ReadFileFS; the caller owns the returned slice.
func (t *treeFS) ReadFile(name string) ([]byte, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "readfile", Path: name, Err: fs.ErrInvalid}
	}
	t.shared.mu.Lock()
	defer t.shared.mu.Unlock()
	n, err := t.lookup("readfile", name, true)
	if err != nil {
		return nil, err
	}
	if isDir(n.mode) {
		return nil, &fs.PathError{Op: "readfile", Path: name, Err: errors.New("is a directory")}
	}
	data, err := t.blob(n.hash)
	if err != nil {
		return nil, &fs.PathError{Op: "readfile", Path: name, Err: err}
	}
	return bytes.Clone(data), nil // the caller owns it; the cache keeps its own
}

// ReadDir implements fs.ReadDirFS: entries sorted by name.
func (t *treeFS) ReadDir(name string) ([]fs.DirEntry, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrInvalid}
	}
	t.shared.mu.Lock()
	defer t.shared.mu.Unlock()
	n, err := t.lookup("readdir", name, true)
	if err != nil {
		return nil, err
	}
	if !isDir(n.mode) {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: errors.New("not a directory")}
	}
	entries, err := t.entries(n)
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: err}
	}
	return entries, nil
}

// Stat implements fs.StatFS, following symlinks.
func (t *treeFS) Stat(name string) (fs.FileInfo, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: fs.ErrInvalid}
	}
	t.shared.mu.Lock()
	defer t.shared.mu.Unlock()
	n, err := t.lookup("stat", name, true)
	if err != nil {
		return nil, err
	}
	return t.info(n), nil
}

// ReadLink implements fs.ReadLinkFS: the target of the symlink name, as git stores
// it (relative links stay relative; one that leaves the tree is returned as written).
func (t *treeFS) ReadLink(name string) (string, error) {
	if !fs.ValidPath(name) {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: fs.ErrInvalid}
	}
	t.shared.mu.Lock()
	defer t.shared.mu.Unlock()
	n, err := t.lookup("readlink", name, false)
	if err != nil {
		return "", err
	}
	if n.mode != filemode.Symlink {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: fs.ErrInvalid}
	}
	target, err := t.blob(n.hash)
	if err != nil {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: err}
	}
	return string(target), nil
}

// Lstat implements fs.ReadLinkFS: Stat that does not follow a symlink in the last
// element of name.
func (t *treeFS) Lstat(name string) (fs.FileInfo, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "lstat", Path: name, Err: fs.ErrInvalid}
	}
	t.shared.mu.Lock()
	defer t.shared.mu.Unlock()
	n, err := t.lookup("lstat", name, false)
	if err != nil {
		return nil, err
	}
	return t.info(n), nil
}

// ContentID names the content of the file or folder name (symlinks followed) without
// reading it: its git object id, prefixed "git:". Two names with one id hold the same
// bytes or, for folders, the same names, modes, link targets and contents beneath
// them, in this commit or any other of any repository. Callers use it to reuse what
// they computed from that content (a parsed file, a folder's digest).
func (t *treeFS) ContentID(name string) (string, error) {
	if !fs.ValidPath(name) {
		return "", &fs.PathError{Op: "contentid", Path: name, Err: fs.ErrInvalid}
	}
	t.shared.mu.Lock()
	defer t.shared.mu.Unlock()
	n, err := t.lookup("contentid", name, true)
	if err != nil {
		return "", err
	}
	return "git:" + n.hash.String(), nil
}

// Sub implements fs.SubFS: a view rooted at dir. Symlinks inside the view may
// still point at anything in the whole commit tree.
func (t *treeFS) Sub(dir string) (fs.FS, error) {
	if !fs.ValidPath(dir) {
		return nil, &fs.PathError{Op: "sub", Path: dir, Err: fs.ErrInvalid}
	}
	if dir == "." {
		return t, nil
	}
	t.shared.mu.Lock()
	defer t.shared.mu.Unlock()
	// Resolve symlinks in dir so the prefix is a real path in the tree.
	want := t.full(dir)
	for hop := 0; ; hop++ {
		if hop > maxSymlinkHops {
			return nil, &fs.PathError{Op: "sub", Path: dir, Err: errors.New("too many levels of symbolic links")}
		}
		n, next, redirected, err := t.walk(want, true)
		if err != nil {
			return nil, &fs.PathError{Op: "sub", Path: dir, Err: err}
		}
		if redirected {
			want = next
			continue
		}
		if !isDir(n.mode) {
			return nil, &fs.PathError{Op: "sub", Path: dir, Err: errors.New("not a directory")}
		}
		return &treeFS{shared: t.shared, prefix: want}, nil
	}
}

// treeInfo implements fs.FileInfo and fs.DirEntry.
type treeInfo struct {
	name    string
	blob    *lazySize // nil for folders, whose size is 0
	mode    fs.FileMode
	modTime time.Time
}

func (fi *treeInfo) Name() string { return fi.name }
func (fi *treeInfo) Size() int64 {
	if fi.blob == nil {
		return 0
	}
	return fi.blob.get()
}
func (fi *treeInfo) Mode() fs.FileMode          { return fi.mode }
func (fi *treeInfo) ModTime() time.Time         { return fi.modTime }
func (fi *treeInfo) IsDir() bool                { return fi.mode.IsDir() }
func (fi *treeInfo) Sys() any                   { return nil }
func (fi *treeInfo) Type() fs.FileMode          { return fi.mode.Type() }
func (fi *treeInfo) Info() (fs.FileInfo, error) { return fi, nil }
func (fi *treeInfo) String() string             { return fs.FormatFileInfo(fi) }

// treeFile is an open regular file; its content was read whole at Open.
type treeFile struct {
	info *treeInfo
	*bytes.Reader
}

func (f *treeFile) Stat() (fs.FileInfo, error) { return f.info, nil }
func (f *treeFile) Close() error               { return nil }

// treeDir is an open directory.
type treeDir struct {
	info    *treeInfo
	path    string
	entries []fs.DirEntry
	offset  int
}

func (d *treeDir) Stat() (fs.FileInfo, error) { return d.info, nil }
func (d *treeDir) Close() error               { return nil }
func (d *treeDir) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.path, Err: errors.New("is a directory")}
}

// ReadDir implements fs.ReadDirFile.
func (d *treeDir) ReadDir(count int) ([]fs.DirEntry, error) {
	rest := d.entries[d.offset:]
	if count <= 0 {
		d.offset = len(d.entries)
		return slices.Clone(rest), nil
	}
	if len(rest) == 0 {
		return nil, io.EOF
	}
	if count > len(rest) {
		count = len(rest)
	}
	d.offset += count
	return slices.Clone(rest[:count]), nil
}
