package spec

// values.go holds the decoder's readers of single values and shapes: a body's
// accepted attributes and blocks, strings, numbers, booleans, lists, each checked and
// keeping where it was written.

import (
	"fmt"
	"slices"
	"strings"
)

// decoder checks one body against what it accepts.
type decoder struct{ sink *diagSink }

// shape names what a body accepts, for the unknown-attribute and unknown-block errors.
type shape struct {
	what   string   // "app", "process", …
	attrs  []string // sorted
	blocks []string // sorted
}

// checkShape reports attributes and blocks the body does not accept, and duplicates.
// It returns the attributes to read (first of each name) and the accepted blocks.
func (d *decoder) checkShape(b *body, s shape) (map[string]attr, []block) {
	attrs := make(map[string]attr, len(b.attrs))
	for _, a := range b.attrs {
		switch {
		case slices.Contains(s.attrs, a.name):
			if first, dup := attrs[a.name]; dup {
				d.sink.add(a.namePos, "duplicate attribute %q (first set at %d:%d)", a.name, first.namePos.Line, first.namePos.Col)
				continue
			}
			attrs[a.name] = a
		case slices.Contains(s.blocks, a.name):
			d.sink.add(a.namePos, "%q is a block, not an attribute: write %s { … }", a.name, blockExample(a.name))
		default:
			d.sink.add(a.namePos, "unknown attribute %q in %s (%s)", a.name, s.what, accepts(s))
		}
	}
	var blocks []block
	seen := map[string]Pos{}
	for _, blk := range b.blocks {
		switch {
		case slices.Contains(s.blocks, blk.typ):
			key := blk.typ + "\x00" + blk.label
			if first, dup := seen[key]; dup {
				what := blk.typ
				if blk.labelled {
					what = fmt.Sprintf("%s %q", blk.typ, blk.label)
				}
				d.sink.add(blockPos(blk), "duplicate %s (first at %d:%d)", what, first.Line, first.Col)
				continue
			}
			seen[key] = blockPos(blk)
			blocks = append(blocks, blk)
		case slices.Contains(s.attrs, blk.typ):
			d.sink.add(blk.typPos, "%q is an attribute, not a block: write %s = …", blk.typ, blk.typ)
		default:
			d.sink.add(blk.typPos, "unknown block %q in %s (%s)", blk.typ, s.what, accepts(s))
		}
	}
	return attrs, blocks
}

func blockExample(typ string) string {
	if typ == "source" {
		return typ
	}
	return typ + ` "NAME"`
}

func accepts(s shape) string {
	var parts []string
	if len(s.attrs) > 0 {
		parts = append(parts, "attributes: "+strings.Join(s.attrs, ", "))
	}
	if len(s.blocks) > 0 {
		parts = append(parts, "blocks: "+strings.Join(s.blocks, ", "))
	}
	if len(parts) == 0 {
		return "nothing"
	}
	return strings.Join(parts, "; ")
}

// blockPos is where a block is named: its label when it has one (in YAML the key that
// holds the label), else its keyword.
func blockPos(b block) Pos {
	if b.labelled {
		return b.labelPos
	}
	return b.typPos
}

// Typed attribute readers. A null value means "not set".

func (d *decoder) str(a attr, ok bool) strField {
	if !ok || a.val.kind == kindNull {
		return strField{}
	}
	if a.val.kind != kindString {
		d.sink.add(a.val.pos, "%s: want a string, got %s", a.name, a.val.kind)
		return strField{}
	}
	return strField{set: true, v: a.val.str, pos: a.val.pos}
}

func (d *decoder) nonEmptyStr(a attr, ok bool) strField {
	f := d.str(a, ok)
	if f.set && strings.TrimSpace(f.v) == "" {
		d.sink.add(f.pos, "%s: must not be empty", a.name)
		return strField{}
	}
	return f
}

func (d *decoder) boolean(a attr, ok bool) boolField {
	if !ok || a.val.kind == kindNull {
		return boolField{}
	}
	if a.val.kind != kindBool {
		d.sink.add(a.val.pos, "%s: want a bool, got %s", a.name, a.val.kind)
		return boolField{}
	}
	return boolField{set: true, v: a.val.boolean, pos: a.val.pos}
}

// wholeNumber reads an integer in [lo, hi].
func (d *decoder) wholeNumber(a attr, ok bool, lo, hi int64) intField {
	if !ok || a.val.kind == kindNull {
		return intField{}
	}
	v := a.val
	switch {
	case v.kind != kindNumber:
		d.sink.add(v.pos, "%s: want a whole number, got %s", a.name, v.kind)
	case !v.numIsInt:
		d.sink.add(v.pos, "%s: want a whole number, got %s", a.name, v.str)
	case v.num < 0 && lo >= 0:
		d.sink.add(v.pos, "%s: must not be negative, got %s", a.name, v.str)
	case v.num < lo:
		d.sink.add(v.pos, "%s: must be at least %d, got %s", a.name, lo, v.str)
	case v.num > hi:
		d.sink.add(v.pos, "%s: must be at most %d, got %s", a.name, hi, v.str)
	default:
		return intField{set: true, v: int(v.num), pos: v.pos}
	}
	return intField{}
}

// strList reads a list of non-empty strings, each keeping its position.
func (d *decoder) strList(a attr, ok bool) listField {
	if !ok || a.val.kind == kindNull {
		return listField{}
	}
	if a.val.kind != kindList {
		d.sink.add(a.val.pos, "%s: want a list of strings, got %s", a.name, a.val.kind)
		return listField{}
	}
	f := listField{set: true, pos: a.val.pos}
	for _, el := range a.val.list {
		switch {
		case el.kind != kindString:
			d.sink.add(el.pos, "%s: want a list of strings, got an element of type %s", a.name, el.kind)
		case strings.TrimSpace(el.str) == "":
			d.sink.add(el.pos, "%s: elements must not be empty", a.name)
		default:
			f.items = append(f.items, strField{set: true, v: el.str, pos: el.pos})
		}
	}
	return f
}
