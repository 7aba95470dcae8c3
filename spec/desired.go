package spec

import (
	"cmp"
	"slices"
)

// Lookup returns the app of that name in that environment. Apps are sorted by Env
// then Name, so this is a binary search.
func (d *Desired) Lookup(env, name string) (*App, bool) {
	i, found := slices.BinarySearchFunc(d.Apps, [2]string{env, name}, func(a App, key [2]string) int {
		return cmp.Or(cmp.Compare(a.Env, key[0]), cmp.Compare(a.Name, key[1]))
	})
	if !found {
		return nil, false
	}
	return &d.Apps[i], true
}

// Process returns the process of that type.
func (a *App) Process(typ string) (Process, bool) {
	for _, p := range a.Processes {
		if p.Type == typ {
			return p, true
		}
	}
	return Process{}, false
}
