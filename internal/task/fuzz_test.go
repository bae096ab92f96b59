package task

import (
	"strings"
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
			if e1 == nil && loosen(typ).Check(v) != nil {
				t.Fatalf("%q accepts %#v but its base type %q does not", s, v, loosen(typ))
			}
		}
		if typ.WantsString() && typ.Check(1.0) == nil {
			t.Fatalf("%q wants a string but accepts a number", s)
		}
		_ = typ.Optional()
	})
}

// FuzzParseMetadata checks that ParseMetadata never panics, that errors
// name the file, and that parsed parameters are usable.
func FuzzParseMetadata(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"description": "x", "parameters": {"a": {"type": "String", "default": "d", "sensitive": true}}}`,
		`{"implementations": [{"name": "a.sh", "requirements": ["shell"], "files": ["m/files/x"]}], "files": []}`,
		`{"input_method": "stdin", "private": true, "supports_noop": true, "extensions": {"x": {}}, "zzz": 1}`,
		`{"parameters": {"p": {"type": "Integr"}}}`, `[`, `{"a":`, "{\n\"parameters\": {\"Bad\": {}}}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		md, warns, err := ParseMetadata("f.json", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f.json") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		for _, w := range warns {
			if !strings.HasPrefix(w, "f.json") {
				t.Fatalf("warning does not name the file: %q", w)
			}
		}
		if len(md.ParamOrder) != len(md.Parameters) {
			t.Fatalf("order %v vs %d parameters", md.ParamOrder, len(md.Parameters))
		}
		for _, p := range md.Parameters {
			if p.Type == nil {
				t.Fatal("nil type")
			}
		}
		params := map[string]any{}
		for name, p := range md.Parameters {
			if p.HasDefault {
				params[name] = p.Default
			}
		}
		_, _ = md.Validate("m::t", params)
		_ = md.Redact(params)
		_ = EnvVars(params)
	})
}
