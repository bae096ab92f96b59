package puppet

import (
	"regexp"
	"strings"
)

// token kinds.
const (
	tEOF = iota
	tVar
	tName
	tType
	tString
	tNumber
	tPunct
	tRegex
)

type token struct {
	kind int
	off  int
	end  int
	text string // name, punctuation or number text
	str  *strNode
	re   *regexp.Regexp
}

func isNameStart(c byte) bool { return c >= 'a' && c <= 'z' || c == '_' }
func isNameChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
}

// scanName returns the end of a (possibly ::-qualified) name at i.
func (p *parser) scanName(i int) int {
	for {
		for i < len(p.src) && isNameChar(p.src[i]) {
			i++
		}
		if strings.HasPrefix(p.src[i:], "::") && i+2 < len(p.src) && isNameChar(p.src[i+2]) {
			i += 2
			continue
		}
		return i
	}
}

func (p *parser) lex() token {
	i := p.pos
	for i < len(p.src) {
		c := p.src[i]
		if c == ' ' || c == '\t' || c == '\n' || c == '\r' {
			i++
		} else if c == '#' {
			for i < len(p.src) && p.src[i] != '\n' {
				i++
			}
		} else if strings.HasPrefix(p.src[i:], "/*") {
			j := strings.Index(p.src[i+2:], "*/")
			if j < 0 {
				p.fail(i, "unterminated comment")
				return p.tok
			}
			i += j + 4
		} else {
			break
		}
	}
	if i >= len(p.src) {
		return token{kind: tEOF, off: i, end: i}
	}
	c := p.src[i]
	switch {
	case c == '$':
		j := i + 1
		if strings.HasPrefix(p.src[j:], "::") {
			j += 2
		}
		if j >= len(p.src) || !isNameStart(p.src[j]) && !(p.src[j] >= '0' && p.src[j] <= '9') {
			p.fail(i, "expected a variable name after $")
			return p.tok
		}
		e := p.scanName(j)
		return token{kind: tVar, off: i, end: e, text: p.src[j:e]}
	case isNameStart(c):
		e := p.scanName(i)
		t := token{kind: tName, off: i, end: e, text: p.src[i:e]}
		if p.leadingVar {
			p.leadingVar = false
			k := e
			for k < len(p.src) && p.src[k] == ' ' {
				k++
			}
			if !keywords[t.text] && (k >= len(p.src) || p.src[k] != '(') {
				t.kind = tVar
			}
		}
		return t
	case c >= 'A' && c <= 'Z':
		e := p.scanName(i)
		return token{kind: tType, off: i, end: e, text: p.src[i:e]}
	case c >= '0' && c <= '9':
		e := i
		for e < len(p.src) && (isNameChar(p.src[e]) || p.src[e] == '.' && e+1 < len(p.src) && p.src[e+1] >= '0' && p.src[e+1] <= '9') {
			e++
		}
		return token{kind: tNumber, off: i, end: e, text: p.src[i:e]}
	case c == '\'':
		var b strings.Builder
		j := i + 1
		for ; j < len(p.src) && p.src[j] != '\''; j++ {
			if p.src[j] == '\\' && j+1 < len(p.src) && (p.src[j+1] == '\'' || p.src[j+1] == '\\') {
				j++
			}
			b.WriteByte(p.src[j])
		}
		if j >= len(p.src) {
			p.fail(i, "unterminated single-quoted string")
			return p.tok
		}
		return token{kind: tString, off: i, end: j + 1, str: &strNode{off: i, parts: []node{&litNode{off: i, v: b.String()}}}}
	case c == '"':
		s := p.lexString(i+1, i, true)
		return token{kind: tString, off: i, end: p.pos, str: s}
	case c == '/' && p.tok.kind == tPunct && (p.tok.text == "=~" || p.tok.text == "!~"):
		j := i + 1
		for ; j < len(p.src) && p.src[j] != '/' && p.src[j] != '\n'; j++ {
			if p.src[j] == '\\' {
				j++
			}
		}
		if j >= len(p.src) || p.src[j] != '/' {
			p.fail(i, "unterminated regular expression")
			return p.tok
		}
		re, err := regexp.Compile(p.src[i+1 : j])
		if err != nil {
			p.fail(i, "invalid regular expression: %v", err)
			return p.tok
		}
		return token{kind: tRegex, off: i, end: j + 1, re: re}
	}
	for _, op := range []string{"=>", "==", "!=", "=~", "!~", "<=", ">=", "<<", ">>", "->", "~>", "<|", "|>", "::"} {
		if strings.HasPrefix(p.src[i:], op) {
			return token{kind: tPunct, off: i, end: i + 2, text: op}
		}
	}
	if strings.ContainsRune("[]{}(),.|<>+-*/%!=;:?@&^~", rune(c)) {
		return token{kind: tPunct, off: i, end: i + 1, text: string(c)}
	}
	p.fail(i, "unexpected character %q", p.src[i:i+1])
	return p.tok
}

// lexString scans an interpolated string starting at i (after the opening
// quote when quoted) and leaves p.pos after it. With quoted false the
// string runs to the end of the source and backslashes are literal except
// before $.
func (p *parser) lexString(i, off int, quoted bool) *strNode {
	s := &strNode{off: off}
	var b strings.Builder
	flush := func(at int) {
		if b.Len() > 0 {
			s.parts = append(s.parts, &litNode{off: at, v: b.String()})
			b.Reset()
		}
	}
	for {
		if i >= len(p.src) {
			if quoted {
				p.fail(off, "unterminated double-quoted string")
				return s
			}
			break
		}
		c := p.src[i]
		if quoted && c == '"' {
			i++
			break
		}
		if c == '\\' && i+1 < len(p.src) {
			d := p.src[i+1]
			if !quoted {
				if d == '$' {
					b.WriteByte('$')
					i += 2
					continue
				}
				b.WriteByte(c)
				i++
				continue
			}
			i += 2
			switch d {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case 'r':
				b.WriteByte('\r')
			case 's':
				b.WriteByte(' ')
			case '\\', '"', '$', '\'':
				b.WriteByte(d)
			case '\n':
			default:
				b.WriteByte('\\')
				b.WriteByte(d)
			}
			continue
		}
		if c == '$' && strings.HasPrefix(p.src[i:], "${") {
			flush(i)
			if p.depth >= MaxDepth {
				p.fail(i, "expression nested too deeply")
				return s
			}
			sub := &parser{src: p.src, pos: i + 2, leadingVar: true, depth: p.depth + 1, functions: p.functions}
			sub.next()
			blk := sub.parseStatements(tPunct, "}")
			if sub.err != nil {
				p.err = sub.err
				p.fail(sub.err.Offset, "%s", sub.err.Msg)
				return s
			}
			s.parts = append(s.parts, blk)
			i = sub.tok.end
			continue
		}
		if c == '$' && i+1 < len(p.src) && isNameStart(p.src[i+1]) {
			flush(i)
			e := p.scanName(i + 1)
			s.parts = append(s.parts, &varNode{off: i, name: p.src[i+1 : e]})
			i = e
			continue
		}
		b.WriteByte(c)
		i++
	}
	flush(i)
	p.pos = i
	return s
}
