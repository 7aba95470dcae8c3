package spec

import (
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"
)

// pipeline.go decodes what promotions read: an environment's release pin
// (`release { slug, from }`), an app's build_config and an environment's soak.

// slugKeyRE is a slug store key: "sha256:" and 64 lowercase hex digits.
var slugKeyRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// maxSoak bounds an environment's soak: longer is a typo (a unit left out or wrong).
const maxSoak = 90 * 24 * time.Hour

type durationField struct {
	set bool
	v   time.Duration
	pos Pos
}

type rawRelease struct {
	pos        Pos
	slug, from strField
}

func releaseSchema() schema { return schema{} }

// release reads an environment's `release { slug = "sha256:…" from = "staging v42" }`.
// A base spec cannot pin: a slug is what an environment promotes into itself.
func (d *decoder) release(b block, inEnv bool) *rawRelease {
	if b.labelled {
		d.sink.add(b.labelPos, "release block takes no label")
	}
	attrs, _ := d.checkShape(b.body, shape{what: "release", attrs: []string{"from", "slug"}})
	if !inEnv {
		d.sink.add(b.typPos, "release: a slug is pinned per environment: move this block into the app block of an environment file")
		return nil
	}
	r := &rawRelease{pos: b.typPos}
	a, slugWritten := attrs["slug"]
	r.slug = d.nonEmptyStr(a, slugWritten)
	a, ok := attrs["from"]
	r.from = d.str(a, ok)
	switch {
	case !r.slug.set && !slugWritten:
		d.sink.add(b.typPos, `release: set slug = "sha256:<64 hex digits>" (the slug to run)`)
		return nil
	case !r.slug.set:
		return nil
	case !slugKeyRE.MatchString(r.slug.v):
		d.sink.add(r.slug.pos, "release: slug %q is not a slug key: want \"sha256:\" and 64 lowercase hex digits", r.slug.v)
		return nil
	}
	return r
}

// duration reads a Go duration string ("30m", "1h30m") in [0, maxSoak].
func (d *decoder) duration(a attr, ok bool) durationField {
	f := d.str(a, ok)
	if !f.set {
		return durationField{}
	}
	v, err := time.ParseDuration(f.v)
	switch {
	case err != nil:
		d.sink.add(f.pos, "%s: %q is not a duration: want e.g. \"30m\", \"2h\" or \"0s\"", a.name, f.v)
	case v < 0:
		d.sink.add(f.pos, "%s: must not be negative, got %q", a.name, f.v)
	case v > maxSoak:
		d.sink.add(f.pos, "%s: must be at most %s, got %q", a.name, maxSoak, f.v)
	default:
		return durationField{set: true, v: v, pos: f.pos}
	}
	return durationField{}
}

// configNames reads a list of config var names (build_config).
func (d *decoder) configNames(a attr, ok bool) listField {
	f := d.strList(a, ok)
	for _, item := range f.items {
		if !configNameRE.MatchString(item.v) {
			d.sink.add(item.pos, "%s: invalid config var name %q: want [A-Za-z_][A-Za-z0-9_]*", a.name, item.v)
		}
	}
	return f
}

// resolvePipeline sets what an app's layers say about promotions: the last layer's
// build_config, the environment's pin.
func resolvePipeline(app *App, layers []*rawApp) {
	for _, layer := range layers {
		if layer.buildConfig.set {
			names := make([]string, 0, len(layer.buildConfig.items))
			for _, item := range layer.buildConfig.items {
				names = append(names, item.v)
			}
			app.BuildConfig = sortedUnique(names)
		}
		if layer.release != nil {
			app.Pin = &ReleasePin{Slug: layer.release.slug.v, From: layer.release.from.v}
		}
	}
}

// soakSeconds is the environment's soak in whole seconds (0 when unset).
func (e *rawEnv) soakSeconds() int64 { return int64(e.soak.v / time.Second) }

func sortedUnique(names []string) []string {
	out := []string{}
	seen := map[string]bool{}
	for _, n := range names {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// String is how plans and the CLI print a pin: "sha256:… (staging v42)".
func (p ReleasePin) String() string {
	if p.From == "" {
		return p.Slug
	}
	return fmt.Sprintf("%s (%s)", p.Slug, p.From)
}

// DefaultReviewMax is how many review environments run at once when `max` is left out.
const DefaultReviewMax = 5

// maxReviewEnvs bounds `max`: each review environment runs every app.
const maxReviewEnvs = 100

func reviewSchema() schema { return schema{} }

// review reads `review { refs, branches, ttl, max }` of manifold.hcl.
func (d *decoder) review(b block) *Review {
	if b.labelled {
		d.sink.add(b.labelPos, "review block takes no label")
	}
	attrs, _ := d.checkShape(b.body, shape{what: "review", attrs: []string{"branches", "max", "postdeploy", "predestroy", "refs", "ttl"}})
	r := &Review{Max: DefaultReviewMax}
	a, ok := attrs["refs"]
	for _, item := range d.strList(a, ok).items {
		if !strings.HasPrefix(item.v, "refs/") || !validPattern(item.v) {
			d.sink.add(item.pos, "refs: %q is not a ref pattern: want a full ref name such as \"refs/pull/*/head\"", item.v)
			continue
		}
		r.Refs = append(r.Refs, item.v)
	}
	a, ok = attrs["branches"]
	for _, item := range d.strList(a, ok).items {
		if strings.HasPrefix(item.v, "refs/") || !validPattern(item.v) {
			d.sink.add(item.pos, "branches: %q is not a branch pattern: want a branch name such as \"review/*\"", item.v)
			continue
		}
		r.Branches = append(r.Branches, item.v)
	}
	a, ok = attrs["ttl"]
	r.TTLSeconds = int64(d.duration(a, ok).v / time.Second)
	a, ok = attrs["max"]
	if f := d.wholeNumber(a, ok, 1, maxReviewEnvs); f.set {
		r.Max = f.v
	}
	a, ok = attrs["postdeploy"]
	r.Postdeploy = d.appCommands(a, ok)
	a, ok = attrs["predestroy"]
	r.Predestroy = d.appCommands(a, ok)
	if len(r.Refs) == 0 && len(r.Branches) == 0 {
		d.sink.add(b.typPos, `review: set refs = ["refs/pull/*/head"] or branches = ["review/*"]`)
	}
	return r
}

func validPattern(p string) bool {
	_, err := path.Match(p, "")
	return err == nil
}

// EnvName returns the review environment a ref of the config repo makes, and whether
// the ref matches the review settings: refs/pull/7/head is "pr-7", a branch is its
// name made a DNS label (review/login-form is "review-login-form"), another ref its
// name after refs/ made one.
func (r *Review) EnvName(ref string) (string, bool) {
	matched := false
	for _, p := range r.Refs {
		if ok, _ := path.Match(p, ref); ok {
			matched = true
		}
	}
	if branch, ok := strings.CutPrefix(ref, "refs/heads/"); ok {
		for _, p := range r.Branches {
			if ok, _ := path.Match(p, branch); ok {
				matched = true
			}
		}
	}
	if !matched {
		return "", false
	}
	var name string
	switch parts := strings.Split(ref, "/"); {
	case len(parts) == 4 && parts[1] == "pull" && parts[3] == "head":
		name = "pr-" + parts[2]
	case strings.HasPrefix(ref, "refs/heads/"):
		name = strings.TrimPrefix(ref, "refs/heads/")
	default:
		name = strings.TrimPrefix(ref, "refs/")
	}
	name = dnsLabel(name)
	return name, nameRE.MatchString(name)
}

// dnsLabel lowercases s and turns every run of other characters than letters and
// digits into one dash, trimmed to 63 characters without a dash at either end.
func dnsLabel(s string) string {
	var b strings.Builder
	dash := false
	for _, c := range strings.ToLower(s) {
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' {
			b.WriteRune(c)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	out := strings.Trim(b.String(), "-")
	if len(out) > 63 {
		out = strings.TrimRight(out[:63], "-")
	}
	if out != "" && (out[0] < 'a' || out[0] > 'z') {
		out = "r-" + out
	}
	return out
}

// appCommands reads a map of app names to commands (postdeploy, predestroy).
func (d *decoder) appCommands(a attr, ok bool) map[string]string {
	if !ok || a.val.kind == kindNull {
		return nil
	}
	if a.val.kind != kindMap {
		d.sink.add(a.val.pos, "%s: want a map of app names to commands, got %s", a.name, a.val.kind)
		return nil
	}
	out := map[string]string{}
	for _, e := range a.val.entries {
		switch {
		case !nameRE.MatchString(e.key):
			d.sink.add(e.keyPos, "%s: %q is not an app name", a.name, e.key)
		case e.val.kind != kindString || strings.TrimSpace(e.val.str) == "":
			d.sink.add(e.val.pos, "%s: %s: want a command", a.name, e.key)
		default:
			out[e.key] = e.val.str
		}
	}
	return out
}

// resolveReview sets App.Review from the last layer that writes `review`, and
// refuses `review = true` on an app whose source is a folder of the config repo:
// such an app is reviewed through the config repo's own refs.
func (l *loader) resolveReview(app *App, env string, layers []*rawApp) {
	var review boolField
	sourceFromEnv := false
	for i, layer := range layers {
		if layer.review.set {
			review = layer.review
		}
		if s := layer.source; s != nil && (s.path.set || s.git.set) {
			sourceFromEnv = i > 0
		}
	}
	app.Review = review.v
	if !review.v || app.Source.Git != "" {
		return
	}
	where := ""
	if sourceFromEnv {
		where = fmt.Sprintf(" in environment %q", env)
	}
	l.sink.add(review.pos, "review = true needs a git source, and app %q%s builds a folder of the config repo: "+
		"its review environments come from the config repo's refs (the review block of manifold.hcl)", app.Name, where)
}
