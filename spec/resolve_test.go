package spec_test

import (
	"reflect"
	"testing"

	"github.com/manifold-paas/manifold/spec"
)

// TestResolve checks how base specs, environments, the Procfile and the platform
// combine into each environment's App.
func TestResolve(t *testing.T) {
	t.Parallel()
	fsys := repo(t, map[string]string{
		"manifold.hcl": lines(
			`domain_suffix = "apps.example.org"`,
			`default_size  = "standard-2x"`,
		),
		"apps/a.hcl": lines(
			`app "a" {`,
			`  source { path = "../src/a" }`,
			`  buildpacks = ["go", "nodejs"]`,
			`  config = { KEEP = "1", DROP = "2", CHANGE = "old" }`,
			`  sensitive = ["DROP"]`,
			`  domains = ["a.example.com"]`,
			`  process "web" { health_check = "/up" }`,
			`  process "cron" {`,
			`    count   = 1`,
			`    command = "./cron"`,
			`  }`,
			`  process "gone" { size = "basic" }`,
			`  drain "logs" { url = "syslog+tls://logs.example.com:6514" }`,
			`}`,
		),
		"apps/g.yaml": lines(
			`app:`,
			`  g:`,
			`    source: {git: "https://git.example.com/g.git", ref: main}`,
			`    process:`,
			`      web: {}`,
			`      worker: {count: 2}`,
		),
		"environments/prod.yaml": lines(
			`environment:`,
			`  prod:`,
			`    app:`,
			`      a:`,
			`        source: {ref: v1.2.3}`,
			`        buildpacks: [go]`,
			`        stack: heroku-24`,
			`        suspend: true`,
			`        config: {DROP: null, CHANGE: new, ADD: 3}`,
			`        sensitive: [ADD]`,
			`        domains: [a.example.net]`,
			`        process:`,
			`          web: {count: 4, size: performance-m}`,
			`          worker: {count: 2, stop_timeout: 60}`,
			`        drain:`,
			`          logs: {url: "https://logs.example.com/drain", ca: ../certs/ca.pem}`,
			`          more: {url: "syslog+tcp://127.0.0.1:514"}`,
			`      g:`,
			`        source: {ref: v2}`,
		),
		"environments/staging.hcl": `environment "staging" {}`,
		"certs/ca.pem":             "-----BEGIN CERTIFICATE-----\n",
	})
	desired, diags := spec.Load(fsys, spec.LoadOptions{})
	if diags != nil {
		t.Fatal(diags)
	}
	digest, err := spec.DigestDir(fsys, "src/a")
	if err != nil {
		t.Fatal(err)
	}
	want := &spec.Desired{
		Platform: spec.Platform{DomainSuffix: "apps.example.org", DefaultSize: "standard-2x", DefaultStack: "manifold-24", KeepReleases: 20,
			RouterErrors: spec.RouterErrors{Threshold: 10, WindowSeconds: 60}},
		Environments: []string{"prod", "staging"},
		Apps: []spec.App{
			{
				Name: "a", Env: "prod", Pos: spec.Pos{File: "apps/a.hcl", Line: 1, Col: 5},
				Source:     spec.Source{Path: "src/a", Ref: "v1.2.3", Digest: digest},
				Buildpacks: []string{"go"},
				Stack:      "heroku-24",
				Config:     map[string]string{"KEEP": "1", "CHANGE": "new", "ADD": "3"},
				Sensitive:  []string{"ADD", "DROP"},
				Domains:    []string{"a.prod.apps.example.org", "a.example.net"},
				Processes: []spec.Process{
					{Type: "cron", Command: "./cron", Count: 1, Size: "standard-2x", StopTimeoutSeconds: 30},
					{Type: "web", Command: "./web", Count: 4, Size: "performance-m", HealthCheck: "/up", StopTimeoutSeconds: 30},
					{Type: "worker", Command: "./work", Count: 2, Size: "standard-2x", StopTimeoutSeconds: 60},
				},
				ReleaseCommand: "./migrate",
				Drains: []spec.Drain{
					{Name: "logs", URL: "https://logs.example.com/drain", CA: "certs/ca.pem",
						CADigest: "sha256:b93f51c3ac1bdd90edcce2019d2452a328cbf97443f3744cc7ec63033a5b2c16"},
					{Name: "more", URL: "syslog+tcp://127.0.0.1:514"},
				},
				Suspend: true,
			},
			{
				Name: "g", Env: "prod", Pos: spec.Pos{File: "apps/g.yaml", Line: 2, Col: 3},
				Source:  spec.Source{Git: "https://git.example.com/g.git", Ref: "v2"},
				Stack:   "manifold-24",
				Domains: []string{"g.prod.apps.example.org"},
				Processes: []spec.Process{
					{Type: "web", Count: 1, Size: "standard-2x", StopTimeoutSeconds: 30},
					{Type: "worker", Count: 2, Size: "standard-2x", StopTimeoutSeconds: 30},
				},
			},
			{
				Name: "a", Env: "staging", Pos: spec.Pos{File: "apps/a.hcl", Line: 1, Col: 5},
				Source:     spec.Source{Path: "src/a", Digest: digest},
				Buildpacks: []string{"go", "nodejs"},
				Stack:      "manifold-24",
				Config:     map[string]string{"KEEP": "1", "DROP": "2", "CHANGE": "old"},
				Sensitive:  []string{"DROP"},
				Domains:    []string{"a.staging.apps.example.org", "a.example.com"},
				Processes: []spec.Process{
					{Type: "cron", Command: "./cron", Count: 1, Size: "standard-2x", StopTimeoutSeconds: 30},
					{Type: "web", Command: "./web", Count: 1, Size: "standard-2x", HealthCheck: "/up", StopTimeoutSeconds: 30},
					{Type: "worker", Command: "./work", Count: 0, Size: "standard-2x", StopTimeoutSeconds: 30},
				},
				ReleaseCommand: "./migrate",
				Drains:         []spec.Drain{{Name: "logs", URL: "syslog+tls://logs.example.com:6514"}},
			},
			{
				Name: "g", Env: "staging", Pos: spec.Pos{File: "apps/g.yaml", Line: 2, Col: 3},
				Source:  spec.Source{Git: "https://git.example.com/g.git", Ref: "main"},
				Stack:   "manifold-24",
				Domains: []string{"g.staging.apps.example.org"},
				Processes: []spec.Process{
					{Type: "web", Count: 1, Size: "standard-2x", StopTimeoutSeconds: 30},
					{Type: "worker", Count: 2, Size: "standard-2x", StopTimeoutSeconds: 30},
				},
			},
		},
	}
	if !reflect.DeepEqual(desired, want) {
		for i := range want.Apps {
			if i < len(desired.Apps) && !reflect.DeepEqual(desired.Apps[i], want.Apps[i]) {
				t.Errorf("app %d:\n got %+v\nwant %+v", i, desired.Apps[i], want.Apps[i])
			}
		}
		if !reflect.DeepEqual(desired.Platform, want.Platform) || !reflect.DeepEqual(desired.Environments, want.Environments) || len(desired.Apps) != len(want.Apps) {
			t.Errorf("got %+v\nwant %+v", desired, want)
		}
	}

	if app, ok := desired.Lookup("staging", "g"); !ok || app.Source.Ref != "main" {
		t.Errorf("Lookup(staging, g) = %+v, %v", app, ok)
	}
	if _, ok := desired.Lookup("staging", "zz"); ok {
		t.Error("Lookup found an app that does not exist")
	}
}

func TestLoadDefaults(t *testing.T) {
	t.Parallel()
	desired, diags := spec.Load(repo(t, map[string]string{"apps/a.hcl": appA}), spec.LoadOptions{})
	if diags != nil {
		t.Fatal(diags)
	}
	if !reflect.DeepEqual(desired.Environments, []string{"default"}) {
		t.Errorf("Environments = %q, want [default]", desired.Environments)
	}
	want := spec.Platform{DomainSuffix: "localhost", DefaultSize: "standard-1x", DefaultStack: "manifold-24", KeepReleases: 20,
		RouterErrors: spec.RouterErrors{Threshold: 10, WindowSeconds: 60}}
	if !reflect.DeepEqual(desired.Platform, want) {
		t.Errorf("Platform = %+v, want %+v", desired.Platform, want)
	}
	app := desired.Apps[0]
	if app.Env != "default" || app.Stack != "manifold-24" || !reflect.DeepEqual(app.Domains, []string{"a.default.localhost"}) {
		t.Errorf("app = %+v", app)
	}
	if web, ok := app.Process("web"); !ok || web.Count != 1 || web.Size != "standard-1x" || web.StopTimeoutSeconds != 30 {
		t.Errorf("web = %+v, %v", web, ok)
	}
	if worker, ok := app.Process("worker"); !ok || worker.Count != 0 {
		t.Errorf("worker = %+v, %v", worker, ok)
	}
	if _, ok := app.Process("release"); ok {
		t.Error("release is a process")
	}

	empty, diags := spec.Load(repo(t, nil), spec.LoadOptions{})
	if diags != nil || len(empty.Apps) != 0 || len(empty.Environments) != 1 {
		t.Errorf("an empty repo: %+v, %v", empty, diags)
	}
}

func TestLoadEnvOption(t *testing.T) {
	t.Parallel()
	fsys := repo(t, map[string]string{
		"apps/a.hcl":               appA,
		"environments/prod.hcl":    `environment "prod" {}`,
		"environments/staging.yml": "environment: {staging: {}}\n",
	})
	desired, diags := spec.Load(fsys, spec.LoadOptions{Env: "staging"})
	if diags != nil {
		t.Fatal(diags)
	}
	if !reflect.DeepEqual(desired.Environments, []string{"staging"}) || len(desired.Apps) != 1 || desired.Apps[0].Env != "staging" {
		t.Errorf("Env: staging gave %+v", desired)
	}
	_, diags = spec.Load(fsys, spec.LoadOptions{Env: "qa"})
	if got, want := diags.Error(), `unknown environment "qa" (the repo defines: prod, staging)`; got != want {
		t.Errorf("unknown env: %q, want %q", got, want)
	}
	if diags.Err() == nil {
		t.Error("Err() is nil with a diagnostic")
	}
	if spec.Diagnostics(nil).Err() != nil {
		t.Error("Err() of no diagnostics is not nil")
	}
}
