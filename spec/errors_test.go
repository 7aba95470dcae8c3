package spec_test

import (
	"strings"
	"testing"

	"github.com/manifold-paas/manifold/spec"
)

// appA is a valid base spec for app "a" (apps/a.hcl), for cases about other files.
var appA = lines(
	`app "a" {`,
	`  source { path = "../src/a" }`,
	`}`,
)

func TestLoadErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		files map[string]string
		want  []string
	}{
		{
			name: "unknown attribute",
			files: map[string]string{"apps/a.hcl": lines(
				`app "a" {`,
				`  source { path = "../src/a" }`,
				`  colour = "red"`,
				`}`,
			)},
			want: []string{`apps/a.hcl:3:3: unknown attribute "colour" in app "a" (attributes: build_config, buildpacks, config, domains, review, secrets, sensitive, stack, suspend; blocks: drain, notify, process, release, source)`},
		},
		{
			name: "unknown attribute in process",
			files: map[string]string{"apps/a.hcl": lines(
				`app "a" {`,
				`  source { path = "../src/a" }`,
				`  process "web" { replicas = 2 }`,
				`}`,
			)},
			want: []string{`apps/a.hcl:3:19: unknown attribute "replicas" in process "web" (attributes: command, count, health_check, size, stop_timeout)`},
		},
		{
			name: "unknown attribute yaml",
			files: map[string]string{"apps/a.yaml": lines(
				`app:`,
				`  a:`,
				`    source: {path: ../src/a}`,
				`    process:`,
				`      web:`,
				`        replicas: 2`,
			)},
			want: []string{`apps/a.yaml:6:9: unknown attribute "replicas" in process "web" (attributes: command, count, health_check, size, stop_timeout)`},
		},
		{
			name: "unknown block",
			files: map[string]string{"apps/a.hcl": lines(
				`app "a" {`,
				`  source { path = "../src/a" }`,
				`  sidecar "x" {}`,
				`}`,
			)},
			want: []string{`apps/a.hcl:3:3: unknown block "sidecar" in app "a" (attributes: build_config, buildpacks, config, domains, review, secrets, sensitive, stack, suspend; blocks: drain, notify, process, release, source)`},
		},
		{
			name: "unknown top-level block",
			files: map[string]string{"apps/a.hcl": lines(
				`application "a" {}`,
			)},
			want: []string{`apps/a.hcl:1:1: unknown block "application" in an apps file (blocks: app)`},
		},
		{
			name: "block written as attribute",
			files: map[string]string{"apps/a.hcl": lines(
				`app "a" {`,
				`  source = { path = "../src/a" }`,
				`}`,
			)},
			want: []string{
				`apps/a.hcl:1:5: app "a" has no source block: add source { path = "…" } or source { git = "…", ref = "…" }`,
				`apps/a.hcl:2:3: "source" is a block, not an attribute: write source { … }`,
			},
		},
		{
			name: "wrong type",
			files: map[string]string{"apps/a.hcl": lines(
				`app "a" {`,
				`  source { path = "../src/a" }`,
				`  process "web" { count = "two" }`,
				`  domains = "a.example.com"`,
				`  suspend = "yes"`,
				`}`,
			)},
			want: []string{
				`apps/a.hcl:3:27: count: want a whole number, got string`,
				`apps/a.hcl:4:13: domains: want a list of strings, got string`,
				`apps/a.hcl:5:13: suspend: want a bool, got string`,
			},
		},
		{
			name: "wrong type yaml",
			files: map[string]string{"apps/a.yaml": lines(
				`app:`,
				`  a:`,
				`    source: {path: ../src/a}`,
				`    config: [A, B]`,
				`    process: {web: {count: [1]}}`,
			)},
			want: []string{
				`apps/a.yaml:4:13: config: want a map of strings, got list`,
				`apps/a.yaml:5:28: count: want a whole number, got list`,
			},
		},
		{
			name: "negative count",
			files: map[string]string{"apps/a.hcl": lines(
				`app "a" {`,
				`  source { path = "../src/a" }`,
				`  process "web" {`,
				`    count = -1`,
				`  }`,
				`}`,
			)},
			want: []string{`apps/a.hcl:4:13: count: must not be negative, got -1`},
		},
		{
			name: "non-integer count",
			files: map[string]string{"apps/a.hcl": lines(
				`app "a" {`,
				`  source { path = "../src/a" }`,
				`  process "web" {`,
				`    count = 1.5`,
				`  }`,
				`}`,
			)},
			want: []string{`apps/a.hcl:4:13: count: want a whole number, got 1.5`},
		},
		{
			name: "non-integer count yaml",
			files: map[string]string{"apps/a.yaml": lines(
				`app:`,
				`  a:`,
				`    source: {path: ../src/a}`,
				`    process:`,
				`      web: {count: 2.5}`,
			)},
			want: []string{`apps/a.yaml:5:20: count: want a whole number, got 2.5`},
		},
		{
			name: "count too large",
			files: map[string]string{"apps/a.hcl": lines(
				`app "a" {`,
				`  source { path = "../src/a" }`,
				`  process "web" { count = 1e30 }`,
				`}`,
			)},
			want: []string{`apps/a.hcl:3:27: count: must be at most 10000, got 1e+30`},
		},
		{
			name: "unknown size",
			files: map[string]string{"apps/a.hcl": lines(
				`app "a" {`,
				`  source { path = "../src/a" }`,
				`  process "web" { size = "huge" }`,
				`}`,
			)},
			want: []string{`apps/a.hcl:3:26: size: unknown size "huge" (sizes: basic, standard-1x, standard-2x, performance-m, performance-l)`},
		},
		{
			name: "unknown default size",
			files: map[string]string{
				"apps/a.hcl":    appA,
				"manifold.yaml": "default_size: standard-3x\n",
			},
			want: []string{`manifold.yaml:1:15: default_size: unknown size "standard-3x" (sizes: basic, standard-1x, standard-2x, performance-m, performance-l)`},
		},
		{
			name: "duplicate app across files",
			files: map[string]string{
				"apps/a.hcl": appA,
				"apps/b.yaml": lines(
					`app:`,
					`  a:`,
					`    source: {path: ../src/a}`,
				),
			},
			want: []string{`apps/b.yaml:2:3: duplicate app "a": already declared at apps/a.hcl:1:5`},
		},
		{
			name: "environment app not in a base spec",
			files: map[string]string{
				"apps/a.hcl": appA,
				"environments/prod.hcl": lines(
					`environment "prod" {`,
					`  app "a" {}`,
					`  app "ghost" {`,
					`    process "web" { count = 2 }`,
					`  }`,
					`}`,
				),
			},
			want: []string{`environments/prod.hcl:3:7: environment "prod" overrides app "ghost", which no file of apps/ declares`},
		},
		{
			name: "process with count neither in Procfile nor with command",
			files: map[string]string{"apps/a.hcl": lines(
				`app "a" {`,
				`  source { path = "../src/a" }`,
				`  process "clock" { count = 1 }`,
				`  process "cron" {`,
				`    count   = 1`,
				`    command = "./cron"`,
				`  }`,
				`  process "idle" { size = "basic" }`,
				`}`,
			)},
			want: []string{`apps/a.hcl:3:29: process "clock" has count 1 but is neither in the Procfile nor given a command`},
		},
		{
			name: "process count set by an environment",
			files: map[string]string{
				"apps/a.hcl": appA,
				"environments/prod.yaml": lines(
					`environment:`,
					`  prod:`,
					`    app:`,
					`      a:`,
					`        process:`,
					`          clock: {count: 3}`,
				),
			},
			want: []string{`environments/prod.yaml:6:26: process "clock" has count 3 but is neither in the Procfile nor given a command`},
		},
		{
			name: "domain claimed by two apps of one environment",
			files: map[string]string{
				"apps/a.hcl": lines(
					`app "a" {`,
					`  source { path = "../src/a" }`,
					`  domains = ["www.example.com"]`,
					`}`,
					`app "b" {`,
					`  source { path = "../src/a" }`,
					`  domains = ["api.example.com", "WWW.example.com"]`,
					`}`,
				),
			},
			want: []string{
				`apps/a.hcl:3:14: domain "www.example.com" is claimed by apps "a" and "b" in environment "default"`,
				`apps/a.hcl:7:33: domain "www.example.com" is claimed by apps "a" and "b" in environment "default"`,
			},
		},
		{
			name: "domain claimed in one environment only",
			files: map[string]string{
				"apps/a.hcl": lines(
					`app "a" {`,
					`  source { path = "../src/a" }`,
					`}`,
					`app "b" {`,
					`  source { path = "../src/a" }`,
					`}`,
				),
				"environments/staging.hcl": `environment "staging" {}`,
				"environments/prod.hcl": lines(
					`environment "prod" {`,
					`  app "b" { domains = ["a.prod.localhost"] }`,
					`}`,
				),
			},
			want: []string{`environments/prod.hcl:2:24: domain "a.prod.localhost" is claimed by apps "a" and "b" in environment "prod"`},
		},
		{
			name: "invalid config var name",
			files: map[string]string{"apps/a.hcl": lines(
				`app "a" {`,
				`  source { path = "../src/a" }`,
				`  config = {`,
				`    GOOD_NAME = "x"`,
				`    "1BAD" = "y"`,
				`    "has-dash" = "z"`,
				`  }`,
				`}`,
			)},
			want: []string{
				`apps/a.hcl:5:5: config: invalid config var name "1BAD": want [A-Za-z_][A-Za-z0-9_]*`,
				`apps/a.hcl:6:5: config: invalid config var name "has-dash": want [A-Za-z_][A-Za-z0-9_]*`,
			},
		},
		{
			name: "invalid config var name yaml",
			files: map[string]string{"apps/a.yaml": lines(
				`app:`,
				`  a:`,
				`    source: {path: ../src/a}`,
				`    config:`,
				`      OK: 1`,
				`      bad.name: 2`,
			)},
			want: []string{`apps/a.yaml:6:7: config: invalid config var name "bad.name": want [A-Za-z_][A-Za-z0-9_]*`},
		},
		{
			name: "unsupported drain scheme",
			files: map[string]string{"apps/a.hcl": lines(
				`app "a" {`,
				`  source { path = "../src/a" }`,
				`  drain "archive" { url = "udp://logs.example.com:514" }`,
				`  drain "ok" { url = "syslog+tls://logs.example.com:6514" }`,
				`}`,
			)},
			want: []string{`apps/a.hcl:3:27: drain "archive": unsupported URL scheme "udp" (supported: syslog+tcp, syslog+tls, https)`},
		},
		{
			name: "missing source path",
			files: map[string]string{"apps/a.hcl": lines(
				`app "a" {`,
				`  source { path = "../src/nope" }`,
				`}`,
			)},
			want: []string{`apps/a.hcl:2:19: source path "../src/nope" (src/nope) does not exist`},
		},
		{
			name: "source path leaving the repo",
			files: map[string]string{"apps/a.hcl": lines(
				`app "a" {`,
				`  source { path = "../../elsewhere" }`,
				`}`,
			)},
			want: []string{`apps/a.hcl:2:19: source path "../../elsewhere" leaves the config repo`},
		},
		{
			name: "missing Procfile",
			files: map[string]string{
				"apps/a.hcl":     appA,
				"src/a/Procfile": "<delete>",
			},
			want: []string{`apps/a.hcl:2:19: source path "../src/a" (src/a) has no Procfile`},
		},
		{
			name: "malformed Procfile line",
			files: map[string]string{
				"apps/a.hcl":     appA,
				"src/a/Procfile": "web: ./web\n\nthis line has no colon\nbad type: ./x\n",
			},
			want: []string{
				`src/a/Procfile:3:1: malformed Procfile line: want "name: command"`,
				`src/a/Procfile:4:4: malformed Procfile line: invalid process type "bad type": want letters, digits, _ and -`,
			},
		},
		{
			name: "hcl that does not parse",
			files: map[string]string{"apps/a.hcl": lines(
				`app "a" {`,
				`  source { path = }`,
				`}`,
			)},
			want: []string{`apps/a.hcl:2:19: Invalid expression: Expected the start of an expression, but found an invalid expression token.`},
		},
		{
			name: "yaml that does not parse",
			files: map[string]string{"apps/a.yaml": lines(
				`app:`,
				`  a:`,
				`    source:`,
				"\t  path: x",
			)},
			want: []string{`apps/a.yaml:4:1: cannot parse YAML: yaml: line 4: found character that cannot start any token`},
		},
		{
			name: "yaml merge keys",
			files: map[string]string{"apps/a.yaml": lines(
				`app:`,
				`  a:`,
				`    <<: {stack: x}`,
				`    source: {path: ../src/a}`,
			)},
			want: []string{`apps/a.yaml:3:5: YAML merge keys (<<) are not supported; write the keys out`},
		},
		{
			name: "yaml list where labelled blocks go",
			files: map[string]string{"apps/a.yaml": lines(
				`app:`,
				`  a:`,
				`    source: {path: ../src/a}`,
				`    process: [web]`,
			)},
			want: []string{`apps/a.yaml:4:14: process: want a map of names to process blocks, got list`},
		},
		{
			name: "every problem at once",
			files: map[string]string{
				"apps/a.hcl": lines(
					`app "a" {`,
					`  source { path = "../src/a" }`,
					`  process "web" { size = "tiny" }`,
					`}`,
				),
				"apps/b.yaml": lines(
					`app:`,
					`  b:`,
					`    source: {path: ../src/a}`,
					`    process: {web: {count: -2}}`,
				),
				"environments/x.hcl": `environment "x" { nope = 1 }`,
			},
			want: []string{
				`apps/a.hcl:3:26: size: unknown size "tiny" (sizes: basic, standard-1x, standard-2x, performance-m, performance-l)`,
				`apps/b.yaml:4:28: count: must not be negative, got -2`,
				`environments/x.hcl:1:19: unknown attribute "nope" in environment "x" (attributes: recipients, soak; blocks: app)`,
			},
		},
		{
			name: "one environment per file",
			files: map[string]string{
				"apps/a.hcl": appA,
				"environments/x.hcl": lines(
					`environment "x" {}`,
					`environment "y" {}`,
				),
			},
			want: []string{`environments/x.hcl:2:13: one environment per file: "x" is already declared at 1:13`},
		},
		{
			name: "duplicates inside a file",
			files: map[string]string{"apps/a.yaml": lines(
				`app:`,
				`  a:`,
				`    source: {path: ../src/a}`,
				`    stack: one`,
				`    stack: two`,
				`    process:`,
				`      web: {count: 1}`,
				`      web: {count: 2}`,
				`    config: {A: x, A: y}`,
			)},
			want: []string{
				`apps/a.yaml:5:5: duplicate attribute "stack" (first set at 4:5)`,
				`apps/a.yaml:8:7: duplicate process "web" (first at 7:7)`,
				`apps/a.yaml:9:20: config: duplicate key "A"`,
			},
		},
		{
			name: "invalid names and values",
			files: map[string]string{"apps/a.hcl": lines(
				`app "Hello_World" {`,
				`  source { path = "../src/a" }`,
				`  domains = ["ok.example.com", "not a domain"]`,
				`  process "web" { health_check = "healthz" }`,
				`  process "we.b" { count = 0 }`,
				`  process "worker" { stop_timeout = 0 }`,
				`  drain "d" { ca = "../ca.pem" }`,
				`}`,
			)},
			want: []string{
				`apps/a.hcl:1:5: invalid app name "Hello_World": want lowercase letters, digits and dashes, starting with a letter (it is part of domain names)`,
				`apps/a.hcl:3:32: domains: "not a domain" is not a valid domain name`,
				`apps/a.hcl:4:34: health_check: want an HTTP path starting with /, got "healthz"`,
				`apps/a.hcl:5:11: invalid process type "we.b": want letters, digits, _ and -`,
				`apps/a.hcl:6:37: stop_timeout: must be at least 1, got 0`,
				`apps/a.hcl:7:9: drain "d" has no url`,
				`apps/a.hcl:7:20: drain "d": ca file "../ca.pem" (ca.pem) does not exist`,
			},
		},
		{
			name: "source block missing or ambiguous",
			files: map[string]string{"apps/a.hcl": lines(
				`app "a" {}`,
				`app "b" {`,
				`  source {`,
				`    path = "../src/a"`,
				`    git  = "https://example.com/b.git"`,
				`  }`,
				`}`,
				`app "c" {`,
				`  source {}`,
				`}`,
			)},
			want: []string{
				`apps/a.hcl:1:5: app "a" has no source block: add source { path = "…" } or source { git = "…", ref = "…" }`,
				`apps/a.hcl:5:12: source: set either path or git, not both`,
				`apps/a.hcl:9:3: source: set path = "…" (a folder of this repo) or git = "URL"`,
			},
		},
		{
			name: "environment file without an environment",
			files: map[string]string{
				"apps/a.hcl":           appA,
				"environments/x.yaml":  "# nothing here\n",
				"environments/y.hcl":   `environment "Y" {}`,
				"environments/z.hcl":   `environment "y" {}`,
				"environments/z2.yaml": "environment: {y: {}}\n",
			},
			want: []string{
				`environments/x.yaml:1:1: no environment in this file: declare one with environment "NAME" { … }`,
				`environments/y.hcl:1:13: invalid environment name "Y": want lowercase letters, digits and dashes, starting with a letter (it is part of domain names)`,
				`environments/z2.yaml:1:15: duplicate environment "y": already declared at environments/z.hcl:1:13`,
			},
		},
		{
			name: "two platform files",
			files: map[string]string{
				"apps/a.hcl":    appA,
				"manifold.hcl":  `domain_suffix = "example.org"`,
				"manifold.yaml": "domain_suffix: example.net\n",
			},
			want: []string{`manifold.yaml:1:1: platform settings are already in manifold.hcl: keep one manifold file`},
		},
		{
			name: "release is not a process",
			files: map[string]string{"apps/a.hcl": lines(
				`app "a" {`,
				`  source { path = "../src/a" }`,
				`  process "release" { count = 1 }`,
				`}`,
			)},
			want: []string{`apps/a.hcl:3:11: "release" is the release-phase command, not a process type: set it in the Procfile`},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			desired, diags := spec.Load(repo(t, tc.files), spec.LoadOptions{})
			if desired != nil {
				t.Errorf("Load returned a Desired along with diagnostics")
			}
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
