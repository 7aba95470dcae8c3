package spec

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"
)

// DefaultEnvironment is the one environment of a repo without environments/.
const DefaultEnvironment = "default"

// Platform defaults, used when manifold.hcl|yaml leaves a setting out.
const (
	DefaultDomainSuffix = "localhost"
	DefaultSize         = "standard-1x"
	DefaultStack        = "manifold-24"
	DefaultKeepReleases = 20
	// DefaultStopTimeoutSeconds is the SIGTERM grace of a process that names none
	// (Heroku's 30 s).
	DefaultStopTimeoutSeconds = 30
)

// LoadOptions tune Load.
type LoadOptions struct {
	// Env, when set, resolves only that environment (an unknown name is a diagnostic
	// without a position). Empty resolves every environment.
	Env string
	// Cache, when set and the file system implements ContentIDFS, reuses the parses
	// and digests of earlier loads with the same Cache for content they have seen.
	Cache *Cache
}

// Load reads the config repo at the root of fsys: apps/*.hcl|yaml|yml (one or more
// apps per file), environments/*.hcl|yaml|yml (one environment per file) and the
// optional manifold.hcl|yaml|yml, plus the Procfile and the files of every app source
// that is a folder of the repo. It returns every app resolved for every environment,
// or nil and every problem found, sorted, each at its file:line:col.
//
// Load is pure: it only reads fsys (which may be os.DirFS of a checkout, or a tree read
// straight from git objects) and is safe to call concurrently.
func Load(fsys fs.FS, opts LoadOptions) (*Desired, Diagnostics) {
	l := &loader{fsys: fsys, sink: &diagSink{}, sources: map[string]*sourceInfo{}, cache: opts.Cache}
	desired := l.load(opts)
	diags := l.sink.diags.sortDedup()
	if len(diags) > 0 {
		return nil, diags
	}
	return desired, nil
}

type loader struct {
	fsys    fs.FS
	sink    *diagSink
	sources map[string]*sourceInfo // by repo-relative folder
	cache   *Cache                 // nil: nothing is reused between loads
}

// specFile is a parsed file of the repo.
type specFile struct {
	name string
	body *body
}

func (l *loader) load(opts LoadOptions) *Desired {
	dec := &decoder{sink: l.sink}
	platform := l.platform(dec)

	// Base apps, by name.
	base := map[string]*rawApp{}
	for _, f := range l.readDir("apps", appsFileSchema()) {
		for _, app := range dec.appsFile(f.body) {
			if first, dup := base[app.name]; dup {
				l.sink.add(app.pos, "duplicate app %q: already declared at %s:%d:%d", app.name, first.pos.File, first.pos.Line, first.pos.Col)
				continue
			}
			base[app.name] = app
		}
	}

	// Environments, by name.
	envs := map[string]*rawEnv{}
	envDir := l.readDir("environments", envFileSchema())
	for _, f := range envDir {
		declared := dec.envFile(f.body)
		if len(declared) == 0 {
			l.sink.add(Pos{File: f.name, Line: 1, Col: 1}, `no environment in this file: declare one with environment "NAME" { … }`)
			continue
		}
		for i, env := range declared {
			if i > 0 {
				l.sink.add(env.pos, "one environment per file: %q is already declared at %d:%d", declared[0].name, declared[0].pos.Line, declared[0].pos.Col)
				continue
			}
			if first, dup := envs[env.name]; dup {
				l.sink.add(env.pos, "duplicate environment %q: already declared at %s:%d:%d", env.name, first.pos.File, first.pos.Line, first.pos.Col)
				continue
			}
			envs[env.name] = env
			for _, app := range env.apps {
				if _, ok := base[app.name]; !ok {
					l.sink.add(app.pos, "environment %q overrides app %q, which no file of apps/ declares", env.name, app.name)
				}
			}
		}
	}
	if len(envDir) == 0 {
		envs[DefaultEnvironment] = &rawEnv{name: DefaultEnvironment}
	}
	l.checkReviewRecipients(platform, envs)

	names := make([]string, 0, len(envs))
	for name := range envs {
		// With a review block, environments/review.* is the overlay of every review
		// environment (pr-7, …), not an environment of its own: it runs only as
		// those, and only when asked for by name (the review manager does).
		if name == ReviewEnvironment && platform.Review != nil && opts.Env != ReviewEnvironment {
			continue
		}
		names = append(names, name)
	}
	slices.Sort(names)
	if opts.Env != "" {
		if _, ok := envs[opts.Env]; !ok {
			l.sink.add(Pos{}, "unknown environment %q (the repo defines: %s)", opts.Env, strings.Join(names, ", "))
			return nil
		}
		names = []string{opts.Env}
	}

	appNames := make([]string, 0, len(base))
	for name := range base {
		appNames = append(appNames, name)
	}
	slices.Sort(appNames)

	desired := &Desired{Platform: platform, Environments: names, Apps: make([]App, 0, len(names)*len(appNames))}
	for _, envName := range names {
		env := envs[envName]
		overrides := map[string]*rawApp{}
		for _, app := range env.apps {
			overrides[app.name] = app
		}
		var claims []domainClaim
		for _, name := range appNames {
			app, appClaims := l.resolve(platform, envName, base[name], overrides[name])
			l.resolveSecrets(desired, &app, env, overrides[name])
			app.SoakSeconds = env.soakSeconds()
			desired.Apps = append(desired.Apps, app)
			claims = append(claims, appClaims...)
		}
		l.checkDomains(envName, claims)
	}
	return desired
}

// platform reads manifold.hcl|yaml|yml, filling in defaults.
func (l *loader) platform(dec *decoder) Platform {
	p := Platform{DomainSuffix: DefaultDomainSuffix, DefaultSize: DefaultSize, DefaultStack: DefaultStack, KeepReleases: DefaultKeepReleases,
		RouterErrors: RouterErrors{Threshold: DefaultRouterErrorThreshold, WindowSeconds: DefaultRouterErrorWindowSeconds}}
	var found *specFile
	for _, name := range []string{"manifold.hcl", "manifold.yaml", "manifold.yml"} {
		parsed := l.readFile(name, platformSchema())
		l.sink.diags = append(l.sink.diags, parsed.diags...)
		if parsed.body == nil {
			continue
		}
		f := &specFile{name: name, body: parsed.body}
		if found != nil {
			l.sink.add(Pos{File: name, Line: 1, Col: 1}, "platform settings are already in %s: keep one manifold file", found.name)
			continue
		}
		found = f
		raw := dec.platform(f.body)
		if raw.domainSuffix.set {
			p.DomainSuffix = raw.domainSuffix.v
		}
		if raw.defaultSize.set {
			p.DefaultSize = raw.defaultSize.v
		}
		if raw.defaultStack.set {
			p.DefaultStack = raw.defaultStack.v
		}
		if raw.keepReleases.set {
			p.KeepReleases = raw.keepReleases.v
		}
		if len(raw.buildEnv) > 0 {
			p.BuildEnv = raw.buildEnv
		}
		p.Notify = l.mergeNotifies(raw.notifies)
		p.Recipients = recipientsOf(raw.recipients)
		if p.Recipients == nil {
			for _, f := range sealedNotifyValues(raw.notifies) {
				l.sink.add(f.pos, `notify: sealed values of %s are sealed to its recipients, and it names none: add recipients = ["age1…"] (the public keys of the daemons that send its notifications)`, name)
			}
		}
		if r := raw.routerErrors; r != nil {
			if r.threshold.set {
				p.RouterErrors.Threshold = r.threshold.v
			}
			if r.window.set {
				p.RouterErrors.WindowSeconds = int64(r.window.v / time.Second)
			}
		}
		p.Review = raw.review
	}
	return p
}

// mergedProcess is a process type while base, environment and Procfile are combined.
type mergedProcess struct {
	typ                        string
	pos                        Pos
	count, stopTimeout         intField
	size, command, healthCheck strField
}

// domainClaim is one domain an app answers in an environment; pos is where the spec
// names it, or the zero Pos for the default <app>.<env>.<suffix>.
type domainClaim struct {
	domain string
	app    string
	pos    Pos
}

// resolve merges an app's base spec, its environment's override (may be nil) and its
// Procfile into the App of that environment.
func (l *loader) resolve(platform Platform, env string, baseApp, over *rawApp) (App, []domainClaim) {
	app := App{Name: baseApp.name, Env: env, Pos: baseApp.pos}
	layers := []*rawApp{baseApp}
	if over != nil {
		layers = append(layers, over)
	}

	// Source: an environment's path or git replaces the base's; a ref alone moves it.
	var srcPath, srcGit, srcRef strField
	for _, layer := range layers {
		if s := layer.source; s != nil {
			switch {
			case s.path.set:
				srcPath, srcGit, srcRef = s.path, strField{}, s.ref
			case s.git.set:
				srcPath, srcGit, srcRef = strField{}, s.git, s.ref
			case s.ref.set:
				srcRef = s.ref
			}
		}
	}
	app.Source.Git = srcGit.v
	app.Source.Ref = srcRef.v
	var info *sourceInfo
	if srcPath.set {
		if dir, ok := l.repoPath(srcPath, "source path"); ok {
			app.Source.Path = dir
			info = l.source(dir, srcPath)
			app.Source.Digest = info.digest
		}
	}

	// Plain attributes: the last layer that sets one wins.
	app.Stack = platform.DefaultStack
	config := map[string]string{}
	var sensitive []string
	var domains listField
	for _, layer := range layers {
		if layer.buildpacks.set {
			app.Buildpacks = nil
			for _, bp := range layer.buildpacks.items {
				app.Buildpacks = append(app.Buildpacks, bp.v)
			}
		}
		if layer.stack.set {
			app.Stack = layer.stack.v
		}
		if layer.suspend.set {
			app.Suspend = layer.suspend.v
		}
		for _, e := range layer.config {
			if e.remove {
				delete(config, e.key)
			} else {
				config[e.key] = e.val
			}
		}
		for _, s := range layer.sensitive.items {
			sensitive = append(sensitive, s.v)
		}
		if layer.domains.set {
			domains = layer.domains
		}
	}
	if len(config) > 0 {
		app.Config = config
	}
	slices.Sort(sensitive)
	app.Sensitive = slices.Compact(sensitive)

	// Domains: the default one first, then the spec's, without repeats.
	def := fmt.Sprintf("%s.%s.%s", app.Name, env, platform.DomainSuffix)
	app.Domains = []string{def}
	claims := []domainClaim{{domain: def, app: app.Name}}
	for _, d := range domains.items {
		if slices.Contains(app.Domains, d.v) {
			continue
		}
		app.Domains = append(app.Domains, d.v)
		claims = append(claims, domainClaim{domain: d.v, app: app.Name, pos: d.pos})
	}

	app.Processes, app.ReleaseCommand = l.processes(platform, layers, info)
	app.Drains = l.drains(layers)
	app.Notify = l.mergeNotifies(notifiesOf(layers)...)
	resolvePipeline(&app, layers)
	l.resolveReview(&app, env, layers)
	return app, claims
}

// processes merges the process blocks of every layer with the Procfile (nil for a git
// source or a source that could not be read).
// For a git source, or a source that could not be read, the Procfile is unknown: the
// processes are those the spec names, their commands empty unless the spec sets them.
func (l *loader) processes(platform Platform, layers []*rawApp, info *sourceInfo) ([]Process, string) {
	merged := map[string]*mergedProcess{}
	for _, layer := range layers {
		for _, p := range layer.processes {
			m := merged[p.typ]
			if m == nil {
				m = &mergedProcess{typ: p.typ, pos: p.pos}
				merged[p.typ] = m
			}
			for _, f := range []struct{ dst, src *strField }{
				{&m.size, &p.size}, {&m.command, &p.command}, {&m.healthCheck, &p.healthCheck},
			} {
				if f.src.set {
					*f.dst = *f.src
				}
			}
			if p.count.set {
				m.count = p.count
			}
			if p.stopTimeout.set {
				m.stopTimeout = p.stopTimeout
			}
		}
	}
	procfileCommands := map[string]string{}
	release := ""
	known := info != nil && info.ok
	if known {
		for _, e := range info.procfile {
			if e.Type == "release" {
				release = e.Command
				continue
			}
			procfileCommands[e.Type] = e.Command
			if merged[e.Type] == nil {
				merged[e.Type] = &mergedProcess{typ: e.Type}
			}
		}
	}

	var out []Process
	for _, m := range merged {
		p := Process{
			Type:               m.typ,
			Command:            m.command.v,
			Size:               platform.DefaultSize,
			HealthCheck:        m.healthCheck.v,
			StopTimeoutSeconds: DefaultStopTimeoutSeconds,
		}
		if !m.command.set {
			p.Command = procfileCommands[m.typ]
		}
		switch {
		case m.count.set:
			p.Count = m.count.v
		case m.typ == "web":
			p.Count = 1 // Heroku scales web to 1 on the first deploy.
		}
		if m.size.set {
			p.Size = m.size.v
		}
		if m.stopTimeout.set {
			p.StopTimeoutSeconds = m.stopTimeout.v
		}
		if p.Command == "" && known {
			if p.Count > 0 {
				pos := m.count.pos
				if !m.count.set {
					pos = m.pos
				}
				l.sink.add(pos, "process %q has count %d but is neither in the Procfile nor given a command", m.typ, p.Count)
			}
			// A type the Procfile dropped and the spec still sizes has nothing to run.
			continue
		}
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b Process) int { return strings.Compare(a.Type, b.Type) })
	if out == nil {
		out = []Process{}
	}
	return out, release
}

// drains merges drains by name: an environment's drain of the same name replaces the
// fields it sets.
func (l *loader) drains(layers []*rawApp) []Drain {
	type mergedDrain struct {
		name    string
		pos     Pos
		url, ca strField
	}
	merged := map[string]*mergedDrain{}
	for _, layer := range layers {
		for _, d := range layer.drains {
			m := merged[d.name]
			if m == nil {
				m = &mergedDrain{name: d.name, pos: d.pos}
				merged[d.name] = m
			}
			if d.url.set {
				m.url = d.url
			}
			if d.ca.set {
				m.ca = d.ca
			}
		}
	}
	var out []Drain
	for _, m := range merged {
		d := Drain{Name: m.name, URL: m.url.v}
		if m.ca.set {
			if ca, ok := l.repoPath(m.ca, "ca"); ok {
				if pem, err := fs.ReadFile(l.fsys, ca); err != nil {
					l.sink.add(m.ca.pos, "drain %q: ca file %q (%s) does not exist", m.name, m.ca.v, ca)
				} else {
					sum := sha256.Sum256(pem)
					d.CADigest = "sha256:" + hex.EncodeToString(sum[:])
				}
				d.CA = ca
			}
		}
		if !m.url.set {
			l.sink.add(m.pos, "drain %q has no url", m.name)
			continue
		}
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b Drain) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// repoPath resolves a path written in a spec file (relative to that file) to a clean
// path relative to the repo's root.
func (l *loader) repoPath(f strField, what string) (string, bool) {
	p := f.v
	if path.IsAbs(p) || strings.Contains(p, "\\") {
		l.sink.add(f.pos, "%s %q must be a relative path with forward slashes (relative to %s)", what, p, f.pos.File)
		return "", false
	}
	joined := path.Join(path.Dir(f.pos.File), p)
	if joined == ".." || strings.HasPrefix(joined, "../") || !fs.ValidPath(joined) {
		l.sink.add(f.pos, "%s %q leaves the config repo", what, p)
		return "", false
	}
	return joined, true
}

// checkDomains reports every domain that two apps of one environment claim, at each
// place a spec names it.
func (l *loader) checkDomains(env string, claims []domainClaim) {
	byDomain := map[string][]domainClaim{}
	for _, c := range claims {
		byDomain[c.domain] = append(byDomain[c.domain], c)
	}
	for domain, cs := range byDomain {
		var apps []string
		for _, c := range cs {
			apps = append(apps, c.app)
		}
		slices.Sort(apps)
		apps = slices.Compact(apps)
		if len(apps) < 2 {
			continue
		}
		quoted := make([]string, len(apps))
		for i, a := range apps {
			quoted[i] = quote(a)
		}
		for _, c := range cs {
			if c.pos.File == "" {
				continue
			}
			l.sink.add(c.pos, "domain %q is claimed by apps %s in environment %q", domain, strings.Join(quoted, " and "), env)
		}
	}
}
