package spec

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/zclconf/go-cty/cty"
	"gopkg.in/yaml.v3"
)

// ReleasePin pins an app in an environment to a slug that another environment built
// and ran (a promotion): the daemon deploys that slug without a build, with the
// environment's own config. Spec: an app block of an environment file holds
// `release { slug = "sha256:…" from = "staging v42" }`.
type ReleasePin struct {
	// Slug is the slug's key, "sha256:<hex>".
	Slug string `json:"slug"`
	// From says where the slug comes from, for people: "staging v42".
	From string `json:"from,omitempty"`
}

// EnvironmentFile returns the path (slash-separated, relative to the config repo's
// root) of the file of environments/ that declares env.
func EnvironmentFile(fsys fs.FS, env string) (string, error) {
	entries, err := fs.ReadDir(fsys, "environments")
	if err != nil {
		return "", fmt.Errorf("read environments/: %w", err)
	}
	for _, e := range entries {
		name := "environments/" + e.Name()
		switch path.Ext(name) {
		case ".hcl", ".yaml", ".yml":
		default:
			continue
		}
		content, err := fs.ReadFile(fsys, name)
		if err != nil {
			return "", err
		}
		if declaresEnvironment(name, content, env) {
			return name, nil
		}
	}
	return "", fmt.Errorf("no file of environments/ declares environment %q", env)
}

func declaresEnvironment(name string, content []byte, env string) bool {
	if path.Ext(name) == ".hcl" {
		file, diags := hclwrite.ParseConfig(content, name, hcl.InitialPos)
		return !diags.HasErrors() && file.Body().FirstMatchingBlock("environment", []string{env}) != nil
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(content, &doc); err != nil || len(doc.Content) == 0 {
		return false
	}
	return mappingValue(mappingValue(doc.Content[0], "environment"), env) != nil
}

// PinRelease returns an environment file's content with app's release pinned in env:
// the app block of the environment gets `release { slug, from }` (replacing one that
// is there), created when the environment does not name the app yet. Comments and
// layout elsewhere are kept. name's extension says the format (.hcl, .yaml, .yml).
func PinRelease(name string, content []byte, env, app string, pin ReleasePin) ([]byte, error) {
	if pin.Slug == "" {
		return nil, errors.New("pin: no slug")
	}
	switch path.Ext(name) {
	case ".hcl":
		return pinHCL(name, content, env, app, pin)
	case ".yaml", ".yml":
		return pinYAML(name, content, env, app, pin)
	}
	return nil, fmt.Errorf("%s: not an .hcl or .yaml file", name)
}

func pinHCL(name string, content []byte, env, app string, pin ReleasePin) ([]byte, error) {
	file, diags := hclwrite.ParseConfig(content, name, hcl.InitialPos)
	if diags.HasErrors() {
		return nil, fmt.Errorf("%s does not parse: %s", name, diags.Error())
	}
	envBlock := file.Body().FirstMatchingBlock("environment", []string{env})
	if envBlock == nil {
		return nil, fmt.Errorf("%s declares no environment %q", name, env)
	}
	appBlock := envBlock.Body().FirstMatchingBlock("app", []string{app})
	if appBlock == nil {
		appBlock = envBlock.Body().AppendNewBlock("app", []string{app})
	}
	if old := appBlock.Body().FirstMatchingBlock("release", nil); old != nil {
		appBlock.Body().RemoveBlock(old)
	}
	release := appBlock.Body().AppendNewBlock("release", nil)
	release.Body().SetAttributeValue("slug", cty.StringVal(pin.Slug))
	if pin.From != "" {
		release.Body().SetAttributeValue("from", cty.StringVal(pin.From))
	}
	return hclwrite.Format(file.Bytes()), nil
}

func pinYAML(name string, content []byte, env, app string, pin ReleasePin) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(content, &doc); err != nil {
		return nil, fmt.Errorf("%s does not parse: %w", name, err)
	}
	if len(doc.Content) == 0 {
		return nil, fmt.Errorf("%s is empty", name)
	}
	envNode := mappingValue(mappingValue(doc.Content[0], "environment"), env)
	if envNode == nil || envNode.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s declares no environment %q", name, env)
	}
	apps := ensureMapping(envNode, "app")
	appNode := ensureMapping(apps, app)
	release := &yaml.Node{Kind: yaml.MappingNode}
	addScalar(release, "slug", pin.Slug)
	if pin.From != "" {
		addScalar(release, "from", pin.From)
	}
	setMappingValue(appNode, "release", release)
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, fmt.Errorf("write %s: %w", name, err)
	}
	return out.Bytes(), nil
}

// mappingValue returns the value of key in a YAML mapping node (nil if absent).
func mappingValue(node *yaml.Node, key string) *yaml.Node {
	if node == nil || node.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(node.Content); i += 2 {
		if node.Content[i].Value == key {
			return node.Content[i+1]
		}
	}
	return nil
}

func ensureMapping(node *yaml.Node, key string) *yaml.Node {
	if v := mappingValue(node, key); v != nil && v.Kind == yaml.MappingNode {
		return v
	}
	v := &yaml.Node{Kind: yaml.MappingNode}
	setMappingValue(node, key, v)
	return v
}

func setMappingValue(node *yaml.Node, key string, value *yaml.Node) {
	for i := 0; i+1 < len(node.Content); i += 2 {
		if node.Content[i].Value == key {
			node.Content[i+1] = value
			return
		}
	}
	node.Content = append(node.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: key}, value)
}

func addScalar(node *yaml.Node, key, value string) {
	style := yaml.Style(0)
	if strings.ContainsAny(value, ":#") {
		style = yaml.DoubleQuotedStyle
	}
	node.Content = append(node.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: key},
		&yaml.Node{Kind: yaml.ScalarNode, Value: value, Style: style})
}
