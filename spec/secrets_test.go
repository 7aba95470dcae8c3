package spec_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/manifold-paas/manifold/spec"
)

// A real X25519 public key and two values shaped as `manifold secret encrypt` prints
// them (spec only checks the shape; opening is the daemon's).
const (
	recipient1 = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"
	sealedDB   = "age:YWdlLWVuY3J5cHRpb24ub3JnL3YxCg"
	sealedKey  = "age:c2Vjb25k"
)

func TestLoadSecrets(t *testing.T) {
	t.Parallel()
	hcl := lines(
		`environment "production" {`,
		`  recipients = ["`+recipient1+`"]`,
		`  app "a" {`,
		`    secrets = {`,
		`      DATABASE_URL = "`+sealedDB+`"`,
		`      API_KEY = "`+sealedKey+`"`,
		`    }`,
		`  }`,
		`}`,
	)
	yaml := lines(
		`environment:`,
		`  production:`,
		`    recipients: [`+recipient1+`]`,
		`    app:`,
		`      a:`,
		`        secrets:`,
		`          DATABASE_URL: `+sealedDB,
		`          API_KEY: "`+sealedKey+`"`,
	)
	for name, env := range map[string]map[string]string{
		"hcl":  {"environments/production.hcl": hcl},
		"yaml": {"environments/production.yaml": yaml},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			files := map[string]string{"apps/a.hcl": appA, "environments/staging.hcl": `environment "staging" {}` + "\n"}
			file := ""
			for k, v := range env {
				files[k], file = v, k
			}
			desired, diags := spec.Load(repo(t, files), spec.LoadOptions{})
			if diags != nil {
				t.Fatal(diags)
			}
			prod, _ := desired.Lookup("production", "a")
			want := map[string]spec.Secret{
				"DATABASE_URL": {Sealed: sealedDB, Pos: spec.Pos{File: file, Line: 5, Col: 22}, Env: "production"},
				"API_KEY":      {Sealed: sealedKey, Pos: spec.Pos{File: file, Line: 6, Col: 17}, Env: "production"},
			}
			if name == "yaml" {
				want["DATABASE_URL"] = spec.Secret{Sealed: sealedDB, Pos: spec.Pos{File: file, Line: 7, Col: 25}, Env: "production"}
				want["API_KEY"] = spec.Secret{Sealed: sealedKey, Pos: spec.Pos{File: file, Line: 8, Col: 20}, Env: "production"}
			}
			if !reflect.DeepEqual(prod.Secrets, want) {
				t.Errorf("production secrets = %+v, want %+v", prod.Secrets, want)
			}
			// Environment-level only: staging has none of production's.
			if staging, _ := desired.Lookup("staging", "a"); staging.Secrets != nil {
				t.Errorf("staging got secrets %+v", staging.Secrets)
			}
			if got := desired.Recipients; !reflect.DeepEqual(got, map[string][]string{"production": {recipient1}}) {
				t.Errorf("Recipients = %v", got)
			}
		})
	}
}

func TestLoadSecretErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		files map[string]string
		want  []string
	}{
		{
			name: "secrets in a base spec",
			files: map[string]string{"apps/a.hcl": lines(
				`app "a" {`,
				`  source { path = "../src/a" }`,
				`  secrets = { X = "`+sealedDB+`" }`,
				`}`,
			)},
			want: []string{`apps/a.hcl:3:3: secrets are per environment: set them in the app block of an environment file (environments/NAME.hcl), sealed to its recipients`},
		},
		{
			name: "plaintext pasted, bad name, no recipients",
			files: map[string]string{"apps/a.hcl": appA, "environments/p.hcl": lines(
				`environment "p" {`,
				`  app "a" {`,
				`    secrets = {`,
				`      DATABASE_URL = "postgres://user:hunter2@db/x"`,
				`      "bad-name" = "`+sealedDB+`"`,
				`      OK = "`+sealedDB+`"`,
				`    }`,
				`  }`,
				`}`,
			)},
			want: []string{
				`environments/p.hcl:4:22: secrets: DATABASE_URL: not a sealed value (want "age:"…, from ` + "`manifold secret encrypt`" + `); if a plaintext was committed, rotate it`,
				`environments/p.hcl:5:7: secrets: invalid config var name "bad-name": want [A-Za-z_][A-Za-z0-9_]*`,
				`environments/p.hcl:6:7: secrets: environment "p" names no recipients: add recipients = ["age1…"] to its environment block`,
			},
		},
		{
			name: "bad recipient",
			files: map[string]string{"apps/a.hcl": appA, "environments/p.yaml": lines(
				`environment:`,
				`  p:`,
				`    recipients: [age1nope]`,
			)},
			want: []string{`environments/p.yaml:3:18: recipients: "age1nope" is not an age public key (age1…, as age-keygen or ` + "`manifold secret keygen`" + ` print)`},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, diags := spec.Load(repo(t, tc.files), spec.LoadOptions{})
			got := strings.Split(diags.Error(), "\n")
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("diagnostics:\n got: %s\nwant: %s", strings.Join(got, "\n      "), strings.Join(tc.want, "\n      "))
			}
			if strings.Contains(diags.Error(), "hunter2") {
				t.Errorf("a diagnostic echoes a plaintext: %s", diags)
			}
		})
	}
}
