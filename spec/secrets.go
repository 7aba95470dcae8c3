package spec

import (
	"strings"

	"filippo.io/age"
)

// secrets.go reads the sealed half of the schema: an environment's recipients and
// the secrets map of its app blocks. Opening values is the daemon's job (it holds
// the identity); here each is only checked to look sealed.

// sealedPrefix starts a value `manifold secret encrypt` prints.
const sealedPrefix = "age:"

// recipients reads an environment's (or manifold.hcl's) age public keys, each checked
// to parse.
func (d *decoder) recipients(a attr, ok bool) listField {
	f := d.strList(a, ok)
	for _, r := range f.items {
		if strings.ContainsAny(r.v, "\n#") {
			d.sink.add(r.pos, "recipients: %q is not an age public key", r.v)
			continue
		}
		if _, err := age.ParseRecipients(strings.NewReader(r.v)); err != nil {
			d.sink.add(r.pos, "recipients: %q is not an age public key (age1…, as age-keygen or `manifold secret keygen` print)", r.v)
		}
	}
	return f
}

// secrets reads an app block's secrets map: names as config vars, values sealed.
func (d *decoder) secrets(a attr) []secretEntry {
	switch a.val.kind {
	case kindNull:
		return nil
	case kindMap:
	default:
		d.sink.add(a.val.pos, "secrets: want a map of sealed values, got %s", a.val.kind)
		return nil
	}
	var out []secretEntry
	seen := map[string]bool{}
	for _, e := range a.val.entries {
		switch {
		case !configNameRE.MatchString(e.key):
			d.sink.add(e.keyPos, "secrets: invalid config var name %q: want [A-Za-z_][A-Za-z0-9_]*", e.key)
		case seen[e.key]:
			d.sink.add(e.keyPos, "secrets: duplicate key %q", e.key)
		case e.val.kind != kindString:
			d.sink.add(e.val.pos, "secrets: %s: want a sealed string, got %s", e.key, e.val.kind)
		case !strings.HasPrefix(e.val.str, sealedPrefix):
			// Never echo the value: it may be a plaintext pasted by mistake.
			d.sink.add(e.val.pos, "secrets: %s: not a sealed value (want %q…, from `manifold secret encrypt`); if a plaintext was committed, rotate it", e.key, sealedPrefix)
		default:
			seen[e.key] = true
			out = append(out, secretEntry{key: e.key, keyPos: e.keyPos, val: strField{set: true, v: e.val.str, pos: e.val.pos}})
		}
	}
	return out
}

// resolveSecrets gives app the secrets of its environment's override and records the
// environment's recipients; an app with secrets in an environment without recipients
// is reported at each secret.
func (l *loader) resolveSecrets(desired *Desired, app *App, env *rawEnv, over *rawApp) {
	if r := recipientsOf(env.recipients); r != nil {
		if desired.Recipients == nil {
			desired.Recipients = map[string][]string{}
		}
		desired.Recipients[env.name] = r
	}
	if over == nil {
		return
	}
	if len(env.recipients.items) == 0 {
		for _, f := range sealedNotifyValues(over.notifies) {
			l.sink.add(f.pos, "notify: environment %q names no recipients: add recipients = [\"age1…\"] to its environment block", env.name)
		}
	}
	// A sealed key of an app's receiver can only come from this environment's file.
	for i, n := range app.Notify {
		for _, sealed := range []**Secret{&n.Secret, &n.Token} {
			if *sealed != nil {
				withEnv := **sealed
				withEnv.Env = env.name
				*sealed = &withEnv
			}
		}
		app.Notify[i] = n
	}
	if len(over.secrets) == 0 {
		return
	}
	app.Secrets = make(map[string]Secret, len(over.secrets))
	for _, s := range over.secrets {
		if len(env.recipients.items) == 0 {
			l.sink.add(s.keyPos, "secrets: environment %q names no recipients: add recipients = [\"age1…\"] to its environment block", env.name)
		}
		app.Secrets[s.key] = Secret{Sealed: s.val.v, Pos: s.val.pos, Env: env.name}
	}
}

// recipientsOf lists the public keys of a recipients attribute, nil when it names
// none.
func recipientsOf(list listField) []string {
	var out []string
	for _, r := range list.items {
		out = append(out, r.v)
	}
	return out
}
