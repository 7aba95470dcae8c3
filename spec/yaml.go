package spec

import (
	"bytes"
	"errors"
	"io"
	"math"
	"math/big"
	"regexp"
	"strconv"

	"gopkg.in/yaml.v3"
)

// YAML carries the HCL schema by one rule: a labelled block `T "L" { … }` is
// `T: { L: { … } }`, an unlabelled block `T { … }` is `T: { … }`, attributes are keys.
// YAML alone cannot tell a block from a map attribute, so the reader walks the schema.

// schema says which keys of a body are blocks; every other key is an attribute (and
// the decoder rejects the ones it does not know).
type schema struct {
	blocks map[string]blockSchema
}

type blockSchema struct {
	labelled bool
	inner    schema
}

// yamlErrLine finds the line (and column, when given) in yaml.v3's error text.
var yamlErrLine = regexp.MustCompile(`line (\d+)(?:, column (\d+))?`)

// parseYAML reads every document of a YAML file into one body each.
func parseYAML(name string, src []byte, root schema, sink *diagSink) (bodies []*body, ok bool) {
	defer func() {
		// yaml.v3 has had panics on hostile input; bad input must never take the
		// daemon down, so a parser panic is one more diagnostic.
		if r := recover(); r != nil {
			sink.add(Pos{File: name, Line: 1, Col: 1}, "cannot parse YAML: internal parser error: %v", r)
			bodies, ok = nil, false
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(src))
	reader := &yamlReader{name: name, sink: sink}
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return bodies, true
		}
		if err != nil {
			pos := Pos{File: name, Line: 1, Col: 1}
			if m := yamlErrLine.FindStringSubmatch(err.Error()); m != nil {
				pos.Line, _ = strconv.Atoi(m[1])
				if m[2] != "" {
					pos.Col, _ = strconv.Atoi(m[2])
				}
			}
			sink.add(pos, "cannot parse YAML: %s", err.Error())
			return nil, false
		}
		if len(doc.Content) == 0 {
			continue
		}
		if b := reader.body(doc.Content[0], root); b != nil {
			bodies = append(bodies, b)
		}
	}
}

func yamlPos(name string, n *yaml.Node) Pos {
	return Pos{File: name, Line: max(n.Line, 1), Col: max(n.Column, 1)}
}

// deref follows aliases. yaml.v3 rejects an anchor that contains itself, and the walk
// below only descends as deep as the schema, so aliases cannot make it blow up.
func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 64; i++ {
		n = n.Alias
	}
	return n
}

func isYAMLNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func yamlKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "map"
	case yaml.SequenceNode:
		return "list"
	case yaml.ScalarNode:
		return yamlScalar(Pos{}, n).kind.String()
	}
	return "unsupported value"
}

// body reads a mapping as a body under sch. A null body (`source:` with nothing
// after it) is an empty body.
func (r *yamlReader) body(n *yaml.Node, sch schema) *body {
	name, sink := r.name, r.sink
	n = deref(n)
	if n == nil || !r.count(n) {
		return nil
	}
	b := &body{pos: yamlPos(name, n)}
	if isYAMLNull(n) {
		return b
	}
	if n.Kind != yaml.MappingNode {
		sink.add(yamlPos(name, n), "want a map of attributes and blocks, got %s", yamlKind(n))
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), deref(n.Content[i+1])
		if k == nil || v == nil {
			continue
		}
		key, ok := yamlKey(name, k, sink)
		if !ok {
			continue
		}
		keyPos := yamlPos(name, k)
		bs, isBlock := sch.blocks[key]
		switch {
		case !isBlock:
			b.attrs = append(b.attrs, attr{name: key, namePos: keyPos, val: r.value(v, 0)})
		case !bs.labelled:
			if inner := r.body(v, bs.inner); inner != nil {
				inner.pos = keyPos
				b.blocks = append(b.blocks, block{typ: key, typPos: keyPos, body: inner})
			}
		default:
			if isYAMLNull(v) {
				continue
			}
			if v.Kind != yaml.MappingNode {
				sink.add(yamlPos(name, v), "%s: want a map of names to %s blocks, got %s", key, key, yamlKind(v))
				continue
			}
			for j := 0; j+1 < len(v.Content); j += 2 {
				lk, lv := deref(v.Content[j]), deref(v.Content[j+1])
				if lk == nil || lv == nil {
					continue
				}
				label, ok := yamlKey(name, lk, sink)
				if !ok {
					continue
				}
				labelPos := yamlPos(name, lk)
				inner := r.body(lv, bs.inner)
				if inner == nil {
					continue
				}
				inner.pos = labelPos
				b.blocks = append(b.blocks, block{
					typ: key, typPos: keyPos, label: label, labelPos: labelPos, labelled: true, body: inner,
				})
			}
		}
	}
	return b
}

func yamlKey(name string, k *yaml.Node, sink *diagSink) (string, bool) {
	if k.Kind != yaml.ScalarNode {
		sink.add(yamlPos(name, k), "key must be a string, got %s", yamlKind(k))
		return "", false
	}
	if k.Tag == "!!merge" || (k.Value == "<<" && k.Style == 0) {
		sink.add(yamlPos(name, k), "YAML merge keys (<<) are not supported; write the keys out")
		return "", false
	}
	return k.Value, true
}

// Aliases may point at their own ancestors (`a: &a [*a]`) or fan out exponentially
// (the "billion laughs"); a value is read at most maxYAMLDepth deep and a file yields
// at most maxYAMLValues values.
const (
	maxYAMLDepth  = 32
	maxYAMLValues = 100_000
)

// yamlReader reads one file within the limits above.
type yamlReader struct {
	name   string
	sink   *diagSink
	values int
	capped bool
}

// count charges one node to the file's budget; false (reported once) when spent.
func (r *yamlReader) count(n *yaml.Node) bool {
	r.values++
	if r.values <= maxYAMLValues {
		return true
	}
	if !r.capped {
		r.capped = true
		r.sink.add(yamlPos(r.name, n), "file too large: more than %d values (YAML aliases expand too far?)", maxYAMLValues)
	}
	return false
}

// value reads an attribute's value.
func (r *yamlReader) value(n *yaml.Node, depth int) value {
	name := r.name
	n = deref(n)
	if n == nil {
		return value{kind: kindNull}
	}
	pos := yamlPos(name, n)
	if !r.count(n) {
		return value{pos: pos, kind: kindOther}
	}
	if depth > maxYAMLDepth {
		if !r.capped {
			r.capped = true
			r.sink.add(pos, "value nested more than %d deep (an alias inside itself?)", maxYAMLDepth)
		}
		return value{pos: pos, kind: kindOther}
	}
	switch n.Kind {
	case yaml.ScalarNode:
		return yamlScalar(pos, n)
	case yaml.SequenceNode:
		v := value{pos: pos, kind: kindList}
		for _, el := range n.Content {
			v.list = append(v.list, r.value(el, depth+1))
		}
		return v
	case yaml.MappingNode:
		v := value{pos: pos, kind: kindMap}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := deref(n.Content[i])
			if k == nil {
				continue
			}
			key, ok := yamlKey(name, k, r.sink)
			if !ok {
				continue
			}
			v.entries = append(v.entries, entry{key: key, keyPos: yamlPos(name, k), val: r.value(n.Content[i+1], depth+1)})
		}
		return v
	}
	return value{pos: pos, kind: kindOther}
}

// yamlScalar types a scalar by its resolved tag. Numbers and bools keep their text as
// written, which is what a config var made from them holds.
func yamlScalar(pos Pos, n *yaml.Node) value {
	switch n.ShortTag() {
	case "!!str", "!!timestamp":
		// A date such as `ref: 2024-05-01` is the text the user wrote.
		return value{pos: pos, kind: kindString, str: n.Value}
	case "!!null":
		return value{pos: pos, kind: kindNull}
	case "!!bool":
		var b bool
		if err := n.Decode(&b); err != nil {
			return value{pos: pos, kind: kindOther}
		}
		return value{pos: pos, kind: kindBool, boolean: b, str: n.Value}
	case "!!int":
		var i int64
		if err := n.Decode(&i); err == nil {
			return value{pos: pos, kind: kindNumber, str: n.Value, num: i, numIsInt: true}
		}
		// Too large for int64: still a whole number, clamped so range checks catch it.
		f, _, err := big.ParseFloat(n.Value, 0, 256, big.ToNearestEven)
		if err != nil {
			return value{pos: pos, kind: kindOther}
		}
		v := numberValue(pos, f)
		v.str = n.Value
		return v
	case "!!float":
		var f float64
		if err := n.Decode(&f); err != nil {
			return value{pos: pos, kind: kindOther}
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return value{pos: pos, kind: kindNumber, str: n.Value}
		}
		v := numberValue(pos, big.NewFloat(f))
		v.str = n.Value
		return v
	}
	return value{pos: pos, kind: kindOther}
}
