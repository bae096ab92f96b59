package puppet

import (
	"fmt"
	"regexp"
	"strings"
)

// node is one element of a parsed expression. off is its byte offset in
// the source, used to report lines.
type node interface{ offset() int }

type (
	litNode struct {
		off int
		v   any
	}
	varNode struct {
		off  int
		name string
	}
	strNode struct {
		off   int
		parts []node
	}
	arrayNode struct {
		off   int
		elems []node
	}
	hashNode struct {
		off        int
		keys, vals []node
	}
	indexNode struct {
		off int
		x   node
		idx []node
	}
	// callNode is a function call (recv nil) or a method call. host
	// marks a call of a host function.
	callNode struct {
		off    int
		recv   node
		name   string
		host   bool
		args   []node
		lambda *lambdaNode
	}
	lambdaNode struct {
		off    int
		params []string
		body   *blockNode
	}
	blockNode struct {
		off   int
		stmts []node
	}
	assignNode struct {
		off  int
		name string
		x    node
	}
	binNode struct {
		off  int
		op   string
		l, r node
	}
	unNode struct {
		off int
		op  string
		x   node
	}
	ifNode struct {
		off  int
		neg  bool // unless
		cond node
		then *blockNode
		els  node // *blockNode, *ifNode or nil
	}
	regexNode struct {
		off int
		re  *regexp.Regexp
	}
)

func (n *litNode) offset() int    { return n.off }
func (n *varNode) offset() int    { return n.off }
func (n *strNode) offset() int    { return n.off }
func (n *arrayNode) offset() int  { return n.off }
func (n *hashNode) offset() int   { return n.off }
func (n *indexNode) offset() int  { return n.off }
func (n *callNode) offset() int   { return n.off }
func (n *lambdaNode) offset() int { return n.off }
func (n *blockNode) offset() int  { return n.off }
func (n *assignNode) offset() int { return n.off }
func (n *binNode) offset() int    { return n.off }
func (n *unNode) offset() int     { return n.off }
func (n *ifNode) offset() int     { return n.off }
func (n *regexNode) offset() int  { return n.off }

// Expr is a parsed piece of code with where it came from.
type Expr struct {
	File string
	// Line is the line of Src's first byte in File.
	Line int
	Src  string
	root node
}

// LineOf returns the file line of byte offset off in e.Src.
func (e *Expr) LineOf(off int) int {
	if off > len(e.Src) {
		off = len(e.Src)
	}
	if off < 0 {
		off = 0
	}
	return e.Line + strings.Count(e.Src[:off], "\n")
}

// SyntaxError is an expression that cannot be parsed, or that uses a
// construct outside muster's supported subset.
type SyntaxError struct {
	Offset int
	Msg    string
}

// Error renders "offset N: message".
func (e *SyntaxError) Error() string { return fmt.Sprintf("offset %d: %s", e.Offset, e.Msg) }

// methods are the method names the expression language knows. Each can
// also be called as a function with the receiver as first argument.
var methods = map[string]bool{
	"map": true, "filter": true, "each": true, "reduce": true, "join": true,
	"length": true, "size": true, "count": true, "keys": true, "values": true,
	"empty": true, "upcase": true, "downcase": true, "split": true, "first": true,
	"last": true, "sort": true, "unique": true, "flatten": true, "include": true,
	"strip": true, "any": true, "all": true, "filter_set": true, "find": true,
	"to_data": true,
	// Result, ResultSet, Target and Error members.
	"ok": true, "ok_set": true, "error_set": true, "targets": true, "names": true,
	"value": true, "target": true, "error": true, "message": true, "status": true,
	"action": true, "name": true, "uri": true, "host": true, "vars": true,
	"facts": true, "msg": true, "kind": true, "details": true, "issue_code": true,
}

// builtinFunctions are the functions callable without a receiver besides
// methods and the host's functions.
var builtinFunctions = map[string]bool{"sprintf": true}

var keywords = map[string]bool{
	"if": true, "unless": true, "else": true, "elsif": true, "and": true, "or": true,
	"not": true, "in": true, "true": true, "false": true, "undef": true,
}

// unsupportedKeywords are Puppet keywords outside the subset, with a
// reason.
var unsupportedKeywords = map[string]string{
	"case": "case expressions", "class": "classes", "define": "defined types",
	"node": "node definitions", "function": "function definitions",
	"plan": "plan definitions", "apply": "apply blocks", "type": "type aliases",
	"inherits": "inheritance", "private": "private declarations",
	"attr": "attributes", "unit": "units", "application": "applications",
	"consumes": "capabilities", "produces": "capabilities", "site": "site blocks",
}
