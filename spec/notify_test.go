package spec_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/manifold-paas/manifold/spec"
)

func TestNotifyBlocks(t *testing.T) {
	t.Parallel()
	hcl := map[string]string{
		"manifold.hcl": lines(
			`notify "ops" {`,
			`  type        = "webhook"`,
			`  url         = "https://hooks.example.com/manifold"`,
			`  secret_file = "/etc/manifold/ops.secret"`,
			`  events      = ["deploy.*", "dyno.crashed"]`,
			`  exclude     = ["deploy.started"]`,
			`}`,
			`notify "commits" {`,
			`  type       = "github-status"`,
			`  repo       = "acme/config"`,
			`  token_file = "/etc/manifold/github.token"`,
			`}`,
		),
		"apps/a.hcl": lines(
			`app "a" {`,
			`  source { path = "../src/a" }`,
			`  notify "team" {`,
			`    type     = "slack"`,
			`    url      = "https://chat.example.com/hooks/T1"`,
			`    severity = "error"`,
			`  }`,
			`}`,
		),
		"environments/production.hcl": lines(
			`environment "production" {`,
			`  app "a" {`,
			`    notify "team" { url = "https://chat.example.com/hooks/PROD" }`,
			`  }`,
			`}`,
		),
		"environments/staging.hcl": `environment "staging" {}`,
	}
	yaml := map[string]string{
		"manifold.yaml": lines(
			`notify:`,
			`  ops:`,
			`    type: webhook`,
			`    url: https://hooks.example.com/manifold`,
			`    secret_file: /etc/manifold/ops.secret`,
			`    events: [deploy.*, dyno.crashed]`,
			`    exclude: [deploy.started]`,
			`  commits: {type: github-status, repo: acme/config, token_file: /etc/manifold/github.token}`,
		),
		"apps/a.yaml": lines(
			`app:`,
			`  a:`,
			`    source: {path: ../src/a}`,
			`    notify:`,
			`      team: {type: slack, url: "https://chat.example.com/hooks/T1", severity: error}`,
		),
		"environments/production.yaml": lines(
			`environment:`,
			`  production:`,
			`    app:`,
			`      a:`,
			`        notify:`,
			`          team: {url: "https://chat.example.com/hooks/PROD"}`,
		),
		"environments/staging.yaml": "environment: {staging: {}}\n",
	}
	wantPlatform := []spec.Notify{
		{Name: "commits", Type: "github-status", API: spec.DefaultGitHubAPI, Repo: "acme/config", TokenFile: "/etc/manifold/github.token", Severity: "info"},
		{Name: "ops", Type: "webhook", URL: "https://hooks.example.com/manifold", SecretFile: "/etc/manifold/ops.secret",
			Events: []string{"deploy.*", "dyno.crashed"}, Exclude: []string{"deploy.started"}, Severity: "info"},
	}
	wantApp := map[string][]spec.Notify{
		"production": {{Name: "team", Type: "slack", URL: "https://chat.example.com/hooks/PROD", Severity: "error"}},
		"staging":    {{Name: "team", Type: "slack", URL: "https://chat.example.com/hooks/T1", Severity: "error"}},
	}
	for name, files := range map[string]map[string]string{"hcl": hcl, "yaml": yaml} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			desired, diags := spec.Load(repo(t, files), spec.LoadOptions{})
			if diags != nil {
				t.Fatal(diags)
			}
			if !reflect.DeepEqual(desired.Platform.Notify, wantPlatform) {
				t.Errorf("Platform.Notify =\n%+v\nwant\n%+v", desired.Platform.Notify, wantPlatform)
			}
			for _, app := range desired.Apps {
				if !reflect.DeepEqual(app.Notify, wantApp[app.Env]) {
					t.Errorf("%s (%s) Notify = %+v, want %+v", app.Name, app.Env, app.Notify, wantApp[app.Env])
				}
			}
		})
	}
}

func TestNotifyErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		manifold string
		want     []string
	}{
		{"unknown type", `notify "x" { type = "pager" }`, []string{
			`manifold.hcl:1:21: notify "x": unknown type "pager" (types: webhook, slack, github-status, gitea-status)`}},
		{"no url", `notify "x" { type = "webhook" }`, []string{`manifold.hcl:1:8: notify "x" (webhook) has no url`}},
		{"relative secret", `notify "x" {` + "\n" + `type = "webhook"` + "\n" + `url = "https://h.example/x"` + "\n" + `secret_file = "ops.secret"` + "\n}", []string{
			`manifold.hcl:4:15: notify "x": "ops.secret" must be an absolute path on the daemon's host`}},
		{"unknown event", `notify "x" {` + "\n" + `type = "slack"` + "\n" + `url = "https://h.example/x"` + "\n" + `events = ["deploy.exploded"]` + "\n}", []string{
			`manifold.hcl:4:11: notify "x": unknown event "deploy.exploded" (events: ` + strings.Join(spec.NotifyEventTypes(), ", ") + `; a family as deploy.*, or *)`}},
		{"bad severity", `notify "x" {` + "\n" + `type = "slack"` + "\n" + `url = "https://h.example/x"` + "\n" + `severity = "warn"` + "\n}", []string{
			`manifold.hcl:4:12: notify "x": severity: want info or error, got "warn"`}},
		{"gitea needs api", `notify "x" {` + "\n" + `type = "gitea-status"` + "\n" + `repo = "a/b"` + "\n" + `token_file = "/t"` + "\n}", []string{
			`manifold.hcl:1:8: notify "x" (gitea-status) needs repo = "owner/name", token (sealed) or token_file and, for gitea, api`}},
		{"bad url", `notify "x" {` + "\n" + `type = "slack"` + "\n" + `url = "ftp://h.example/x"` + "\n}", []string{
			`manifold.hcl:3:7: notify "x": "ftp://h.example/x" is not an http or https URL`}},
		{"no label", `notify { type = "slack" }`, []string{`manifold.hcl:1:1: notify block needs a name: notify "NAME" { type = "webhook" … }`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, diags := spec.Load(repo(t, map[string]string{"apps/a.hcl": appA, "manifold.hcl": tc.manifold}), spec.LoadOptions{})
			got := strings.Split(diags.Error(), "\n")
			if len(diags) == 0 {
				got = nil
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("diagnostics:\n got: %s\nwant: %s", strings.Join(got, "\n      "), strings.Join(tc.want, "\n      "))
			}
		})
	}
}
