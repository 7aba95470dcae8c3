package promote_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/manifold-paas/manifold/reconciler/ledger"
	"github.com/manifold-paas/manifold/reconciler/promote"
	"github.com/manifold-paas/manifold/spec"
)

var slugKey = "sha256:" + strings.Repeat("b", 64)

func TestCheck(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	release := func(version int, status ledger.Status, age time.Duration, config map[string]string) ledger.Release {
		return ledger.Release{Version: version, SlugKey: slugKey, Status: status, StatusReason: "release command exited with status 1",
			CreatedAt: now.Add(-age), Config: config}
	}
	stagingConfig := map[string]string{"BUILD_FLAGS": "-x", "DATABASE_URL": "postgres://staging-secret"}
	app := func(soak time.Duration, buildConfig []string, config map[string]string) *spec.App {
		return &spec.App{Name: "hello", SoakSeconds: int64(soak / time.Second), BuildConfig: buildConfig, Config: config}
	}
	prodConfig := map[string]string{"BUILD_FLAGS": "-x", "DATABASE_URL": "postgres://production-secret"}
	tests := []struct {
		name     string
		releases []ledger.Release
		source   *spec.App
		target   *spec.App
		refusal  string // "" when allowed
	}{
		{"soaked, same build config", []ledger.Release{release(42, ledger.StatusSucceeded, time.Hour, stagingConfig)},
			app(0, []string{"BUILD_FLAGS"}, stagingConfig), app(30*time.Minute, []string{"BUILD_FLAGS"}, prodConfig), ""},
		{"no soak, just released", []ledger.Release{release(42, ledger.StatusSucceeded, time.Second, stagingConfig)},
			app(0, []string{}, stagingConfig), app(0, []string{}, prodConfig), ""},
		{"not soaked", []ledger.Release{release(42, ledger.StatusSucceeded, 10*time.Minute, stagingConfig)},
			app(0, []string{}, stagingConfig), app(30*time.Minute, []string{}, prodConfig),
			"staging v42 of hello has run for 10m0s; production's soak is 30m0s: promote it after 2026-12-01T12:20:00Z"},
		{"failed", []ledger.Release{release(43, ledger.StatusFailed, time.Hour, stagingConfig), release(42, ledger.StatusSucceeded, 2*time.Hour, stagingConfig)},
			app(0, []string{}, stagingConfig), app(0, []string{}, prodConfig),
			"staging v43 of hello failed (release command exited with status 1)"},
		{"pending", []ledger.Release{release(43, ledger.StatusPending, time.Hour, stagingConfig)},
			app(0, []string{}, stagingConfig), app(0, []string{}, prodConfig), "staging v43 of hello is still deploying"},
		{"no release", nil, app(0, nil, nil), app(0, nil, nil), "hello has no release in staging"},
		{"build config differs", []ledger.Release{release(42, ledger.StatusSucceeded, time.Hour, stagingConfig)},
			app(0, []string{"BUILD_FLAGS", "DATABASE_URL"}, stagingConfig), app(0, []string{"BUILD_FLAGS", "DATABASE_URL"}, prodConfig),
			"build-time config of hello differs between staging and production: DATABASE_URL "},
		{"no build_config: every var is build-time", []ledger.Release{release(42, ledger.StatusSucceeded, time.Hour, stagingConfig)},
			app(0, nil, stagingConfig), app(0, []string{"BUILD_FLAGS"}, prodConfig), "differs between staging and production: DATABASE_URL "},
		{"a build var missing in the target", []ledger.Release{release(42, ledger.StatusSucceeded, time.Hour, stagingConfig)},
			app(0, []string{"BUILD_FLAGS"}, stagingConfig), app(0, []string{"BUILD_FLAGS"}, map[string]string{}), "differs between staging and production: BUILD_FLAGS "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := promote.Check(promote.Request{App: "hello", From: "staging", To: "production",
				Releases: tt.releases, Source: tt.source, Target: tt.target, Now: now})
			if tt.refusal == "" {
				if err != nil {
					t.Fatal(err)
				}
				want := promote.Promotion{Release: tt.releases[0], Pin: spec.ReleasePin{Slug: slugKey, From: "staging v42"}, Branch: "promote/hello-staging-v42"}
				if got.Pin != want.Pin || got.Branch != want.Branch || got.Release.Version != 42 {
					t.Errorf("Check = %+v, want %+v", got, want)
				}
				return
			}
			if !errors.Is(err, promote.ErrRefused) || !strings.Contains(err.Error(), tt.refusal) {
				t.Fatalf("err = %v, want a refusal saying %q", err, tt.refusal)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("a refusal shows a config value: %v", err)
			}
		})
	}
}
