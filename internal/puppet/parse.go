package puppet

import (
	"fmt"
	"strconv"
	"strings"
)

// MaxDepth bounds the nesting of expressions, so that hostile input cannot
// exhaust the stack.
const MaxDepth = 100

type parser struct {
	src   string
	pos   int
	tok   token
	prev  token
	depth int
	err   *SyntaxError
	// leadingVar turns a leading bare word into a variable, as in "${name}".
	leadingVar bool
	// functions are the host's function names.
	functions map[string]bool
}

// ParseExpression parses src, a piece of code (one or more statements;
// the value is the last one's) that starts at line of file, into an Expr.
// functions names the host functions the code may call (see Host) besides
// the built-in sprintf and the function form of every method. Unsupported
// constructs, unknown functions among them, are reported as *SyntaxError.
func ParseExpression(file string, line int, src string, functions map[string]bool) (*Expr, error) {
	p := &parser{src: src, functions: functions}
	p.next()
	b := p.parseStatements(tEOF, "")
	if p.err != nil {
		return nil, p.err
	}
	return &Expr{File: file, Line: line, Src: src, root: b}, nil
}

// ParseInterpolation parses the already-unescaped text of a YAML
// double-quoted scalar as an interpolated string: $var and ${expr} are
// code, a backslash is literal except before $. functions is as for
// ParseExpression.
func ParseInterpolation(file string, line int, src string, functions map[string]bool) (*Expr, error) {
	p := &parser{src: src, functions: functions}
	n := p.lexString(0, 0, false)
	if p.err != nil {
		return nil, p.err
	}
	return &Expr{File: file, Line: line, Src: src, root: n}, nil
}

func (p *parser) fail(off int, format string, args ...any) {
	if p.err == nil {
		p.err = &SyntaxError{Offset: off, Msg: fmt.Sprintf(format, args...)}
	}
	p.tok = token{kind: tEOF, off: len(p.src), end: len(p.src)}
	p.pos = len(p.src)
}

func (p *parser) next() {
	p.prev = p.tok
	if p.err != nil {
		p.tok = token{kind: tEOF, off: len(p.src)}
		return
	}
	p.tok = p.lex()
	p.pos = p.tok.end
}

func (p *parser) is(text string) bool { return p.tok.kind == tPunct && p.tok.text == text }
func (p *parser) isName(text string) bool {
	return p.tok.kind == tName && p.tok.text == text
}

func (p *parser) expect(text string) {
	if !p.is(text) {
		p.fail(p.tok.off, "expected %q, found %s", text, p.describe())
		return
	}
	p.next()
}

func (p *parser) describe() string {
	switch p.tok.kind {
	case tEOF:
		return "end of expression"
	case tString:
		return "a string"
	}
	return fmt.Sprintf("%q", p.src[p.tok.off:p.tok.end])
}

// parseStatements parses statements until the closing token (kind, text),
// which is left as the current token.
func (p *parser) parseStatements(kind int, text string) *blockNode {
	b := &blockNode{off: p.tok.off}
	for p.err == nil {
		if p.tok.kind == kind && (kind == tEOF || p.tok.text == text) {
			return b
		}
		if p.tok.kind == tEOF {
			p.fail(p.tok.off, "expected %q before the end of the expression", text)
			return b
		}
		if p.is(";") {
			p.next()
			continue
		}
		b.stmts = append(b.stmts, p.parseStatement())
	}
	return b
}

func (p *parser) parseStatement() node {
	if p.tok.kind == tVar {
		// Lookahead for assignment without consuming.
		save, savePrev, savePos := p.tok, p.prev, p.pos
		p.next()
		if p.is("=") {
			p.next()
			return &assignNode{off: save.off, name: save.text, x: p.parseExpr()}
		}
		p.tok, p.prev, p.pos = save, savePrev, savePos
	}
	return p.parseExpr()
}

func (p *parser) parseExpr() node {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > MaxDepth {
		p.fail(p.tok.off, "expression nested too deeply")
		return &litNode{}
	}
	return p.parseOr()
}

// binaryLevel parses one precedence level of left-associative operators:
// next (op next)*, for the operators in ops.
func (p *parser) binaryLevel(next func() node, ops ...string) node {
	l := next()
	for p.isOneOf(ops) {
		op, off := p.tok.text, p.tok.off
		p.next()
		l = &binNode{off: off, op: op, l: l, r: next()}
	}
	return l
}

// isOneOf reports whether the current token is one of the operators ops,
// punctuation or a keyword such as "and".
func (p *parser) isOneOf(ops []string) bool {
	for _, op := range ops {
		if p.is(op) || p.isName(op) {
			return true
		}
	}
	return false
}

func (p *parser) parseOr() node  { return p.binaryLevel(p.parseAnd, "or") }
func (p *parser) parseAnd() node { return p.binaryLevel(p.parseCompare, "and") }

var compareOps = map[string]bool{"==": true, "!=": true, "<": true, ">": true, "<=": true, ">=": true, "=~": true, "!~": true}

func (p *parser) parseCompare() node {
	l := p.parseAdd()
	for (p.tok.kind == tPunct && compareOps[p.tok.text]) || p.isName("in") {
		op, off := p.tok.text, p.tok.off
		p.next()
		var r node
		if (op == "=~" || op == "!~") && p.tok.kind == tRegex {
			r = &regexNode{off: p.tok.off, re: p.tok.re}
			p.next()
		} else {
			r = p.parseAdd()
		}
		l = &binNode{off: off, op: op, l: l, r: r}
	}
	return l
}

func (p *parser) parseAdd() node { return p.binaryLevel(p.parseMul, "+", "-") }
func (p *parser) parseMul() node { return p.binaryLevel(p.parseUnary, "*", "/", "%") }

func (p *parser) parseUnary() node {
	if p.is("!") || p.is("-") || p.isName("not") {
		op, off := p.tok.text, p.tok.off
		if op == "not" {
			op = "!"
		}
		p.next()
		p.depth++
		defer func() { p.depth-- }()
		if p.depth > MaxDepth {
			p.fail(off, "expression nested too deeply")
			return &litNode{}
		}
		return &unNode{off: off, op: op, x: p.parseUnary()}
	}
	return p.parsePostfix(p.parsePrimary())
}

func (p *parser) parsePrimary() node {
	t := p.tok
	switch t.kind {
	case tVar:
		p.next()
		return &varNode{off: t.off, name: t.text}
	case tString:
		p.next()
		return t.str
	case tNumber:
		p.next()
		return &litNode{off: t.off, v: parseNumber(p, t)}
	case tType:
		p.fail(t.off, "unsupported construct: type reference %q (data types are not part of muster's expression subset)", t.text)
		return &litNode{}
	case tRegex:
		p.fail(t.off, "unsupported construct: a regular expression is only allowed after =~ or !~")
		return &litNode{}
	case tName:
		switch t.text {
		case "true", "false":
			p.next()
			return &litNode{off: t.off, v: t.text == "true"}
		case "undef":
			p.next()
			return &litNode{off: t.off, v: nil}
		case "if", "unless":
			return p.parseIf()
		}
		if why, bad := unsupportedKeywords[t.text]; bad {
			p.fail(t.off, "unsupported construct: %s (%q)", why, t.text)
			return &litNode{}
		}
		if keywords[t.text] {
			p.fail(t.off, "unexpected keyword %q", t.text)
			return &litNode{}
		}
		p.next()
		host := p.functions[t.text] && !builtinFunctions[t.text]
		if !host && !builtinFunctions[t.text] && !methods[t.text] {
			if strings.Contains(t.text, "::") || p.is("(") {
				p.fail(t.off, "unsupported construct: unknown function %q", t.text)
			} else {
				p.fail(t.off, "unsupported construct: bare word %q (quote strings, prefix variables with $)", t.text)
			}
			return &litNode{}
		}
		c := &callNode{off: t.off, name: t.text, host: host}
		if !p.is("(") {
			p.fail(p.tok.off, "expected \"(\" after function %s", t.text)
			return c
		}
		c.args = p.parseArgs()
		c.lambda = p.parseLambda()
		return c
	case tPunct:
		switch t.text {
		case "(":
			p.next()
			x := p.parseExpr()
			p.expect(")")
			return x
		case "[":
			p.next()
			a := &arrayNode{off: t.off}
			for !p.is("]") && p.err == nil {
				a.elems = append(a.elems, p.parseExpr())
				if !p.is(",") {
					break
				}
				p.next()
			}
			p.expect("]")
			return a
		case "{":
			p.next()
			h := &hashNode{off: t.off}
			for !p.is("}") && p.err == nil {
				if k := p.tok; k.kind == tName && !keywords[k.text] && strings.HasPrefix(strings.TrimLeft(p.src[k.end:], " \t\n"), "=>") {
					// A bare word key is a string, as in Puppet.
					p.next()
					h.keys = append(h.keys, &litNode{off: k.off, v: k.text})
				} else {
					h.keys = append(h.keys, p.parseExpr())
				}
				p.expect("=>")
				h.vals = append(h.vals, p.parseExpr())
				if !p.is(",") {
					break
				}
				p.next()
			}
			p.expect("}")
			return h
		case "|", "->", "~>", "<|", "|>", "@", "<<", "?":
			p.fail(t.off, "unsupported construct: %q", t.text)
			return &litNode{}
		}
	}
	p.fail(t.off, "unexpected %s", p.describe())
	return &litNode{}
}

func parseNumber(p *parser, t token) any {
	s := t.text
	if strings.ContainsAny(s, ".eE") && !strings.HasPrefix(s, "0x") {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			p.fail(t.off, "invalid number %q", s)
		}
		return f
	}
	n, err := strconv.ParseInt(s, 0, 64)
	if err != nil {
		p.fail(t.off, "invalid number %q", s)
	}
	return n
}

func (p *parser) parseArgs() []node {
	p.expect("(")
	var args []node
	for !p.is(")") && p.err == nil {
		args = append(args, p.parseExpr())
		if !p.is(",") {
			break
		}
		p.next()
	}
	p.expect(")")
	return args
}

// parseLambda parses an optional `|$a, $b| { ... }`.
func (p *parser) parseLambda() *lambdaNode {
	if !p.is("|") {
		return nil
	}
	l := &lambdaNode{off: p.tok.off}
	p.next()
	for !p.is("|") && p.err == nil {
		if p.tok.kind != tVar {
			p.fail(p.tok.off, "expected a lambda parameter like $x, found %s", p.describe())
			return l
		}
		l.params = append(l.params, p.tok.text)
		p.next()
		if !p.is(",") {
			break
		}
		p.next()
	}
	p.expect("|")
	l.body = p.parseBlock()
	return l
}

func (p *parser) parseBlock() *blockNode {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > MaxDepth {
		p.fail(p.tok.off, "expression nested too deeply")
		return &blockNode{}
	}
	p.expect("{")
	b := p.parseStatements(tPunct, "}")
	p.expect("}")
	return b
}

func (p *parser) parseIf() node {
	n := &ifNode{off: p.tok.off, neg: p.tok.text == "unless"}
	p.next()
	n.cond = p.parseExpr()
	n.then = p.parseBlock()
	switch {
	case p.isName("elsif") && !n.neg:
		p.tok.text = "if"
		n.els = p.parseIf()
	case p.isName("else"):
		p.next()
		n.els = p.parseBlock()
	}
	return n
}

func (p *parser) parsePostfix(x node) node {
	for p.err == nil {
		switch {
		case p.is("["):
			off := p.tok.off
			p.next()
			ix := &indexNode{off: off, x: x}
			for !p.is("]") && p.err == nil {
				ix.idx = append(ix.idx, p.parseExpr())
				if !p.is(",") {
					break
				}
				p.next()
			}
			p.expect("]")
			if len(ix.idx) == 0 || len(ix.idx) > 2 {
				p.fail(off, "an index takes one or two values")
			}
			x = ix
		case p.is("."):
			p.next()
			if p.tok.kind != tName {
				p.fail(p.tok.off, "expected a method name after \".\", found %s", p.describe())
				return x
			}
			t := p.tok
			if !methods[t.text] {
				p.fail(t.off, "unsupported construct: unknown method %q", t.text)
				return x
			}
			p.next()
			c := &callNode{off: t.off, recv: x, name: t.text}
			if p.is("(") && p.prev.end == p.tok.off {
				c.args = p.parseArgs()
			}
			c.lambda = p.parseLambda()
			x = c
		default:
			return x
		}
	}
	return x
}
