package apply

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// unquote reads one Puppet string literal at the start of s, as Puppet's
// lexer does, and returns its value and the rest of s.
func unquote(s string) (string, string, error) {
	if s == "" || s[0] != '\'' && s[0] != '"' {
		return "", s, fmt.Errorf("not a string literal: %.20q", s)
	}
	q := s[0]
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case c == q:
			return b.String(), s[i+1:], nil
		case q == '"' && c == '$':
			return "", s, fmt.Errorf("unescaped $ in a double-quoted string would interpolate")
		case c == '\\' && i+1 < len(s):
			n := s[i+1]
			if q == '\'' {
				if n == '\\' || n == '\'' {
					b.WriteByte(n)
					i++
				} else {
					b.WriteByte('\\')
				}
				continue
			}
			i++
			switch n {
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case 's':
				b.WriteByte(' ')
			case '\\', '"', '\'', '$':
				b.WriteByte(n)
			case 'u':
				end := strings.IndexByte(s[i:], '}')
				if !strings.HasPrefix(s[i+1:], "{") || end < 0 {
					return "", s, fmt.Errorf("bad \\u escape")
				}
				r, err := strconv.ParseUint(s[i+2:i+end], 16, 32)
				if err != nil {
					return "", s, err
				}
				b.WriteRune(rune(r))
				i += end
			default:
				return "", s, fmt.Errorf("unknown escape \\%c", n)
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", s, fmt.Errorf("unterminated string")
}

var (
	headLine = regexp.MustCompile(`^((?:::)?[a-z][a-z0-9_]*(?:::[a-z][a-z0-9_]*)*) \{ (.*):$`)
	attrLine = regexp.MustCompile(`^  ([a-z][a-z0-9_]*) => (.*),$`)
	number   = regexp.MustCompile(`^-?[0-9]+(\.[0-9]+)?(e-?[0-9]+)?`)
)

// value reads one data literal at the start of s.
func value(s string, depth int) (string, error) {
	if depth > maxDepth+2 {
		return s, fmt.Errorf("too deep")
	}
	switch {
	case strings.HasPrefix(s, "'"), strings.HasPrefix(s, `"`):
		_, rest, err := unquote(s)
		return rest, err
	case strings.HasPrefix(s, "undef"):
		return s[5:], nil
	case strings.HasPrefix(s, "true"):
		return s[4:], nil
	case strings.HasPrefix(s, "false"):
		return s[5:], nil
	case strings.HasPrefix(s, "["), strings.HasPrefix(s, "{"):
		hash, closer := s[0] == '{', s[0]+2 // ] is [+2, } is {+2
		s = s[1:]
		for first := true; ; first = false {
			if strings.HasPrefix(s, string(closer)) {
				return s[1:], nil
			}
			if !first {
				if !strings.HasPrefix(s, ", ") {
					return s, fmt.Errorf("want , or %c at %.20q", closer, s)
				}
				s = s[2:]
			}
			var err error
			if hash {
				if _, s, err = unquote(s); err != nil {
					return s, err
				}
				if !strings.HasPrefix(s, " => ") {
					return s, fmt.Errorf("want => at %.20q", s)
				}
				s = s[4:]
			}
			if s, err = value(s, depth+1); err != nil {
				return s, err
			}
		}
	}
	if m := number.FindString(s); m != "" {
		return s[len(m):], nil
	}
	return s, fmt.Errorf("not a value: %.20q", s)
}

// checkManifest checks that m is made only of what Manifest writes:
// resource headers, attribute lines with data values, closing braces and
// -> between resources; every string literal reads back as valid text.
func checkManifest(m string) error {
	if m == "" {
		return nil
	}
	if !strings.HasSuffix(m, "}\n") {
		return fmt.Errorf("does not end with }")
	}
	// A string may span lines only inside single quotes (a double-quoted
	// one escapes its newlines), so read line by line, joining lines that
	// end inside a single-quoted string is never needed: Quote switches to
	// double quotes for any control character.
	open := false
	for i, line := range strings.Split(strings.TrimSuffix(m, "\n"), "\n") {
		switch {
		case line == "}":
			if !open {
				return fmt.Errorf("line %d: } outside a resource", i+1)
			}
			open = false
		case line == "->":
			if open {
				return fmt.Errorf("line %d: -> inside a resource", i+1)
			}
		case headLine.MatchString(line):
			if open {
				return fmt.Errorf("line %d: resource inside a resource", i+1)
			}
			title := headLine.FindStringSubmatch(line)[2]
			if _, rest, err := unquote(title); err != nil || rest != "" {
				return fmt.Errorf("line %d: title %q: %v (rest %q)", i+1, title, err, rest)
			}
			open = true
		case attrLine.MatchString(line):
			if !open {
				return fmt.Errorf("line %d: attribute outside a resource", i+1)
			}
			v := attrLine.FindStringSubmatch(line)[2]
			if rest, err := value(v, 0); err != nil || rest != "" {
				return fmt.Errorf("line %d: value %q: %v (rest %q)", i+1, v, err, rest)
			}
		default:
			return fmt.Errorf("line %d: unexpected %q", i+1, line)
		}
	}
	if open {
		return fmt.Errorf("unclosed resource")
	}
	return nil
}

// FuzzResourcesManifest: any resources list (as YAML) either fails with an
// error naming a resource, or becomes a manifest of only well-formed
// declarations whose strings all read back.
func FuzzResourcesManifest(f *testing.F) {
	for _, s := range []string{
		`[{type: package, title: nginx, parameters: {ensure: present}}]`,
		`[{package: nginx, parameters: {ensure: latest}}, {service: nginx}]`,
		`[{file: "/etc/it's", parameters: {content: "a\tb$c\u2028\\", mode: '0644', replace: false}}]`,
		`[{thing: x, parameters: {a: 1, b: -2.5, c: 3.0, d: 1e21, e: null, f: [1, [2, {k: v}]], g: {"q'\"": {}}}}]`,
		`[{class: apache}, {"mymod::x": 1}, {Package: x}, {if: y}]`,
		`[{type: a}, {title: b}, {a: 1, b: 2}, {parameters: {}}, 5, [x]]`,
		`[{file: x, parameters: {Bad: 1}}]`,
		`[{notify: "\u0000"}]`,
		`[{notify: x, parameters: {message: !!binary "/w=="}}]`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		var v any
		if yaml.Unmarshal([]byte(src), &v) != nil {
			return
		}
		m, err := ResourcesManifest(v)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "resources") {
				t.Fatalf("error does not name the resource: %v", err)
			}
			return
		}
		if !utf8.ValidString(m) {
			t.Fatalf("manifest is not UTF-8: %q", m)
		}
		if err := checkManifest(m); err != nil {
			t.Fatalf("%v in\n%s", err, m)
		}
	})
}

// FuzzQuote: every valid string reads back unchanged from its literal.
func FuzzQuote(f *testing.F) {
	for _, s := range []string{"", "plain", `it's \ "q" $x ${y}`, "a\nb\tc\a\x7f\u2028\u0085", `\`, `'`, "ü✓"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if checkText(s) != "" {
			return
		}
		q := Quote(s)
		got, rest, err := unquote(q)
		if err != nil || rest != "" || got != s {
			t.Fatalf("Quote(%q) = %s reads back as %q (rest %q, %v)", s, q, got, rest, err)
		}
	})
}

// FuzzParseReport: any bytes as a report never panic, and a report that
// reads is interpreted.
func FuzzParseReport(f *testing.F) {
	f.Add([]byte("--- !ruby/object:Puppet::Transaction::Report\nstatus: changed\nmetrics:\n  resources:\n    values:\n    - - total\n      - Total\n      - 9\n    - - changed\n      - Changed\n      - 1\nresource_statuses:\n  File[/x]:\n    changed: true\n    failed: false\n    events: []\n"))
	f.Add([]byte("status: failed\nmetrics: {}\nresource_statuses:\n  Exec[x]:\n    failed: true\n    events:\n    - status: failure\n      message: boom\n"))
	f.Add([]byte("a: &x [*x]\n"))
	f.Add([]byte("a: !ruby/sym b\nc: 2026-01-02T03:04:05Z\nd: !!binary aGk=\n"))
	f.Add([]byte("- 1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, code := range []int{0, 2, 4, 6, 1} {
			res := Interpret("t", "", Outcome{ExitCode: code, Report: string(data)})
			if res == nil || res.Action != "apply" {
				t.Fatalf("Interpret gave %+v", res)
			}
			if _, err := ParseReport(data); err == nil && res.Error != nil && res.Error.Kind == KindInvalidReport && strings.Contains(res.Error.Msg, "reading") {
				t.Fatalf("report parsed, yet Interpret could not read it: %v", res.Error)
			}
		}
	})
}
