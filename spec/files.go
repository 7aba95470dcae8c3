package spec

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
)

// readDir parses the spec files of a folder of the repo, in name order. A missing
// folder has no files.
func (l *loader) readDir(dir string, sch schema) []*specFile {
	entries, err := fs.ReadDir(l.fsys, dir)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			l.sink.add(Pos{File: dir, Line: 1, Col: 1}, "cannot read folder: %v", err)
		}
		return nil
	}
	var files []*specFile
	for _, e := range entries {
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") || !isSpecFile(e.Name()) {
			continue
		}
		name := path.Join(dir, e.Name())
		parsed := l.readFile(name, sch)
		l.sink.diags = append(l.sink.diags, parsed.diags...)
		if parsed.body != nil {
			files = append(files, &specFile{name: name, body: parsed.body})
		}
	}
	return files
}

func isSpecFile(name string) bool {
	switch path.Ext(name) {
	case ".hcl", ".yaml", ".yml":
		return true
	}
	return false
}

// maxSpecFileBytes bounds one spec file: specs are small, and a huge one is a mistake.
const maxSpecFileBytes = 4 << 20

// readFile parses one spec file: its body, nil when it does not exist or does not
// parse, and what is wrong with it. YAML documents after the first add to the first
// one's body. It reports into no sink of the loader's: the caller adds the
// diagnostics where they belong.
func (l *loader) readFile(name string, sch schema) parsedFile {
	key := cacheKey{name: name, id: l.contentID(name)}
	if key.id != "" {
		if parsed, ok := l.cache.file(key); ok {
			return parsed
		}
	}
	at := Pos{File: name, Line: 1, Col: 1}
	src, err := readLimited(l.fsys, name, maxSpecFileBytes)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return parsedFile{}
	case errors.Is(err, errTooLarge):
		return parsedFile{diags: Diagnostics{{Pos: at, Message: fmt.Sprintf("file is larger than %d MiB", maxSpecFileBytes>>20)}}}
	case err != nil:
		return parsedFile{diags: Diagnostics{{Pos: at, Message: fmt.Sprintf("cannot read file: %v", err)}}}
	}
	sink := &diagSink{}
	parsed := parsedFile{body: parseSpec(name, src, sch, sink), diags: sink.diags}
	if key.id != "" {
		l.cache.putFile(key, parsed)
	}
	return parsed
}

var errTooLarge = errors.New("file too large")

// readLimited reads the file name, or fails with errTooLarge past limit bytes without
// reading further.
func readLimited(fsys fs.FS, name string, limit int64) ([]byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, errTooLarge
	}
	return data, nil
}

// maxNesting bounds bracket nesting: the parsers recurse per level, and a file of a
// million '[' must end in a diagnostic, not a stack overflow (which no recover stops).
const maxNesting = 256

// nestingError returns where src nests brackets deeper than maxNesting, counting
// brackets inside strings too (a spec never comes close).
func nestingError(name string, src []byte) (Pos, bool) {
	depth, line, col := 0, 1, 0
	for _, c := range src {
		if c&0xC0 != 0x80 { // columns count characters, not UTF-8 continuation bytes
			col++
		}
		switch c {
		case '\n':
			line, col = line+1, 0
		case '(', '[', '{':
			depth++
			if depth > maxNesting {
				return Pos{File: name, Line: line, Col: col}, true
			}
		case ')', ']', '}':
			depth = max(depth-1, 0)
		}
	}
	return Pos{}, false
}

// parseSpec parses src by its extension into one body.
func parseSpec(name string, src []byte, sch schema, sink *diagSink) *body {
	if pos, deep := nestingError(name, src); deep {
		sink.add(pos, "brackets nested more than %d deep", maxNesting)
		return nil
	}
	if path.Ext(name) == ".hcl" {
		return parseHCL(name, src, sink)
	}
	docs, ok := parseYAML(name, src, sch, sink)
	if !ok {
		return nil
	}
	merged := &body{pos: Pos{File: name, Line: 1, Col: 1}}
	for _, d := range docs {
		merged.attrs = append(merged.attrs, d.attrs...)
		merged.blocks = append(merged.blocks, d.blocks...)
	}
	return merged
}
