package spec

// The HCL and YAML readers both produce this small syntax tree, and one decoder
// (decode.go) turns it into specs. That is how the two formats stay the same schema:
// only the mapping from text to tree differs, never the rules.

// body is the inside of a file or of a block: attributes and nested blocks, in the
// order they appear.
type body struct {
	pos    Pos // where the body starts (the block's keyword, or 1:1 of a file)
	attrs  []attr
	blocks []block
}

// attr is `name = value` (HCL) or `name: value` (YAML).
type attr struct {
	name    string
	namePos Pos
	val     value
}

// block is `typ "label" { … }` (HCL) or `typ: { label: { … } }` (YAML).
type block struct {
	typ      string
	typPos   Pos
	label    string
	labelPos Pos
	labelled bool
	body     *body
}

type valueKind int

const (
	kindNull valueKind = iota
	kindString
	kindNumber
	kindBool
	kindList
	kindMap
	kindOther // anything the schema never accepts (HCL sets, YAML tags we do not read)
)

func (k valueKind) String() string {
	switch k {
	case kindNull:
		return "null"
	case kindString:
		return "string"
	case kindNumber:
		return "number"
	case kindBool:
		return "bool"
	case kindList:
		return "list"
	case kindMap:
		return "map"
	}
	return "unsupported value"
}

// value is an attribute's value with the position of each of its parts.
type value struct {
	pos  Pos
	kind valueKind
	// str holds a string; for numbers and bools their text ("4", "true"), which is
	// what a config var made from them holds.
	str string
	// num is a number's value; numIsInt says whether it is a whole number that fits.
	num      int64
	numIsInt bool
	boolean  bool
	list     []value
	entries  []entry
}

// entry is one key of a map value.
type entry struct {
	key    string
	keyPos Pos
	val    value
}
