package spec

import (
	"fmt"
	"math"
	"math/big"
	"slices"
	"strconv"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// parseHCL reads an HCL file into the common tree. Parse errors become diagnostics at
// HCL's own ranges; expressions are evaluated without variables or functions, since a
// spec is plain data.
func parseHCL(name string, src []byte, sink *diagSink) (root *body) {
	defer func() {
		// hclsyntax is fuzzed upstream; this guard keeps a parser bug from taking the
		// daemon down with it, as bad input must never panic.
		if r := recover(); r != nil {
			sink.add(Pos{File: name, Line: 1, Col: 1}, "cannot parse: internal parser error: %v", r)
			root = nil
		}
	}()
	file, diags := hclsyntax.ParseConfig(src, name, hcl.InitialPos)
	if diags.HasErrors() {
		addHCLDiags(name, diags, sink)
		return nil
	}
	syn, ok := file.Body.(*hclsyntax.Body)
	if !ok {
		sink.add(Pos{File: name, Line: 1, Col: 1}, "cannot parse: not native HCL syntax")
		return nil
	}
	return hclBody(name, syn, Pos{File: name, Line: 1, Col: 1}, sink)
}

func addHCLDiags(name string, diags hcl.Diagnostics, sink *diagSink) {
	for _, d := range diags {
		if d.Severity != hcl.DiagError {
			continue
		}
		pos := Pos{File: name, Line: 1, Col: 1}
		if d.Subject != nil {
			pos = hclPos(name, d.Subject.Start)
		}
		msg := d.Summary
		if d.Detail != "" {
			msg += ": " + d.Detail
		}
		sink.add(pos, "%s", msg)
	}
}

func hclPos(name string, p hcl.Pos) Pos {
	return Pos{File: name, Line: max(p.Line, 1), Col: max(p.Column, 1)}
}

func hclBody(name string, syn *hclsyntax.Body, start Pos, sink *diagSink) *body {
	b := &body{pos: start}
	attrs := make([]*hclsyntax.Attribute, 0, len(syn.Attributes))
	for _, a := range syn.Attributes {
		attrs = append(attrs, a)
	}
	// Attributes come in a map; the file's order keeps diagnostics and merges stable.
	slices.SortFunc(attrs, func(x, y *hclsyntax.Attribute) int {
		return x.SrcRange.Start.Byte - y.SrcRange.Start.Byte
	})
	for _, a := range attrs {
		b.attrs = append(b.attrs, attr{
			name:    a.Name,
			namePos: hclPos(name, a.NameRange.Start),
			val:     hclValue(name, a.Expr, sink),
		})
	}
	for _, blk := range syn.Blocks {
		nb := block{typ: blk.Type, typPos: hclPos(name, blk.TypeRange.Start)}
		switch len(blk.Labels) {
		case 0:
		case 1:
			nb.labelled = true
			nb.label = blk.Labels[0]
			nb.labelPos = hclPos(name, blk.LabelRanges[0].Start)
		default:
			sink.add(hclPos(name, blk.LabelRanges[1].Start), "block %q takes at most one label, got %d", blk.Type, len(blk.Labels))
			continue
		}
		nb.body = hclBody(name, blk.Body, nb.typPos, sink)
		b.blocks = append(b.blocks, nb)
	}
	return b
}

// hclValue evaluates expr. List and object constructors are walked element by element
// so that each element keeps its own position (a bad domain or config key is reported
// where it is written, not at the start of the list).
func hclValue(name string, expr hclsyntax.Expression, sink *diagSink) value {
	pos := hclPos(name, expr.Range().Start)
	switch e := expr.(type) {
	case *hclsyntax.TupleConsExpr:
		v := value{pos: pos, kind: kindList}
		for _, el := range e.Exprs {
			v.list = append(v.list, hclValue(name, el, sink))
		}
		return v
	case *hclsyntax.ObjectConsExpr:
		v := value{pos: pos, kind: kindMap}
		for _, item := range e.Items {
			kpos := hclPos(name, item.KeyExpr.Range().Start)
			kv, diags := item.KeyExpr.Value(nil)
			if diags.HasErrors() {
				addHCLDiags(name, diags, sink)
				continue
			}
			if kv.IsNull() || !kv.IsKnown() || kv.Type() != cty.String {
				sink.add(kpos, "map key must be a string")
				continue
			}
			v.entries = append(v.entries, entry{key: kv.AsString(), keyPos: kpos, val: hclValue(name, item.ValueExpr, sink)})
		}
		return v
	}
	cv, diags := expr.Value(nil)
	if diags.HasErrors() {
		addHCLDiags(name, diags, sink)
		return value{pos: pos, kind: kindOther}
	}
	return ctyValue(pos, cv)
}

// ctyValue converts an evaluated value (from a template, a parenthesised expression,
// arithmetic on literals…) to the tree; its parts all share pos.
func ctyValue(pos Pos, cv cty.Value) value {
	if cv.IsMarked() {
		cv, _ = cv.Unmark()
	}
	if cv.IsNull() {
		return value{pos: pos, kind: kindNull}
	}
	if !cv.IsKnown() {
		return value{pos: pos, kind: kindOther}
	}
	ty := cv.Type()
	switch {
	case ty == cty.String:
		return value{pos: pos, kind: kindString, str: cv.AsString()}
	case ty == cty.Bool:
		b := cv.True()
		return value{pos: pos, kind: kindBool, boolean: b, str: fmt.Sprint(b)}
	case ty == cty.Number:
		return numberValue(pos, cv.AsBigFloat())
	case ty.IsTupleType() || ty.IsListType():
		v := value{pos: pos, kind: kindList}
		for it := cv.ElementIterator(); it.Next(); {
			_, el := it.Element()
			v.list = append(v.list, ctyValue(pos, el))
		}
		return v
	case ty.IsObjectType() || ty.IsMapType():
		v := value{pos: pos, kind: kindMap}
		for it := cv.ElementIterator(); it.Next(); {
			k, el := it.Element()
			v.entries = append(v.entries, entry{key: k.AsString(), keyPos: pos, val: ctyValue(pos, el)})
		}
		return v
	}
	return value{pos: pos, kind: kindOther}
}

// numberValue classifies a number: whole numbers that overflow int64 are clamped, so
// range checks reject them as too large rather than as fractions.
func numberValue(pos Pos, f *big.Float) value {
	v := value{pos: pos, kind: kindNumber}
	i, acc := f.Int64()
	if acc == big.Exact {
		v.str = strconv.FormatInt(i, 10)
	} else {
		// 'g', never 'f': 1e100000000 would print a hundred million digits.
		v.str = f.Text('g', 12)
	}
	if f.IsInf() || !f.IsInt() {
		return v
	}
	v.numIsInt = true
	switch {
	case acc == big.Exact:
		v.num = i
	case f.Sign() > 0:
		v.num = math.MaxInt64
	default:
		v.num = math.MinInt64
	}
	return v
}
