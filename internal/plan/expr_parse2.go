package plan

import (
	"strconv"
	"strings"
)

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
		if !functions[t.text] && !methods[t.text] {
			if strings.Contains(t.text, "::") || p.is("(") {
				p.fail(t.off, "unsupported construct: unknown function %q", t.text)
			} else {
				p.fail(t.off, "unsupported construct: bare word %q (quote strings, prefix variables with $)", t.text)
			}
			return &litNode{}
		}
		c := &callNode{off: t.off, name: t.text}
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
	if p.depth > maxDepth {
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
