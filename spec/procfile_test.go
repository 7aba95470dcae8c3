package spec_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
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

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// procfileGolden is the expected parse of a fixture, as its .json golden file holds it.
type procfileGolden struct {
	Entries     []spec.ProcfileEntry `json:"entries"`
	Diagnostics []string             `json:"diagnostics"`
}

// TestParseProcfileFixtures parses every Procfile under testdata/procfiles, written for
// this project in each form real apps' Procfiles take (see TestProcfileFixturesCover),
// and compares the parse with the golden file beside it (go test -update rewrites it).
func TestParseProcfileFixtures(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("testdata/procfiles/*.Procfile")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures under testdata/procfiles: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			entries, diags := spec.ParseProcfile("Procfile", data)
			got := procfileGolden{Entries: entries, Diagnostics: []string{}}
			if got.Entries == nil {
				got.Entries = []spec.ProcfileEntry{}
			}
			for _, d := range diags {
				got.Diagnostics = append(got.Diagnostics, d.String())
			}
			out, err := json.MarshalIndent(got, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, '\n')
			golden := strings.TrimSuffix(file, ".Procfile") + ".json"
			if *update {
				if err := os.WriteFile(golden, out, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (go test -update writes it)", err)
			}
			if !bytes.Equal(out, want) {
				t.Errorf("%s differs (go test -update rewrites it):\n--- got\n%s--- want\n%s", golden, out, want)
			}
		})
	}
}

// TestProcfileFixturesCover checks that the fixtures hold every form the Procfiles
// of real apps take (the corpus that MANIFOLD_PROCFILE_CORPUS names shows them all),
// so that the project's own tests exercise them without that corpus.
func TestProcfileFixturesCover(t *testing.T) {
	t.Parallel()
	forms := []struct {
		name string
		has  func(data []byte, entries []spec.ProcfileEntry) bool
	}{
		{"CRLF line ends", func(d []byte, _ []spec.ProcfileEntry) bool { return bytes.Contains(d, []byte("\r\n")) }},
		{"UTF-8 byte order mark", func(d []byte, _ []spec.ProcfileEntry) bool { return bytes.HasPrefix(d, []byte("\xef\xbb\xbf")) }},
		{"no final newline", func(d []byte, _ []spec.ProcfileEntry) bool { return len(d) > 0 && !bytes.HasSuffix(d, []byte("\n")) }},
		{"empty file", func(d []byte, _ []spec.ProcfileEntry) bool { return len(d) == 0 }},
		{"comment lines", func(d []byte, _ []spec.ProcfileEntry) bool { return bytes.Contains(d, []byte("\n#")) }},
		{"indented comment", func(d []byte, _ []spec.ProcfileEntry) bool { return bytes.Contains(d, []byte("\n   #")) }},
		{"commented-out entry", func(d []byte, _ []spec.ProcfileEntry) bool { return bytes.Contains(d, []byte("\n# web:")) }},
		{"commented-out release", func(d []byte, _ []spec.ProcfileEntry) bool { return bytes.Contains(d, []byte("\n#release:")) }},
		{"blank lines", func(d []byte, _ []spec.ProcfileEntry) bool { return bytes.Contains(d, []byte("\n\n")) }},
		{"whitespace-only line", func(d []byte, _ []spec.ProcfileEntry) bool { return bytes.Contains(d, []byte(" \t\n")) }},
		{"no space after the colon", func(d []byte, _ []spec.ProcfileEntry) bool { return bytes.Contains(d, []byte("web:bin")) }},
		{"release first", func(_ []byte, e []spec.ProcfileEntry) bool { return len(e) > 1 && e[0].Type == "release" }},
		{"release last", func(_ []byte, e []spec.ProcfileEntry) bool { return len(e) > 1 && e[len(e)-1].Type == "release" }},
		{"no web type", func(_ []byte, e []spec.ProcfileEntry) bool {
			return len(e) > 0 && !slices.ContainsFunc(e, func(x spec.ProcfileEntry) bool { return x.Type == "web" })
		}},
		{"type with _ and digits", func(_ []byte, e []spec.ProcfileEntry) bool { return hasType(e, "plugin_worker_2") }},
		{"type with -", func(_ []byte, e []spec.ProcfileEntry) bool { return hasType(e, "celery-beat") }},
		{"type with capitals", func(_ []byte, e []spec.ProcfileEntry) bool { return hasType(e, "Rails") }},
		{"${VAR-default}", func(d []byte, _ []spec.ProcfileEntry) bool { return bytes.Contains(d, []byte("${PORT-3000}")) }},
		{"%VAR% (Windows)", func(d []byte, _ []spec.ProcfileEntry) bool { return bytes.Contains(d, []byte("%PORT%")) }},
		{"trailing # comment kept", func(_ []byte, e []spec.ProcfileEntry) bool {
			return slices.ContainsFunc(e, func(x spec.ProcfileEntry) bool { return strings.HasSuffix(x.Command, "# optional") })
		}},
		{"quotes and a colon in the command", func(d []byte, _ []spec.ProcfileEntry) bool { return bytes.Contains(d, []byte("'redis://'")) }},
		{"env assignment prefix", func(d []byte, _ []spec.ProcfileEntry) bool { return bytes.Contains(d, []byte("env PORT=")) }},
		{"malformed lines", func(d []byte, _ []spec.ProcfileEntry) bool { return bytes.Contains(d, []byte("\njust words\n")) }},
	}
	files, err := filepath.Glob("testdata/procfiles/*.Procfile")
	if err != nil {
		t.Fatal(err)
	}
	for _, form := range forms {
		found := false
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			entries, _ := spec.ParseProcfile("Procfile", data)
			if form.has(data, entries) {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("no fixture under testdata/procfiles shows %s", form.name)
		}
	}
}

func hasType(entries []spec.ProcfileEntry, typ string) bool {
	return slices.ContainsFunc(entries, func(e spec.ProcfileEntry) bool { return e.Type == typ })
}

// procfileCorpusEnv names a folder of real Procfiles copied from public repositories
// (the team keeps one at ../shared/testdata/procfiles; .ci/run sets it when that
// folder exists). They are not the project's to ship, so the tests read them only
// when asked to.
const procfileCorpusEnv = "MANIFOLD_PROCFILE_CORPUS"

// procfileCorpus returns the folder procfileCorpusEnv names, "" when it is unset. A
// relative path is taken from the repository's root. A set variable that names no
// folder fails the test: a CI that asked for the corpus must not pass without it.
func procfileCorpus(tb testing.TB) string {
	tb.Helper()
	dir := os.Getenv(procfileCorpusEnv)
	if dir == "" {
		return ""
	}
	if !filepath.IsAbs(dir) {
		dir = filepath.Join("..", dir) // tests run in spec/
	}
	info, err := os.Stat(dir)
	if err != nil {
		tb.Fatalf("%s=%s: %v", procfileCorpusEnv, os.Getenv(procfileCorpusEnv), err)
	}
	if !info.IsDir() {
		tb.Fatalf("%s=%s is not a folder", procfileCorpusEnv, os.Getenv(procfileCorpusEnv))
	}
	return dir
}

// TestParseRealProcfiles reads Procfiles of public apps from the corpus that
// MANIFOLD_PROCFILE_CORPUS names (see SOURCES.md there) and checks the process types
// each must yield.
func TestParseRealProcfiles(t *testing.T) {
	t.Parallel()
	dir := procfileCorpus(t)
	if dir == "" {
		t.Skip(procfileCorpusEnv + " is not set: the project's own fixtures (TestParseProcfileFixtures) stand in for the real corpus")
	}
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
				t.Fatalf("read the corpus's Procfile: %v", err)
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
			t.Fatalf("read the corpus's Procfile: %v", err)
		}
		entries, _ := spec.ParseProcfile(c.file, data)
		i := slices.IndexFunc(entries, func(e spec.ProcfileEntry) bool { return e.Type == c.typ })
		if i < 0 || entries[i].Command != c.want {
			t.Errorf("%s %s: entries %+v, want command %q", c.file, c.typ, entries, c.want)
		}
	}
}

// TestLoadReleaseLastProcfile puts a Procfile whose release type comes last (web,
// worker, release) under an app and checks the formation Load derives from it.
func TestLoadReleaseLastProcfile(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(filepath.Join("testdata", "procfiles", "release-last.Procfile"))
	if err != nil {
		t.Fatal(err)
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
		{Type: "web", Command: "bundle exec foreman start -f Procfile.dev", Count: 1, Size: "standard-1x", StopTimeoutSeconds: 30},
		{Type: "worker", Command: "bundle exec sidekiq", Count: 0, Size: "standard-1x", StopTimeoutSeconds: 30},
	}
	if !reflect.DeepEqual(app.Processes, want) {
		t.Errorf("Processes:\n got %+v\nwant %+v", app.Processes, want)
	}
}
