package spec

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Diagnostic is one problem found in the config repo, at a place in one of its files.
type Diagnostic struct {
	Pos     Pos    `json:"pos"`
	Message string `json:"message"`
}

// String formats the diagnostic as "path:line:col: message", the form editors and CI
// annotators understand. A diagnostic with no file (a caller's mistake, such as an
// unknown environment in LoadOptions) is just its message.
func (d Diagnostic) String() string {
	if d.Pos.File == "" {
		return d.Message
	}
	return fmt.Sprintf("%s:%d:%d: %s", d.Pos.File, d.Pos.Line, d.Pos.Col, d.Message)
}

// Diagnostics are every problem of one load, sorted by file, line, column and message.
// It implements error; use Err to get a nil error when there is no problem.
type Diagnostics []Diagnostic

// Error joins the diagnostics one per line.
func (ds Diagnostics) Error() string {
	lines := make([]string, len(ds))
	for i, d := range ds {
		lines[i] = d.String()
	}
	return strings.Join(lines, "\n")
}

// Err returns ds as an error, or nil when there is no diagnostic (a nil Diagnostics
// stored in an error interface would not compare equal to nil).
func (ds Diagnostics) Err() error {
	if len(ds) == 0 {
		return nil
	}
	return ds
}

// sortDedup sorts ds and drops exact duplicates: a problem of a base spec shows up
// once although it is found again in every environment.
func (ds Diagnostics) sortDedup() Diagnostics {
	slices.SortFunc(ds, func(a, b Diagnostic) int {
		return cmp.Or(
			cmp.Compare(a.Pos.File, b.Pos.File),
			cmp.Compare(a.Pos.Line, b.Pos.Line),
			cmp.Compare(a.Pos.Col, b.Pos.Col),
			cmp.Compare(a.Message, b.Message),
		)
	})
	return slices.Compact(ds)
}

// diagSink collects diagnostics during a load.
type diagSink struct{ diags Diagnostics }

func (s *diagSink) add(pos Pos, format string, args ...any) {
	s.diags = append(s.diags, Diagnostic{Pos: pos, Message: fmt.Sprintf(format, args...)})
}
