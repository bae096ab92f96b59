package puppet

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
)

// ParseError is a syntax or semantic error in a type expression.
type ParseError struct {
	Offset int    // byte offset in the expression
	Msg    string // for example `unknown type "Integr"`
	Hint   string // for example `did you mean "Integer"?`
}

// Error renders the message with its offset and hint.
func (e *ParseError) Error() string {
	s := fmt.Sprintf("%s at offset %d", e.Msg, e.Offset)
	if e.Hint != "" {
		s += " (" + e.Hint + ")"
	}
	return s
}

// maxTypeDepth bounds the nesting of type expressions.
const maxTypeDepth = 50

// ParseType parses a Puppet type expression such as
// `Optional[Variant[Integer[1, 65535], Enum['auto']]]`. Errors are
// *ParseError values naming the offset.
func ParseType(s string) (Type, error) {
	p := &typeParser{s: s}
	t, err := p.parseType()
	if err != nil {
		return nil, err
	}
	p.skipWS()
	if p.pos < len(p.s) {
		return nil, p.errf(p.pos, "unexpected %s after the type", p.describe())
	}
	return t, nil
}

type typeParser struct {
	s     string
	pos   int
	depth int
}

func (p *typeParser) errf(off int, format string, args ...any) error {
	return &ParseError{Offset: off, Msg: fmt.Sprintf(format, args...)}
}

func (p *typeParser) skipWS() {
	for p.pos < len(p.s) && strings.IndexByte(" \t\r\n", p.s[p.pos]) >= 0 {
		p.pos++
	}
}

// peek returns the next non-blank byte, or 0 at the end.
func (p *typeParser) peek() byte {
	p.skipWS()
	if p.pos < len(p.s) {
		return p.s[p.pos]
	}
	return 0
}

func (p *typeParser) describe() string {
	if p.pos >= len(p.s) {
		return "end of input"
	}
	r := []rune(p.s[p.pos:])
	return strconv.Quote(string(r[0]))
}

func (p *typeParser) expect(c byte) error {
	if p.peek() != c {
		return p.errf(p.pos, "expected %q, found %s", c, p.describe())
	}
	p.pos++
	return nil
}

func isWordByte(c byte, first bool) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || !first && (c >= '0' && c <= '9' || c == '-')
}

// word reads a name such as Integer, Stdlib::Port or a bare Enum value.
func (p *typeParser) word() string {
	p.skipWS()
	start := p.pos
	for p.pos < len(p.s) {
		c := p.s[p.pos]
		switch {
		case isWordByte(c, p.pos == start):
			p.pos++
		case c == ':' && strings.HasPrefix(p.s[p.pos:], "::") && p.pos > start:
			p.pos += 2
		default:
			return p.s[start:p.pos]
		}
	}
	return p.s[start:p.pos]
}

// args parses "[ a, b, ... ]" with each item read by item; a trailing
// comma is allowed. It returns false when there is no "[".
func (p *typeParser) args(item func(i int) error) (bool, error) {
	if p.peek() != '[' {
		return false, nil
	}
	p.pos++
	for i := 0; ; i++ {
		if p.peek() == ']' && i > 0 {
			p.pos++
			return true, nil
		}
		if err := item(i); err != nil {
			return true, err
		}
		switch p.peek() {
		case ',':
			p.pos++
		case ']':
			p.pos++
			return true, nil
		default:
			return true, p.errf(p.pos, "expected \",\" or \"]\", found %s", p.describe())
		}
	}
}

// number reads an integer or float literal, or "default" (ok false).
func (p *typeParser) number() (val string, isDefault bool, off int, err error) {
	p.skipWS()
	off = p.pos
	if strings.HasPrefix(p.s[p.pos:], "default") {
		p.pos += len("default")
		return "", true, off, nil
	}
	i := p.pos
	if i < len(p.s) && (p.s[i] == '-' || p.s[i] == '+') {
		i++
	}
	for i < len(p.s) && (p.s[i] >= '0' && p.s[i] <= '9' || strings.IndexByte(".eE", p.s[i]) >= 0 ||
		(p.s[i] == '-' || p.s[i] == '+') && (p.s[i-1] == 'e' || p.s[i-1] == 'E')) {
		i++
	}
	if i == p.pos || i == p.pos+1 && (p.s[p.pos] == '-' || p.s[p.pos] == '+') {
		return "", false, off, p.errf(off, "expected a number, found %s", p.describe())
	}
	val, p.pos = p.s[p.pos:i], i
	return val, false, off, nil
}

func (p *typeParser) integer(dflt int64) (int64, error) {
	s, isDefault, off, err := p.number()
	if err != nil || isDefault {
		return dflt, err
	}
	n, err := strconv.ParseInt(strings.TrimPrefix(s, "+"), 10, 64)
	if err != nil {
		return 0, p.errf(off, "invalid integer %q", s)
	}
	return n, nil
}

func (p *typeParser) float(dflt float64) (float64, error) {
	s, isDefault, off, err := p.number()
	if err != nil || isDefault {
		return dflt, err
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) {
		return 0, p.errf(off, "invalid number %q", s)
	}
	return f, nil
}

// str reads a quoted string or, when bare is set, a bare word.
func (p *typeParser) str(bare bool) (string, error) {
	c := p.peek()
	if c != '\'' && c != '"' {
		if w := p.word(); bare && w != "" {
			return w, nil
		}
		return "", p.errf(p.pos, "expected a quoted string, found %s", p.describe())
	}
	start := p.pos
	var b strings.Builder
	for i := p.pos + 1; i < len(p.s); i++ {
		switch ch := p.s[i]; {
		case ch == c:
			p.pos = i + 1
			return b.String(), nil
		case ch == '\\' && i+1 < len(p.s):
			i++
			switch n := p.s[i]; {
			case n == c || n == '\\':
				b.WriteByte(n)
			case c == '"' && n == 'n':
				b.WriteByte('\n')
			case c == '"' && n == 't':
				b.WriteByte('\t')
			default:
				b.WriteByte('\\')
				b.WriteByte(n)
			}
		default:
			b.WriteByte(ch)
		}
	}
	return "", p.errf(start, "unterminated string")
}

// regex reads /re/ or a quoted string and compiles it with Ruby's meaning.
func (p *typeParser) regex() (string, *regexp.Regexp, error) {
	p.skipWS()
	off := p.pos
	var src string
	if p.peek() == '/' {
		var b strings.Builder
		i := p.pos + 1
		for ; i < len(p.s) && p.s[i] != '/'; i++ {
			if p.s[i] == '\\' && i+1 < len(p.s) {
				if p.s[i+1] != '/' {
					b.WriteByte('\\')
				}
				i++
			}
			b.WriteByte(p.s[i])
		}
		if i >= len(p.s) {
			return "", nil, p.errf(off, "unterminated regexp")
		}
		src, p.pos = b.String(), i+1
	} else {
		s, err := p.str(false)
		if err != nil {
			return "", nil, p.errf(off, "expected a /regexp/, found %s", p.describe())
		}
		src = s
	}
	re, err := regexp.Compile(rubyToGoRegexp(src))
	if err != nil {
		return "", nil, p.errf(off, "invalid regexp /%s/: %v", src, strings.TrimPrefix(err.Error(), "error parsing regexp: "))
	}
	return src, re, nil
}

// rubyToGoRegexp translates the Ruby regexp dialect Puppet uses into RE2:
// ^ and $ match at line boundaries, \Z allows a final newline, \h is a hex
// digit and the (?m) flag means dot-matches-newline.
func rubyToGoRegexp(s string) string {
	var b strings.Builder
	b.WriteString("(?m)")
	inClass := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s):
			i++
			switch n := s[i]; {
			case n == 'Z' && !inClass:
				b.WriteString(`(?:\n?\z)`)
			case n == 'h':
				b.WriteString(map[bool]string{true: `0-9a-fA-F`, false: `[0-9a-fA-F]`}[inClass])
			case n == 'H' && !inClass:
				b.WriteString(`[^0-9a-fA-F]`)
			default:
				b.WriteByte('\\')
				b.WriteByte(n)
			}
		case c == '[' && !inClass:
			inClass = true
			b.WriteByte(c)
			if i+1 < len(s) && s[i+1] == '^' {
				b.WriteByte('^')
				i++
			}
			if i+1 < len(s) && s[i+1] == ']' {
				b.WriteString(`\]`)
				i++
			}
		case c == ']' && inClass:
			inClass = false
			b.WriteByte(c)
		case c == '(' && !inClass && strings.HasPrefix(s[i:], "(?") && i+2 < len(s) && strings.IndexByte("mix-", s[i+2]) >= 0:
			// Inline flags: Ruby's m is RE2's s.
			j := i + 2
			for j < len(s) && strings.IndexByte("mix-", s[j]) >= 0 {
				j++
			}
			b.WriteString(strings.ReplaceAll(s[i:j], "m", "s"))
			i = j - 1
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// parseType parses one type expression.
func (p *typeParser) parseType() (Type, error) {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > maxTypeDepth {
		return nil, p.errf(p.pos, "type nested too deeply")
	}
	p.skipWS()
	off := p.pos
	name := p.word()
	if name == "" {
		return nil, p.errf(off, "expected a type name, found %s", p.describe())
	}
	if t, ok := simpleTypes[name]; ok {
		if p.peek() == '[' {
			return nil, p.errf(p.pos, "%s takes no parameters", name)
		}
		return t, nil
	}
	if def, ok := aliases[strings.ToLower(name)]; ok {
		t, err := ParseType(def)
		if err != nil {
			panic("bad alias " + name + ": " + err.Error())
		}
		return &aliasT{name: name, t: t}, nil
	}
	switch name {
	case "String":
		t := &stringT{min: 0, max: math.MaxInt64}
		_, err := p.args(func(i int) (err error) { return p.bounds(i, &t.min, &t.max, 0, math.MaxInt64) })
		return t, p.checkRange(err, off, t.min, t.max)
	case "Integer":
		t := &integerT{min: math.MinInt64, max: math.MaxInt64}
		_, err := p.args(func(i int) error { return p.bounds(i, &t.min, &t.max, math.MinInt64, math.MaxInt64) })
		return t, p.checkRange(err, off, t.min, t.max)
	case "Float":
		t := &floatT{min: math.Inf(-1), max: math.Inf(1)}
		_, err := p.args(func(i int) (err error) {
			switch i {
			case 0:
				t.min, err = p.float(math.Inf(-1))
			case 1:
				t.max, err = p.float(math.Inf(1))
			default:
				err = p.errf(p.pos, "Float takes at most 2 parameters")
			}
			return err
		})
		if err == nil && t.min > t.max {
			err = p.errf(off, "Float range minimum is greater than its maximum")
		}
		return t, err
	case "Enum":
		t := &enumT{}
		_, err := p.args(func(int) error {
			s, err := p.str(true)
			t.values = append(t.values, s)
			return err
		})
		return t, err
	case "Pattern":
		t := &patternT{}
		_, err := p.args(func(int) error {
			src, re, err := p.regex()
			t.src, t.res = append(t.src, src), append(t.res, re)
			return err
		})
		return t, err
	case "Optional", "NotUndef", "Sensitive":
		t := &wrapT{name: name}
		_, err := p.args(func(i int) (err error) {
			if i > 0 {
				return p.errf(p.pos, "%s takes one parameter", name)
			}
			t.t, err = p.parseType()
			return err
		})
		return t, err
	case "Variant":
		t := &variantT{}
		_, err := p.args(func(int) error {
			x, err := p.parseType()
			t.ts = append(t.ts, x)
			return err
		})
		if err == nil && len(t.ts) == 0 {
			err = p.errf(off, "Variant needs at least one type")
		}
		return t, err
	case "Array", "Tuple":
		return p.collection(name, off)
	case "Hash":
		return p.hash(off)
	case "Struct":
		return p.structType()
	}
	return nil, &ParseError{Offset: off, Msg: fmt.Sprintf("unknown type %q", name), Hint: suggestType(name)}
}

// bounds reads parameter i of a two-bound range.
func (p *typeParser) bounds(i int, lo, hi *int64, dlo, dhi int64) (err error) {
	switch i {
	case 0:
		*lo, err = p.integer(dlo)
	case 1:
		*hi, err = p.integer(dhi)
	default:
		err = p.errf(p.pos, "expected at most 2 range parameters")
	}
	return err
}

func (p *typeParser) checkRange(err error, off int, lo, hi int64) error {
	if err == nil && lo > hi {
		return p.errf(off, "range minimum %d is greater than its maximum %d", lo, hi)
	}
	return err
}

// isNumberStart reports whether the next token is a number or "default".
func (p *typeParser) isNumberStart() bool {
	c := p.peek()
	return c >= '0' && c <= '9' || c == '-' || c == '+' || strings.HasPrefix(p.s[p.pos:], "default")
}

// collection parses Array[T, min, max] and Tuple[A, B, ..., min, max].
func (p *typeParser) collection(name string, off int) (Type, error) {
	var ts []Type
	var sizes []int64
	_, err := p.args(func(i int) error {
		if p.isNumberStart() {
			if len(sizes) == 2 {
				return p.errf(p.pos, "%s takes at most 2 size parameters", name)
			}
			d := int64(0)
			if len(sizes) == 1 {
				d = math.MaxInt64
			}
			n, err := p.integer(d)
			if err == nil && n < 0 {
				err = p.errf(p.pos, "%s size must not be negative", name)
			}
			sizes = append(sizes, n)
			return err
		}
		if len(sizes) > 0 || name == "Array" && len(ts) == 1 {
			return p.errf(p.pos, "expected a size in %s, found %s", name, p.describe())
		}
		t, err := p.parseType()
		ts = append(ts, t)
		return err
	})
	if err != nil {
		return nil, err
	}
	lo, hi := int64(0), int64(math.MaxInt64)
	if name == "Tuple" && len(ts) > 0 {
		lo, hi = int64(len(ts)), int64(len(ts))
	}
	if len(sizes) > 0 {
		lo = sizes[0]
		if name == "Tuple" {
			hi = max(lo, int64(len(ts)))
		}
	}
	if len(sizes) > 1 {
		hi = sizes[1]
	}
	if err := p.checkRange(nil, off, lo, hi); err != nil {
		return nil, err
	}
	if name == "Tuple" {
		return &tupleT{ts: ts, min: lo, max: hi}, nil
	}
	t := &arrayT{min: lo, max: hi}
	if len(ts) == 1 {
		t.elem = ts[0]
	}
	return t, nil
}

// hash parses Hash[K, V, min, max].
func (p *typeParser) hash(off int) (Type, error) {
	t := &hashT{min: 0, max: math.MaxInt64}
	var ts []Type
	var sizes int
	_, err := p.args(func(i int) (err error) {
		if p.isNumberStart() {
			if len(ts) == 1 {
				return p.errf(p.pos, "Hash needs both a key and a value type")
			}
			sizes++
			return p.bounds(sizes-1, &t.min, &t.max, 0, math.MaxInt64)
		}
		if sizes > 0 || len(ts) == 2 {
			return p.errf(p.pos, "expected a size in Hash, found %s", p.describe())
		}
		x, err := p.parseType()
		ts = append(ts, x)
		return err
	})
	if err == nil && len(ts) == 1 {
		err = p.errf(off, "Hash needs both a key and a value type")
	}
	if err == nil && t.min < 0 {
		err = p.errf(off, "Hash size must not be negative")
	}
	if err = p.checkRange(err, off, t.min, t.max); err != nil {
		return nil, err
	}
	if len(ts) == 2 {
		t.key, t.val = ts[0], ts[1]
	}
	return t, nil
}

// structType parses Struct[{key => T, Optional[key] => T, ...}].
func (p *typeParser) structType() (Type, error) {
	t := &structT{}
	seen := map[string]bool{}
	_, err := p.args(func(i int) error {
		if i > 0 {
			return p.errf(p.pos, "Struct takes one {...} parameter")
		}
		if err := p.expect('{'); err != nil {
			return err
		}
		for p.peek() != '}' {
			off := p.pos
			var f structField
			if c := p.peek(); c != '\'' && c != '"' {
				save := p.pos
				switch w := p.word(); {
				case (w == "Optional" || w == "NotUndef") && p.peek() == '[':
					p.pos++
					f.optional, f.notUndef = w == "Optional", w == "NotUndef"
				default:
					p.pos = save
				}
			}
			name, err := p.str(true)
			if err != nil {
				return err
			}
			if f.optional || f.notUndef {
				if err := p.expect(']'); err != nil {
					return err
				}
			}
			if seen[name] {
				return p.errf(off, "duplicate Struct key %q", name)
			}
			seen[name] = true
			f.name = name
			p.skipWS()
			if !strings.HasPrefix(p.s[p.pos:], "=>") {
				return p.errf(p.pos, "expected \"=>\", found %s", p.describe())
			}
			p.pos += 2
			if f.t, err = p.parseType(); err != nil {
				return err
			}
			t.fields = append(t.fields, f)
			if p.peek() == ',' {
				p.pos++
			} else if p.peek() != '}' {
				return p.errf(p.pos, "expected \",\" or \"}\", found %s", p.describe())
			}
		}
		p.pos++
		return nil
	})
	return t, err
}
