package plan

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/manifold-paas/manifold/spec"
)

// Effect is what applying a change does to what runs. Diff and the loop's apply both
// read it from the field tables below, so the plan a reviewer approves names exactly
// what the daemon then does.
type Effect string

// The effects of a change, from the heaviest.
const (
	// EffectRelease makes a new release: a build when the code changed, the release
	// phase, then every dyno of the app replaced with rolling restarts.
	EffectRelease Effect = "release"
	// EffectStop stops every dyno of the app (it left the config repo); its ledger stays.
	EffectStop Effect = "stop"
	// EffectRestart replaces the dynos of one process type (rolling), with no new release.
	EffectRestart Effect = "restart"
	// EffectScale starts or stops dynos of one process type; the others keep running.
	EffectScale Effect = "scale"
	// EffectRouter changes the router table only.
	EffectRouter Effect = "router"
	// EffectDrains changes the logplex's drains only.
	EffectDrains Effect = "drains"
	// EffectSuspend stops or resumes reconciling the app; what runs keeps running.
	EffectSuspend Effect = "suspend"
	// EffectNone changes nothing at run time (where an app is declared, which config
	// values are printed): such a field never appears in a plan.
	EffectNone Effect = "none"
	// EffectIdentity marks the fields that name an app or a process type: a different
	// value is another app (create and destroy) or another type (scale), never a change.
	EffectIdentity Effect = "identity"
)

// appField is one field of spec.App: the kind of change it makes and what that does.
// Fields with their own walk (Config and Secrets per key, Processes per type and
// field) have no value function.
type appField struct {
	field  string // the Go field name in spec.App
	kind   Kind
	effect Effect
	value  func(*spec.App) any
}

// processField is one field of spec.Process.
type processField struct {
	field  string // the Go field name in spec.Process
	kind   Kind
	effect Effect
	value  func(spec.Process) any
}

// appFields lists every field of spec.App, in the order Diff reports changes. A test
// proves it complete (a field added to spec.App and not here fails it), so no field
// can change what runs without the plan saying so.
var appFields = []appField{
	{field: "Name", effect: EffectIdentity},
	{field: "Env", effect: EffectIdentity},
	{field: "Pos", effect: EffectNone},
	{field: "Sensitive", effect: EffectNone},
	{field: "Notify", effect: EffectNone}, // receivers of events: nothing that runs changes
	{field: "Suspend", kind: KindSuspend, effect: EffectSuspend, value: func(a *spec.App) any { return a.Suspend }},
	{field: "Source", kind: KindSource, effect: EffectRelease, value: func(a *spec.App) any { return SourceString(a.Source) }},
	{field: "Buildpacks", kind: KindBuildpacks, effect: EffectRelease, value: func(a *spec.App) any { return listOrNil(a.Buildpacks) }},
	{field: "Stack", kind: KindStack, effect: EffectRelease, value: func(a *spec.App) any { return a.Stack }},
	{field: "BuildConfig", kind: KindBuildConfig, effect: EffectRelease, value: func(a *spec.App) any { return listOrNil(a.BuildConfig) }},
	{field: "Pin", kind: KindPromote, effect: EffectRelease, value: func(a *spec.App) any { return pinnedSlug(a) }},
	{field: "SoakSeconds", effect: EffectNone}, // read by `manifold promote` only
	// Read by the review manager only: it makes review environments of the app's
	// source refs (their own apps and plans), nothing in this environment.
	{field: "Review", effect: EffectNone},
	{field: "Config", kind: KindConfig, effect: EffectRelease},
	{field: "Secrets", kind: KindSecret, effect: EffectRelease},
	{field: "Processes"},
	{field: "ReleaseCommand", kind: KindCommand, effect: EffectRelease, value: func(a *spec.App) any { return strOrNil(a.ReleaseCommand) }},
	{field: "Domains", kind: KindDomains, effect: EffectRouter, value: func(a *spec.App) any { return listOrNil(a.Domains) }},
	{field: "Drains", kind: KindDrains, effect: EffectDrains, value: func(a *spec.App) any { return listOrNil(drainStrings(a.Drains)) }},
}

// processFields lists every field of spec.Process, in the order Diff reports changes.
var processFields = []processField{
	{field: "Type", effect: EffectIdentity},
	{field: "Command", kind: KindCommand, effect: EffectRelease, value: func(p spec.Process) any { return strOrNil(p.Command) }},
	{field: "Count", kind: KindScale, effect: EffectScale, value: func(p spec.Process) any { return p.Count }},
	{field: "Size", kind: KindResize, effect: EffectRestart, value: func(p spec.Process) any { return p.Size }},
	{field: "HealthCheck", kind: KindHealthCheck, effect: EffectRestart, value: func(p spec.Process) any { return strOrNil(p.HealthCheck) }},
	{field: "StopTimeoutSeconds", kind: KindStopTimeout, effect: EffectRestart, value: func(p spec.Process) any { return p.StopTimeoutSeconds }},
}

// FieldEffects returns the effect of every field of spec.App and spec.Process by name
// ("App.Config", "Process.Size"): the table behind Diff and the rollout, for tests and
// docs/architecture.md.
func FieldEffects() map[string]Effect {
	out := map[string]Effect{}
	for _, f := range appFields {
		if f.field != "Processes" {
			out["App."+f.field] = f.effect
		}
	}
	for _, f := range processFields {
		out["Process."+f.field] = f.effect
	}
	return out
}

// Restarts tells whether a dyno that runs process `from` must be replaced to run `to`
// on the same release: a field whose effect is restart differs (size, health check,
// stop timeout). The rollout asks it of every running dyno; Diff reports the same
// fields, so a restart is planned exactly when the rollout makes one.
func Restarts(from, to spec.Process) bool {
	for _, f := range processFields {
		if f.effect == EffectRestart && !equalValues(f.value(from), f.value(to)) {
			return true
		}
	}
	return false
}

// Fingerprint hashes what makes a release, the fields whose effect is release: the
// code (source, buildpacks, stack), the config and the commands. Equal fingerprints
// need no new release. The ledger keeps each release's fingerprint, so its form never
// changes (a new form would redeploy every app once); a test proves it covers exactly
// the release fields of the tables.
func Fingerprint(app *spec.App) string {
	commands := map[string]string{}
	for _, p := range app.Processes {
		commands[p.Type] = p.Command
	}
	// Fields added since the first form are left out when empty, so that an app
	// that does not use them keeps its fingerprint.
	// Secrets count by their sealed text (the plaintext is not known here), and are
	// left out when there are none, so that apps without secrets keep the form.
	var secrets map[string]string
	for name, s := range app.Secrets {
		if secrets == nil {
			secrets = map[string]string{}
		}
		secrets[name] = s.Sealed
	}
	payload, err := json.Marshal(struct {
		Source         spec.Source
		Buildpacks     []string
		Stack          string
		Config         map[string]string
		Commands       map[string]string
		ReleaseCommand string
		Secrets        map[string]string `json:",omitempty"`
		BuildConfig    []string          `json:",omitempty"`
		PinnedSlug     string            `json:",omitempty"`
	}{app.Source, app.Buildpacks, app.Stack, app.Config, commands, app.ReleaseCommand, secrets, app.BuildConfig, strOrEmpty(pinnedSlug(app))})
	if err != nil {
		// Strings, slices and maps of strings always marshal.
		panic(fmt.Sprintf("plan: fingerprint of %s (%s): %v", app.Name, app.Env, err))
	}
	sum := sha256.Sum256(payload)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// equalValues compares two values of a field's value function: strings, ints, bools,
// nil and []string.
func equalValues(a, b any) bool {
	la, aList := a.([]string)
	lb, bList := b.([]string)
	if aList || bList {
		return slices.Equal(la, lb)
	}
	return a == b
}

// SourceString is how a plan prints a source: path@sha256:1a2b3c4d5e6f for a folder,
// url@ref for git.
func SourceString(s spec.Source) string {
	switch {
	case s.Git != "":
		ref := s.Ref
		if ref == "" {
			ref = "HEAD"
		}
		return s.Git + "@" + ref
	case s.Digest != "":
		src := s.Path + "@" + ShortDigest(s.Digest)
		if s.Ref != "" {
			src += " (ref " + s.Ref + ")"
		}
		return src
	default:
		return s.Path
	}
}

// ShortDigest is "sha256:1a2b3c4d5e6f" of "sha256:<64 hex>".
func ShortDigest(digest string) string {
	algo, hexDigits, ok := cutDigest(digest)
	if !ok || len(hexDigits) <= 12 {
		return digest
	}
	return algo + ":" + hexDigits[:12]
}

func cutDigest(digest string) (algo, hexDigits string, ok bool) {
	for i := range len(digest) {
		if digest[i] == ':' {
			return digest[:i], digest[i+1:], true
		}
	}
	return "", "", false
}

func drainStrings(drains []spec.Drain) []string {
	out := make([]string, 0, len(drains))
	for _, d := range drains {
		s := d.Name + "=" + d.URL
		if d.CA != "" {
			s += " (ca " + d.CA + "@" + ShortDigest(d.CADigest) + ")"
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// pinnedSlug is the slug an environment's release pin runs, nil when not pinned. The
// pin's From is for people: a new From over the same slug changes nothing that runs.
func pinnedSlug(app *spec.App) any {
	if app.Pin == nil {
		return nil
	}
	return app.Pin.Slug
}

func strOrEmpty(v any) string {
	s, _ := v.(string)
	return s
}

func listOrNil(list []string) any {
	if len(list) == 0 {
		return nil
	}
	return list
}

func strOrNil(s string) any {
	if s == "" {
		return nil
	}
	return s
}
