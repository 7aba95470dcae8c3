package spec_test

import (
	"io/fs"
	"os"
	"path"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/manifold-paas/manifold/spec"
)

const examplesDir = "../examples"

func loadExamples(t testing.TB) *spec.Desired {
	t.Helper()
	desired, diags := spec.Load(os.DirFS(examplesDir), spec.LoadOptions{})
	if diags != nil {
		t.Fatalf("examples do not load:\n%v", diags)
	}
	return desired
}

func findApp(t *testing.T, d *spec.Desired, env, name string) spec.App {
	t.Helper()
	app, ok := d.Lookup(env, name)
	if !ok {
		t.Fatalf("no app %s in %s", name, env)
	}
	return *app
}

func TestExamples(t *testing.T) {
	t.Parallel()
	d := loadExamples(t)
	if got := d.Environments; !reflect.DeepEqual(got, []string{"production", "staging"}) {
		t.Errorf("Environments = %q", got)
	}
	var order []string
	for _, a := range d.Apps {
		order = append(order, a.Env+"/"+a.Name)
	}
	if want := "production/hello production/quotes production/site production/ticker staging/hello staging/quotes staging/site staging/ticker"; strings.Join(order, " ") != want {
		t.Errorf("apps in order %q, want %q", order, want)
	}

	staging := findApp(t, d, "staging", "hello")
	prod := findApp(t, d, "production", "hello")
	if staging.Source.Path != "src/hello" || !strings.HasPrefix(staging.Source.Digest, "sha256:") || len(staging.Source.Digest) != len("sha256:")+64 {
		t.Errorf("staging source = %+v", staging.Source)
	}
	if staging.Source != prod.Source {
		t.Errorf("one source, one digest: staging %+v, production %+v", staging.Source, prod.Source)
	}
	if staging.Config["GREETING"] != "hello from staging" || prod.Config["GREETING"] != "hello from production" {
		t.Errorf("GREETING: staging %q, production %q", staging.Config["GREETING"], prod.Config["GREETING"])
	}
	if !reflect.DeepEqual(prod.Sensitive, []string{"DATABASE_URL"}) {
		t.Errorf("Sensitive = %q", prod.Sensitive)
	}
	if !reflect.DeepEqual(prod.Domains, []string{"hello.production.localhost", "hello.example.com"}) {
		t.Errorf("production Domains = %q", prod.Domains)
	}
	if !reflect.DeepEqual(staging.Domains, []string{"hello.staging.localhost"}) {
		t.Errorf("staging Domains = %q", staging.Domains)
	}
	wantProd := []spec.Process{
		{Type: "web", Command: "hello web", Count: 3, Size: "standard-2x", HealthCheck: "/healthz", StopTimeoutSeconds: 30},
		{Type: "worker", Command: "hello worker", Count: 2, Size: "standard-1x", StopTimeoutSeconds: 10},
	}
	if !reflect.DeepEqual(prod.Processes, wantProd) {
		t.Errorf("production hello processes:\n got %+v\nwant %+v", prod.Processes, wantProd)
	}
	for _, a := range d.Apps {
		if a.Env != "staging" {
			continue
		}
		for _, p := range a.Processes {
			if p.Count != 1 {
				t.Errorf("staging %s %s: count %d, want 1", a.Name, p.Type, p.Count)
			}
		}
	}
	site := findApp(t, d, "staging", "site")
	if site.Processes[0].Command != "static-server public" {
		t.Errorf("site web command = %q", site.Processes[0].Command)
	}
}

// TestExamplesBothFormats loads the examples twice: as they are, and with every spec
// file replaced by its twin in the other format (testdata/mirror). Both must give the
// same Desired, positions aside.
func TestExamplesBothFormats(t *testing.T) {
	t.Parallel()
	examples := os.DirFS(examplesDir)
	mirror := os.DirFS("testdata/mirror")
	twins := fstest.MapFS{}
	var specFiles []string
	err := fs.WalkDir(examples, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if isSpec(p) {
			specFiles = append(specFiles, p)
			return nil
		}
		return copyInto(twins, examples, p, p)
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(specFiles) < 6 {
		t.Fatalf("found only %d spec files in the examples: %q", len(specFiles), specFiles)
	}
	for _, p := range specFiles {
		twin := twinName(p)
		if err := copyInto(twins, mirror, twin, twin); err != nil {
			t.Fatalf("%s has no twin in the other format: %v", p, err)
		}
	}

	original := loadExamples(t)
	twinned, diags := spec.Load(twins, spec.LoadOptions{})
	if diags != nil {
		t.Fatalf("the twins do not load:\n%v", diags)
	}
	for _, d := range []*spec.Desired{original, twinned} {
		for i := range d.Apps {
			d.Apps[i].Pos = spec.Pos{}
		}
	}
	if !reflect.DeepEqual(original, twinned) {
		t.Errorf("the formats load differently:\n HCL/YAML as written: %+v\n twins: %+v", original, twinned)
	}
}

func isSpec(p string) bool {
	ext := path.Ext(p)
	if ext != ".hcl" && ext != ".yaml" && ext != ".yml" {
		return false
	}
	return path.Dir(p) == "apps" || path.Dir(p) == "environments" || path.Dir(p) == "."
}

func twinName(p string) string {
	if ext := path.Ext(p); ext == ".hcl" {
		return strings.TrimSuffix(p, ext) + ".yaml"
	}
	return strings.TrimSuffix(p, path.Ext(p)) + ".hcl"
}

func copyInto(dst fstest.MapFS, src fs.FS, from, to string) error {
	data, err := fs.ReadFile(src, from)
	if err != nil {
		return err
	}
	info, err := fs.Stat(src, from)
	if err != nil {
		return err
	}
	dst[to] = &fstest.MapFile{Data: data, Mode: info.Mode()}
	return nil
}
