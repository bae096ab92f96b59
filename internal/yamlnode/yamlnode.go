// Package yamlnode holds what muster's YAML file parsers (the inventory,
// pull.yaml) share: walking gopkg.in/yaml.v3 nodes, and errors located at
// a file and line that travel as muster's invalid-input kind with the file
// and line in their details.
package yamlnode

import (
	"errors"
	"fmt"

	"gopkg.in/yaml.v3"

	"github.com/muster-run/muster"
)

// Error is a problem located in a file, at a line when known.
type Error struct {
	File string
	Line int // 0 when unknown
	Msg  string
}

// Error formats the error as "file:line: message".
func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// Invalid wraps err as a muster invalid-input error, keeping it for
// errors.As; when err is (or wraps) an *Error, its file and line go into
// the details.
func Invalid(err error) error {
	me := &muster.Error{Kind: muster.KindInvalid, Msg: err.Error(), Details: map[string]any{}, Err: err}
	var ye *Error
	if errors.As(err, &ye) {
		me.Details["file"] = ye.File
		if ye.Line > 0 {
			me.Details["line"] = ye.Line
		}
	}
	return me
}

// Deref follows aliases (at most 100, so a cycle cannot hang).
func Deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	return n
}

// IsNull reports whether n is absent, empty or an explicit null.
func IsNull(n *yaml.Node) bool {
	return n == nil || n.Kind == 0 || n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// LineOf is n's line, 0 for nil.
func LineOf(n *yaml.Node) int {
	if n == nil {
		return 0
	}
	return n.Line
}

// KindName names what n is, for messages ("a mapping", "a string", ...).
func KindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!str":
			return "a string"
		case "!!int":
			return "an integer"
		case "!!bool":
			return "a boolean"
		case "!!float":
			return "a number"
		case "!!null":
			return "null"
		}
		return "a scalar"
	}
	return "an alias"
}
