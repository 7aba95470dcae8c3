package plan_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/manifold-paas/manifold/reconciler/plan"
	"github.com/manifold-paas/manifold/spec"
)

// TestSecretsNeverPrinted: a secret added, resealed and removed shows as (secret) and
// (secret changed) in every format, never its sealed text, and a sensitive config
// var never shows its value.
func TestSecretsNeverPrinted(t *testing.T) {
	t.Parallel()
	base := spec.App{Name: "a", Env: "production", Stack: "s", Sensitive: []string{"TOKEN"},
		Config: map[string]string{"TOKEN": "canary-sensitive-old"},
		Secrets: map[string]spec.Secret{
			"RESEALED": {Sealed: "age:canary-sealed-old"},
			"REMOVED":  {Sealed: "age:canary-sealed-removed"},
		}}
	next := base
	next.Config = map[string]string{"TOKEN": "canary-sensitive-new"}
	next.Secrets = map[string]spec.Secret{
		"RESEALED": {Sealed: "age:canary-sealed-new"},
		"ADDED":    {Sealed: "age:canary-sealed-added"},
	}
	p := plan.Diff([]spec.App{next}, []spec.App{base})
	var kinds []string
	for _, c := range p.Changes {
		kinds = append(kinds, string(c.Kind)+" "+c.Key)
		if c.Kind == plan.KindSecret && !c.Release {
			t.Errorf("secret change %s makes no release", c.Key)
		}
	}
	if got, want := strings.Join(kinds, ", "), "config TOKEN, secret ADDED, secret REMOVED, secret RESEALED"; got != want {
		t.Errorf("changes: %s, want %s", got, want)
	}
	for name, write := range map[string]func(*bytes.Buffer) error{
		"text":     func(b *bytes.Buffer) error { return p.WriteText(b) },
		"markdown": func(b *bytes.Buffer) error { return p.WriteMarkdown(b) },
		"json":     func(b *bytes.Buffer) error { return p.WriteJSON(b) },
	} {
		var out bytes.Buffer
		if err := write(&out); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(out.String(), "canary") {
			t.Errorf("%s plan shows a value:\n%s", name, out.String())
		}
		if !strings.Contains(out.String(), "(secret changed)") && name != "json" {
			t.Errorf("%s plan does not say (secret changed):\n%s", name, out.String())
		}
		if !strings.Contains(out.String(), "(secret)") {
			t.Errorf("%s plan does not say (secret):\n%s", name, out.String())
		}
	}
	if plan.Fingerprint(&base) == plan.Fingerprint(&next) {
		t.Error("resealing a secret keeps the fingerprint: no new release")
	}
	noSecrets := base
	noSecrets.Secrets = nil
	empty := noSecrets
	empty.Secrets = map[string]spec.Secret{}
	if plan.Fingerprint(&noSecrets) != plan.Fingerprint(&empty) {
		t.Error("an empty secrets map changes the fingerprint")
	}
}
