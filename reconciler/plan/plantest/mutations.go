// Package plantest holds what the planner's tests and the loop's tests share: one
// mutation of every field of spec.App and spec.Process, proved complete by its own
// test, so that "plan = apply" is checked field by field and no field is forgotten.
package plantest

import (
	"maps"
	"slices"

	"github.com/manifold-paas/manifold/reconciler/secret"
	"github.com/manifold-paas/manifold/spec"
)

// The age key pair the Secrets mutation seals to: a daemon under test opens it with
// Identity. A test key, public on purpose.
const (
	Identity  = "AGE-SECRET-KEY-1G502N2HS7JQM03UYHTU020CEZ5NRQCUQHRZET8J793JXYUENG3LQ2RRDPZ"
	Recipient = "age1hzjymjmjclfcne44f0u98ya9nn57l9f2r4kn6nn7tjmlckpce4ms6k6wpc"
)

// Mutation changes one field of an app to another valid value.
type Mutation struct {
	// Field is "App.<field>" or "Process.<field>" (the web process's), as in
	// plan.FieldEffects.
	Field string
	// Mutate changes the field in place; nil for identity fields (Name, Env, Type),
	// whose change makes another app or process type, never a change of this one.
	Mutate func(app *spec.App)
}

// Mutations returns a mutation of every field, for an app with a web process (count
// at least 1, no health check) and a folder source.
func Mutations() []Mutation {
	web := func(app *spec.App) *spec.Process {
		i := slices.IndexFunc(app.Processes, func(p spec.Process) bool { return p.Type == "web" })
		app.Processes = slices.Clone(app.Processes)
		return &app.Processes[i]
	}
	return []Mutation{
		{Field: "App.Name"},
		{Field: "App.Env"},
		{Field: "App.Pos", Mutate: func(app *spec.App) { app.Pos.Line += 10 }},
		{Field: "App.Source", Mutate: func(app *spec.App) { app.Source.Path += "-v2"; app.Source.Digest = "sha256:" + hex64('e') }},
		{Field: "App.Buildpacks", Mutate: func(app *spec.App) {
			if len(app.Buildpacks) == 0 {
				app.Buildpacks = []string{"procfile"}
			} else {
				app.Buildpacks = nil
			}
		}},
		{Field: "App.Stack", Mutate: func(app *spec.App) { app.Stack += "-next" }},
		{Field: "App.Config", Mutate: func(app *spec.App) {
			config := map[string]string{"MUTATED": "1"}
			for k, v := range app.Config {
				config[k] = v
			}
			app.Config = config
		}},
		{Field: "App.Secrets", Mutate: func(app *spec.App) {
			sealed, err := secret.Seal(secret.Binding{App: app.Name, Env: app.Env, Name: "MUTATED_SECRET"}, "mutated", []string{Recipient})
			if err != nil {
				panic(err) // a valid recipient always seals
			}
			secrets := maps.Clone(app.Secrets)
			if secrets == nil {
				secrets = map[string]spec.Secret{}
			}
			secrets["MUTATED_SECRET"] = spec.Secret{Sealed: sealed}
			app.Secrets = secrets
		}},
		{Field: "App.Sensitive", Mutate: func(app *spec.App) { app.Sensitive = append(slices.Clone(app.Sensitive), "MUTATED_SECRET") }},
		{Field: "App.Domains", Mutate: func(app *spec.App) { app.Domains = append(slices.Clone(app.Domains), "mutated.example.test") }},
		{Field: "App.Processes", Mutate: func(app *spec.App) {
			app.Processes = append(slices.Clone(app.Processes), spec.Process{Type: "zmutated", Command: "sleep 600", Count: 1,
				Size: app.Processes[0].Size, StopTimeoutSeconds: spec.DefaultStopTimeoutSeconds})
		}},
		{Field: "App.ReleaseCommand", Mutate: func(app *spec.App) { app.ReleaseCommand = "echo released" }},
		{Field: "App.Drains", Mutate: func(app *spec.App) {
			app.Drains = append(slices.Clone(app.Drains), spec.Drain{Name: "mutated", URL: "syslog+tcp://127.0.0.1:1"})
		}},
		{Field: "App.Notify", Mutate: func(app *spec.App) {
			app.Notify = append(slices.Clone(app.Notify), spec.Notify{Name: "mutated", Type: "slack"})
		}},
		{Field: "App.Suspend", Mutate: func(app *spec.App) { app.Suspend = !app.Suspend }},
		{Field: "App.BuildConfig", Mutate: func(app *spec.App) { app.BuildConfig = []string{"MUTATED_BUILD"} }},
		// A slug that is not in any store: the loop's test replaces it with one it built.
		{Field: "App.Pin", Mutate: func(app *spec.App) { app.Pin = &spec.ReleasePin{Slug: "sha256:" + hex64('b'), From: "staging v42"} }},
		{Field: "App.SoakSeconds", Mutate: func(app *spec.App) { app.SoakSeconds += 1800 }},
		// The loader refuses review = true on a folder source, so a config repo never
		// holds this mutation of the base app: the planner's test diffs it (no change),
		// the loop's test writes the app without it.
		{Field: "App.Review", Mutate: func(app *spec.App) { app.Review = !app.Review }},
		{Field: "Process.Type"},
		{Field: "Process.Command", Mutate: func(app *spec.App) { p := web(app); p.Command = "exec " + p.Command }},
		{Field: "Process.Count", Mutate: func(app *spec.App) { web(app).Count++ }},
		{Field: "Process.Size", Mutate: func(app *spec.App) {
			p := web(app)
			if p.Size == "standard-2x" {
				p.Size = "standard-1x"
			} else {
				p.Size = "standard-2x"
			}
		}},
		{Field: "Process.HealthCheck", Mutate: func(app *spec.App) { web(app).HealthCheck = "/" }},
		{Field: "Process.StopTimeoutSeconds", Mutate: func(app *spec.App) { web(app).StopTimeoutSeconds = 7 }},
	}
}

func hex64(c byte) string {
	b := make([]byte, 64)
	for i := range b {
		b[i] = c
	}
	return string(b)
}
