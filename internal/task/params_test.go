package task

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/muster-run/muster/internal/puppet"
)

func testMetadata(t *testing.T) *Metadata {
	t.Helper()
	md, _, err := ParseMetadata("t.json", []byte(`{"parameters": {
		"name": {"type": "String"},
		"port": {"type": "Integer[1, 65535]"},
		"count": {"type": "Integer", "default": 2},
		"tags": {"type": "Optional[Array[String]]"},
		"mode": {"type": "Enum[fast, slow]", "default": "fast"},
		"opts": {"type": "Hash[String, Integer]", "default": {"a": 1}},
		"password": {"type": "String[8]", "sensitive": true},
		"key": {"type": "Optional[Sensitive[Struct[{user => String}]]]"},
		"flag": {"type": "Variant[Boolean, Integer]"}
	}}`))
	if err != nil {
		t.Fatal(err)
	}
	return md
}

func TestParseCLIParams(t *testing.T) {
	md := testMetadata(t)
	got, err := ParseCLIParams([]string{
		"name=123", "port=22", "tags=[\"a\",\"b\"]", "mode=slow", "flag=true", "other={\"x\": 1}",
		"raw=not json", "eq=a=b", "empty=", `quoted="q"`, "nullish=null", "port2=3.0",
	}, "", nil, md)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"name": "123", "port": json.Number("22"), "tags": []any{"a", "b"}, "mode": "slow", "flag": true,
		"other": map[string]any{"x": json.Number("1")}, "raw": "not json", "eq": "a=b", "empty": "",
		"quoted": "q", "nullish": nil, "port2": json.Number("3.0"),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	// A value that parses as JSON but does not match the type stays a string.
	got, _ = ParseCLIParams([]string{"port=\"22\"", "tags=[1]", "name=\"x\""}, "", nil, md)
	if diff := cmp.Diff(map[string]any{"port": `"22"`, "tags": "[1]", "name": "x"}, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	// Without metadata, JSON-first for everything.
	got, _ = ParseCLIParams([]string{"n=1", "s=abc"}, "", nil, nil)
	if diff := cmp.Diff(map[string]any{"n": json.Number("1"), "s": "abc"}, got); diff != "" {
		t.Error(diff)
	}
}

func TestParseCLIParamsFlag(t *testing.T) {
	file := filepath.Join(t.TempDir(), "p.json")
	if err := os.WriteFile(file, []byte(`{"name": "f"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		flag, stdin string
		want        map[string]any
		err         string
	}{
		{flag: `{"name": "x", "port": 22}`, want: map[string]any{"name": "x", "port": json.Number("22")}},
		{flag: "@" + file, want: map[string]any{"name": "f"}},
		{flag: "-", stdin: ` {"a": [true]} `, want: map[string]any{"a": []any{true}}},
		{flag: "@" + file + ".missing", err: "--params file " + file + ".missing: open"},
		{flag: `{"a": 1`, err: "--params: invalid JSON: unexpected EOF"},
		{flag: `[1]`, err: "--params: expected a JSON object, got an array"},
		{flag: `{} {}`, err: "--params: invalid JSON: unexpected data after the JSON value"},
		{flag: "-", stdin: "nope", err: "--params from standard input: invalid JSON"},
	} {
		got, err := ParseCLIParams(nil, tc.flag, strings.NewReader(tc.stdin), nil)
		if tc.err != "" {
			if err == nil || !strings.HasPrefix(err.Error(), tc.err) {
				t.Errorf("%q: err %v, want %q", tc.flag, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.flag, err)
		} else if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%q: %s", tc.flag, diff)
		}
	}
	if _, err := ParseCLIParams([]string{"a=1"}, "{}", nil, nil); err == nil || !strings.Contains(err.Error(), "not both") {
		t.Errorf("mixing: %v", err)
	}
	if _, err := ParseCLIParams([]string{"novalue"}, "", nil, nil); err == nil || err.Error() != `invalid parameter "novalue": expected key=value` {
		t.Errorf("no =: %v", err)
	}
	if _, err := ParseCLIParams([]string{"=v"}, "", nil, nil); err == nil {
		t.Error("empty key accepted")
	}
}

func TestValidate(t *testing.T) {
	md := testMetadata(t)
	out, err := md.Validate("m::t", map[string]any{
		"name": "x", "port": json.Number("22"), "password": "12345678", "mode": nil, "flag": 1.0,
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"name": "x", "port": json.Number("22"), "password": "12345678", "mode": "fast",
		"count": json.Number("2"), "opts": map[string]any{"a": json.Number("1")}, "flag": 1.0}
	if diff := cmp.Diff(want, out); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	out["opts"].(map[string]any)["a"] = 5 // defaults are copied
	if md.Parameters["opts"].Default.(map[string]any)["a"] != json.Number("1") {
		t.Error("default was shared")
	}

	_, err = md.Validate("m::t", map[string]any{
		"port": "abc", "tags": []any{"a", 1.0}, "mode": "medium", "password": "hunter2-secret-but-short"[:7],
		"key": map[string]any{"user": 1.0, "secretkey": "topsecret"}, "_noop": true, "porrt": 1.0, "colour": "red",
	})
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("err = %v", err)
	}
	wantMsg := `invalid parameters for task m::t (10 problems):
  - parameter "_noop" is reserved: names starting with _ are metaparameters set by muster
  - unknown parameter "colour"
  - parameter "flag" is required (Variant[Boolean, Integer])
  - parameter "key": expects Optional[Sensitive[Struct[{'user' => String}]]], got Hash (sensitive value redacted)
  - parameter "mode": expects Enum['fast', 'slow'], got String "medium"
  - parameter "name" is required (String)
  - parameter "password": expects String[8], got String (sensitive value redacted)
  - unknown parameter "porrt" (did you mean "port"?)
  - parameter "port": expects Integer[1, 65535], got String "abc"
  - parameter "tags": index 1 expects String, got Integer 1`
	if err.Error() != wantMsg {
		t.Errorf("got:\n%s\nwant:\n%s", err, wantMsg)
	}
	for _, secret := range []string{"hunter2", "topsecret", "secretkey"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error leaks %q", secret)
		}
	}
}

func TestValidateNoParameters(t *testing.T) {
	var nilMD *Metadata
	for _, md := range []*Metadata{nilMD, {}} {
		out, err := md.Validate("m::t", map[string]any{"anything": 1.0})
		if err != nil || out["anything"] != 1.0 {
			t.Errorf("%v %v", out, err)
		}
		if _, err := md.Validate("m::t", map[string]any{"_task": "x"}); err == nil {
			t.Error("reserved key accepted")
		}
	}
	empty := &Metadata{Parameters: map[string]*Param{}}
	if _, err := empty.Validate("m::t", map[string]any{"x": 1.0}); err == nil || !strings.Contains(err.Error(), "1 problem)") {
		t.Errorf("declared-empty parameters: %v", err)
	}
}

func TestRedact(t *testing.T) {
	md := testMetadata(t)
	in := map[string]any{"name": "x", "password": "secretpw", "key": nil}
	got := md.Redact(in)
	want := map[string]any{"name": "x", "password": Redacted, "key": Redacted}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Error(diff)
	}
	if in["password"] != "secretpw" {
		t.Error("Redact modified its input")
	}
	if diff := cmp.Diff([]string{"secretpw"}, md.SensitiveValues(in)); diff != "" {
		t.Error(diff)
	}
	var nilMD *Metadata
	if got := nilMD.Redact(in); got["password"] != "secretpw" {
		t.Error("nil metadata redacted")
	}
}

func TestInputEncoding(t *testing.T) {
	params := map[string]any{
		"s": "a b'c", "n": json.Number("3.0"), "f": 1.5, "b": true, "z": nil,
		"a": []any{1.0, "x"}, "h": map[string]any{"k": "<v>"}, "_task": "m::t",
	}
	want := map[string]string{
		"PT_s": "a b'c", "PT_n": "3.0", "PT_f": "1.5", "PT_b": "true", "PT_z": "null",
		"PT_a": `[1,"x"]`, "PT_h": `{"k":"<v>"}`, "PT__task": "m::t",
	}
	if diff := cmp.Diff(want, EnvVars(params)); diff != "" {
		t.Error(diff)
	}
	wantJSON := `{"_task":"m::t","a":[1,"x"],"b":true,"f":1.5,"h":{"k":"<v>"},"n":3.0,"s":"a b'c","z":null}`
	if got := string(StdinJSON(params)); got != wantJSON {
		t.Errorf("StdinJSON = %s", got)
	}
	if got := string(StdinJSON(nil)); got != "{}" {
		t.Errorf("StdinJSON(nil) = %s", got)
	}
}

// TestCLIConstraintErrors: a k=v value of the right base type that breaks
// the type's range, length, size or pattern is reported as such, not as
// "got String".
func TestCLIConstraintErrors(t *testing.T) {
	md, _, err := ParseMetadata("t.json", []byte(`{"parameters": {
		"count": {"type": "Integer[1, 10]"},
		"ratio": {"type": "Float[0, 1]"},
		"name": {"type": "String[2, 4]"},
		"code": {"type": "Pattern[/\\A[a-z]+\\z/]"},
		"port": {"type": "Stdlib::Port"},
		"items": {"type": "Array[Integer, 1, 2]"},
		"nested": {"type": "Array[Integer[1, 10]]"},
		"opt": {"type": "Optional[Integer[1, 10]]"},
		"either": {"type": "Variant[Integer[1, 10], String[1, 2]]"},
		"mode": {"type": "Enum[a, b]"},
		"version": {"type": "String"},
		"secret": {"type": "Integer[1, 10]", "sensitive": true}
	}}`))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		arg  string
		want any    // the parsed value
		err  string // the validation problem, "" when valid
	}{
		{"count=5", json.Number("5"), ""},
		{"count=20", json.Number("20"), `parameter "count": expects Integer[1, 10], got 20 (out of range)`},
		{"count=0", json.Number("0"), `parameter "count": expects Integer[1, 10], got 0 (out of range)`},
		{"count=abc", "abc", `parameter "count": expects Integer[1, 10], got String "abc"`},
		{`count="5"`, `"5"`, `parameter "count": expects Integer[1, 10], got String "\"5\""`},
		{"ratio=1.5", json.Number("1.5"), `parameter "ratio": expects Float[0.0, 1.0], got 1.5 (out of range)`},
		{"name=abcdef", "abcdef", `parameter "name": expects String[2, 4], got "abcdef" (too long)`},
		{"name=a", "a", `parameter "name": expects String[2, 4], got "a" (too short)`},
		{"name=12345", "12345", `parameter "name": expects String[2, 4], got "12345" (too long)`},
		{`name="abcdef"`, "abcdef", `parameter "name": expects String[2, 4], got "abcdef" (too long)`},
		{"name=123", "123", ""},
		{"code=ABC", "ABC", `parameter "code": expects Pattern[/\A[a-z]+\z/], got "ABC" (does not match)`},
		{"port=70000", json.Number("70000"), `parameter "port": expects Stdlib::Port, got 70000 (out of range)`},
		{"items=[1,2,3]", []any{json.Number("1"), json.Number("2"), json.Number("3")}, `parameter "items": expects size to be between 1 and 2, got 3`},
		{`items=["a"]`, `["a"]`, `parameter "items": expects Array[Integer, 1, 2], got String "[\"a\"]"`},
		{"nested=[1,20]", []any{json.Number("1"), json.Number("20")}, `parameter "nested": index 1 expects Integer[1, 10], got 20 (out of range)`},
		{"opt=20", json.Number("20"), `parameter "opt": expects Integer[1, 10], got 20 (out of range)`},
		{"either=7", json.Number("7"), ""},
		{"either=ab", "ab", ""},
		{"either=20", "20", ""},
		{"either=200", json.Number("200"), `parameter "either": expects Variant[Integer[1, 10], String[1, 2]], got Integer 200`},
		{"mode=c", "c", `parameter "mode": expects Enum['a', 'b'], got String "c"`},
		{"version=1.0", "1.0", ""},
		{"secret=20", json.Number("20"), `parameter "secret": expects Integer[1, 10], got Integer (sensitive value redacted)`},
	}
	for _, tc := range tests {
		t.Run(tc.arg, func(t *testing.T) {
			params, err := ParseCLIParams([]string{tc.arg}, "", nil, md)
			if err != nil {
				t.Fatal(err)
			}
			name, _, _ := strings.Cut(tc.arg, "=")
			if d := cmp.Diff(tc.want, params[name]); d != "" {
				t.Errorf("value (-want +got):\n%s", d)
			}
			one := &Metadata{Parameters: map[string]*Param{name: md.Parameters[name]}}
			_, err = one.Validate("m::t", params)
			var got string
			if ve := (*ValidationError)(nil); errors.As(err, &ve) && len(ve.Problems) == 1 {
				got = ve.Problems[0]
			} else if err != nil {
				t.Fatalf("unexpected error %v", err)
			}
			if got != tc.err {
				t.Errorf("problem\n got: %s\nwant: %s", got, tc.err)
			}
		})
	}
}

// TestParseCLIParamsTyped: the types come from a function (plans use it).
func TestParseCLIParamsTyped(t *testing.T) {
	str, _ := puppet.ParseType("String")
	typeOf := func(name string) puppet.Type {
		if name == "version" {
			return str
		}
		return nil
	}
	got, err := ParseCLIParamsTyped([]string{"version=1.0", "n=1.0"}, "", nil, typeOf)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(map[string]any{"version": "1.0", "n": json.Number("1.0")}, got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	got, err = ParseCLIParamsTyped([]string{"version=1.0"}, "", nil, nil)
	if err != nil || got["version"] != json.Number("1.0") {
		t.Errorf("nil typeOf: %v, %v", got, err)
	}
}
