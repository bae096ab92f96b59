package puppet

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Type is a parsed Puppet data type, as written in a task parameter's "type".
type Type interface {
	// Check reports whether v, a value as decoded from JSON (string,
	// float64 or json.Number, bool, nil, []any, map[string]any), is an
	// instance of the type. A mismatch is a *TypeError.
	Check(v any) error
	// String returns the type in Puppet's canonical spelling.
	String() string
	// Optional reports whether the type accepts undef (JSON null), which
	// makes a parameter without a default optional.
	Optional() bool
	// WantsString reports whether only string values can match, so that a
	// k=v value on the command line is best kept as written.
	WantsString() bool
}

// TypeError is a value that does not match a type.
type TypeError struct {
	// Path locates the mismatch inside the value, outermost first, for
	// example `index 1` or `entry "port"`.
	Path []string
	// Expected is the type that did not match.
	Expected Type
	// Value is the offending value. Error never prints it.
	Value any
	// Msg, when set, replaces the "expects ... value" wording, for example
	// `expects a value for key "name"`.
	Msg string
	// Reason, when set, says which constraint of Expected the value breaks
	// although it has the right base type: "out of range" for numbers,
	// "too short" or "too long" for strings, "does not match" for patterns.
	Reason string
}

// Error reads like Puppet's: `expects an Integer[1, 65535] value, got String`.
func (e *TypeError) Error() string { return e.describe(false) }

// ErrorWithValue is Error in the shorter form that shows the value:
// `expects Integer[1, 65535], got String "abc"`.
func (e *TypeError) ErrorWithValue() string { return e.describe(true) }

// describe renders the mismatch; with withValue it uses the shorter
// `expects T, got String "abc"` form that shows the value.
func (e *TypeError) describe(withValue bool) string {
	var b strings.Builder
	for _, p := range e.Path {
		b.WriteString(p)
		b.WriteByte(' ')
	}
	switch {
	case e.Msg != "":
		b.WriteString(e.Msg)
	case withValue && e.Reason != "":
		fmt.Fprintf(&b, "expects %s, got %s (%s)", e.Expected, shortJSON(e.Value), e.Reason)
	case withValue:
		fmt.Fprintf(&b, "expects %s, got %s %s", e.Expected, ValueTypeName(e.Value), shortJSON(e.Value))
	default:
		s := e.Expected.String()
		fmt.Fprintf(&b, "expects %s %s value, got %s", article(s), s, ValueTypeName(e.Value))
		if e.Reason != "" {
			fmt.Fprintf(&b, " (%s)", e.Reason)
		}
	}
	return b.String()
}

func article(s string) string {
	if s != "" && strings.ContainsRune("AEIOU", rune(s[0])) {
		return "an"
	}
	return "a"
}

func shortJSON(v any) string {
	s := CompactJSON(v)
	if utf8.RuneCountInString(s) > 60 {
		r := []rune(s)
		s = string(r[:57]) + "..."
	}
	return s
}

func mismatch(t Type, v any) error { return &TypeError{Expected: t, Value: v} }

// broken is a value of the right base type that breaks a constraint of t.
func broken(t Type, v any, reason string) error {
	return &TypeError{Expected: t, Value: v, Reason: reason}
}

// within prepends a path element to a nested mismatch.
func within(err error, elem string) error {
	if te, ok := err.(*TypeError); ok {
		te.Path = append([]string{elem}, te.Path...)
		return te
	}
	return err
}

// ValueTypeName names the Puppet type of a JSON value: String, Integer,
// Float, Boolean, Undef, Array or Hash.
func ValueTypeName(v any) string {
	switch x := v.(type) {
	case nil:
		return "Undef"
	case string:
		return "String"
	case bool:
		return "Boolean"
	case []any:
		return "Array"
	case map[string]any:
		return "Hash"
	case json.Number:
		if _, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return "Integer"
		}
		return "Float"
	case float64:
		if _, ok := AsInt(x); ok && !strings.ContainsAny(strconv.FormatFloat(x, 'g', -1, 64), ".e") {
			return "Integer"
		}
		return "Float"
	case float32, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		if _, ok := AsInt(x); ok {
			return "Integer"
		}
		return "Float"
	}
	return fmt.Sprintf("%T", v)
}

// AsInt returns v, a number as decoded from JSON or a Go integer, as an
// integer when it is integral and in range: 3 and 3.0 are integers, 1.5 is
// not.
func AsInt(v any) (int64, bool) {
	var f float64
	switch x := v.(type) {
	case json.Number:
		if n, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return n, true
		}
		g, err := strconv.ParseFloat(string(x), 64)
		if err != nil {
			return 0, false
		}
		f = g
	case float64:
		f = x
	case float32:
		f = float64(x)
	case int:
		return int64(x), true
	case int8:
		return int64(x), true
	case int16:
		return int64(x), true
	case int32:
		return int64(x), true
	case int64:
		return x, true
	case uint8:
		return int64(x), true
	case uint16:
		return int64(x), true
	case uint32:
		return int64(x), true
	case uint:
		if uint64(x) <= math.MaxInt64 {
			return int64(x), true
		}
		return 0, false
	case uint64:
		if x <= math.MaxInt64 {
			return int64(x), true
		}
		return 0, false
	default:
		return 0, false
	}
	if f != math.Trunc(f) || f < -9.223372036854775808e18 || f >= 9.223372036854775808e18 {
		return 0, false
	}
	return int64(f), true
}

// asFloat returns v as a float when it is a finite number.
func asFloat(v any) (float64, bool) {
	var f float64
	switch x := v.(type) {
	case json.Number:
		g, err := strconv.ParseFloat(string(x), 64)
		if err != nil {
			return 0, false
		}
		f = g
	case float64:
		f = x
	case float32:
		f = float64(x)
	default:
		n, ok := AsInt(v)
		return float64(n), ok
	}
	return f, !math.IsInf(f, 0) && !math.IsNaN(f)
}

// simpleT is a type without parameters, checked by a predicate.
type simpleT struct {
	name   string
	undef  bool
	str    bool
	accept func(v any) bool
}

func (t *simpleT) Check(v any) error {
	if t.accept(v) {
		return nil
	}
	return mismatch(t, v)
}
func (t *simpleT) String() string    { return t.name }
func (t *simpleT) Optional() bool    { return t.undef }
func (t *simpleT) WantsString() bool { return t.str }
func isString(v any) bool            { _, ok := v.(string); return ok }
func isBool(v any) bool              { _, ok := v.(bool); return ok }
func isNumber(v any) bool            { _, ok := asFloat(v); return ok }
func isScalar(v any) bool            { return isString(v) || isBool(v) || isNumber(v) }
func isUndef(v any) bool             { return v == nil }
func anyValue(any) bool              { return true }
func isArray(v any) bool             { _, ok := v.([]any); return ok }
func isHash(v any) bool              { _, ok := v.(map[string]any); return ok }
func newSimple(name string, undef, str bool, f func(any) bool) Type {
	return &simpleT{name: name, undef: undef, str: str, accept: f}
}

func isData(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case []any:
		for _, e := range x {
			if !isData(e) {
				return false
			}
		}
		return true
	case map[string]any:
		for _, e := range x {
			if !isData(e) {
				return false
			}
		}
		return true
	}
	return isScalar(v)
}

func isTargetSpec(v any) bool {
	switch x := v.(type) {
	case string:
		return x != ""
	case []any:
		for _, e := range x {
			if !isTargetSpec(e) {
				return false
			}
		}
		return true
	}
	return false
}

// stringT is String or String[min, max] (a length in characters).
type stringT struct{ min, max int64 }

func (t *stringT) Check(v any) error {
	s, ok := v.(string)
	if !ok {
		return mismatch(t, v)
	}
	switch n := int64(utf8.RuneCountInString(s)); {
	case n < t.min:
		return broken(t, v, "too short")
	case n > t.max:
		return broken(t, v, "too long")
	}
	return nil
}
func (t *stringT) String() string    { return "String" + intRange(t.min, t.max, 0, math.MaxInt64) }
func (t *stringT) Optional() bool    { return false }
func (t *stringT) WantsString() bool { return true }

// intRange renders "[min, max]" the way Puppet does, omitting defaults.
func intRange(min, max, dmin, dmax int64) string {
	switch {
	case min == dmin && max == dmax:
		return ""
	case max == dmax:
		return fmt.Sprintf("[%d]", min)
	case min == dmin && dmin == math.MinInt64:
		return fmt.Sprintf("[default, %d]", max)
	}
	return fmt.Sprintf("[%d, %d]", min, max)
}

// integerT is Integer[min, max].
type integerT struct{ min, max int64 }

func (t *integerT) Check(v any) error {
	n, ok := AsInt(v)
	return checkRange(t, v, n, ok, t.min, t.max)
}

// checkRange checks n, v as a number (ok says whether it is one of the
// right kind), against the range [min, max] of t.
func checkRange[N int64 | float64](t Type, v any, n N, ok bool, min, max N) error {
	if !ok {
		return mismatch(t, v)
	}
	if n < min || n > max {
		return broken(t, v, "out of range")
	}
	return nil
}
func (t *integerT) String() string {
	return "Integer" + intRange(t.min, t.max, math.MinInt64, math.MaxInt64)
}
func (t *integerT) Optional() bool    { return false }
func (t *integerT) WantsString() bool { return false }

// floatT is Float[min, max]. Unlike Puppet it also accepts integral numbers,
// since JSON does not keep 3 and 3.0 apart.
type floatT struct{ min, max float64 }

func (t *floatT) Check(v any) error {
	f, ok := asFloat(v)
	return checkRange(t, v, f, ok, t.min, t.max)
}
func (t *floatT) String() string {
	lo, hi := math.IsInf(t.min, -1), math.IsInf(t.max, 1)
	switch {
	case lo && hi:
		return "Float"
	case hi:
		return "Float[" + fmtFloat(t.min) + "]"
	case lo:
		return "Float[default, " + fmtFloat(t.max) + "]"
	}
	return "Float[" + fmtFloat(t.min) + ", " + fmtFloat(t.max) + "]"
}
func (t *floatT) Optional() bool    { return false }
func (t *floatT) WantsString() bool { return false }

func fmtFloat(f float64) string {
	s := strconv.FormatFloat(f, 'g', -1, 64)
	if !strings.ContainsAny(s, ".eIN") {
		s += ".0"
	}
	return s
}

// enumT is Enum['a', 'b']; without values it matches any string.
type enumT struct{ values []string }

func (t *enumT) Check(v any) error {
	s, ok := v.(string)
	if !ok {
		return mismatch(t, v)
	}
	if len(t.values) == 0 {
		return nil
	}
	for _, e := range t.values {
		if s == e {
			return nil
		}
	}
	return mismatch(t, v)
}
func (t *enumT) String() string {
	if len(t.values) == 0 {
		return "Enum"
	}
	q := make([]string, len(t.values))
	for i, e := range t.values {
		q[i] = quote(e)
	}
	return "Enum[" + strings.Join(q, ", ") + "]"
}
func (t *enumT) Optional() bool    { return false }
func (t *enumT) WantsString() bool { return true }

// quote renders s as a Puppet single-quoted string.
func quote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// patternT is Pattern[/re/, ...]: a string matching any of the regexps.
type patternT struct {
	src []string
	res []*regexp.Regexp
}

func (t *patternT) Check(v any) error {
	s, ok := v.(string)
	if !ok {
		return mismatch(t, v)
	}
	if len(t.res) == 0 {
		return nil
	}
	for _, re := range t.res {
		if re.MatchString(s) {
			return nil
		}
	}
	return broken(t, v, "does not match")
}
func (t *patternT) String() string {
	if len(t.src) == 0 {
		return "Pattern"
	}
	q := make([]string, len(t.src))
	for i, s := range t.src {
		q[i] = "/" + strings.ReplaceAll(s, "/", `\/`) + "/"
	}
	return "Pattern[" + strings.Join(q, ", ") + "]"
}
func (t *patternT) Optional() bool    { return false }
func (t *patternT) WantsString() bool { return true }

// wrapT is Optional[T], NotUndef[T] or Sensitive[T].
type wrapT struct {
	name string
	t    Type
}

func (t *wrapT) Check(v any) error {
	switch {
	case v == nil && t.name == "Optional":
		return nil
	case v == nil && t.name == "NotUndef":
		return mismatch(t, v)
	case t.t == nil:
		return nil
	}
	return t.t.Check(v)
}
func (t *wrapT) String() string {
	if t.t == nil {
		return t.name
	}
	return t.name + "[" + t.t.String() + "]"
}
func (t *wrapT) Optional() bool {
	switch {
	case t.name == "Optional":
		return true
	case t.name == "NotUndef":
		return false
	case t.t == nil:
		return true
	}
	return t.t.Optional()
}
func (t *wrapT) WantsString() bool { return t.t != nil && t.t.WantsString() }

// variantT is Variant[A, B, ...].
type variantT struct{ ts []Type }

func (t *variantT) Check(v any) error {
	for _, x := range t.ts {
		if x.Check(v) == nil {
			return nil
		}
	}
	return mismatch(t, v)
}
func (t *variantT) String() string { return "Variant[" + joinTypes(t.ts) + "]" }
func (t *variantT) Optional() bool {
	for _, x := range t.ts {
		if x.Optional() {
			return true
		}
	}
	return false
}
func (t *variantT) WantsString() bool {
	for _, x := range t.ts {
		if !x.WantsString() {
			return false
		}
	}
	return true
}

func joinTypes(ts []Type) string {
	s := make([]string, len(ts))
	for i, t := range ts {
		s[i] = t.String()
	}
	return strings.Join(s, ", ")
}

// AnyType returns the type Any, which a task parameter without a type has.
func AnyType() Type { return simpleTypes["Any"] }

var simpleTypes = map[string]Type{
	"Any":                 newSimple("Any", true, false, anyValue),
	"Data":                newSimple("Data", true, false, isData),
	"RichData":            newSimple("RichData", true, false, isData),
	"Scalar":              newSimple("Scalar", false, false, isScalar),
	"ScalarData":          newSimple("ScalarData", false, false, isScalar),
	"Undef":               newSimple("Undef", true, false, isUndef),
	"Numeric":             newSimple("Numeric", false, false, isNumber),
	"Boolean":             newSimple("Boolean", false, false, isBool),
	"Collection":          newSimple("Collection", false, false, func(v any) bool { return isArray(v) || isHash(v) }),
	"TargetSpec":          newSimple("TargetSpec", false, false, isTargetSpec),
	"Boltlib::TargetSpec": newSimple("Boltlib::TargetSpec", false, false, isTargetSpec),
}

// aliases are common type aliases from puppetlabs-stdlib, keyed in lower
// case, so that tasks using them load without stdlib on the module path.
var aliases = map[string]string{
	"stdlib::port":            "Integer[0, 65535]",
	"stdlib::port::user":      "Integer[1024, 49151]",
	"stdlib::unixpath":        `Pattern[/\A\/([^\n\/\0]+\/*)*\z/]`,
	"stdlib::windowspath":     `Pattern[/\A(([a-zA-Z]:[\\\/])|([\\\/][\\\/][^\\\/]+[\\\/][^\\\/]+)|([\\\/][\\\/]\?[\\\/][^\\\/]+)).*\z/]`,
	"stdlib::absolutepath":    `Variant[Pattern[/\A\/([^\n\/\0]+\/*)*\z/], Pattern[/\A(([a-zA-Z]:[\\\/])|([\\\/][\\\/][^\\\/]+[\\\/][^\\\/]+)|([\\\/][\\\/]\?[\\\/][^\\\/]+)).*\z/]]`,
	"stdlib::httpurl":         `Pattern[/(?i:\Ahttps?:\/\/.*\z)/]`,
	"stdlib::fqdn":            `Pattern[/\A(([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9\-]*[a-zA-Z0-9])\.)*([A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9\-]*[A-Za-z0-9])\z/]`,
	"stdlib::ensure::service": "Enum['stopped', 'running']",
}

// suggestType returns `did you mean "X"?` for a misspelt type name.
func suggestType(name string) string {
	names := []string{"String", "Integer", "Float", "Numeric", "Boolean", "Enum", "Pattern", "Optional",
		"NotUndef", "Sensitive", "Variant", "Array", "Hash", "Struct", "Tuple"}
	for n := range simpleTypes {
		names = append(names, n)
	}
	if best := Closest(name, names); best != "" {
		return fmt.Sprintf("did you mean %q?", best)
	}
	return ""
}
