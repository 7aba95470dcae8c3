package spec

import (
	"bytes"
	"strings"
)

// ProcfileEntry is one `name: command` line of a Procfile.
type ProcfileEntry struct {
	// Type is the process type: web, worker, release, …
	Type string `json:"type"`
	// Command is the rest of the line, trimmed; it runs through /bin/sh -c, which
	// expands $PORT and friends, so the parser keeps it verbatim (a trailing
	// `# comment` is the shell's business).
	Command string `json:"command"`
	// Line is the entry's line in the Procfile, from 1.
	Line int `json:"line"`
}

// maxProcfileBytes bounds what ParseProcfile reads: a Procfile is a few lines, and a
// megabyte one is a mistake (a binary under that name), not a formation.
const maxProcfileBytes = 1 << 20

// ParseProcfile parses a Procfile by Heroku's rules: one `name: command` per line,
// names of letters, digits, '_' and '-'; blank lines and lines starting with '#' are
// skipped; CRLF line ends and a UTF-8 byte order mark are tolerated; the last line
// may lack its newline. A malformed line, an empty command and a duplicate name are
// errors at their line and column; name (the Procfile's path relative to the config
// repo) goes into each diagnostic. Entries come in file order.
func ParseProcfile(name string, data []byte) ([]ProcfileEntry, Diagnostics) {
	var (
		entries []ProcfileEntry
		diags   Diagnostics
		seen    = map[string]int{}
	)
	at := func(line, col int, msg string) {
		diags = append(diags, Diagnostic{Pos: Pos{File: name, Line: line, Col: col}, Message: msg})
	}
	if len(data) > maxProcfileBytes {
		at(1, 1, "Procfile is larger than 1 MiB")
		return nil, diags
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	for i, raw := range strings.Split(string(data), "\n") {
		line := i + 1
		text := strings.TrimSuffix(raw, "\r")
		trimmed := strings.TrimLeft(text, " \t")
		indent := len(text) - len(trimmed)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		colon := strings.IndexByte(trimmed, ':')
		if colon < 0 {
			at(line, indent+1, `malformed Procfile line: want "name: command"`)
			continue
		}
		typ := trimmed[:colon]
		if typ == "" {
			at(line, indent+1, `malformed Procfile line: missing process type before ":"`)
			continue
		}
		if bad := strings.IndexFunc(typ, func(r rune) bool { return !isProcessTypeRune(r) }); bad >= 0 {
			at(line, indent+bad+1, "malformed Procfile line: invalid process type "+quote(typ)+": want letters, digits, _ and -")
			continue
		}
		command := strings.TrimSpace(trimmed[colon+1:])
		if command == "" {
			at(line, indent+colon+1, "malformed Procfile line: process type "+quote(typ)+" has no command")
			continue
		}
		if first, dup := seen[typ]; dup {
			at(line, indent+1, "duplicate process type "+quote(typ)+" (first on line "+itoa(first)+")")
			continue
		}
		seen[typ] = line
		entries = append(entries, ProcfileEntry{Type: typ, Command: command, Line: line})
	}
	return entries, diags
}

func isProcessTypeRune(r rune) bool {
	return r == '_' || r == '-' || ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z') || ('0' <= r && r <= '9')
}
