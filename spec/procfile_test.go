package spec_test

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/manifold-paas/manifold/spec"
)

func TestParseProcfile(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		data  string
		want  []spec.ProcfileEntry
		diags []string
	}{
		{
			name: "types in file order, commands verbatim",
			data: "release: ./migrate\nweb: bin/web -p $PORT # optional\nsidekiq_worker:bundle exec sidekiq\n",
			want: []spec.ProcfileEntry{
				{Type: "release", Command: "./migrate", Line: 1},
				{Type: "web", Command: "bin/web -p $PORT # optional", Line: 2},
				{Type: "sidekiq_worker", Command: "bundle exec sidekiq", Line: 3},
			},
		},
		{
			name: "comments, blank lines, CRLF, BOM, no final newline",
			data: "\xef\xbb\xbf# banner\r\n\r\n  # indented comment\r\nweb: a b\r\n#worker: nope\r\nclock-1: c",
			want: []spec.ProcfileEntry{
				{Type: "web", Command: "a b", Line: 4},
				{Type: "clock-1", Command: "c", Line: 6},
			},
		},
		{
			name:  "line without a colon",
			data:  "web: ok\njust words\n",
			want:  []spec.ProcfileEntry{{Type: "web", Command: "ok", Line: 1}},
			diags: []string{`Procfile:2:1: malformed Procfile line: want "name: command"`},
		},
		{
			name:  "invalid type name",
			data:  "  we.b: x\n",
			diags: []string{`Procfile:1:5: malformed Procfile line: invalid process type "we.b": want letters, digits, _ and -`},
		},
		{
			name:  "missing type",
			data:  ": x\n",
			diags: []string{`Procfile:1:1: malformed Procfile line: missing process type before ":"`},
		},
		{
			name:  "empty command",
			data:  "web:   \n",
			diags: []string{`Procfile:1:4: malformed Procfile line: process type "web" has no command`},
		},
		{
			name:  "duplicate type",
			data:  "web: a\nworker: b\nweb: c\n",
			want:  []spec.ProcfileEntry{{Type: "web", Command: "a", Line: 1}, {Type: "worker", Command: "b", Line: 2}},
			diags: []string{`Procfile:3:1: duplicate process type "web" (first on line 1)`},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, diags := spec.ParseProcfile("Procfile", []byte(tc.data))
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("entries:\n got %+v\nwant %+v", got, tc.want)
			}
			var gotDiags []string
			for _, d := range diags {
				gotDiags = append(gotDiags, d.String())
			}
			if !slices.Equal(gotDiags, tc.diags) {
				t.Errorf("diagnostics:\n got %q\nwant %q", gotDiags, tc.diags)
			}
		})
	}
}

// TestParseRealProcfiles reads Procfiles of public apps (see SOURCES.md there) and
// checks the process types each must yield.
func TestParseRealProcfiles(t *testing.T) {
	t.Parallel()
	dir := filepath.Join("..", "..", "shared", "testdata", "procfiles")
	cases := map[string][]string{
		"go-getting-started.Procfile":             {"web"},
		"ruby-getting-started.Procfile":           {"web"},
		"java-getting-started.Procfile":           {"web"},
		"node-js-getting-started.Procfile":        {"web"},
		"python-getting-started.Procfile":         {"web"},
		"python-getting-started.Procfile.windows": {"web"},
		"discourse.Procfile":                      {"web", "worker"},
		"discourse.Procfile.no-trailing-newline":  {"web", "worker"},
		"mastodon.Procfile":                       {"web", "worker", "release"},
		"mastodon.Procfile.heroku":                {"nginx", "rails", "streaming"},
		"forem.Procfile":                          {"release", "web", "sidekiq_worker"},
		"posthog.Procfile":                        {"release", "web", "worker", "celeryworker", "pluginworker"},
		"chatwoot.Procfile":                       {"web", "worker"},
		"huginn.Procfile":                         {"web", "jobs"},
	}
	for file, wantTypes := range cases {
		t.Run(file, func(t *testing.T) {
			t.Parallel()
			data, err := os.ReadFile(filepath.Join(dir, file))
			if err != nil {
				t.Fatalf("read the shared Procfile: %v", err)
			}
			entries, diags := spec.ParseProcfile(file, data)
			if len(diags) > 0 {
				t.Fatalf("diagnostics: %v", diags)
			}
			var types []string
			for _, e := range entries {
				types = append(types, e.Type)
			}
			if !slices.Equal(types, wantTypes) {
				t.Errorf("types = %q, want %q", types, wantTypes)
			}
		})
	}

	// Commands are kept for the shell: variables, defaults and trailing comments intact.
	commands := []struct{ file, typ, want string }{
		{"go-getting-started.Procfile", "web", "go-getting-started"},
		{"discourse.Procfile", "worker", "bundle exec sidekiq -e $RAILS_ENV -c $SIDEKIQ_WORKERS"},
		{"discourse.Procfile.no-trailing-newline", "worker", "bundle exec sidekiq -e $RAILS_ENV"},
		{"huginn.Procfile", "web", "bundle exec rails server -p ${PORT-3000} -b ${IP-0.0.0.0}"},
		{"posthog.Procfile", "release", "REDIS_URL='redis://' python manage.py migrate"},
		{"posthog.Procfile", "pluginworker", "./bin/plugin-server # optional"},
		{"mastodon.Procfile.heroku", "rails", "env PORT=3000 bundle exec puma -C config/puma.rb"},
		{"python-getting-started.Procfile.windows", "web", "python manage.py runserver %PORT%"},
		{"chatwoot.Procfile", "worker", "bundle exec sidekiq -C config/sidekiq.yml"},
	}
	for _, c := range commands {
		data, err := os.ReadFile(filepath.Join(dir, c.file))
		if err != nil {
			t.Fatalf("read the shared Procfile: %v", err)
		}
		entries, _ := spec.ParseProcfile(c.file, data)
		i := slices.IndexFunc(entries, func(e spec.ProcfileEntry) bool { return e.Type == c.typ })
		if i < 0 || entries[i].Command != c.want {
			t.Errorf("%s %s: entries %+v, want command %q", c.file, c.typ, entries, c.want)
		}
	}
}

// TestLoadRealProcfile puts a real Procfile (mastodon: web, worker, release) under an
// app and checks the formation Load derives from it.
func TestLoadRealProcfile(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(filepath.Join("..", "..", "shared", "testdata", "procfiles", "mastodon.Procfile"))
	if err != nil {
		t.Fatalf("read the shared Procfile: %v", err)
	}
	fsys := repo(t, map[string]string{
		"apps/a.hcl":     appA,
		"src/a/Procfile": string(data),
	})
	desired, diags := spec.Load(fsys, spec.LoadOptions{})
	if diags != nil {
		t.Fatal(diags)
	}
	app := desired.Apps[0]
	if app.ReleaseCommand != "bundle exec rails db:migrate" {
		t.Errorf("ReleaseCommand = %q", app.ReleaseCommand)
	}
	want := []spec.Process{
		{Type: "web", Command: "bundle exec foreman start -f Procfile.heroku", Count: 1, Size: "standard-1x", StopTimeoutSeconds: 30},
		{Type: "worker", Command: "bundle exec sidekiq", Count: 0, Size: "standard-1x", StopTimeoutSeconds: 30},
	}
	if !reflect.DeepEqual(app.Processes, want) {
		t.Errorf("Processes:\n got %+v\nwant %+v", app.Processes, want)
	}
}
