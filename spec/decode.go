package spec

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// decode.go turns the common tree into raw specs: every value type-checked and
// checked on its own (sizes, names, URLs), each remembering where it was written so
// that the merge and the cross-file checks in load.go can point at it.

// maxCount bounds a process's dyno count, so a typo cannot ask for a billion dynos
// and memory sums cannot overflow.
const maxCount = 10000

// maxStopTimeoutSeconds bounds the SIGTERM grace (Heroku's is fixed at 30 s).
const maxStopTimeoutSeconds = 3600

var (
	configNameRE  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	processTypeRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	// nameRE is for app and environment names, which become DNS labels of the
	// default domain <app>.<env>.<suffix>.
	nameRE   = regexp.MustCompile(`^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$`)
	domainRE = regexp.MustCompile(`^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
)

type strField struct {
	set bool
	v   string
	pos Pos
}

type intField struct {
	set bool
	v   int
	pos Pos
}

type boolField struct {
	set bool
	v   bool
	pos Pos
}

type listField struct {
	set   bool
	items []strField
	pos   Pos
}

type configEntry struct {
	key    string
	keyPos Pos
	val    string
	// remove is a null value: in an environment it deletes the base's key.
	remove bool
}

// secretEntry is one sealed value of an environment's app block.
type secretEntry struct {
	key    string
	keyPos Pos
	val    strField
}

type rawSource struct {
	pos            Pos
	path, git, ref strField
}

type rawProcess struct {
	typ                        string
	pos                        Pos
	count, stopTimeout         intField
	size, command, healthCheck strField
}

type rawDrain struct {
	name    string
	pos     Pos
	url, ca strField
}

// rawApp is an app block as written, in a base spec or in an environment.
type rawApp struct {
	name                           string
	pos                            Pos
	source                         *rawSource
	buildpacks, sensitive, domains listField
	stack                          strField
	configSet                      bool
	config                         []configEntry
	suspend                        boolField
	review                         boolField
	processes                      []*rawProcess
	drains                         []*rawDrain
	secrets                        []secretEntry
	notifies                       []*rawNotify
	buildConfig                    listField
	release                        *rawRelease
}

type rawEnv struct {
	name       string
	pos        Pos
	recipients listField
	apps       []*rawApp
	soak       durationField
}

type rawPlatform struct {
	pos                                     Pos
	domainSuffix, defaultSize, defaultStack strField
	buildEnv                                map[string]string
	keepReleases                            intField
	notifies                                []*rawNotify
	review                                  *Review
	recipients                              listField
	routerErrors                            *rawRouterErrors
}

// Schemas, built on demand: the package keeps no global state.
func sourceSchema() schema  { return schema{} }
func processSchema() schema { return schema{} }
func drainSchema() schema   { return schema{} }

func appSchema() schema {
	return schema{blocks: map[string]blockSchema{
		"source":  {inner: sourceSchema()},
		"process": {labelled: true, inner: processSchema()},
		"drain":   {labelled: true, inner: drainSchema()},
		"notify":  {labelled: true},
		"release": {inner: releaseSchema()},
	}}
}

func appsFileSchema() schema {
	return schema{blocks: map[string]blockSchema{"app": {labelled: true, inner: appSchema()}}}
}

func envFileSchema() schema {
	return schema{blocks: map[string]blockSchema{"environment": {labelled: true, inner: schema{
		blocks: map[string]blockSchema{"app": {labelled: true, inner: appSchema()}},
	}}}}
}

func platformSchema() schema {
	return schema{blocks: map[string]blockSchema{"notify": {labelled: true}, "review": {inner: reviewSchema()}, "router_errors": {}}}
}

func (d *decoder) platform(b *body) *rawPlatform {
	attrs, blocks := d.checkShape(b, shape{what: "platform settings",
		attrs:  []string{"build_env", "default_size", "default_stack", "domain_suffix", "keep_releases", "recipients"},
		blocks: []string{"notify", "review", "router_errors"}})
	p := &rawPlatform{pos: b.pos, notifies: d.notifies(blocks, placePlatform)}
	for _, blk := range blocks {
		switch blk.typ {
		case "review":
			p.review = d.review(blk)
		case "router_errors":
			p.routerErrors = d.routerErrors(blk)
		}
	}
	a, ok := attrs["recipients"]
	p.recipients = d.recipients(a, ok)
	a, ok = attrs["domain_suffix"]
	p.domainSuffix = d.nonEmptyStr(a, ok)
	if f := p.domainSuffix; f.set {
		if s := strings.ToLower(f.v); !domainRE.MatchString(s) || strings.HasPrefix(s, "*.") {
			d.sink.add(f.pos, "domain_suffix: %q is not a valid domain name", f.v)
			p.domainSuffix = strField{}
		} else {
			p.domainSuffix.v = s
		}
	}
	a, ok = attrs["default_size"]
	p.defaultSize = d.size(a, ok)
	a, ok = attrs["default_stack"]
	p.defaultStack = d.nonEmptyStr(a, ok)
	a, ok = attrs["keep_releases"]
	p.keepReleases = d.wholeNumber(a, ok, 1, 10000)
	if a, ok := attrs["build_env"]; ok {
		p.buildEnv = d.buildEnv(a)
	}
	return p
}

// buildEnv reads build_env: a map of the go tool's module settings (BuildEnvNames).
func (d *decoder) buildEnv(a attr) map[string]string {
	_, entries := d.config(a)
	names := BuildEnvNames()
	env := map[string]string{}
	for _, e := range entries {
		switch {
		case !slices.Contains(names, e.key):
			d.sink.add(e.keyPos, "build_env: %s is not a module download setting (want one of %s)", e.key, strings.Join(names, ", "))
		case e.remove:
			d.sink.add(e.keyPos, "build_env: %s: want a string, got null", e.key)
		default:
			env[e.key] = e.val
		}
	}
	return env
}

func (d *decoder) size(a attr, ok bool) strField {
	f := d.str(a, ok)
	if f.set {
		if _, known := LookupSize(f.v); !known {
			d.sink.add(f.pos, "%s: unknown size %q (sizes: %s)", a.name, f.v, strings.Join(SizeNames(), ", "))
			return strField{}
		}
	}
	return f
}

// appsFile reads the app blocks of a file of apps/.
func (d *decoder) appsFile(b *body) []*rawApp {
	_, blocks := d.checkShape(b, shape{what: "an apps file", blocks: []string{"app"}})
	var apps []*rawApp
	for _, blk := range blocks {
		if app := d.app(blk, false); app != nil {
			apps = append(apps, app)
		}
	}
	return apps
}

// envFile reads the environment blocks of a file of environments/.
func (d *decoder) envFile(b *body) []*rawEnv {
	_, blocks := d.checkShape(b, shape{what: "an environment file", blocks: []string{"environment"}})
	var envs []*rawEnv
	for _, blk := range blocks {
		if !blk.labelled {
			d.sink.add(blk.typPos, `environment block needs a name: environment "NAME" { … }`)
			continue
		}
		env := &rawEnv{name: blk.label, pos: blk.labelPos}
		switch {
		case !nameRE.MatchString(blk.label):
			d.sink.add(blk.labelPos, "invalid environment name %q: want lowercase letters, digits and dashes, starting with a letter (it is part of domain names)", blk.label)
		case strings.Contains(blk.label, "--"):
			d.sink.add(blk.labelPos, `invalid environment name %q: "--" is kept for the review environments of apps' git sources (hello--pr-7)`, blk.label)
		}
		envAttrs, appBlocks := d.checkShape(blk.body, shape{what: fmt.Sprintf("environment %q", blk.label), attrs: []string{"recipients", "soak"}, blocks: []string{"app"}})
		a, ok := envAttrs["recipients"]
		env.recipients = d.recipients(a, ok)
		a, ok = envAttrs["soak"]
		env.soak = d.duration(a, ok)
		for _, ab := range appBlocks {
			if app := d.app(ab, true); app != nil {
				env.apps = append(env.apps, app)
			}
		}
		envs = append(envs, env)
	}
	return envs
}

// app reads an app block; inEnv marks an environment's override, where every part is
// optional.
func (d *decoder) app(blk block, inEnv bool) *rawApp {
	if !blk.labelled {
		d.sink.add(blk.typPos, `app block needs a name: app "NAME" { … }`)
		return nil
	}
	app := &rawApp{name: blk.label, pos: blk.labelPos}
	if !nameRE.MatchString(blk.label) {
		d.sink.add(blk.labelPos, "invalid app name %q: want lowercase letters, digits and dashes, starting with a letter (it is part of domain names)", blk.label)
	}
	attrs, blocks := d.checkShape(blk.body, shape{
		what:   fmt.Sprintf("app %q", blk.label),
		attrs:  []string{"build_config", "buildpacks", "config", "domains", "review", "secrets", "sensitive", "stack", "suspend"},
		blocks: []string{"drain", "notify", "process", "release", "source"},
	})
	a, ok := attrs["buildpacks"]
	app.buildpacks = d.strList(a, ok)
	a, ok = attrs["stack"]
	app.stack = d.nonEmptyStr(a, ok)
	a, ok = attrs["suspend"]
	app.suspend = d.boolean(a, ok)
	a, ok = attrs["review"]
	app.review = d.boolean(a, ok)
	a, ok = attrs["sensitive"]
	app.sensitive = d.strList(a, ok)
	for _, s := range app.sensitive.items {
		if !configNameRE.MatchString(s.v) {
			d.sink.add(s.pos, "sensitive: invalid config var name %q: want [A-Za-z_][A-Za-z0-9_]*", s.v)
		}
	}
	a, ok = attrs["domains"]
	app.domains = d.strList(a, ok)
	for i, dom := range app.domains.items {
		lower := strings.ToLower(strings.TrimSuffix(dom.v, "."))
		if !domainRE.MatchString(lower) {
			d.sink.add(dom.pos, "domains: %q is not a valid domain name", dom.v)
		}
		app.domains.items[i].v = lower
	}
	a, ok = attrs["build_config"]
	app.buildConfig = d.configNames(a, ok)
	if a, ok := attrs["config"]; ok {
		app.configSet, app.config = d.config(a)
	}
	if a, ok := attrs["secrets"]; ok {
		if inEnv {
			app.secrets = d.secrets(a)
		} else {
			d.sink.add(a.namePos, `secrets are per environment: set them in the app block of an environment file (environments/NAME.hcl), sealed to its recipients`)
		}
	}

	place := placeAppBase
	if inEnv {
		place = placeAppEnv
	}
	app.notifies = d.notifies(blocks, place)
	for _, b := range blocks {
		switch b.typ {
		case "source":
			if b.labelled {
				d.sink.add(b.labelPos, "source block takes no label")
			}
			app.source = d.source(b, inEnv)
		case "process":
			if p := d.process(b); p != nil {
				app.processes = append(app.processes, p)
			}
		case "drain":
			if dr := d.drain(b); dr != nil {
				app.drains = append(app.drains, dr)
			}
		case "release":
			app.release = d.release(b, inEnv)
		}
	}
	if app.source == nil && !inEnv {
		d.sink.add(blk.labelPos, `app %q has no source block: add source { path = "…" } or source { git = "…", ref = "…" }`, blk.label)
	}
	return app
}

func (d *decoder) config(a attr) (bool, []configEntry) {
	switch a.val.kind {
	case kindNull:
		return false, nil
	case kindMap:
	default:
		d.sink.add(a.val.pos, "config: want a map of strings, got %s", a.val.kind)
		return false, nil
	}
	var out []configEntry
	seen := map[string]bool{}
	for _, e := range a.val.entries {
		if !configNameRE.MatchString(e.key) {
			d.sink.add(e.keyPos, "config: invalid config var name %q: want [A-Za-z_][A-Za-z0-9_]*", e.key)
			continue
		}
		if seen[e.key] {
			d.sink.add(e.keyPos, "config: duplicate key %q", e.key)
			continue
		}
		seen[e.key] = true
		switch e.val.kind {
		case kindNull:
			out = append(out, configEntry{key: e.key, keyPos: e.keyPos, remove: true})
		case kindString, kindNumber, kindBool:
			// Config vars are strings; a number or bool becomes its text, as a
			// YAML user writing `WEB_CONCURRENCY: 4` expects.
			out = append(out, configEntry{key: e.key, keyPos: e.keyPos, val: e.val.str})
		default:
			d.sink.add(e.val.pos, "config: %s: want a string, got %s", e.key, e.val.kind)
		}
	}
	return true, out
}

func (d *decoder) source(b block, inEnv bool) *rawSource {
	attrs, _ := d.checkShape(b.body, shape{what: "source", attrs: []string{"git", "path", "ref"}})
	src := &rawSource{pos: b.typPos}
	a, ok := attrs["path"]
	src.path = d.nonEmptyStr(a, ok)
	a, ok = attrs["git"]
	src.git = d.nonEmptyStr(a, ok)
	a, ok = attrs["ref"]
	src.ref = d.nonEmptyStr(a, ok)
	switch {
	case src.path.set && src.git.set:
		d.sink.add(src.git.pos, "source: set either path or git, not both")
	case !src.path.set && !src.git.set && !inEnv:
		d.sink.add(b.typPos, `source: set path = "…" (a folder of this repo) or git = "URL"`)
	}
	return src
}

func (d *decoder) process(b block) *rawProcess {
	if !b.labelled {
		d.sink.add(b.typPos, `process block needs a type: process "web" { … }`)
		return nil
	}
	p := &rawProcess{typ: b.label, pos: b.labelPos}
	if !processTypeRE.MatchString(b.label) {
		d.sink.add(b.labelPos, "invalid process type %q: want letters, digits, _ and -", b.label)
		return nil
	}
	if b.label == "release" {
		d.sink.add(b.labelPos, `"release" is the release-phase command, not a process type: set it in the Procfile`)
		return nil
	}
	attrs, _ := d.checkShape(b.body, shape{
		what:  fmt.Sprintf("process %q", b.label),
		attrs: []string{"command", "count", "health_check", "size", "stop_timeout"},
	})
	a, ok := attrs["count"]
	p.count = d.wholeNumber(a, ok, 0, maxCount)
	a, ok = attrs["size"]
	p.size = d.size(a, ok)
	a, ok = attrs["command"]
	p.command = d.nonEmptyStr(a, ok)
	a, ok = attrs["health_check"]
	p.healthCheck = d.str(a, ok)
	if f := p.healthCheck; f.set && !strings.HasPrefix(f.v, "/") {
		d.sink.add(f.pos, "health_check: want an HTTP path starting with /, got %q", f.v)
		p.healthCheck = strField{}
	}
	a, ok = attrs["stop_timeout"]
	p.stopTimeout = d.wholeNumber(a, ok, 1, maxStopTimeoutSeconds)
	return p
}

func (d *decoder) drain(b block) *rawDrain {
	if !b.labelled {
		d.sink.add(b.typPos, `drain block needs a name: drain "NAME" { url = "…" }`)
		return nil
	}
	dr := &rawDrain{name: b.label, pos: b.labelPos}
	attrs, _ := d.checkShape(b.body, shape{what: fmt.Sprintf("drain %q", b.label), attrs: []string{"ca", "url"}})
	a, ok := attrs["url"]
	dr.url = d.nonEmptyStr(a, ok)
	a, ok = attrs["ca"]
	dr.ca = d.nonEmptyStr(a, ok)
	if dr.url.set {
		if msg := checkDrainURL(dr.url.v); msg != "" {
			d.sink.add(dr.url.pos, "drain %q: %s", b.label, msg)
		}
	}
	return dr
}

// SizeNames lists the dyno sizes LookupSize knows, smallest first.
func SizeNames() []string {
	return []string{"basic", "standard-1x", "standard-2x", "performance-m", "performance-l"}
}
