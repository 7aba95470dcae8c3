package logs

import "strings"

// Filter selects lines, as `manifold logs` flags do. An empty field matches anything.
type Filter struct {
	App string `json:"app,omitempty"`
	Env string `json:"env,omitempty"`
	// Source is app, heroku or api (--source).
	Source string `json:"source,omitempty"`
	// Dyno is Heroku's --ps: "web.1" matches that dyno only, "web" (no dot) matches
	// every dyno of the type (web.1, web.2, …) and a dyno named exactly web.
	Dyno string `json:"dyno,omitempty"`
}

// Match reports whether line passes the filter.
func (f Filter) Match(line Line) bool {
	if f.App != "" && line.App != f.App {
		return false
	}
	if f.Env != "" && line.Env != f.Env {
		return false
	}
	if f.Source != "" && line.Source != f.Source {
		return false
	}
	if f.Dyno == "" || line.Dyno == f.Dyno {
		return true
	}
	if strings.Contains(f.Dyno, ".") {
		return false
	}
	return len(line.Dyno) > len(f.Dyno) && line.Dyno[len(f.Dyno)] == '.' && strings.HasPrefix(line.Dyno, f.Dyno)
}
