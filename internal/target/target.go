// Package target parses target specs (the values of -t/--targets) and
// resolves them against an inventory with Bolt's lookup rules.
package target

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"unicode"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/inventory"
	"github.com/muster-run/muster/internal/puppet"
)

// maxFileSize bounds an @file target list.
const maxFileSize = 16 << 20

// globChars mark a token as a pattern (Bolt's wildcard check).
const globChars = "*?[]{}"

// Split splits one spec into tokens on commas and whitespace, except inside
// "{}" or "[]" and after a "\" escape. Empty tokens are dropped. An
// unclosed "{" or "[" is an error naming the spec.
func Split(spec string) ([]string, error) {
	var toks []string
	var cur strings.Builder
	braces, inSet, setStart := 0, false, 0
	rs := []rune(spec)
	flush := func() {
		if cur.Len() > 0 {
			toks = append(toks, cur.String())
			cur.Reset()
		}
	}
	for i := 0; i < len(rs); i++ {
		c := rs[i]
		switch {
		case c == '\\' && i+1 < len(rs):
			cur.WriteRune(c)
			i++
			c = rs[i]
		case inSet:
			// A "]" right after "[" or "[^" is a member, not the end.
			if c == ']' && !(i == setStart+1 || i == setStart+2 && (rs[setStart+1] == '^' || rs[setStart+1] == '!')) {
				inSet = false
			}
		case c == '[':
			inSet, setStart = true, i
		case c == '{':
			braces++
		case c == '}' && braces > 0:
			braces--
		case braces == 0 && (c == ',' || unicode.IsSpace(c)):
			flush()
			continue
		}
		cur.WriteRune(c)
	}
	if inSet {
		return nil, invalidf("invalid target spec %q: unclosed \"[\"", inventory.Redact(spec))
	}
	if braces > 0 {
		return nil, invalidf("invalid target spec %q: unclosed \"{\"", inventory.Redact(spec))
	}
	flush()
	return toks, nil
}

func invalidf(format string, args ...any) error {
	return muster.Errorf(muster.KindInvalid, format, args...)
}

// Resolve expands target specs into targets. Each spec is split with Split.
// Each token is looked up in order as: a group name (recursive; "all" is
// every target), a target name, an alias; then, if it holds any of
// "* ? [ ] { }", a URI with a scheme is taken as-is and anything else is a
// case-insensitive glob over group names, target names and aliases that
// must match something; otherwise it becomes an ad-hoc target from
// inv.Adhoc. When the inventory has any groups or targets, a bare word
// (no ".", ":", "@", not "localhost") that matches nothing is refused as a
// likely typo, with the nearest names as suggestions; write ssh://name for
// an ad-hoc host of that name. The result is de-duplicated by name, in
// first-seen order, and every target gets Bolt's local defaults
// (ApplyLocalDefaults). A nil inv is treated as inventory.Empty.
//
// Resolve never reads files: a token "@path" is refused (the command-line
// client expands those with ExpandFiles first), since specs may come from
// remote callers.
func Resolve(inv *inventory.Inventory, specs []string) ([]*muster.Target, error) {
	if inv == nil {
		inv = inventory.Empty(inventory.Options{})
	}
	var tokens []string
	for _, spec := range specs {
		toks, err := Split(spec)
		if err != nil {
			return nil, err
		}
		for _, tok := range toks {
			if tok[0] == '@' {
				return nil, invalidf(`target %q: target lists from files ("@path") are read by the command-line client, not here: pass names, groups, globs or URIs`,
					inventory.Redact(tok))
			}
			tokens = append(tokens, tok)
		}
	}
	if len(tokens) == 0 {
		return nil, invalidf("no targets given: pass a target name, group, alias, glob or URI")
	}
	var out []*muster.Target
	seen := map[string]bool{}
	for _, tok := range tokens {
		ts, err := resolveToken(inv, tok)
		if err != nil {
			return nil, err
		}
		for _, t := range ts {
			if !seen[t.Name] {
				seen[t.Name] = true
				ApplyLocalDefaults(t)
				out = append(out, t)
			}
		}
	}
	return out, nil
}

// ExpandFiles replaces every "@path" token of specs with the tokens listed
// in that file (one or more per line, split like a spec; "#" starts a
// comment when it begins a token; at most 16 MiB; no nested @files) and
// returns the tokens of all specs, in order, ready for Resolve. It reads
// the local filesystem, so only the command-line client may call it, never
// a server on a spec it received. Errors name the file, and the line for
// a bad line ("@targets.txt:3: ...").
func ExpandFiles(specs []string) ([]string, error) {
	var out []string
	for _, spec := range specs {
		toks, err := Split(spec)
		if err != nil {
			return nil, err
		}
		for _, tok := range toks {
			switch {
			case tok == "@":
				return nil, invalidf(`target "@" names no file: write @path to read targets from a file`)
			case tok[0] == '@':
				more, err := readFile(tok[1:])
				if err != nil {
					return nil, err
				}
				out = append(out, more...)
			default:
				out = append(out, tok)
			}
		}
	}
	return out, nil
}

func resolveToken(inv *inventory.Inventory, tok string) ([]*muster.Target, error) {
	if ts, ok, err := inv.Lookup(tok); ok || err != nil {
		return ts, err
	}
	if strings.ContainsAny(tok, globChars) && !hasScheme(tok) {
		return globTargets(inv, tok)
	}
	if !strings.ContainsAny(tok, ".:@") && tok != "localhost" && !inv.IsEmpty() {
		return nil, unmatched(inv, tok)
	}
	t, err := inv.Adhoc(tok)
	if err != nil {
		return nil, err
	}
	return []*muster.Target{t}, nil
}

// unmatched is the error for a bare word that names nothing in a
// non-empty inventory: most likely a typo, so it is not taken as an ad-hoc
// host (which would fail later with a connection error).
func unmatched(inv *inventory.Inventory, tok string) error {
	where := "the inventory"
	if f := inv.File(); f != "" {
		where += " " + f
	}
	msg := fmt.Sprintf("target %q matched nothing in %s", tok, where)
	if near := puppet.Suggest(tok, inv.Names(), 3); len(near) > 0 {
		q := make([]string, len(near))
		for i, n := range near {
			q[i] = strconv.Quote(n)
		}
		alts := q[0]
		if len(q) > 1 {
			alts = strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
		}
		return invalidf("%s; did you mean %s? (to use an ad-hoc host of that name, write ssh://%s)", msg, alts, tok)
	}
	return invalidf("%s (checked %d groups, %d targets and their aliases); to use an ad-hoc host of that name, write ssh://%s",
		msg, len(inv.GroupNames()), inv.Len(), tok)
}

// hasScheme reports whether tok starts with "transport://" (Bolt: ^[^:]+://).
func hasScheme(tok string) bool {
	i := strings.Index(tok, "://")
	return i > 0 && !strings.Contains(tok[:i], ":")
}

func globTargets(inv *inventory.Inventory, pattern string) ([]*muster.Target, error) {
	g, err := compile(pattern)
	if err != nil {
		return nil, muster.Errorf(muster.KindInvalid, "%v", err)
	}
	// Match names first, so only the matched targets' plugins run.
	var keys []string
	groups := inv.GroupNames()
	for _, name := range groups {
		if g.match(name) {
			ms, _ := inv.GroupMembers(name)
			keys = append(keys, ms...)
		}
	}
	names := inv.TargetNames()
	for _, n := range names {
		if g.match(n) {
			keys = append(keys, n)
		}
	}
	for _, n := range names {
		for _, a := range inv.AliasesOf(n) {
			if g.match(a) {
				keys = append(keys, n)
				break
			}
		}
	}
	out, err := inv.TargetsNamed(keys)
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		hint := ""
		if _, err := inventory.ParseURI(pattern); err == nil && strings.ContainsAny(pattern, "[]") {
			hint = fmt.Sprintf("; for an ad-hoc target write ssh://%s", inventory.Redact(pattern))
		}
		return nil, invalidf("no targets match %q (checked %d groups, %d targets and their aliases)%s",
			inventory.Redact(pattern), len(groups), len(names), hint)
	}
	return out, nil
}

// readFile reads target tokens from path: one or more per line, "#" starts
// a comment when it begins a token.
func readFile(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, invalidf("cannot read targets from @%s: %v", path, unwrapPath(err))
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, invalidf("cannot read targets from @%s: %v", path, unwrapPath(err))
	}
	if len(b) > maxFileSize {
		return nil, invalidf("target file @%s is larger than %d bytes", path, maxFileSize)
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), maxFileSize+1)
	for n := 1; sc.Scan(); n++ {
		toks, err := Split(stripComment(sc.Text()))
		if err != nil {
			return nil, invalidf("@%s:%d: %v", path, n, err)
		}
		for _, tok := range toks {
			if tok[0] == '@' {
				return nil, invalidf("@%s:%d: nested @file targets are not supported", path, n)
			}
			out = append(out, tok)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, invalidf("cannot read targets from @%s: %v", path, err)
	}
	return out, nil
}

func stripComment(line string) string {
	prev := ' '
	for i, r := range line {
		if r == '#' && (unicode.IsSpace(prev) || prev == ',') {
			return line[:i]
		}
		prev = r
	}
	return line
}

func unwrapPath(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}
