package puppet

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// j decodes a JSON literal the way task parameters are decoded, keeping
// numbers as json.Number.
func j(t *testing.T, s string) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader([]byte(s)))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("bad test JSON %q: %v", s, err)
	}
	return v
}

func TestTypeCheck(t *testing.T) {
	tests := []struct {
		typ       string
		good, bad []string // JSON values
	}{
		{"String", []string{`""`, `"x"`}, []string{`1`, `null`, `true`, `[]`}},
		{"String[1]", []string{`"a"`}, []string{`""`}},
		{"String[2,3]", []string{`"ab"`, `"abc"`, `"é€"`}, []string{`"a"`, `"abcd"`}},
		{"String[2, default]", []string{`"abcdefgh"`}, []string{`"a"`}},
		{"Integer", []string{`0`, `-5`, `3`, `3.0`, `1e2`, `9007199254740993`}, []string{`1.5`, `"3"`, `null`, `true`}},
		{"Integer[1]", []string{`1`, `100000`}, []string{`0`, `-1`}},
		{"Integer[0]", []string{`0`}, []string{`-1`}},
		{"Integer[1,10]", []string{`1`, `10`}, []string{`0`, `11`}},
		{"Integer[1, 65535]", []string{`22`}, []string{`65536`, `"abc"`}},
		{"Integer[default, 5]", []string{`-100`, `5`}, []string{`6`}},
		{"Integer[-3, -1]", []string{`-2`}, []string{`0`}},
		{"Float", []string{`1.5`, `3`, `-0.0`}, []string{`"1.5"`}},
		{"Float[0.0,1.0]", []string{`0`, `0.5`, `1`}, []string{`1.01`, `-0.1`}},
		{"Float[0.5]", []string{`2.5`}, []string{`0.1`}},
		{"Numeric", []string{`1`, `1.5`}, []string{`"1"`, `null`}},
		{"Boolean", []string{`true`, `false`}, []string{`"true"`, `0`, `null`}},
		{"Enum[a,'b',\"c\"]", []string{`"a"`, `"b"`, `"c"`}, []string{`"d"`, `"A"`, `1`}},
		{"Enum[present, absent, ]", []string{`"present"`}, []string{`"latest"`}},
		{`Enum['it\'s', "x y"]`, []string{`"it's"`, `"x y"`}, []string{`"x"`}},
		{"Pattern[/^a/]", []string{`"abc"`, `"x\nab"`}, []string{`"ba"`, `1`}},
		{`Pattern[/\Aa+\z/]`, []string{`"aaa"`}, []string{`"aab"`, `"aa\n"`, `"b\naa"`}},
		{`Pattern[/\Aa+\Z/]`, []string{`"aa\n"`}, []string{`"aa\nb"`}},
		{`Pattern[/^\h+$/]`, []string{`"00fF"`}, []string{`"xyz"`}},
		{`Pattern[/[\h-]+/]`, []string{`"-a"`}, []string{`"zz"`}},
		{`Pattern[/a\/b/, /^x/]`, []string{`"a/b"`, `"xy"`}, []string{`"ab"`}},
		{`Pattern['^\d+$']`, []string{`"12"`}, []string{`"1a"`}},
		{`Pattern[/(?m)a.b/]`, []string{`"a\nb"`}, []string{`"ab"`}},
		{"Optional[String]", []string{`null`, `"x"`}, []string{`1`}},
		{"Optional[Integer[1]]", []string{`null`, `1`}, []string{`0`}},
		{"NotUndef", []string{`1`, `"x"`}, []string{`null`}},
		{"NotUndef[Optional[String]]", []string{`"x"`}, []string{`null`, `1`}},
		{"Variant[Integer, Enum[auto]]", []string{`3`, `"auto"`}, []string{`"manual"`, `null`}},
		{"Variant[Boolean, Optional[String]]", []string{`true`, `null`, `"x"`}, []string{`1`}},
		{"Array", []string{`[]`, `[1,"a",null]`}, []string{`{}`, `"a"`}},
		{"Array[String]", []string{`[]`, `["a","b"]`}, []string{`["a",1]`, `"a"`}},
		{"Array[String, 1]", []string{`["a"]`}, []string{`[]`}},
		{"Array[Integer,1,2]", []string{`[1]`, `[1,2]`}, []string{`[]`, `[1,2,3]`}},
		{"Array[Array[Integer[0]]]", []string{`[[0],[1,2]]`}, []string{`[[0],[-1]]`}},
		{"Hash", []string{`{}`, `{"a":1}`}, []string{`[]`}},
		{"Hash[String, Integer]", []string{`{"a":1}`}, []string{`{"a":"1"}`}},
		{"Hash[Pattern[/^a/], Any]", []string{`{"ab":null}`}, []string{`{"b":1}`}},
		{"Hash[String, Integer, 1, 2]", []string{`{"a":1}`}, []string{`{}`, `{"a":1,"b":2,"c":3}`}},
		{"Hash[String, Optional[Array[Boolean]]]", []string{`{"a":null,"b":[true]}`}, []string{`{"a":[1]}`}},
		{"Struct[{a => Integer, Optional[b] => String, 'c' => Optional[Boolean]}]",
			[]string{`{"a":1}`, `{"a":1,"b":"x","c":true}`, `{"a":1,"b":null}`},
			[]string{`{}`, `{"a":"1"}`, `{"a":1,"b":2}`, `{"a":1,"d":1}`, `[]`}},
		{`Struct[{"x" => Struct[{y => Array[Integer]}],}]`, []string{`{"x":{"y":[1]}}`}, []string{`{"x":{"y":["1"]}}`, `{"x":{}}`}},
		{`Struct[{NotUndef['n'] => Optional[String]}]`, []string{`{"n":"x"}`}, []string{`{}`, `{"n":null}`}},
		{"Tuple[String, Integer]", []string{`["a",1]`}, []string{`["a"]`, `[1,"a"]`, `["a",1,2]`}},
		{"Tuple[String, Integer, 1, 2]", []string{`["a"]`, `["a",1]`}, []string{`[]`, `["a","b"]`, `["a",1,2]`}},
		{"Tuple[String, Integer, 1, default]", []string{`["a"]`, `["a",1,2,3]`}, []string{`[]`, `["a",1,"b"]`}},
		{"Tuple[String, Integer, 1, 3]", []string{`["a",1,2]`}, []string{`["a",1,2,3]`}},
		{"Data", []string{`null`, `1`, `"x"`, `[{"a":[1]}]`}, nil},
		{"Any", []string{`null`, `{}`}, nil},
		{"Scalar", []string{`1`, `"x"`, `true`}, []string{`null`, `[]`, `{}`}},
		{"Undef", []string{`null`}, []string{`""`}},
		{"Sensitive[String[8]]", []string{`"longenough"`}, []string{`"short"`, `1`}},
		{"Optional[Sensitive[String]]", []string{`null`, `"x"`}, []string{`1`}},
		{"TargetSpec", []string{`"web1"`, `["a", ["b"]]`, `[]`}, []string{`""`, `1`, `[1]`, `{}`}},
		{"Stdlib::Port", []string{`22`}, []string{`70000`}},
		{"Stdlib::Absolutepath", []string{`"/etc/x"`, `"C:\\x"`}, []string{`"etc"`}},
		{" Optional [ Array [ Variant [ String , Integer ] , 1 ] ] ", []string{`[1,"a"]`, `null`}, []string{`[]`, `[true]`}},
	}
	for _, tc := range tests {
		typ, err := ParseType(tc.typ)
		if err != nil {
			t.Errorf("ParseType(%q): %v", tc.typ, err)
			continue
		}
		for _, g := range tc.good {
			if err := typ.Check(j(t, g)); err != nil {
				t.Errorf("%s.Check(%s) = %v, want ok", tc.typ, g, err)
			}
		}
		for _, b := range tc.bad {
			if err := typ.Check(j(t, b)); err == nil {
				t.Errorf("%s.Check(%s) = ok, want error", tc.typ, b)
			}
		}
		// The canonical form parses back to an equivalent type.
		again, err := ParseType(typ.String())
		if err != nil || again.String() != typ.String() {
			t.Errorf("round trip of %q via %q: %v %v", tc.typ, typ.String(), again, err)
		}
	}
}

func TestTypeCheckGoValues(t *testing.T) {
	i, _ := ParseType("Integer[1, 3]")
	for _, v := range []any{float64(3), 3.0, 2, int64(1), json.Number("3.0")} {
		if err := i.Check(v); err != nil {
			t.Errorf("Integer.Check(%#v): %v", v, err)
		}
	}
	for _, v := range []any{1.5, json.Number("1.5"), 1e30, json.Number("1e400")} {
		if err := i.Check(v); err == nil {
			t.Errorf("Integer.Check(%#v) accepted", v)
		}
	}
}

func TestTypeString(t *testing.T) {
	for in, want := range map[string]string{
		"Integer[1,65535]":                         "Integer[1, 65535]",
		"Integer[1, default]":                      "Integer[1]",
		"Integer[default,default]":                 "Integer",
		"Float[0,1]":                               "Float[0.0, 1.0]",
		"String[1,default]":                        "String[1]",
		"Enum[a, \"b\"]":                           "Enum['a', 'b']",
		"Pattern[/a\\/b/]":                         "Pattern[/a\\/b/]",
		"Array[String,1]":                          "Array[String, 1]",
		"Array[1, 2]":                              "Array[Any, 1, 2]",
		"Hash[String,Data]":                        "Hash[String, Data]",
		"Struct[{a=>String,Optional[b]=>Integer}]": "Struct[{'a' => String, Optional['b'] => Integer}]",
		"Tuple[String,Integer,1]":                  "Tuple[String, Integer, 1, 2]",
		"Tuple[default]":                           "Tuple[0, 0]",
		"Tuple[1]":                                 "Tuple[1, 1]",
		"Tuple[0, default]":                        "Tuple",
		"Optional[Sensitive[String]]":              "Optional[Sensitive[String]]",
		"Variant[String,Integer,]":                 "Variant[String, Integer]",
		"stdlib::port":                             "stdlib::port",
	} {
		typ, err := ParseType(in)
		if err != nil {
			t.Errorf("ParseType(%q): %v", in, err)
		} else if typ.String() != want {
			t.Errorf("ParseType(%q).String() = %q, want %q", in, typ.String(), want)
		}
	}
}

func TestTypeFlags(t *testing.T) {
	for _, tc := range []struct {
		typ           string
		optional, str bool
	}{
		{"String", false, true}, {"Optional[String]", true, true}, {"Enum[a]", false, true},
		{"Pattern[/x/]", false, true}, {"Variant[String, Enum[a]]", false, true},
		{"Variant[String, Integer]", false, false}, {"Integer", false, false}, {"Any", true, false},
		{"Data", true, false}, {"Undef", true, false}, {"NotUndef[Any]", false, false},
		{"Variant[Integer, Undef]", true, false}, {"Sensitive[String]", false, true},
		{"Sensitive[Optional[String]]", true, true}, {"Array[String]", false, false},
		{"Struct[{a => String}]", false, false}, {"Boolean", false, false}, {"TargetSpec", false, false},
	} {
		typ, err := ParseType(tc.typ)
		if err != nil {
			t.Fatalf("ParseType(%q): %v", tc.typ, err)
		}
		if typ.Optional() != tc.optional || typ.WantsString() != tc.str {
			t.Errorf("%s: Optional=%v WantsString=%v, want %v %v", tc.typ, typ.Optional(), typ.WantsString(), tc.optional, tc.str)
		}
	}
}

func TestTypeCheckMessages(t *testing.T) {
	for _, tc := range []struct{ typ, val, want string }{
		{"Integer[1, 65535]", `"abc"`, "expects an Integer[1, 65535] value, got String"},
		{"Integer", `1.5`, "expects an Integer value, got Float"},
		{"String[1]", `null`, "expects a String[1] value, got Undef"},
		{"Array[String]", `["a", 1]`, "index 1 expects a String value, got Integer"},
		{"Hash[String, Array[Integer]]", `{"k": [1, true]}`, `entry "k" index 1 expects an Integer value, got Boolean`},
		{"Struct[{a => Integer}]", `{}`, `expects a value for key "a"`},
		{"Struct[{a => Integer}]", `{"a": 1, "b": 2}`, `has unrecognized key "b"`},
		{"Array[String, 2]", `["a"]`, "expects size to be at least 2, got 1"},
		{"Tuple[String, Integer]", `["a"]`, "expects size to be 2, got 1"},
		{"Enum[a, b]", `"c"`, "expects an Enum['a', 'b'] value, got String"},
		{"Optional[Integer]", `"x"`, "expects an Integer value, got String"},
		{"Integer[1, 10]", `20`, "expects an Integer[1, 10] value, got Integer (out of range)"},
		{"Float[0, 1]", `-0.5`, "expects a Float[0.0, 1.0] value, got Float (out of range)"},
		{"String[2]", `"a"`, "expects a String[2] value, got String (too short)"},
		{"String[0, 1]", `"ab"`, "expects a String[0, 1] value, got String (too long)"},
		{"Pattern[/^a/]", `"b"`, "expects a Pattern[/^a/] value, got String (does not match)"},
		{"Stdlib::Port", `70000`, "expects a Stdlib::Port value, got Integer (out of range)"},
		{"Stdlib::Port", `"22"`, "expects a Stdlib::Port value, got String"},
		{"Array[Integer[1, 2]]", `[3]`, "index 0 expects an Integer[1, 2] value, got Integer (out of range)"},
	} {
		typ, err := ParseType(tc.typ)
		if err != nil {
			t.Fatal(err)
		}
		err = typ.Check(j(t, tc.val))
		if err == nil || err.Error() != tc.want {
			t.Errorf("%s.Check(%s) = %v, want %q", tc.typ, tc.val, err, tc.want)
		}
	}
}

func TestParseTypeErrors(t *testing.T) {
	for _, tc := range []struct{ typ, want string }{
		{"Integr", `unknown type "Integr" at offset 0 (did you mean "Integer"?)`},
		{"Optional[  Strng]", `unknown type "Strng" at offset 11 (did you mean "String"?)`},
		{"string", `unknown type "string" at offset 0 (did you mean "String"?)`},
		{"Frobnicator", `unknown type "Frobnicator" at offset 0`},
		{"", "expected a type name, found end of input at offset 0"},
		{"Integer[", "expected a number, found end of input at offset 8"},
		{"Integer[1", `expected "," or "]", found end of input at offset 9`},
		{"Integer[a]", `expected a number, found "a" at offset 8`},
		{"Integer[1.5]", `invalid integer "1.5" at offset 8`},
		{"Integer[10, 1]", "range minimum 10 is greater than its maximum 1 at offset 0"},
		{"Integer[1,2,3]", "expected at most 2 range parameters at offset 12"},
		{"String[]", `expected a number, found "]" at offset 7`},
		{"Pattern[/(/]", "invalid regexp /(/: missing closing ): `(?m)(` at offset 8"},
		{"Pattern[/abc]", "unterminated regexp at offset 8"},
		{"Enum['a]", "unterminated string at offset 5"},
		{"Enum[1]", `expected a quoted string, found "1" at offset 5`},
		{"Boolean[1]", "Boolean takes no parameters at offset 7"},
		{"Optional[String, Integer]", "Optional takes one parameter at offset 17"},
		{"Variant[]", `expected a type name, found "]" at offset 8`},
		{"Hash[String]", "Hash needs both a key and a value type at offset 0"},
		{"Array[String, Integer]", `expected a size in Array, found "I" at offset 14`},
		{"Struct[{a => String, a => Integer}]", `duplicate Struct key "a" at offset 21`},
		{"Struct[{a String}]", `expected "=>", found "S" at offset 10`},
		{"Struct[a => String]", `expected '{', found "a" at offset 7`},
		{"String Integer", `unexpected "I" after the type at offset 7`},
		{strings.Repeat("Array[", 60) + "String" + strings.Repeat("]", 60), "type nested too deeply at offset 300"},
	} {
		_, err := ParseType(tc.typ)
		if err == nil || err.Error() != tc.want {
			t.Errorf("ParseType(%q) = %v, want %q", tc.typ, err, tc.want)
		}
	}
}
