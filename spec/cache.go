package spec

import (
	"io/fs"
	"sync"
)

// ContentIDFS is a file system that names the content of a file or folder without
// reading it, as git's object ids do (the trees of source.TreeAt implement it). Equal
// ids must mean equal content: for a file, its bytes; for a folder, every name, mode,
// symlink target (as fs.ReadLinkFS reads it) and file content beneath it. ContentID
// follows symlinks in name, as Open does.
type ContentIDFS interface {
	fs.FS
	ContentID(name string) (string, error)
}

// Cache carries what one Load learnt to later loads of file systems that implement
// ContentIDFS: the parse of each spec file and Procfile and the digest of each source
// folder, by path and content id. `manifold plan` loads --base and --head with one
// Cache, so the head parses and digests only what the commits changed. A Cache only
// grows: share one among loads that see mostly the same content, not for a process's
// life. Safe for concurrent use.
type Cache struct {
	mu      sync.Mutex
	files   map[cacheKey]parsedFile
	sources map[cacheKey]sourceFacts
}

// NewCache returns an empty Cache.
func NewCache() *Cache {
	return &Cache{
		files:   map[cacheKey]parsedFile{},
		sources: map[cacheKey]sourceFacts{},
	}
}

// cacheKey names a file or folder by path and content: positions in a parse carry
// the path.
type cacheKey struct{ name, id string }

// parsedFile is a spec file's parse: its body (nil when it does not parse) and the
// diagnostics parsing reported. Bodies are never changed after parsing, so loads
// share them.
type parsedFile struct {
	body  *body
	diags Diagnostics
}

// contentID returns the id of name in the loader's file system, or "" when there is
// no cache, the file system names no content, or name cannot be resolved (the caller
// then reads it and reports what is wrong).
func (l *loader) contentID(name string) string {
	if l.cache == nil {
		return ""
	}
	ids, ok := l.fsys.(ContentIDFS)
	if !ok {
		return ""
	}
	id, err := ids.ContentID(name)
	if err != nil {
		return ""
	}
	return id
}

func (c *Cache) file(key cacheKey) (parsedFile, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f, ok := c.files[key]
	return f, ok
}

func (c *Cache) putFile(key cacheKey, f parsedFile) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.files[key] = f
}

func (c *Cache) source(key cacheKey) (sourceFacts, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f, ok := c.sources[key]
	return f, ok
}

func (c *Cache) putSource(key cacheKey, f sourceFacts) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sources[key] = f
}
