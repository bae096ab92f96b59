package target

import (
	"fmt"
	"unicode"

	"github.com/muster-run/muster/internal/inventory"
)

// maxAlternatives bounds brace expansion ({a,b}{c,d}... grows exponentially).
const maxAlternatives = 4096

// Match reports whether name matches the extended glob pattern, ignoring
// case. It supports "*", "?", "[set]", "[^set]" (or "[!set]") with ranges,
// "{a,b}" alternatives (nested), and "\" as an escape. Unbalanced brackets
// or braces are an error naming the pattern.
func Match(pattern, name string) (bool, error) {
	g, err := compile(pattern)
	if err != nil {
		return false, err
	}
	return g.match(name), nil
}

// glob is a compiled pattern: one token list per brace alternative.
type glob struct {
	alts [][]token
}

type tokKind uint8

const (
	tLit tokKind = iota
	tAny
	tStar
	tSet
)

type token struct {
	kind   tokKind
	r      rune
	negate bool
	ranges []rng
}

type rng struct{ lo, hi rune }

func compile(pattern string) (*glob, error) {
	bad := func(why string) error {
		return fmt.Errorf("invalid glob pattern %q: %s", inventory.Redact(pattern), why)
	}
	rs := []rune(pattern)
	alts, pos, err := expand(rs, 0, false)
	if err != nil {
		return nil, bad(err.Error())
	}
	if pos != len(rs) {
		return nil, bad(`unmatched "}"`)
	}
	g := &glob{}
	for _, a := range alts {
		toks, err := tokenize(a)
		if err != nil {
			return nil, bad(err.Error())
		}
		g.alts = append(g.alts, toks)
	}
	return g, nil
}

// expand performs brace expansion from rs[i:]. Inside braces (nested) it
// stops at the "," or "}" that ends the current alternative.
func expand(rs []rune, i int, nested bool) ([][]rune, int, error) {
	alts := [][]rune{nil}
	add := func(suffixes [][]rune) error {
		var out [][]rune
		for _, a := range alts {
			for _, s := range suffixes {
				out = append(out, append(append([]rune(nil), a...), s...))
				if len(out) > maxAlternatives {
					return fmt.Errorf("too many {} alternatives")
				}
			}
		}
		alts = out
		return nil
	}
	for i < len(rs) {
		c := rs[i]
		switch {
		case c == '\\' && i+1 < len(rs):
			if err := add([][]rune{rs[i : i+2]}); err != nil {
				return nil, i, err
			}
			i += 2
		case c == '[':
			end, err := bracketEnd(rs, i)
			if err != nil {
				return nil, i, err
			}
			if err := add([][]rune{rs[i : end+1]}); err != nil {
				return nil, i, err
			}
			i = end + 1
		case c == '{':
			var choices [][]rune
			j := i + 1
			for {
				sub, next, err := expand(rs, j, true)
				if err != nil {
					return nil, next, err
				}
				choices = append(choices, sub...)
				if next >= len(rs) {
					return nil, next, fmt.Errorf(`unclosed "{"`)
				}
				j = next + 1
				if rs[next] == '}' {
					break
				}
			}
			if err := add(choices); err != nil {
				return nil, i, err
			}
			i = j
		case nested && (c == ',' || c == '}'):
			return alts, i, nil
		case c == '}':
			return alts, i, nil
		default:
			if err := add([][]rune{{c}}); err != nil {
				return nil, i, err
			}
			i++
		}
	}
	return alts, i, nil
}

// bracketEnd returns the index of the "]" closing the set opened at rs[i].
// A "]" right after "[" (or "[^", "[!") is a literal member.
func bracketEnd(rs []rune, i int) (int, error) {
	j := i + 1
	if j < len(rs) && (rs[j] == '^' || rs[j] == '!') {
		j++
	}
	if j < len(rs) && rs[j] == ']' {
		j++
	}
	for ; j < len(rs); j++ {
		switch rs[j] {
		case '\\':
			j++
		case ']':
			return j, nil
		}
	}
	return 0, fmt.Errorf(`unclosed "["`)
}

func tokenize(rs []rune) ([]token, error) {
	var toks []token
	for i := 0; i < len(rs); i++ {
		switch c := rs[i]; c {
		case '\\':
			if i+1 < len(rs) {
				i++
			}
			toks = append(toks, token{kind: tLit, r: rs[i]})
		case '*':
			if len(toks) == 0 || toks[len(toks)-1].kind != tStar {
				toks = append(toks, token{kind: tStar})
			}
		case '?':
			toks = append(toks, token{kind: tAny})
		case ']':
			return nil, fmt.Errorf(`unmatched "]"`)
		case '[':
			end, err := bracketEnd(rs, i)
			if err != nil {
				return nil, err
			}
			toks = append(toks, parseSet(rs[i+1:end]))
			i = end
		default:
			toks = append(toks, token{kind: tLit, r: c})
		}
	}
	return toks, nil
}

func parseSet(body []rune) token {
	t := token{kind: tSet}
	if len(body) > 0 && (body[0] == '^' || body[0] == '!') {
		t.negate = true
		body = body[1:]
	}
	for i := 0; i < len(body); i++ {
		lo := body[i]
		if lo == '\\' && i+1 < len(body) {
			i++
			lo = body[i]
		}
		hi := lo
		if i+2 < len(body) && body[i+1] == '-' {
			hi = body[i+2]
			i += 2
			if hi == '\\' && i+1 < len(body) {
				i++
				hi = body[i]
			}
		}
		t.ranges = append(t.ranges, rng{lo, hi})
	}
	return t
}

func (t *token) matches(c rune) bool {
	switch t.kind {
	case tAny:
		return true
	case tLit:
		return c == t.r || unicode.ToLower(c) == unicode.ToLower(t.r) || unicode.ToUpper(c) == unicode.ToUpper(t.r)
	case tSet:
		in := false
		for _, r := range t.ranges {
			for _, x := range [...]rune{c, unicode.ToLower(c), unicode.ToUpper(c)} {
				if x >= r.lo && x <= r.hi {
					in = true
				}
			}
		}
		return in != t.negate
	}
	return false
}

func (g *glob) match(name string) bool {
	s := []rune(name)
	for _, a := range g.alts {
		if matchTokens(a, s) {
			return true
		}
	}
	return false
}

// matchTokens is the classic single-backtrack wildcard match: every token
// but "*" consumes exactly one rune, so remembering the last star suffices.
func matchTokens(toks []token, s []rune) bool {
	ti, si := 0, 0
	star, mark := -1, 0
	for si < len(s) {
		switch {
		case ti < len(toks) && toks[ti].kind == tStar:
			star, mark = ti, si
			ti++
		case ti < len(toks) && toks[ti].matches(s[si]):
			ti++
			si++
		case star >= 0:
			mark++
			ti, si = star+1, mark
		default:
			return false
		}
	}
	for ti < len(toks) && toks[ti].kind == tStar {
		ti++
	}
	return ti == len(toks)
}
