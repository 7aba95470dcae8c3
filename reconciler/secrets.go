package reconciler

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/manifold-paas/manifold/drivers"
	"github.com/manifold-paas/manifold/reconciler/ledger"
	"github.com/manifold-paas/manifold/reconciler/plan"
	"github.com/manifold-paas/manifold/reconciler/secret"
	"github.com/manifold-paas/manifold/spec"
)

// Secrets opens sealed secrets: reconciler/secret's Keyring, loaded from the
// daemon's --age-identity.
type Secrets interface {
	Open(where secret.Binding, sealed string) (string, error)
}

var _ Secrets = (*secret.Keyring)(nil)

// ledgerSecrets are the app's secrets as a release keeps them: sealed, with where
// each is written.
func ledgerSecrets(app *spec.App) map[string]ledger.Secret {
	if len(app.Secrets) == 0 {
		return nil
	}
	out := make(map[string]ledger.Secret, len(app.Secrets))
	for name, s := range app.Secrets {
		kept := ledger.Secret{Sealed: s.Sealed, At: fmt.Sprintf("%s:%d:%d", s.Pos.File, s.Pos.Line, s.Pos.Col)}
		if s.Env != app.Env {
			// A review environment's (pr-7): sealed for the review overlay.
			kept.Env = s.Env
		}
		out[name] = kept
	}
	return out
}

// openSecrets opens every secret of a release in env, each where it is sealed for (its
// Env, else env), or says of each that does not open where it is written and why
// (never its value).
func openSecrets(opener Secrets, app, env string, sealed map[string]ledger.Secret) (map[string]string, error) {
	if len(sealed) == 0 {
		return nil, nil
	}
	opened := make(map[string]string, len(sealed))
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(sealed)) {
		s := sealed[name]
		value, err := opener.Open(secret.Binding{App: app, Env: cmp.Or(s.Env, env), Name: name}, s.Sealed)
		if err != nil {
			at := s.At
			if at == "" {
				at = app + "/" + env
			}
			errs = append(errs, fmt.Errorf("%s: secret %s does not open: %w", at, name, err))
			continue
		}
		opened[name] = value
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return opened, nil
}

// sealedOf is a release's secrets as a dyno spec carries them (name -> "age:…").
func sealedOf(sealed map[string]ledger.Secret) map[string]string {
	if len(sealed) == 0 {
		return nil
	}
	out := make(map[string]string, len(sealed))
	for name, s := range sealed {
		out[name] = s.Sealed
	}
	return out
}

// sealedFor is the environment a release's secrets are sealed for when not its own
// (a dyno spec's SealedFor): one environment file holds all of an app's secrets.
func sealedFor(sealed map[string]ledger.Secret) string {
	for _, s := range sealed {
		return s.Env
	}
	return ""
}

// SecretOpener is what a driver calls to open an adopted dyno's sealed secrets again.
func SecretOpener(opener Secrets) drivers.SecretOpener {
	return func(spec drivers.DynoSpec) (map[string]string, error) {
		sealed := make(map[string]ledger.Secret, len(spec.SealedSecrets))
		for name, s := range spec.SealedSecrets {
			sealed[name] = ledger.Secret{Sealed: s, Env: spec.SealedFor}
		}
		return openSecrets(opener, spec.App, spec.Env, sealed)
	}
}

// maskRelease is a release as the API shows it: each secret and each sensitive config
// var as plan.SecretValue, never its value nor its sealed text.
func maskRelease(release ledger.Release, sensitive []string) ledger.Release {
	if len(release.Config) > 0 && len(sensitive) > 0 {
		config := maps.Clone(release.Config)
		for key := range config {
			if slices.Contains(sensitive, key) {
				config[key] = plan.SecretValue
			}
		}
		release.Config = config
	}
	if len(release.Secrets) > 0 {
		masked := make(map[string]ledger.Secret, len(release.Secrets))
		for name, s := range release.Secrets {
			masked[name] = ledger.Secret{Sealed: plan.SecretValue, At: s.At, Env: s.Env}
		}
		release.Secrets = masked
	}
	return release
}

// maskDynoSpec is a dyno's spec as the API shows it: no opened secret, no sealed text,
// sensitive config vars as plan.SecretValue.
func maskDynoSpec(spec drivers.DynoSpec, sensitive []string) drivers.DynoSpec {
	masked := maskRelease(ledger.Release{Config: spec.Config}, sensitive)
	spec.Config = masked.Config
	spec.Secrets = nil
	if len(spec.SealedSecrets) > 0 {
		sealed := make(map[string]string, len(spec.SealedSecrets))
		for name := range spec.SealedSecrets {
			sealed[name] = plan.SecretValue
		}
		spec.SealedSecrets = sealed
	}
	return spec
}
