package plan_test

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/manifold-paas/manifold/reconciler/plan"
	"github.com/manifold-paas/manifold/spec"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

func helloApp(env string) spec.App {
	return spec.App{
		Name:      "hello",
		Env:       env,
		Source:    spec.Source{Path: "src/hello", Digest: "sha256:1111111111111111111111111111111111111111111111111111111111111111"},
		Stack:     "manifold-24",
		Config:    map[string]string{"GREETING": "hi", "DATABASE_URL": "postgres://db/one"},
		Sensitive: []string{"DATABASE_URL"},
		Domains:   []string{"hello." + env + ".localhost"},
		Processes: []spec.Process{
			{Type: "web", Command: "bin/hello web", Count: 1, Size: "standard-1x"},
			{Type: "worker", Command: "bin/hello worker", Count: 1, Size: "standard-1x"},
		},
	}
}

func TestDiff(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(app *spec.App)
		want   []plan.Change
		base   func(app *spec.App)
	}{
		{
			name:   "unchanged",
			mutate: func(*spec.App) {},
			want:   nil,
		},
		{
			name:   "scale web",
			mutate: func(app *spec.App) { app.Processes[0].Count = 3 },
			want: []plan.Change{{Env: "production", App: "hello", Kind: plan.KindScale, Effect: plan.EffectScale,
				Process: "web", From: 1, To: 3}},
		},
		{
			name:   "resize worker",
			mutate: func(app *spec.App) { app.Processes[1].Size = "standard-2x" },
			want: []plan.Change{{Env: "production", App: "hello", Kind: plan.KindResize, Effect: plan.EffectRestart,
				Process: "worker", From: "standard-1x", To: "standard-2x"}},
		},
		{
			name: "config added changed removed and sensitive",
			mutate: func(app *spec.App) {
				app.Config = map[string]string{"GREETING": "hello", "DATABASE_URL": "postgres://db/two", "NEW": "1"}
			},
			want: []plan.Change{
				{Env: "production", App: "hello", Kind: plan.KindConfig, Effect: plan.EffectRelease, Key: "DATABASE_URL", Sensitive: true, Release: true},
				{Env: "production", App: "hello", Kind: plan.KindConfig, Effect: plan.EffectRelease, Key: "GREETING", From: "hi", To: "hello", Release: true},
				{Env: "production", App: "hello", Kind: plan.KindConfig, Effect: plan.EffectRelease, Key: "NEW", To: "1", Release: true},
			},
		},
		{
			name:   "source",
			mutate: func(app *spec.App) { app.Source.Digest = "sha256:2222222222222222222222222222222222222222" },
			want: []plan.Change{{Env: "production", App: "hello", Kind: plan.KindSource, Effect: plan.EffectRelease,
				From: "src/hello@sha256:111111111111", To: "src/hello@sha256:222222222222", Release: true}},
		},
		{
			name:   "buildpacks and stack",
			mutate: func(app *spec.App) { app.Buildpacks = []string{"go"}; app.Stack = "heroku-24" },
			want: []plan.Change{
				{Env: "production", App: "hello", Kind: plan.KindBuildpacks, Effect: plan.EffectRelease, To: []string{"go"}, Release: true},
				{Env: "production", App: "hello", Kind: plan.KindStack, Effect: plan.EffectRelease, From: "manifold-24", To: "heroku-24", Release: true},
			},
		},
		{
			name:   "command",
			mutate: func(app *spec.App) { app.Processes[0].Command = "bin/hello serve" },
			want: []plan.Change{{Env: "production", App: "hello", Kind: plan.KindCommand, Effect: plan.EffectRelease,
				Process: "web", From: "bin/hello web", To: "bin/hello serve", Release: true}},
		},
		{
			name: "domains and drains",
			mutate: func(app *spec.App) {
				app.Domains = append(app.Domains, "hello.example.com")
				app.Drains = []spec.Drain{{Name: "a", URL: "https://logs.example.com"}}
			},
			want: []plan.Change{
				{Env: "production", App: "hello", Kind: plan.KindDomains, Effect: plan.EffectRouter, From: []string{"hello.production.localhost"}, To: []string{"hello.production.localhost", "hello.example.com"}},
				{Env: "production", App: "hello", Kind: plan.KindDrains, Effect: plan.EffectDrains, To: []string{"a=https://logs.example.com"}},
			},
		},
		{
			name:   "health check",
			mutate: func(app *spec.App) { app.Processes[0].HealthCheck = "/" },
			want: []plan.Change{{Env: "production", App: "hello", Kind: plan.KindHealthCheck, Effect: plan.EffectRestart,
				Process: "web", To: "/"}},
		},
		{
			name:   "stop timeout",
			mutate: func(app *spec.App) { app.Processes[1].StopTimeoutSeconds = 90 },
			want: []plan.Change{{Env: "production", App: "hello", Kind: plan.KindStopTimeout, Effect: plan.EffectRestart,
				Process: "worker", From: 0, To: 90}},
		},
		{
			name:   "restart fields of a type scaled from zero start its dynos as they are",
			mutate: func(app *spec.App) { app.Processes[1].Count = 0 },
			want: []plan.Change{{Env: "production", App: "hello", Kind: plan.KindScale, Effect: plan.EffectScale,
				Process: "worker", From: 1, To: 0}},
		},
		{
			name:   "source ref of a folder",
			mutate: func(app *spec.App) { app.Source.Ref = "v2" },
			want: []plan.Change{{Env: "production", App: "hello", Kind: plan.KindSource, Effect: plan.EffectRelease,
				From: "src/hello@sha256:111111111111", To: "src/hello@sha256:111111111111 (ref v2)", Release: true}},
		},
		{
			name: "suspended: nothing else is applied, so nothing else is planned",
			mutate: func(app *spec.App) {
				app.Suspend = true
				app.Processes[0].Count = 5
				app.Config = nil
			},
			want: []plan.Change{{Env: "production", App: "hello", Kind: plan.KindSuspend, Effect: plan.EffectSuspend,
				From: false, To: true}},
		},
		{
			name: "a new CA in the same drain file",
			base: func(app *spec.App) {
				app.Drains = []spec.Drain{{Name: "a", URL: "https://logs.example.com", CA: "ca.pem", CADigest: "sha256:1111111111111111"}}
			},
			mutate: func(app *spec.App) {
				app.Drains = []spec.Drain{{Name: "a", URL: "https://logs.example.com", CA: "ca.pem", CADigest: "sha256:2222222222222222"}}
			},
			want: []plan.Change{{Env: "production", App: "hello", Kind: plan.KindDrains, Effect: plan.EffectDrains,
				From: []string{"a=https://logs.example.com (ca ca.pem@sha256:111111111111)"},
				To:   []string{"a=https://logs.example.com (ca ca.pem@sha256:222222222222)"}}},
		},
		{
			name:   "sensitive names change nothing that runs",
			mutate: func(app *spec.App) { app.Sensitive = []string{"DATABASE_URL", "GREETING"} },
			want:   nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			observed, desired := helloApp("production"), helloApp("production")
			if tt.base != nil {
				tt.base(&observed)
				tt.base(&desired)
			}
			tt.mutate(&desired)
			p := plan.Diff([]spec.App{desired}, []spec.App{observed})
			if got, want := fmt.Sprintf("%#v", p.Changes), fmt.Sprintf("%#v", tt.want); got != want {
				t.Errorf("changes:\n got %s\nwant %s", got, want)
			}
			if p.HasChanges() != (len(tt.want) > 0) {
				t.Errorf("HasChanges = %v, want %v", p.HasChanges(), len(tt.want) > 0)
			}
		})
	}
}

func TestDiffCreateDestroyAndFormation(t *testing.T) {
	t.Parallel()
	production := helloApp("production")
	production.Processes[0].Count = 4
	production.Processes[0].Size = "standard-2x"
	staging := helloApp("staging")
	p := plan.Diff([]spec.App{production}, []spec.App{staging})
	if len(p.Changes) != 2 {
		t.Fatalf("want create + destroy, got %#v", p.Changes)
	}
	if c := p.Changes[0]; c.Kind != plan.KindCreateApp || c.Env != "production" || !c.Release ||
		c.To != "web=4:standard-2x worker=1:standard-1x" {
		t.Errorf("first change = %#v", c)
	}
	if c := p.Changes[1]; c.Kind != plan.KindDestroyApp || c.Env != "staging" || c.Release {
		t.Errorf("second change = %#v", c)
	}
	want := []plan.EnvSummary{
		{Env: "production", After: plan.Formation{Dynos: 5, MemoryBytes: 4*1024<<20 + 512<<20}},
		{Env: "staging", Before: plan.Formation{Dynos: 2, MemoryBytes: 1024 << 20}},
	}
	if fmt.Sprint(p.Envs) != fmt.Sprint(want) {
		t.Errorf("envs = %v, want %v", p.Envs, want)
	}
}

// goldenPlan is a plan with every kind of change, in two environments.
func goldenPlan() plan.Plan {
	var observed, desired []spec.App
	for _, env := range []string{"production", "staging"} {
		observed = append(observed, helloApp(env))
	}
	prod := helloApp("production")
	prod.Processes[0].Count, prod.Processes[0].Size = 3, "standard-2x"
	prod.Config = map[string]string{"GREETING": "hello", "DATABASE_URL": "postgres://db/two", "FEATURE_X": "on"}
	prod.Source.Digest = "sha256:3333333333333333333333333333333333333333333333333333333333333333"
	prod.Domains = append(prod.Domains, "hello.example.com")
	prod.Drains = []spec.Drain{{Name: "archive", URL: "syslog+tls://logs.example.com:6514"}}
	prod.Processes[0].HealthCheck = "/health"
	prod.Processes[1].StopTimeoutSeconds = 60
	site := spec.App{Name: "site", Env: "production", Stack: "manifold-24",
		Processes: []spec.Process{{Type: "web", Command: "busybox httpd -f -p $PORT -h public", Count: 2, Size: "basic"}}}
	desired = append(desired, prod, helloApp("staging"), site)
	return plan.Diff(desired, observed)
}

func TestPlanGolden(t *testing.T) {
	t.Parallel()
	p := goldenPlan()
	formats := map[string]func(*bytes.Buffer) error{
		"plan.txt":  func(b *bytes.Buffer) error { return p.WriteText(b) },
		"plan.md":   func(b *bytes.Buffer) error { return p.WriteMarkdown(b) },
		"plan.json": func(b *bytes.Buffer) error { return p.WriteJSON(b) },
	}
	for name, write := range formats {
		t.Run(name, func(t *testing.T) {
			var got bytes.Buffer
			if err := write(&got); err != nil {
				t.Fatal(err)
			}
			assertGolden(t, filepath.Join("testdata", name), got.Bytes())
		})
	}
}

func TestPlanNoChangesText(t *testing.T) {
	t.Parallel()
	apps := []spec.App{helloApp("production")}
	p := plan.Diff(apps, apps)
	var b bytes.Buffer
	if err := p.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	want := "Environment production\n  no changes\n  production: 2 dynos, 1.0 GB -> 2 dynos, 1.0 GB\n\nNo changes in 1 environment.\n"
	if b.String() != want {
		t.Errorf("got %q\nwant %q", b.String(), want)
	}
}

func assertGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// BenchmarkPlan1000Apps plans 1000 apps in 3 environments where every app changes
// scale and one config var: the full diff plus all three renderings.
func BenchmarkPlan1000Apps(b *testing.B) {
	var observed, desired []spec.App
	for _, env := range []string{"production", "staging", "review"} {
		for i := range 1000 {
			app := helloApp(env)
			app.Name = fmt.Sprintf("app-%04d", i)
			for k := range 20 {
				app.Config[fmt.Sprintf("VAR_%02d", k)] = fmt.Sprintf("value-%d", k)
			}
			observed = append(observed, app)
			changed := app
			changed.Config = map[string]string{}
			for k, v := range app.Config {
				changed.Config[k] = v
			}
			changed.Config["VAR_07"] = "changed"
			changed.Processes = []spec.Process{app.Processes[0], app.Processes[1]}
			changed.Processes[0].Count = 3
			desired = append(desired, changed)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		p := plan.Diff(desired, observed)
		if len(p.Changes) != 6000 {
			b.Fatalf("want 6000 changes, got %d", len(p.Changes))
		}
		var out bytes.Buffer
		if err := p.WriteJSON(&out); err != nil {
			b.Fatal(err)
		}
	}
}
