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
	// logged or sent.
	SecretFile string `json:"secret_file,omitempty"`
	// TokenFile is a file on the daemon's host holding the forge API token of a
	// github-status or gitea-status receiver (required for them).
	TokenFile string `json:"token_file,omitempty"`
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
	events, exclude                                      listField
}

var notifyAttrs = []string{"api", "events", "exclude", "repo", "secret_file", "severity", "token_file", "type", "url"}

// notifies reads the notify blocks among blocks; others are left to the caller.
func (d *decoder) notifies(blocks []block) []*rawNotify {
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
			"api": &n.api, "repo": &n.repo, "severity": &n.severity,
		} {
			a, ok := attrs[name]
			*dst = d.nonEmptyStr(a, ok)
		}
		a, ok := attrs["events"]
		n.events = d.strList(a, ok)
		a, ok = attrs["exclude"]
		n.exclude = d.strList(a, ok)
		d.checkNotify(n)
		out = append(out, n)
	}
	return out
}

// checkNotify checks each value on its own; mergeNotifies checks what the merged
// block needs.
func (d *decoder) checkNotify(n *rawNotify) {
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
				{&m.typ, &n.typ}, {&m.url, &n.url}, {&m.secretFile, &n.secretFile}, {&m.tokenFile, &n.tokenFile},
				{&m.api, &n.api}, {&m.repo, &n.repo}, {&m.severity, &n.severity},
			} {
				if f.src.set {
					*f.dst = *f.src
				}
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
			API: m.api.v, Repo: m.repo.v, Severity: "info"}
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
			if n.API == "" || n.Repo == "" || n.TokenFile == "" {
				l.sink.add(m.pos, `notify %q (%s) needs repo = "owner/name", token_file and, for gitea, api`, name, n.Type)
				continue
			}
		}
		out = append(out, n)
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
