// Package apply delegates Puppet code to Puppet on the target: a YAML
// plan's resources step becomes a manifest (Manifest), and a manifest runs
// with `puppet apply --detailed-exitcodes` on each target, in the one
// channel of a script action that also carries the manifest and the
// project's modules (Applier.Apply). The report Puppet writes comes back
// on the same channel and becomes Bolt's ApplyResult (Interpret). Prep
// checks for Puppet on targets and, when allowed, installs the OS's
// package (Bolt's apply_prep).
package apply

import (
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/puppet"
)

// Resource is one resource declaration of a resources step, normalized
// from either of Bolt's spellings: {type: package, title: nginx,
// parameters: {...}} or the shorthand {package: nginx, parameters: {...}}.
type Resource struct {
	Type       string
	Title      string
	Parameters map[string]any
}

// Resources normalizes a resources step's list (as decoded from YAML and
// evaluated by the plan) into declarations, with Bolt's validation: type
// and title come together, or else exactly one key besides parameters
// names the type and holds the title. Errors are *muster.Error of kind
// invalid-input whose message starts with the resource's path
// ("resources[2].title: ...") and whose details carry "index" and "field".
func Resources(list any) ([]Resource, error) {
	list = puppet.Normalize(list)
	items, ok := list.([]any)
	if !ok {
		return nil, muster.Errorf(muster.KindInvalid, "resources: want a list of resource declarations, got %s", puppet.TypeName(list)).
			WithDetail("field", "resources")
	}
	out := make([]Resource, 0, len(items))
	for i, it := range items {
		m, ok := it.(map[string]any)
		if !ok {
			return nil, fieldError(i, "", "want a resource declaration (a hash with type and title, or {<type>: <title>}), got %s", puppet.TypeName(it))
		}
		r, err := resource(i, m)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

func resource(i int, m map[string]any) (Resource, error) {
	var r Resource
	typ, hasType := m["type"]
	title, hasTitle := m["title"]
	switch {
	case hasType && !hasTitle:
		return r, fieldError(i, "title", "a resource declaration must include the title key if the type key is set")
	case hasTitle && !hasType:
		return r, fieldError(i, "type", "a resource declaration must include the type key if the title key is set")
	case hasType:
		for k := range m {
			if k != "type" && k != "title" && k != "parameters" {
				return r, fieldError(i, k, "unknown key %q beside type and title (allowed: type, title, parameters)", k)
			}
		}
		s, ok := typ.(string)
		if !ok {
			return r, fieldError(i, "type", "want a resource type name, got %s", puppet.TypeName(typ))
		}
		r.Type = s
	default:
		var keys []string
		for k := range m {
			if k != "parameters" {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		switch len(keys) {
		case 0:
			return r, fieldError(i, "type", "the resource declaration is missing a type: write {<type>: <title>} or {type: <type>, title: <title>}")
		case 1:
		default:
			return r, fieldError(i, "type", "the resource declaration has an ambiguous type: could be %s", strings.Join(keys, " or "))
		}
		r.Type = keys[0]
		title = m[r.Type]
	}
	if err := checkType(r.Type); err != "" {
		return r, fieldError(i, "type", "%s", err)
	}
	t, err := titleString(title)
	if err != "" {
		return r, fieldError(i, "title", "%s", err)
	}
	r.Title = t
	r.Parameters = map[string]any{}
	if p, ok := m["parameters"]; ok && p != nil {
		pm, ok := p.(map[string]any)
		if !ok {
			return r, fieldError(i, "parameters", "want a hash of attribute names to values, got %s", puppet.TypeName(p))
		}
		r.Parameters = pm
	}
	return r, nil
}

func fieldError(i int, field, format string, args ...any) *muster.Error {
	path := fmt.Sprintf("resources[%d]", i)
	if field != "" {
		path += "." + field
	}
	return muster.Errorf(muster.KindInvalid, "%s: %s", path, fmt.Sprintf(format, args...)).
		WithDetail("index", i).WithDetail("field", field)
}

var (
	typeName  = regexp.MustCompile(`^(::)?[a-z][a-z0-9_]*(::[a-z][a-z0-9_]*)*$`)
	paramName = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
)

// keywords are Puppet's reserved words: none names a resource type, except
// class (class { 'apache': } declares a class like a resource).
var keywords = map[string]bool{
	"and": true, "application": true, "attr": true, "case": true, "component": true, "consumes": true,
	"default": true, "define": true, "elsif": true, "else": true, "environment": true, "false": true,
	"function": true, "if": true, "import": true, "in": true, "inherits": true, "node": true, "or": true,
	"private": true, "produces": true, "regexp": true, "site": true, "true": true, "type": true,
	"undef": true, "unit": true, "unless": true, "plan": true, "apply": true,
}

// checkType returns why name cannot be a resource type in a declaration,
// or "".
func checkType(name string) string {
	switch {
	case name == "":
		return "the resource type is empty"
	case name != strings.ToLower(name) && typeName.MatchString(strings.ToLower(name)):
		return fmt.Sprintf("resource type %q must be lower case (%q): a capitalized name is a resource reference or default in Puppet", name, strings.ToLower(name))
	case !typeName.MatchString(name):
		return fmt.Sprintf("%q is not a resource type name: use lower-case letters, digits and _, with :: between namespaces (package, file, mymod::thing)", name)
	case keywords[strings.TrimPrefix(name, "::")]:
		return fmt.Sprintf("%q is a reserved word in Puppet and cannot name a resource type", name)
	}
	return ""
}

// titleString returns a title as a string (numbers are written in
// decimal), or why it cannot be one.
func titleString(v any) (string, string) {
	var s string
	switch x := v.(type) {
	case string:
		s = x
	case int64:
		s = strconv.FormatInt(x, 10)
	case float64:
		if math.IsInf(x, 0) || math.IsNaN(x) {
			return "", "the title is not a finite number"
		}
		s = strconv.FormatFloat(x, 'f', -1, 64)
	case nil:
		return "", "the title is missing (undef)"
	default:
		return "", fmt.Sprintf("want a string title, got %s", puppet.TypeName(v))
	}
	if strings.TrimSpace(s) == "" {
		return "", "the title is empty"
	}
	if msg := checkText(s); msg != "" {
		return "", "the title " + msg
	}
	return s, ""
}

// checkText returns why s cannot appear in a manifest, or "".
func checkText(s string) string {
	if !utf8.ValidString(s) {
		return "is not valid UTF-8"
	}
	if strings.ContainsRune(s, 0) {
		return "contains a NUL character"
	}
	return ""
}

// Manifest renders declarations as Puppet code, one resource after the
// other, chained with -> so they apply in the order of the list, as Bolt's
// resources step does. Every string is quoted and escaped; attribute
// names are checked; values may be strings, numbers, booleans, undef,
// arrays and hashes of them.
func Manifest(rs []Resource) (string, error) {
	var b strings.Builder
	for i, r := range rs {
		if msg := checkType(r.Type); msg != "" {
			return "", fieldError(i, "type", "%s", msg)
		}
		if _, msg := titleString(r.Title); msg != "" {
			return "", fieldError(i, "title", "%s", msg)
		}
		if i > 0 {
			b.WriteString("->\n")
		}
		fmt.Fprintf(&b, "%s { %s:\n", r.Type, Quote(r.Title))
		names := make([]string, 0, len(r.Parameters))
		for k := range r.Parameters {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			if !paramName.MatchString(k) {
				return "", fieldError(i, "parameters."+k, "%q is not an attribute name: use lower-case letters, digits and _, starting with a letter", k)
			}
			var v strings.Builder
			if err := writeValue(&v, r.Parameters[k], "parameters."+k, 0); err != nil {
				return "", fieldError(i, err.field, "%s", err.msg)
			}
			fmt.Fprintf(&b, "  %s => %s,\n", k, v.String())
		}
		b.WriteString("}\n")
	}
	return b.String(), nil
}

// ResourcesManifest is Resources then Manifest: a resources step's list
// straight to Puppet code.
func ResourcesManifest(list any) (string, error) {
	rs, err := Resources(list)
	if err != nil {
		return "", err
	}
	return Manifest(rs)
}

type valueError struct{ field, msg string }

// maxDepth bounds nesting in values, far beyond any real manifest.
const maxDepth = 100

func writeValue(b *strings.Builder, v any, field string, depth int) *valueError {
	if depth > maxDepth {
		return &valueError{field, fmt.Sprintf("nested deeper than %d levels", maxDepth)}
	}
	switch x := puppet.Normalize(v).(type) {
	case nil:
		b.WriteString("undef")
	case bool:
		b.WriteString(strconv.FormatBool(x))
	case string:
		if msg := checkText(x); msg != "" {
			return &valueError{field, "the value " + msg}
		}
		b.WriteString(Quote(x))
	case int64:
		b.WriteString(strconv.FormatInt(x, 10))
	case float64:
		if math.IsInf(x, 0) || math.IsNaN(x) {
			return &valueError{field, "the value is not a finite number, which Puppet cannot represent"}
		}
		b.WriteString(formatFloat(x))
	case []any:
		b.WriteString("[")
		for j, e := range x {
			if j > 0 {
				b.WriteString(", ")
			}
			if err := writeValue(b, e, fmt.Sprintf("%s[%d]", field, j), depth+1); err != nil {
				return err
			}
		}
		b.WriteString("]")
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteString("{")
		for j, k := range keys {
			if msg := checkText(k); msg != "" {
				return &valueError{field, "a hash key " + msg}
			}
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteString(Quote(k))
			b.WriteString(" => ")
			if err := writeValue(b, x[k], field+"."+k, depth+1); err != nil {
				return err
			}
		}
		b.WriteString("}")
	default:
		return &valueError{field, fmt.Sprintf("a %s cannot be written in a manifest (want a string, number, boolean, undef, array or hash)", puppet.TypeName(x))}
	}
	return nil
}

// formatFloat writes f as a Puppet float literal: always with a fraction
// or an exponent, so that it stays a Float, and without a + in the
// exponent, which Puppet's lexer refuses (1e21, not 1e+21).
func formatFloat(f float64) string {
	s := strings.Replace(strconv.FormatFloat(f, 'g', -1, 64), "e+", "e", 1)
	if !strings.ContainsAny(s, ".e") {
		s += ".0"
	}
	return s
}

// Quote returns s as a Puppet string literal that evaluates to exactly s:
// single-quoted (only \\ and \' are escapes there), or double-quoted with
// escapes when s holds control characters, so that nothing in it is
// interpolated.
func Quote(s string) string {
	control := strings.IndexFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f || r == 0x85 || r == 0x2028 || r == 0x2029 }) >= 0
	var b strings.Builder
	if !control {
		b.WriteByte('\'')
		for _, r := range s {
			if r == '\\' || r == '\'' {
				b.WriteByte('\\')
			}
			b.WriteRune(r)
		}
		b.WriteByte('\'')
		return b.String()
	}
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '\\':
			b.WriteString(`\\`)
		case '"':
			b.WriteString(`\"`)
		case '$':
			b.WriteString(`\$`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			if r < 0x20 || r == 0x7f || r == 0x85 || r == 0x2028 || r == 0x2029 {
				fmt.Fprintf(&b, `\u{%X}`, r)
			} else {
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
	return b.String()
}
