package slug

import (
	"bufio"
	"bytes"
	"regexp"
	"strings"
)

// procfileLine is Heroku's Procfile syntax: "<type>: <command>".
var procfileLine = regexp.MustCompile(`^([A-Za-z0-9_-]+):\s*(.+)$`)

// parseProcfile returns the process types a Procfile declares. Lines that are not
// "<type>: <command>" (comments, blanks) are ignored, as Heroku does; the spec
// package reports them to the user with file:line:col.
func parseProcfile(raw []byte) map[string]string {
	types := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		if m := procfileLine.FindStringSubmatch(sc.Text()); m != nil {
			types[m[1]] = strings.TrimSpace(m[2])
		}
	}
	return types
}
