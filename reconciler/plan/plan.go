// Package plan is manifold's pure planner: Diff compares desired apps with observed
// ones (a base commit, or what runs) and says per change what applying it does, from
// one table of spec fields (fields.go) that the loop's apply reads too; a Plan renders
// as text, markdown and JSON.
package plan

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/manifold-paas/manifold/spec"
)

// Kind is what a Change changes.
type Kind string

// The kinds of change. Those marked release make a new release when applied.
const (
	KindCreateApp   Kind = "create-app"   // release
	KindDestroyApp  Kind = "destroy-app"  // stops the app's dynos; its ledger is kept
	KindSource      Kind = "source"       // release (needs a build unless the slug exists)
	KindBuildpacks  Kind = "buildpacks"   // release (needs a build)
	KindStack       Kind = "stack"        // release (needs a build)
	KindConfig      Kind = "config"       // release
	KindSecret      Kind = "secret"       // release: a sealed config var, never printed
	KindCommand     Kind = "command"      // release: a process type's command
	KindScale       Kind = "scale"        // no release
	KindResize      Kind = "resize"       // no release: restarts the type's dynos
	KindHealthCheck Kind = "health-check" // no release: restarts the type's dynos
	KindStopTimeout Kind = "stop-timeout" // no release: restarts the type's dynos
	KindDomains     Kind = "domains"      // no release: the router table
	KindDrains      Kind = "drains"       // no release: the logplex
	KindSuspend     Kind = "suspend"      // no release
	KindBuildConfig Kind = "build-config" // release (needs a build)
	KindPromote     Kind = "promote"      // release of a pinned slug, no build
)

// Change is one difference between desired and observed state of one app in one
// environment. From and To are nil where a thing is added or removed.
type Change struct {
	Env  string `json:"env"`
	App  string `json:"app"`
	Kind Kind   `json:"kind"`
	// Process is the process type of scale, resize and command changes.
	Process string `json:"process,omitempty"`
	// Key is the config var of a config change.
	Key  string `json:"key,omitempty"`
	From any    `json:"from"`
	To   any    `json:"to"`
	// Sensitive hides From and To of a config change: printed as "(sensitive value changed)".
	Sensitive bool `json:"sensitive,omitempty"`
	// Effect is what applying the change does to what runs (release, restart, scale,
	// router, drains, suspend, stop).
	Effect Effect `json:"effect"`
	// Release tells whether applying the change makes a new release (Effect release).
	Release bool `json:"release"`
	// Origin is where a promoted slug comes from, as its pin says ("staging v42").
	Origin string `json:"origin,omitempty"`
}

// Formation sums the dynos an environment reserves.
type Formation struct {
	Dynos       int   `json:"dynos"`
	MemoryBytes int64 `json:"memory_bytes"`
}

// EnvSummary is the formation of one environment before and after the plan.
type EnvSummary struct {
	Env    string    `json:"env"`
	Before Formation `json:"before"`
	After  Formation `json:"after"`
}

// Plan is what it takes to go from observed to desired.
type Plan struct {
	// Changes are sorted by Env, App, then the order Diff emits them in.
	Changes []Change `json:"changes"`
	// Envs are the environments the plan covers, sorted.
	Envs []EnvSummary `json:"envs"`
}

// HasChanges tells whether applying the plan would do anything.
func (p Plan) HasChanges() bool { return len(p.Changes) > 0 }

// ForApp returns the changes of one app in one environment.
func (p Plan) ForApp(env, app string) []Change {
	var out []Change
	for _, c := range p.Changes {
		if c.Env == env && c.App == app {
			out = append(out, c)
		}
	}
	return out
}

// ForEnv returns the part of the plan about one environment.
func (p Plan) ForEnv(env string) Plan {
	var out Plan
	for _, c := range p.Changes {
		if c.Env == env {
			out.Changes = append(out.Changes, c)
		}
	}
	for _, s := range p.Envs {
		if s.Env == env {
			out.Envs = append(out.Envs, s)
		}
	}
	return out
}

// NeedsRelease tells whether any of changes makes a new release.
func NeedsRelease(changes []Change) bool {
	return slices.ContainsFunc(changes, func(c Change) bool { return c.Release })
}

// AppKey identifies an app in an environment.
type AppKey struct{ Env, App string }

// KeyOf is the app's key.
func KeyOf(app *spec.App) AppKey { return AppKey{Env: app.Env, App: app.Name} }

// Diff is the planner: a pure function from the desired apps (loaded from the spec) and
// the observed apps (the spec at a base commit, or what runs) to the changes between
// them. Both slices hold one spec.App per environment and app, in any order.
func Diff(desired, observed []spec.App) Plan {
	before := indexApps(observed)
	after := indexApps(desired)
	keys := slices.Collect(maps.Keys(before))
	for k := range after {
		if _, ok := before[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b AppKey) int {
		return cmp.Or(cmp.Compare(a.Env, b.Env), cmp.Compare(a.App, b.App))
	})

	var plan Plan
	summaries := map[string]*EnvSummary{}
	summary := func(env string) *EnvSummary {
		s, ok := summaries[env]
		if !ok {
			s = &EnvSummary{Env: env}
			summaries[env] = s
		}
		return s
	}
	for _, k := range keys {
		obs, des := before[k], after[k]
		s := summary(k.Env)
		if obs != nil {
			s.Before.add(formationOf(obs))
		}
		if des != nil {
			s.After.add(formationOf(des))
		}
		plan.Changes = appendAppChanges(plan.Changes, k, des, obs)
	}
	for _, env := range slices.Sorted(maps.Keys(summaries)) {
		plan.Envs = append(plan.Envs, *summaries[env])
	}
	return plan
}

func indexApps(apps []spec.App) map[AppKey]*spec.App {
	index := make(map[AppKey]*spec.App, len(apps))
	for i := range apps {
		index[KeyOf(&apps[i])] = &apps[i]
	}
	return index
}

func (f *Formation) add(other Formation) {
	f.Dynos += other.Dynos
	f.MemoryBytes += other.MemoryBytes
}

func formationOf(app *spec.App) Formation {
	var f Formation
	for _, p := range app.Processes {
		size, _ := spec.LookupSize(p.Size)
		f.Dynos += p.Count
		f.MemoryBytes += int64(p.Count) * size.MemoryBytes
	}
	return f
}

// appendAppChanges appends the changes that turn obs into des (either may be nil),
// walking the field tables in their order.
func appendAppChanges(changes []Change, k AppKey, des, obs *spec.App) []Change {
	change := func(kind Kind, effect Effect, from, to any) Change {
		return Change{Env: k.Env, App: k.App, Kind: kind, Effect: effect, From: from, To: to, Release: effect == EffectRelease}
	}
	switch {
	case obs == nil && des.Suspend:
		// Created suspended: nothing runs until it resumes.
		return append(changes, change(KindSuspend, EffectSuspend, nil, true))
	case obs == nil:
		return append(changes, change(KindCreateApp, EffectRelease, nil, FormationString(des)))
	case des == nil:
		return append(changes, change(KindDestroyApp, EffectStop, FormationString(obs), nil))
	case des.Suspend:
		// A suspended app is not reconciled: whatever else differs waits until it
		// resumes, so the plan shows the suspension alone (or nothing, when it stays).
		if !obs.Suspend {
			changes = append(changes, change(KindSuspend, EffectSuspend, false, true))
		}
		return changes
	}
	for _, f := range appFields {
		switch {
		case f.field == "Config":
			changes = appendConfigChanges(changes, k, des, obs)
		case f.field == "Secrets":
			changes = appendSecretChanges(changes, k, des, obs)
		case f.field == "Processes":
			changes = appendProcessChanges(changes, k, des, obs)
		case f.value == nil:
			// identity and print-only fields
		default:
			from, to := f.value(obs), f.value(des)
			if equalValues(from, to) {
				continue
			}
			c := change(f.kind, f.effect, from, to)
			switch f.field {
			case "ReleaseCommand":
				c.Process = "release"
			case "Pin":
				if des.Pin != nil {
					c.Origin = des.Pin.From
				}
			}
			changes = append(changes, c)
		}
	}
	return changes
}

func appendConfigChanges(changes []Change, k AppKey, des, obs *spec.App) []Change {
	keys := slices.Sorted(maps.Keys(des.Config))
	for key := range obs.Config {
		if _, ok := des.Config[key]; !ok {
			keys = append(keys, key)
		}
	}
	slices.Sort(keys)
	for _, key := range keys {
		from, hadFrom := obs.Config[key]
		to, hasTo := des.Config[key]
		if hadFrom == hasTo && from == to {
			continue
		}
		c := Change{Env: k.Env, App: k.App, Kind: KindConfig, Key: key, Effect: EffectRelease, Release: true}
		c.Sensitive = slices.Contains(des.Sensitive, key) || slices.Contains(obs.Sensitive, key)
		if !c.Sensitive {
			if hadFrom {
				c.From = from
			}
			if hasTo {
				c.To = to
			}
		}
		changes = append(changes, c)
	}
	return changes
}

// appendSecretChanges reports each secret added, removed or resealed. From and To are
// SecretValue where a secret is, never the sealed text nor a plaintext.
func appendSecretChanges(changes []Change, k AppKey, des, obs *spec.App) []Change {
	keys := slices.Sorted(maps.Keys(des.Secrets))
	for key := range obs.Secrets {
		if _, ok := des.Secrets[key]; !ok {
			keys = append(keys, key)
		}
	}
	slices.Sort(keys)
	for _, key := range keys {
		from, hadFrom := obs.Secrets[key]
		to, hasTo := des.Secrets[key]
		if hadFrom && hasTo && from.Sealed == to.Sealed {
			continue
		}
		c := Change{Env: k.Env, App: k.App, Kind: KindSecret, Key: key, Effect: EffectRelease, Release: true}
		if hadFrom {
			c.From = SecretValue
		}
		if hasTo {
			c.To = SecretValue
		}
		changes = append(changes, c)
	}
	return changes
}

// SecretValue stands for a secret's value wherever one is shown.
const SecretValue = "(secret)"

func appendProcessChanges(changes []Change, k AppKey, des, obs *spec.App) []Change {
	before := map[string]spec.Process{}
	for _, p := range obs.Processes {
		before[p.Type] = p
	}
	after := map[string]spec.Process{}
	for _, p := range des.Processes {
		after[p.Type] = p
	}
	types := slices.Sorted(maps.Keys(after))
	for t := range before {
		if _, ok := after[t]; !ok {
			types = append(types, t)
		}
	}
	slices.Sort(types)
	for _, t := range types {
		from, hadFrom := before[t]
		to, hasTo := after[t]
		// Restart fields matter only where dynos run before and after: a type that
		// comes, goes or runs no dynos is a scale (its new dynos start as specified).
		replaced := hadFrom && hasTo && from.Count > 0 && to.Count > 0
		for _, f := range processFields {
			if f.value == nil || f.effect == EffectIdentity {
				continue
			}
			if f.effect == EffectRestart && !replaced {
				continue
			}
			fromValue, toValue := f.value(from), f.value(to)
			if equalValues(fromValue, toValue) {
				continue
			}
			changes = append(changes, Change{Env: k.Env, App: k.App, Kind: f.kind, Process: t,
				Effect: f.effect, From: fromValue, To: toValue, Release: f.effect == EffectRelease})
		}
	}
	return changes
}

// FormationString describes an app's formation as Heroku's `ps:scale` does:
// "web=2:standard-1x worker=1:standard-1x". Types scaled to 0 are left out.
func FormationString(app *spec.App) string {
	var parts []string
	for _, p := range app.Processes {
		if p.Count > 0 {
			parts = append(parts, fmt.Sprintf("%s=%d:%s", p.Type, p.Count, p.Size))
		}
	}
	if len(parts) == 0 {
		return "no dynos"
	}
	return strings.Join(parts, " ")
}
