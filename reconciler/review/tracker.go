// Package review decides the lifecycle of review environments from listings of the
// refs of the config repo and of apps' git sources: which to create, redeploy and
// destroy, and which wait for a slot. A failed listing never destroys anything.
package review

import (
	"cmp"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/manifold-paas/manifold/spec"
)

// States of a review environment.
const (
	StateActive  = "active"  // it runs (or is being deployed)
	StateWaiting = "waiting" // its ref matches but max review environments run already
)

// missingListings is how many successful listings in a row must lack a ref before
// its environment is destroyed: one listing can be partial (a forge's replica lag).
const missingListings = 2

// Env is one review environment.
type Env struct {
	// Name is the environment's name, from its ref (pr-7, review-login-form).
	Name string `json:"name"`
	// App is the app whose git source Ref is of (its environment runs that app
	// only); empty for a ref of the config repo.
	App string `json:"app,omitempty"`
	Ref string `json:"ref"`
	// Commit is the ref's commit it was last deployed from (or waits to be).
	Commit string `json:"commit"`
	State  string `json:"state"`
	// Reason says why it waits.
	Reason    string    `json:"reason,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	// PushedAt is when its ref last moved (or appeared): the ttl counts from it.
	PushedAt time.Time `json:"pushed_at"`
	// Postdeployed is set once the review block's postdeploy commands have run
	// (after its first successful release): they never run again for it.
	Postdeployed bool `json:"postdeployed,omitempty"`
	// missing counts the successful listings in a row without the ref.
	missing int
}

// Decisions is what one listing asks of the daemon.
type Decisions struct {
	// Create and Redeploy hold environments to deploy from Env.Commit.
	Create, Redeploy []Env
	// Destroy holds environments to tear down (predestroy first), with why.
	Destroy []Destroyed
	// Settled is false until two listings have succeeded since the Manager started:
	// until then it cannot tell a review environment that ran before a restart from
	// one whose ref is gone, and the daemon must leave what runs alone.
	Settled bool
}

// Destroyed is an environment to tear down and why.
type Destroyed struct {
	Env    Env
	Reason string
}

// Tracker remembers the review environments between listings. It is not safe for
// concurrent use: the daemon's loop owns it.
type Tracker struct {
	settings spec.Review
	envs     map[string]*Env
	// expired holds the commit of an environment the ttl destroyed: it stays gone
	// until its ref moves.
	expired map[string]string
	// ListError is why the last listing failed, "" when it succeeded.
	ListError string
	// app is set on the tracker of an app's git source (appsource.go).
	app string
	// taken counts the active review environments of the other trackers: all of
	// them share settings.Max.
	taken int
}

// NewTracker returns a Tracker with no environments.
func NewTracker(settings spec.Review) *Tracker {
	if settings.Max <= 0 {
		settings.Max = spec.DefaultReviewMax
	}
	return &Tracker{settings: settings, envs: map[string]*Env{}, expired: map[string]string{}}
}

// Observe takes one listing of the repo's refs (full ref name to commit) or the error
// that listing failed with, at now, and returns what to do. A failed listing changes
// nothing but ListError: it neither creates nor destroys.
func (t *Tracker) Observe(now time.Time, refs map[string]string, listErr error) Decisions {
	var d Decisions
	if listErr != nil {
		t.ListError = listErr.Error()
		return d
	}
	t.ListError = ""
	seen := map[string]string{} // env name -> ref
	for _, ref := range slices.Sorted(maps.Keys(refs)) {
		name, ok := t.envName(ref)
		if !ok {
			continue
		}
		if _, dup := seen[name]; dup {
			continue // two refs make one name: the first (sorted) wins
		}
		seen[name] = ref
		commit := refs[ref]
		if expiredAt, ok := t.expired[name]; ok {
			if expiredAt == commit {
				continue
			}
			delete(t.expired, name) // a push revives it
		}
		env, ok := t.envs[name]
		switch {
		case !ok:
			t.envs[name] = &Env{Name: name, App: t.app, Ref: ref, Commit: commit, State: StateWaiting, CreatedAt: now, PushedAt: now}
		case env.Commit != commit:
			env.Commit, env.PushedAt, env.missing = commit, now, 0
			if env.State == StateActive {
				d.Redeploy = append(d.Redeploy, *env)
			}
		default:
			env.missing = 0
		}
	}
	ttl := time.Duration(t.settings.TTLSeconds) * time.Second
	for _, name := range slices.Sorted(maps.Keys(t.envs)) {
		env := t.envs[name]
		reason := ""
		if _, listed := seen[name]; !listed {
			env.missing++
			if env.missing >= missingListings {
				reason = "its ref " + env.Ref + " is gone"
			}
		} else if ttl > 0 && now.Sub(env.PushedAt) >= ttl {
			reason = "no push for " + ttl.String()
			t.expired[name] = env.Commit
		}
		if reason == "" {
			continue
		}
		delete(t.envs, name)
		if env.State == StateActive {
			d.Destroy = append(d.Destroy, Destroyed{Env: *env, Reason: reason})
		}
	}
	// Fill free slots with waiting environments, oldest first.
	active := 0
	var waiting []*Env
	for _, env := range t.envs {
		if env.State == StateActive {
			active++
		} else {
			waiting = append(waiting, env)
		}
	}
	slices.SortFunc(waiting, func(a, b *Env) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.Name, b.Name))
	})
	for _, env := range waiting {
		if active+t.taken < t.settings.Max {
			env.State, env.Reason = StateActive, ""
			active++
			d.Create = append(d.Create, *env)
			continue
		}
		env.Reason = "waiting: " + plural(t.settings.Max) + " at once (review max)"
	}
	return d
}

// Envs returns every review environment, active and waiting, sorted by name.
func (t *Tracker) Envs() []Env {
	out := make([]Env, 0, len(t.envs))
	for _, name := range slices.Sorted(maps.Keys(t.envs)) {
		out = append(out, *t.envs[name])
	}
	return out
}

func plural(n int) string {
	if n == 1 {
		return "1 review environment runs"
	}
	return strconv.Itoa(n) + " review environments run"
}
