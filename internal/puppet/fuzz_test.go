package puppet

import (
	"testing"
)

// FuzzParseType checks that ParseType never panics, that errors name an
// offset inside the input, that a parsed type's canonical form parses
// to the same canonical form and can check values, and that the type
// without its constraints accepts every value the type does.
func FuzzParseType(f *testing.F) {
	for _, s := range []string{
		"String", "String[1, 2]", "Integer[-1, default]", "Float[0.0, 1.5e3]", "Enum[a, 'b', \"c\"]",
		`Pattern[/\A[a-z]+\z/, '^x']`, "Optional[Variant[Array[String, 1], Hash[String, Data]]]",
		"Struct[{a => Integer, Optional['b'] => String, NotUndef[c] => Any}]", "Tuple[String, Integer, 1, default]",
		"Sensitive[String]", "TargetSpec", "Stdlib::Port", "Integr", "Array[", `Pattern[/(?mi)x\h\Z/]`,
	} {
		f.Add(s)
	}
	values := []any{nil, "x", "", 1.0, 1.5, true, []any{"a", 1.0}, map[string]any{"a": "b"}, 70000.0, "abcdefgh"}
	f.Fuzz(func(t *testing.T, s string) {
		typ, err := ParseType(s)
		if err != nil {
			pe, ok := err.(*ParseError)
			if !ok || pe.Offset < 0 || pe.Offset > len(s) || pe.Msg == "" {
				t.Fatalf("bad error %#v", err)
			}
			return
		}
		canon := typ.String()
		again, err := ParseType(canon)
		if err != nil {
			t.Fatalf("canonical %q of %q does not parse: %v", canon, s, err)
		}
		if again.String() != canon {
			t.Fatalf("canonical form unstable: %q -> %q", canon, again.String())
		}
		for _, v := range values {
			e1, e2 := typ.Check(v), again.Check(v)
			if (e1 == nil) != (e2 == nil) {
				t.Fatalf("%q and %q disagree on %#v: %v / %v", s, canon, v, e1, e2)
			}
			if e1 != nil && e1.Error() == "" {
				t.Fatal("empty error")
			}
			if e1 == nil && Loosen(typ).Check(v) != nil {
				t.Fatalf("%q accepts %#v but its base type %q does not", s, v, Loosen(typ))
			}
		}
		if typ.WantsString() && typ.Check(1.0) == nil {
			t.Fatalf("%q wants a string but accepts a number", s)
		}
		_ = typ.Optional()
	})
}

// FuzzParseExpression checks that ParseExpression and CheckVars never
// panic and that evaluating what they accept does not panic either.
func FuzzParseExpression(f *testing.F) {
	for _, s := range []string{"$a.map |$x| { $x * 2 }", `"a ${b[0].value['k']} $c"`, "if $a { 1 } elsif $b { 2 } else { 3 }",
		"{a => [1, 2.5, 'x'], 'b' => undef}", "$x =~ /^a+$/ and !($y in [1])", "$r.filter |$k, $v| { $v.ok }.join(',')",
		"$a = 1; $b = $a % 3\n$b", "sprintf('%s', length($x))", "echo($a, fail())"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		x, err := ParseExpression("f.pp", 1, src, testFunctions)
		if err != nil {
			return
		}
		if err := x.CheckVars(map[string]bool{"a": true, "b": true}); err != nil {
			return
		}
		// Evaluation must not panic; errors are fine. The language has
		// no loops but over finite collections, so it cannot hang.
		s := NewScope(nil)
		s.Set("a", []any{int64(1), "x", map[string]any{"k": int64(2)}})
		s.Set("b", "str")
		_, _ = x.Eval(s, testHost{})
	})
}
