package spec_test

import (
	"strings"
	"testing"
	"testing/fstest"
)

// repo builds an in-memory config repo. Every repo gets a source folder src/a with a
// Procfile (web, worker, release) unless files replace it; contents are dedented so
// that tests can line up specs with their expected line:col.
func repo(t *testing.T, files map[string]string) fstest.MapFS {
	t.Helper()
	fsys := fstest.MapFS{
		"src/a/Procfile": {Data: []byte("web: ./web\nworker: ./work\nrelease: ./migrate\n")},
		"src/a/web":      {Data: []byte("#!/bin/sh\n"), Mode: 0o755},
	}
	for name, content := range files {
		if content == "<delete>" {
			delete(fsys, name)
			continue
		}
		fsys[name] = &fstest.MapFile{Data: []byte(content)}
	}
	return fsys
}

// lines joins lines with newlines, so a spec in a test reads top to bottom with its
// line numbers obvious.
func lines(ls ...string) string { return strings.Join(ls, "\n") + "\n" }
