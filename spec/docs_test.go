package spec_test

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"gopkg.in/yaml.v3"

	"github.com/manifold-paas/manifold/spec"
)

// specDoc is the schema's reference page (from spec/); its examples are what users
// copy. Failures name it as docName, from the repository's root.
const (
	specDoc = "../docs/spec.md"
	docName = "docs/spec.md"
)

// docBlock is one fenced ```hcl or ```yaml block of a Markdown file.
type docBlock struct {
	lang string
	line int    // the doc's line of the block's first line of content
	file string // the repo file the block is, from a first line "# apps/x.hcl …"; "" for a fragment
	src  string
}

// wholeFile matches a block's first line that names the file the block is.
var wholeFile = regexp.MustCompile(`^# ((?:apps|environments)/[a-z0-9-]+\.(?:hcl|yaml|yml)|manifold\.(?:hcl|yaml|yml))\b`)

func docBlocks(t *testing.T, path string) []docBlock {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var (
		blocks []docBlock
		cur    *docBlock
		body   strings.Builder
	)
	scanner := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; scanner.Scan(); n++ {
		line := scanner.Text()
		fence := strings.TrimSpace(line)
		switch {
		case cur == nil && (fence == "```hcl" || fence == "```yaml"):
			cur = &docBlock{lang: strings.TrimPrefix(fence, "```"), line: n + 1}
			body.Reset()
		case cur != nil && fence == "```":
			cur.src = body.String()
			if m := wholeFile.FindStringSubmatch(strings.SplitN(cur.src, "\n", 2)[0]); m != nil {
				cur.file = m[1]
			}
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			body.WriteString(line + "\n")
		}
	}
	if cur != nil {
		t.Fatalf("%s:%d: a ```%s block is never closed", path, cur.line-1, cur.lang)
	}
	return blocks
}

var yamlErrLine = regexp.MustCompile(`line (\d+)`)

// TestDocsExamples parses every ```hcl and ```yaml block of docs/spec.md, and loads
// those that are a whole file (a first line "# apps/hello.hcl", "# manifold.hcl", …)
// together with spec.Load, one repo per format: an example that does not parse, or
// that the loader rejects, fails at the doc's line.
func TestDocsExamples(t *testing.T) {
	t.Parallel()
	blocks := docBlocks(t, specDoc)
	repos := map[string]fstest.MapFS{}
	starts := map[string]map[string]int{} // format -> file -> the doc's line of its line 1
	for _, b := range blocks {
		switch b.lang {
		case "hcl":
			_, diags := hclsyntax.ParseConfig([]byte(b.src), docName, hcl.Pos{Line: b.line, Column: 1})
			for _, d := range diags {
				t.Errorf("%s:%d: %s: %s", docName, d.Subject.Start.Line, d.Summary, d.Detail)
			}
		case "yaml":
			var doc yaml.Node
			if err := yaml.Unmarshal([]byte(b.src), &doc); err != nil {
				line := b.line
				if m := yamlErrLine.FindStringSubmatch(err.Error()); m != nil {
					n, _ := strconv.Atoi(m[1])
					line += n - 1
				}
				t.Errorf("%s:%d: %v", docName, line, err)
			}
		}
		if b.file == "" {
			continue
		}
		if repos[b.lang] == nil {
			// What the examples point at: hello's source folder and the drain's CA.
			repos[b.lang] = fstest.MapFS{
				"src/hello/Procfile": {Data: []byte("web: bin/web\nworker: bin/worker\n")},
				"src/hello/main.go":  {Data: []byte("package main\n")},
				"certs/logs-ca.pem":  {Data: []byte("-----BEGIN CERTIFICATE-----\n")},
			}
			starts[b.lang] = map[string]int{}
		}
		if first, dup := starts[b.lang][b.file]; dup {
			t.Errorf("%s:%d: a second example of %s (the first is at line %d)", docName, b.line, b.file, first)
		}
		repos[b.lang][b.file] = &fstest.MapFile{Data: []byte(b.src)}
		starts[b.lang][b.file] = b.line
	}
	for _, lang := range []string{"hcl", "yaml"} {
		for _, want := range []string{"apps/hello." + lang, "environments/production." + lang} {
			if _, ok := starts[lang][want]; !ok {
				t.Errorf("%s has no ```%s example of %s (a block whose first line is \"# %s\"): the loader tests nothing", docName, lang, want, want)
			}
		}
	}
	for lang, repo := range repos {
		desired, diags := spec.Load(repo, spec.LoadOptions{})
		for _, d := range diags {
			line, ok := starts[lang][d.Pos.File]
			if !ok {
				t.Errorf("%s: the ```%s examples loaded together: %s", docName, lang, d)
				continue
			}
			t.Errorf("%s:%d: %s (loading the ```%s examples together)", docName, line+d.Pos.Line-1, fmt.Sprintf("%s:%d:%d: %s", d.Pos.File, d.Pos.Line, d.Pos.Col, d.Message), lang)
		}
		if diags == nil {
			if _, ok := desired.Lookup("production", "hello"); !ok {
				t.Errorf("the ```%s examples load without app hello in production: %+v", lang, desired.Apps)
			}
		}
	}
}
