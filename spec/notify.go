package spec

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// notify.go reads `notify "NAME" { … }` blocks: of manifold.hcl (every event of the
// daemon) and of an app (that app's events), merged by name as drains are.

// Notify is one receiver of the daemon's events (reconciler/notify delivers them).
type Notify struct {
	// Name is the block's label; an environment's notify block of the same name
	// replaces the fields it sets.
	Name string `json:"name"`
	// Type is webhook (a JSON event, signed when SecretFile is set), slack (a Slack
	// incoming webhook's {"text": …}), github-status or gitea-status (a commit status
	// on the config repo's commit: pending, success or failure, context manifold/<env>).
	Type string `json:"type"`
	// URL is where webhook and slack receivers POST (http or https). Forge types
	// take API and Repo instead.
	URL string `json:"url,omitempty"`
	// SecretFile is a file on the daemon's host (not in the config repo) whose content,
	// trailing whitespace cut, is the HMAC-SHA256 key of a webhook receiver: each
	// request carries X-Manifold-Signature-256: sha256=<hex HMAC of the body>. It is
	// read at each delivery, so a rotated key needs no restart; its value is never
	// logged or sent. A webhook sets at most one of SecretFile and Secret.
	SecretFile string `json:"secret_file,omitempty"`
	// Secret is the webhook's HMAC-SHA256 key sealed with age in the config repo
	// (`secret = "age:…"`, printed by `manifold secret encrypt --notify NAME secret`):
	// sealed to the environment's recipients in an environment file's app block, to
	// manifold.hcl's recipients in manifold.hcl, and bound to that receiver, place and
	// attribute. The daemon opens it in memory when it sends; it is never written out.
	Secret *Secret `json:"secret,omitempty"`
	// TokenFile is a file on the daemon's host holding the forge API token of a
	// github-status or gitea-status receiver. A forge receiver sets exactly one of
	// TokenFile and Token.
	TokenFile string `json:"token_file,omitempty"`
	// Token is the forge API token sealed with age, as Secret is (`token = "age:…"`).
	Token *Secret `json:"token,omitempty"`
	// API is the forge's API base URL: https://api.github.com by default for
	// github-status (https://HOST/api/v3 for GitHub Enterprise); required for
	// gitea-status (https://HOST/api/v1).
	API string `json:"api,omitempty"`
	// Repo is the config repo on the forge, "owner/name" (required for forge types).
	Repo string `json:"repo,omitempty"`
	// Events are the event types to send (NotifyEventTypes; "deploy.*" takes a family,
	// "*" all). Empty means all. A resolution (dyno.recovered, a resolved
	// router.errors, …) goes wherever the event it resolves went.
	Events []string `json:"events,omitempty"`
	// Exclude are event types (same patterns) not to send, even when Events names them.
	Exclude []string `json:"exclude,omitempty"`
	// Severity is info (every event, the default) or error (only error events:
	// failures, crashes, R14/R15, router errors, L10, an invalid spec, and their
	// resolutions).
	Severity string `json:"severity"`
}

// Notify receiver types.
const (
	NotifyWebhook      = "webhook"
	NotifySlack        = "slack"
	NotifyGitHubStatus = "github-status"
	NotifyGiteaStatus  = "gitea-status"
)

// DefaultGitHubAPI is the API of a github-status receiver that names none.
const DefaultGitHubAPI = "https://api.github.com"

// NotifyEventTypes lists the event types a notify block may name, in the order
// docs/notifications.md describes them. reconciler/notify's tests prove it is the
// set of types the daemon sends.
func NotifyEventTypes() []string {
	return []string{
		"deploy.started", "deploy.succeeded", "deploy.failed", "rollback",
		"dyno.crashed", "dyno.recovered", "dyno.memory",
		"router.errors", "drain.dropping", "spec.invalid", "webhook.rejected",
	}
}

// rawNotify is a notify block as written.
type rawNotify struct {
	name                                                 string
	pos                                                  Pos
	typ, url, secretFile, tokenFile, api, repo, severity strField
	// secret and token are sealed values ("age:…").
	secret, token   strField
	events, exclude listField
}

var notifyAttrs = []string{"api", "events", "exclude", "repo", "secret", "secret_file", "severity", "token", "token_file", "type", "url"}

// notifyPlace is where a notify block is written, which decides the recipients its
// sealed values are sealed to.
type notifyPlace int

const (
	// placePlatform: manifold.hcl, sealed to its recipients.
	placePlatform notifyPlace = iota
	// placeAppBase: an app's base spec, shared by every environment: no sealed values
	// (each environment has its own recipients).
	placeAppBase
	// placeAppEnv: an app block of an environment file, sealed to its recipients.
	placeAppEnv
)

// notifies reads the notify blocks among blocks; others are left to the caller.
func (d *decoder) notifies(blocks []block, place notifyPlace) []*rawNotify {
	var out []*rawNotify
	for _, b := range blocks {
		if b.typ != "notify" {
			continue
		}
		if !b.labelled {
			d.sink.add(b.typPos, `notify block needs a name: notify "NAME" { type = "webhook" … }`)
			continue
		}
		n := &rawNotify{name: b.label, pos: b.labelPos}
		attrs, _ := d.checkShape(b.body, shape{what: fmt.Sprintf("notify %q", b.label), attrs: notifyAttrs})
		for name, dst := range map[string]*strField{
			"type": &n.typ, "url": &n.url, "secret_file": &n.secretFile, "token_file": &n.tokenFile,
			"api": &n.api, "repo": &n.repo, "severity": &n.severity, "secret": &n.secret, "token": &n.token,
		} {
			a, ok := attrs[name]
			*dst = d.nonEmptyStr(a, ok)
		}
		a, ok := attrs["events"]
		n.events = d.strList(a, ok)
		a, ok = attrs["exclude"]
		n.exclude = d.strList(a, ok)
		d.checkNotify(n, place)
		out = append(out, n)
	}
	return out
}

// checkNotify checks each value on its own; mergeNotifies checks what the merged
// block needs.
func (d *decoder) checkNotify(n *rawNotify, place notifyPlace) {
	if f := n.typ; f.set && !slices.Contains([]string{NotifyWebhook, NotifySlack, NotifyGitHubStatus, NotifyGiteaStatus}, f.v) {
		d.sink.add(f.pos, "notify %q: unknown type %q (types: webhook, slack, github-status, gitea-status)", n.name, f.v)
	}
	if f := n.severity; f.set && f.v != "info" && f.v != "error" {
		d.sink.add(f.pos, "notify %q: severity: want info or error, got %q", n.name, f.v)
	}
	for _, f := range []strField{n.url, n.api} {
		if f.set {
			if u, err := url.Parse(f.v); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				d.sink.add(f.pos, "notify %q: %q is not an http or https URL", n.name, f.v)
			}
		}
	}
	for _, f := range []strField{n.secretFile, n.tokenFile} {
		if f.set && !strings.HasPrefix(f.v, "/") {
			d.sink.add(f.pos, "notify %q: %q must be an absolute path on the daemon's host", n.name, f.v)
		}
	}
	for _, pair := range []struct {
		sealed, file strField
		name         string
	}{{n.secret, n.secretFile, "secret"}, {n.token, n.tokenFile, "token"}} {
		f := pair.sealed
		if !f.set {
			continue
		}
		switch {
		case !strings.HasPrefix(f.v, sealedPrefix):
			// Never echo the value: it may be a plaintext pasted by mistake.
			d.sink.add(f.pos, "notify %q: %s: not a sealed value (want %q…, from `manifold secret encrypt --notify %s %s`); if a plaintext was committed, rotate it",
				n.name, pair.name, sealedPrefix, n.name, pair.name)
		case pair.file.set:
			d.sink.add(f.pos, "notify %q: set %s or %s_file, not both (%s_file is at %d:%d)", n.name, pair.name, pair.name, pair.name, pair.file.pos.Line, pair.file.pos.Col)
		case place == placeAppBase:
			d.sink.add(f.pos, "notify %q: a sealed %s is per environment: set it in this app's block of an environment file (environments/NAME.hcl), sealed to its recipients, or use %s_file", n.name, pair.name, pair.name)
		}
	}
	if f := n.repo; f.set {
		if owner, name, ok := strings.Cut(f.v, "/"); !ok || owner == "" || name == "" || strings.Contains(name, "/") {
			d.sink.add(f.pos, `notify %q: repo: want "owner/name", got %q`, n.name, f.v)
		}
	}
	for _, list := range []listField{n.events, n.exclude} {
		for _, e := range list.items {
			if !knownEventPattern(e.v) {
				d.sink.add(e.pos, "notify %q: unknown event %q (events: %s; a family as deploy.*, or *)", n.name, e.v, strings.Join(NotifyEventTypes(), ", "))
			}
		}
	}
}

func knownEventPattern(p string) bool {
	if p == "*" {
		return true
	}
	for _, typ := range NotifyEventTypes() {
		if typ == p || (strings.HasSuffix(p, ".*") && strings.HasPrefix(typ, strings.TrimSuffix(p, "*"))) {
			return true
		}
	}
	return false
}

// mergeNotifies merges notify blocks by name, later layers over earlier ones, and
// checks that each merged block has what its type needs.
func (l *loader) mergeNotifies(layers ...[]*rawNotify) []Notify {
	merged := map[string]*rawNotify{}
	var order []string
	for _, layer := range layers {
		for _, n := range layer {
			m := merged[n.name]
			if m == nil {
				m = &rawNotify{name: n.name, pos: n.pos}
				merged[n.name] = m
				order = append(order, n.name)
			}
			for _, f := range []struct{ dst, src *strField }{
				{&m.typ, &n.typ}, {&m.url, &n.url}, {&m.api, &n.api}, {&m.repo, &n.repo}, {&m.severity, &n.severity},
			} {
				if f.src.set {
					*f.dst = *f.src
				}
			}
			// A key and its file are one setting: a later layer that sets either
			// replaces both (a sealed secret in production over staging's file).
			if n.secret.set || n.secretFile.set {
				m.secret, m.secretFile = n.secret, n.secretFile
			}
			if n.token.set || n.tokenFile.set {
				m.token, m.tokenFile = n.token, n.tokenFile
			}
			if n.events.set {
				m.events = n.events
			}
			if n.exclude.set {
				m.exclude = n.exclude
			}
		}
	}
	slices.Sort(order)
	var out []Notify
	for _, name := range order {
		m := merged[name]
		n := Notify{Name: name, Type: m.typ.v, URL: m.url.v, SecretFile: m.secretFile.v, TokenFile: m.tokenFile.v,
			API: m.api.v, Repo: m.repo.v, Severity: "info", Secret: sealedOf(m.secret), Token: sealedOf(m.token)}
		if m.severity.set {
			n.Severity = m.severity.v
		}
		for _, e := range m.events.items {
			n.Events = append(n.Events, e.v)
		}
		for _, e := range m.exclude.items {
			n.Exclude = append(n.Exclude, e.v)
		}
		switch n.Type {
		case "":
			l.sink.add(m.pos, `notify %q has no type (webhook, slack, github-status or gitea-status)`, name)
			continue
		case NotifyWebhook, NotifySlack:
			if n.URL == "" {
				l.sink.add(m.pos, "notify %q (%s) has no url", name, n.Type)
				continue
			}
		case NotifyGitHubStatus, NotifyGiteaStatus:
			if n.API == "" && n.Type == NotifyGitHubStatus {
				n.API = DefaultGitHubAPI
			}
			if n.API == "" || n.Repo == "" || (n.TokenFile == "" && n.Token == nil) {
				l.sink.add(m.pos, `notify %q (%s) needs repo = "owner/name", token (sealed) or token_file and, for gitea, api`, name, n.Type)
				continue
			}
		}
		if !l.credentialsFit(m, n.Type) {
			continue
		}
		out = append(out, n)
	}
	return out
}

// credentialsFit reports a key or token given to a type that sends none: a slack
// receiver's URL is its credential, a webhook signs with a secret, a forge takes a
// token.
func (l *loader) credentialsFit(m *rawNotify, typ string) bool {
	forge := typ == NotifyGitHubStatus || typ == NotifyGiteaStatus
	ok := true
	for _, c := range []struct {
		f      strField
		attr   string
		wanted bool
	}{
		{m.secret, "secret", typ == NotifyWebhook}, {m.secretFile, "secret_file", typ == NotifyWebhook},
		{m.token, "token", forge}, {m.tokenFile, "token_file", forge},
	} {
		if c.f.set && !c.wanted {
			l.sink.add(c.f.pos, "notify %q (%s) takes no %s (secret and secret_file sign webhooks; token and token_file are the forge types')", m.name, typ, c.attr)
			ok = false
		}
	}
	return ok
}

// sealedOf is a sealed value as Notify carries it, nil when not set.
func sealedOf(f strField) *Secret {
	if !f.set || !strings.HasPrefix(f.v, sealedPrefix) {
		return nil
	}
	return &Secret{Sealed: f.v, Pos: f.pos}
}

// sealedNotifyValues lists the sealed values of notify blocks, for the check that
// their place names recipients.
func sealedNotifyValues(blocks []*rawNotify) []strField {
	var out []strField
	for _, n := range blocks {
		for _, f := range []strField{n.secret, n.token} {
			if f.set {
				out = append(out, f)
			}
		}
	}
	return out
}

func notifiesOf(layers []*rawApp) [][]*rawNotify {
	out := make([][]*rawNotify, len(layers))
	for i, layer := range layers {
		out[i] = layer.notifies
	}
	return out
}
