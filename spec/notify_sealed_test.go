package spec_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/manifold-paas/manifold/spec"
)

// TestNotifySealedValues: a receiver's key or token sealed in the repo, in HCL and
// YAML: manifold.hcl's to its recipients, an app's in an environment file (over the
// base's file, which it replaces), each keeping where it is written.
func TestNotifySealedValues(t *testing.T) {
	t.Parallel()
	hcl := map[string]string{
		"manifold.hcl": lines(
			`recipients = ["`+recipient1+`"]`,
			`notify "ops" {`,
			`  type   = "webhook"`,
			`  url    = "https://hooks.example.com/manifold"`,
			`  secret = "`+sealedDB+`"`,
			`}`,
			`notify "commits" {`,
			`  type  = "gitea-status"`,
			`  api   = "https://git.example.com/api/v1"`,
			`  repo  = "acme/config"`,
			`  token = "`+sealedKey+`"`,
			`}`,
		),
		"apps/a.hcl": lines(
			`app "a" {`,
			`  source { path = "../src/a" }`,
			`  notify "team" {`,
			`    type        = "webhook"`,
			`    url         = "https://hooks.example.com/a"`,
			`    secret_file = "/etc/manifold/team.secret"`,
			`  }`,
			`}`,
		),
		"environments/production.hcl": lines(
			`environment "production" {`,
			`  recipients = ["`+recipient1+`"]`,
			`  app "a" {`,
			`    notify "team" { secret = "`+sealedKey+`" }`,
			`  }`,
			`}`,
		),
		"environments/staging.hcl": `environment "staging" {}`,
	}
	yaml := map[string]string{
		"manifold.yaml": lines(
			`recipients: [`+recipient1+`]`,
			`notify:`,
			`  ops:`,
			`    type: webhook`,
			`    url: https://hooks.example.com/manifold`,
			`    secret: `+sealedDB,
			`  commits:`,
			`    type: gitea-status`,
			`    api: https://git.example.com/api/v1`,
			`    repo: acme/config`,
			`    token: `+sealedKey,
		),
		"apps/a.yaml": lines(
			`app:`,
			`  a:`,
			`    source: {path: ../src/a}`,
			`    notify:`,
			`      team: {type: webhook, url: "https://hooks.example.com/a", secret_file: /etc/manifold/team.secret}`,
		),
		"environments/production.yaml": lines(
			`environment:`,
			`  production:`,
			`    recipients: [`+recipient1+`]`,
			`    app:`,
			`      a:`,
			`        notify:`,
			`          team: {secret: "`+sealedKey+`"}`,
		),
		"environments/staging.yaml": "environment: {staging: {}}\n",
	}
	pos := map[string]map[string]spec.Pos{
		"hcl": {
			"ops":     {File: "manifold.hcl", Line: 5, Col: 12},
			"commits": {File: "manifold.hcl", Line: 11, Col: 11},
			"team":    {File: "environments/production.hcl", Line: 4, Col: 30},
		},
		"yaml": {
			"ops":     {File: "manifold.yaml", Line: 6, Col: 13},
			"commits": {File: "manifold.yaml", Line: 11, Col: 12},
			"team":    {File: "environments/production.yaml", Line: 7, Col: 26},
		},
	}
	for name, files := range map[string]map[string]string{"hcl": hcl, "yaml": yaml} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			desired, diags := spec.Load(repo(t, files), spec.LoadOptions{})
			if diags != nil {
				t.Fatal(diags)
			}
			wantPlatform := []spec.Notify{
				{Name: "commits", Type: "gitea-status", API: "https://git.example.com/api/v1", Repo: "acme/config", Severity: "info",
					Token: &spec.Secret{Sealed: sealedKey, Pos: pos[name]["commits"]}},
				{Name: "ops", Type: "webhook", URL: "https://hooks.example.com/manifold", Severity: "info",
					Secret: &spec.Secret{Sealed: sealedDB, Pos: pos[name]["ops"]}},
			}
			if !reflect.DeepEqual(desired.Platform.Notify, wantPlatform) {
				t.Errorf("Platform.Notify =\n%+v\nwant\n%+v", desired.Platform.Notify, wantPlatform)
			}
			if !reflect.DeepEqual(desired.Platform.Recipients, []string{recipient1}) {
				t.Errorf("Platform.Recipients = %v", desired.Platform.Recipients)
			}
			wantApp := map[string][]spec.Notify{
				"production": {{Name: "team", Type: "webhook", URL: "https://hooks.example.com/a", Severity: "info",
					Secret: &spec.Secret{Sealed: sealedKey, Pos: pos[name]["team"], Env: "production"}}},
				"staging": {{Name: "team", Type: "webhook", URL: "https://hooks.example.com/a", Severity: "info",
					SecretFile: "/etc/manifold/team.secret"}},
			}
			for _, app := range desired.Apps {
				if !reflect.DeepEqual(app.Notify, wantApp[app.Env]) {
					t.Errorf("%s (%s) Notify =\n%+v\nwant\n%+v", app.Name, app.Env, app.Notify, wantApp[app.Env])
				}
			}
		})
	}
}

// TestNotifySealedErrors: each misuse of a sealed key or token is one diagnostic at
// its file:line:col, in HCL and in YAML, never echoing the value.
func TestNotifySealedErrors(t *testing.T) {
	t.Parallel()
	envRecipients := `  recipients = ["` + recipient1 + `"]`
	cases := []struct {
		name  string
		files map[string]string
		want  []string
	}{
		{
			name: "secret and secret_file",
			files: map[string]string{"apps/a.hcl": appA, "manifold.hcl": lines(
				`recipients = ["`+recipient1+`"]`,
				`notify "ops" {`,
				`  type        = "webhook"`,
				`  url         = "https://h.example/x"`,
				`  secret_file = "/etc/manifold/ops.secret"`,
				`  secret      = "`+sealedDB+`"`,
				`}`,
			)},
			want: []string{`manifold.hcl:6:17: notify "ops": set secret or secret_file, not both (secret_file is at 5:17)`},
		},
		{
			name: "token and token_file, yaml",
			files: map[string]string{"apps/a.hcl": appA, "manifold.yaml": lines(
				`recipients: [`+recipient1+`]`,
				`notify:`,
				`  commits: {type: github-status, repo: a/b, token_file: /t, token: "`+sealedKey+`"}`,
			)},
			want: []string{`manifold.yaml:3:68: notify "commits": set token or token_file, not both (token_file is at 3:57)`},
		},
		{
			name: "plaintext token",
			files: map[string]string{"apps/a.hcl": appA, "manifold.hcl": lines(
				`recipients = ["`+recipient1+`"]`,
				`notify "commits" {`,
				`  type  = "github-status"`,
				`  repo  = "a/b"`,
				`  token = "ghp_hunter2"`,
				`}`,
			)},
			want: []string{
				`manifold.hcl:2:8: notify "commits" (github-status) needs repo = "owner/name", token (sealed) or token_file and, for gitea, api`,
				`manifold.hcl:5:11: notify "commits": token: not a sealed value (want "age:"…, from ` + "`manifold secret encrypt --notify commits token`" + `); if a plaintext was committed, rotate it`,
			},
		},
		{
			name: "manifold.hcl names no recipients",
			files: map[string]string{"apps/a.hcl": appA, "manifold.hcl": lines(
				`notify "ops" {`,
				`  type   = "webhook"`,
				`  url    = "https://h.example/x"`,
				`  secret = "`+sealedDB+`"`,
				`}`,
			)},
			want: []string{`manifold.hcl:4:12: notify: sealed values of manifold.hcl are sealed to its recipients, and it names none: add recipients = ["age1…"] (the public keys of the daemons that send its notifications)`},
		},
		{
			name: "sealed in a base spec",
			files: map[string]string{"apps/a.hcl": lines(
				`app "a" {`,
				`  source { path = "../src/a" }`,
				`  notify "team" {`,
				`    type   = "webhook"`,
				`    url    = "https://h.example/x"`,
				`    secret = "`+sealedDB+`"`,
				`  }`,
				`}`,
			)},
			want: []string{`apps/a.hcl:6:14: notify "team": a sealed secret is per environment: set it in this app's block of an environment file (environments/NAME.hcl), sealed to its recipients, or use secret_file`},
		},
		{
			name: "environment names no recipients",
			files: map[string]string{"apps/a.hcl": appA, "environments/p.hcl": lines(
				`environment "p" {`,
				`  app "a" {`,
				`    notify "team" {`,
				`      type   = "webhook"`,
				`      url    = "https://h.example/x"`,
				`      secret = "`+sealedDB+`"`,
				`    }`,
				`  }`,
				`}`,
			)},
			want: []string{`environments/p.hcl:6:16: notify: environment "p" names no recipients: add recipients = ["age1…"] to its environment block`},
		},
		{
			name: "a credential its type does not take",
			files: map[string]string{"apps/a.hcl": appA, "environments/p.hcl": lines(
				`environment "p" {`,
				envRecipients,
				`  app "a" {`,
				`    notify "chat" {`,
				`      type   = "slack"`,
				`      url    = "https://h.example/x"`,
				`      secret = "`+sealedDB+`"`,
				`    }`,
				`    notify "hook" {`,
				`      type  = "webhook"`,
				`      url   = "https://h.example/y"`,
				`      token = "`+sealedKey+`"`,
				`    }`,
				`  }`,
				`}`,
			)},
			want: []string{
				`environments/p.hcl:7:16: notify "chat" (slack) takes no secret (secret and secret_file sign webhooks; token and token_file are the forge types')`,
				`environments/p.hcl:12:15: notify "hook" (webhook) takes no token (secret and secret_file sign webhooks; token and token_file are the forge types')`,
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, diags := spec.Load(repo(t, tc.files), spec.LoadOptions{})
			got := strings.Split(diags.Error(), "\n")
			if len(diags) == 0 {
				got = nil
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("diagnostics:\n got: %s\nwant: %s", strings.Join(got, "\n      "), strings.Join(tc.want, "\n      "))
			}
			if strings.Contains(diags.Error(), "hunter2") {
				t.Errorf("a diagnostic echoes a plaintext: %s", diags)
			}
		})
	}
}

// TestRouterErrors: manifold.hcl's router_errors block, its defaults, and an error
// at file:line:col for each bad value, in HCL and YAML.
func TestRouterErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		files map[string]string
		want  spec.RouterErrors
		diags []string
	}{
		{name: "default", files: map[string]string{"apps/a.hcl": appA},
			want: spec.RouterErrors{Threshold: 10, WindowSeconds: 60}},
		{name: "hcl", files: map[string]string{"apps/a.hcl": appA, "manifold.hcl": lines(
			`router_errors {`,
			`  threshold = 3`,
			`  window    = "30s"`,
			`}`,
		)}, want: spec.RouterErrors{Threshold: 3, WindowSeconds: 30}},
		{name: "yaml, threshold only", files: map[string]string{"apps/a.hcl": appA, "manifold.yaml": "router_errors: {threshold: 50}\n"},
			want: spec.RouterErrors{Threshold: 50, WindowSeconds: 60}},
		{name: "bad values", files: map[string]string{"apps/a.hcl": appA, "manifold.hcl": lines(
			`router_errors {`,
			`  threshold = 0`,
			`  window    = "2h"`,
			`  for       = "5m"`,
			`}`,
		)}, diags: []string{
			`manifold.hcl:2:15: threshold: must be at least 1, got 0`,
			`manifold.hcl:3:15: window: must be at most 1h0m0s, got 2h0m0s`,
			`manifold.hcl:4:3: unknown attribute "for" in router_errors (attributes: threshold, window)`,
		}},
		{name: "yaml bad values", files: map[string]string{"apps/a.hcl": appA, "manifold.yaml": lines(
			`router_errors:`,
			`  threshold: 2.5`,
			`  window: 1500ms`,
		)}, diags: []string{
			`manifold.yaml:2:14: threshold: want a whole number, got 2.5`,
			`manifold.yaml:3:11: window: want whole seconds, got 1.5s`,
		}},
		{name: "not a duration", files: map[string]string{"apps/a.hcl": appA, "manifold.hcl": `router_errors { window = "a minute" }`},
			diags: []string{`manifold.hcl:1:26: window: "a minute" is not a duration: want e.g. "30m", "2h" or "0s"`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			desired, diags := spec.Load(repo(t, tc.files), spec.LoadOptions{})
			var got []string
			if len(diags) > 0 {
				got = strings.Split(diags.Error(), "\n")
			}
			if strings.Join(got, "\n") != strings.Join(tc.diags, "\n") {
				t.Fatalf("diagnostics:\n got: %s\nwant: %s", strings.Join(got, "\n      "), strings.Join(tc.diags, "\n      "))
			}
			if len(diags) == 0 && desired.Platform.RouterErrors != tc.want {
				t.Errorf("RouterErrors = %+v, want %+v", desired.Platform.RouterErrors, tc.want)
			}
		})
	}
}
