package reconciler_test

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/manifold-paas/manifold/reconciler"
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
		want   []reconciler.Change
	}{
		{
			name:   "unchanged",
			mutate: func(*spec.App) {},
			want:   nil,
		},
		{
			name:   "scale web",
			mutate: func(app *spec.App) { app.Processes[0].Count = 3 },
			want: []reconciler.Change{{Env: "production", App: "hello", Kind: reconciler.KindScale,
				Process: "web", From: 1, To: 3}},
		},
		{
			name:   "resize worker",
			mutate: func(app *spec.App) { app.Processes[1].Size = "standard-2x" },
			want: []reconciler.Change{{Env: "production", App: "hello", Kind: reconciler.KindResize,
				Process: "worker", From: "standard-1x", To: "standard-2x"}},
		},
		{
			name: "config added changed removed and sensitive",
			mutate: func(app *spec.App) {
				app.Config = map[string]string{"GREETING": "hello", "DATABASE_URL": "postgres://db/two", "NEW": "1"}
			},
			want: []reconciler.Change{
				{Env: "production", App: "hello", Kind: reconciler.KindConfig, Key: "DATABASE_URL", Sensitive: true, Release: true},
				{Env: "production", App: "hello", Kind: reconciler.KindConfig, Key: "GREETING", From: "hi", To: "hello", Release: true},
				{Env: "production", App: "hello", Kind: reconciler.KindConfig, Key: "NEW", To: "1", Release: true},
			},
		},
		{
			name:   "source",
			mutate: func(app *spec.App) { app.Source.Digest = "sha256:2222222222222222222222222222222222222222" },
			want: []reconciler.Change{{Env: "production", App: "hello", Kind: reconciler.KindSource,
				From: "src/hello@sha256:111111111111", To: "src/hello@sha256:222222222222", Release: true}},
		},
		{
			name:   "buildpacks and stack",
			mutate: func(app *spec.App) { app.Buildpacks = []string{"go"}; app.Stack = "heroku-24" },
			want: []reconciler.Change{
				{Env: "production", App: "hello", Kind: reconciler.KindBuildpacks, To: []string{"go"}, Release: true},
				{Env: "production", App: "hello", Kind: reconciler.KindStack, From: "manifold-24", To: "heroku-24", Release: true},
			},
		},
		{
			name:   "command",
			mutate: func(app *spec.App) { app.Processes[0].Command = "bin/hello serve" },
			want: []reconciler.Change{{Env: "production", App: "hello", Kind: reconciler.KindCommand,
				Process: "web", From: "bin/hello web", To: "bin/hello serve", Release: true}},
		},
		{
			name: "domains and drains",
			mutate: func(app *spec.App) {
				app.Domains = append(app.Domains, "hello.example.com")
				app.Drains = []spec.Drain{{Name: "a", URL: "https://logs.example.com"}}
			},
			want: []reconciler.Change{
				{Env: "production", App: "hello", Kind: reconciler.KindDomains, From: []string{"hello.production.localhost"}, To: []string{"hello.production.localhost", "hello.example.com"}},
				{Env: "production", App: "hello", Kind: reconciler.KindDrains, To: []string{"a=https://logs.example.com"}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			observed := helloApp("production")
			desired := helloApp("production")
			tt.mutate(&desired)
			plan := reconciler.Diff([]spec.App{desired}, []spec.App{observed})
			if got, want := fmt.Sprintf("%#v", plan.Changes), fmt.Sprintf("%#v", tt.want); got != want {
				t.Errorf("changes:\n got %s\nwant %s", got, want)
			}
			if plan.HasChanges() != (len(tt.want) > 0) {
				t.Errorf("HasChanges = %v, want %v", plan.HasChanges(), len(tt.want) > 0)
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
	plan := reconciler.Diff([]spec.App{production}, []spec.App{staging})
	if len(plan.Changes) != 2 {
		t.Fatalf("want create + destroy, got %#v", plan.Changes)
	}
	if c := plan.Changes[0]; c.Kind != reconciler.KindCreateApp || c.Env != "production" || !c.Release ||
		c.To != "web=4:standard-2x worker=1:standard-1x" {
		t.Errorf("first change = %#v", c)
	}
	if c := plan.Changes[1]; c.Kind != reconciler.KindDestroyApp || c.Env != "staging" || c.Release {
		t.Errorf("second change = %#v", c)
	}
	want := []reconciler.EnvSummary{
		{Env: "production", After: reconciler.Formation{Dynos: 5, MemoryBytes: 4*1024<<20 + 512<<20}},
		{Env: "staging", Before: reconciler.Formation{Dynos: 2, MemoryBytes: 1024 << 20}},
	}
	if fmt.Sprint(plan.Envs) != fmt.Sprint(want) {
		t.Errorf("envs = %v, want %v", plan.Envs, want)
	}
}

// goldenPlan is a plan with every kind of change, in two environments.
func goldenPlan() reconciler.Plan {
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
	site := spec.App{Name: "site", Env: "production", Stack: "manifold-24",
		Processes: []spec.Process{{Type: "web", Command: "busybox httpd -f -p $PORT -h public", Count: 2, Size: "basic"}}}
	desired = append(desired, prod, helloApp("staging"), site)
	return reconciler.Diff(desired, observed)
}

func TestPlanGolden(t *testing.T) {
	t.Parallel()
	plan := goldenPlan()
	formats := map[string]func(*bytes.Buffer) error{
		"plan.txt":  func(b *bytes.Buffer) error { return plan.WriteText(b) },
		"plan.md":   func(b *bytes.Buffer) error { return plan.WriteMarkdown(b) },
		"plan.json": func(b *bytes.Buffer) error { return plan.WriteJSON(b) },
	}
	for name, write := range formats {
		t.Run(name, func(t *testing.T) {
			var got bytes.Buffer
			if err := write(&got); err != nil {
				t.Fatal(err)
			}
			assertGolden(t, filepath.Join("testdata", "plan", name), got.Bytes())
		})
	}
}

func TestPlanNoChangesText(t *testing.T) {
	t.Parallel()
	apps := []spec.App{helloApp("production")}
	plan := reconciler.Diff(apps, apps)
	var b bytes.Buffer
	if err := plan.WriteText(&b); err != nil {
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
		plan := reconciler.Diff(desired, observed)
		if len(plan.Changes) != 6000 {
			b.Fatalf("want 6000 changes, got %d", len(plan.Changes))
		}
		var out bytes.Buffer
		if err := plan.WriteJSON(&out); err != nil {
			b.Fatal(err)
		}
	}
}
