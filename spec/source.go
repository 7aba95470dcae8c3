package spec

import (
	"errors"
	"io/fs"
	"path"
)

// sourceInfo is what Load learnt about one source folder; each is read once per load
// however many environments use it.
type sourceInfo struct {
	ok       bool // the folder and a well-formed Procfile exist
	procfile []ProcfileEntry
	digest   string
}

// source reads a source folder's Procfile and digest, once per load.
func (l *loader) source(dir string, at strField) *sourceInfo {
	if info, ok := l.sources[dir]; ok {
		return info
	}
	info := &sourceInfo{}
	l.sources[dir] = info
	stat, err := fs.Stat(l.fsys, dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		l.sink.add(at.pos, "source path %q (%s) does not exist", at.v, dir)
		return info
	case err != nil:
		l.sink.add(at.pos, "source path %q (%s): %v", at.v, dir, err)
		return info
	case !stat.IsDir():
		l.sink.add(at.pos, "source path %q (%s) is not a folder", at.v, dir)
		return info
	}
	facts := l.sourceFacts(dir)
	switch {
	case errors.Is(facts.procfileErr, fs.ErrNotExist):
		l.sink.add(at.pos, "source path %q (%s) has no Procfile", at.v, dir)
	case facts.procfileErr != nil:
		l.sink.add(at.pos, "source path %q: cannot read %s: %v", at.v, path.Join(dir, "Procfile"), facts.procfileErr)
	default:
		l.sink.diags = append(l.sink.diags, facts.procfileDiags...)
		info.procfile = facts.procfile
		info.ok = len(facts.procfileDiags) == 0
	}
	if facts.digestErr != nil {
		l.sink.add(at.pos, "source path %q: %v", at.v, facts.digestErr)
	}
	info.digest = facts.digest
	return info
}

// sourceFacts is what a source folder's content alone says, whichever spec names it:
// its Procfile's parse and its digest.
type sourceFacts struct {
	procfile      []ProcfileEntry
	procfileDiags Diagnostics
	procfileErr   error // reading the Procfile failed (fs.ErrNotExist: there is none)
	digest        string
	digestErr     error
}

// sourceFacts reads and digests the folder dir, or takes what an earlier load with the
// same cache learnt from a folder of the same path and content id.
func (l *loader) sourceFacts(dir string) sourceFacts {
	key := cacheKey{name: dir, id: l.contentID(dir)}
	if key.id != "" {
		if facts, ok := l.cache.source(key); ok {
			return facts
		}
	}
	var facts sourceFacts
	procfile := path.Join(dir, "Procfile")
	if data, err := fs.ReadFile(l.fsys, procfile); err != nil {
		facts.procfileErr = err
	} else {
		facts.procfile, facts.procfileDiags = ParseProcfile(procfile, data)
	}
	facts.digest, facts.digestErr = DigestDir(l.fsys, dir)
	// Only what the folder's id covers is cached: not read errors, and not a Procfile
	// that is a symlink, whose target may lie outside the folder.
	if key.id != "" && facts.procfileErr == nil && facts.digestErr == nil {
		if st, err := fs.Lstat(l.fsys, procfile); err == nil && st.Mode().IsRegular() {
			l.cache.putSource(key, facts)
		}
	}
	return facts
}
