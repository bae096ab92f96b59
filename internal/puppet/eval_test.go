package puppet

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/muster-run/muster"
)

// testHost performs the host functions of the tests: echo returns its
// arguments, and fail fails at the call.
type testHost struct{}

var testFunctions = map[string]bool{"echo": true, "fail": true}

func (testHost) CallFunction(c *Call) (any, error) {
	if c.Name == "fail" {
		return nil, c.Errorf("failed with %d arguments", len(c.Args))
	}
	return c.Args, nil
}

func evalSrc(t *testing.T, src string, vars map[string]any) (any, error) {
	t.Helper()
	x, err := ParseExpression("e.pp", 1, src, testFunctions)
	if err != nil {
		return nil, err
	}
	s := NewScope(nil)
	for k, v := range vars {
		s.Set(k, v)
	}
	return x.Eval(s, testHost{})
}

func TestExpressions(t *testing.T) {
	set := NewResultSet([]*muster.Result{
		{Target: "a", Action: "command", Value: map[string]any{"stdout": "A", "n": 1}},
		{Target: "b", Action: "command", Value: map[string]any{"stdout": "B"}, Error: muster.Errorf("x/y", "boom")},
	}, []*muster.Target{{Name: "a"}, {Name: "b"}})
	vars := map[string]any{"n": int64(3), "s": "Hello", "a": []any{int64(3), int64(1), int64(2)},
		"h": map[string]any{"k": "v", "z": int64(2)}, "r": set}
	cases := []struct {
		src  string
		want any
	}{
		{"$n * 2 + 1", int64(7)},
		{"$n / 2", int64(1)},
		{"$n / 2.0", 1.5},
		{"7 % 4", int64(3)},
		{"-$n", int64(-3)},
		{"$s == 'hello'", true},
		{"$s != 'x' and !false", true},
		{"undef or $n > 2", true},
		{"not true", false},
		{"'ell' in $s", true},
		{"2 in $a", true},
		{"'k' in $h", true},
		{"$s =~ /^H/", true},
		{"$s !~ 'x'", true},
		{"$a[0]", int64(3)},
		{"$a[-1]", int64(2)},
		{"$a[1, 2]", []any{int64(1), int64(2)}},
		{"$a[9]", nil},
		{"$h['k']", "v"},
		{"$a.sort", []any{int64(1), int64(2), int64(3)}},
		{"$a.map |$x| { $x * 10 }", []any{int64(30), int64(10), int64(20)}},
		{"$a.filter |$x| { $x > 1 }", []any{int64(3), int64(2)}},
		{"$a.reduce |$m, $x| { $m + $x }", int64(6)},
		{"$a.reduce(10) |$m, $x| { $m + $x }", int64(16)},
		{"$h.map |$k, $v| { \"${k}=${v}\" }.join(',')", "k=v,z=2"},
		{"$h.filter |$k, $v| { $k == 'z' }", map[string]any{"z": int64(2)}},
		{"$h.keys", []any{"k", "z"}},
		{"$h.values.length", int64(2)},
		{"$a.count |$x| { $x > 1 }", int64(2)},
		{"[[1, [2]], 3].flatten", []any{int64(1), int64(2), int64(3)}},
		{"[1, 1, 2].unique", []any{int64(1), int64(2)}},
		{"'a,b'.split(',').last", "b"},
		{"$s.upcase", "HELLO"},
		{"$s.downcase.size", int64(5)},
		{"[].empty", true},
		{"$a.first", int64(3)},
		{"$a.include(2)", true},
		{"length($a)", int64(3)},
		{"join($a, '-')", "3-1-2"},
		{"sprintf('%s-%d', 'x', 4)", "x-4"},
		{"if $n > 2 { 'big' } else { 'small' }", "big"},
		{"unless $n > 2 { 'small' } else { 'big' }", "big"},
		{"if $n > 5 { 1 } elsif $n > 2 { 2 } else { 3 }", int64(2)},
		{"$x = 2\n$y = $x * $n\n$y", int64(6)},
		{"{ 'a' => 1, b => [2] }", map[string]any{"a": int64(1), "b": []any{int64(2)}}},
		{`"n is ${n + 1} and $s, ${s.upcase} \$x"`, "n is 4 and Hello, HELLO $x"},
		{"$r.ok", false},
		{"$r.names", []any{"a", "b"}},
		{"$r.ok_set.names", []any{"a"}},
		{"$r.error_set.targets.map |$t| { $t.name }", []any{"b"}},
		{"$r[0].value['stdout']", "A"},
		{"$r[0]['stdout']", "A"},
		{"$r[1].error.kind", "x/y"},
		{"$r[1].error.msg", "boom"},
		{"$r[1].status", "failure"},
		{"$r[0].target.name", "a"},
		{"$r.map |$x| { $x['stdout'] }", []any{"A", "B"}},
		{"$r.filter_set |$x| { $x.ok }.names", []any{"a"}},
		{"$r.find('b').ok", false},
		{"$r.length", int64(2)},
		{"$r[0].message", nil},
		{"echo(1, 'a').length", int64(2)},
		{"echo().empty", true},
		{"# comment\n/* block */ 1", int64(1)},
	}
	for _, c := range cases {
		got, err := evalSrc(t, c.src, vars)
		if err != nil {
			t.Errorf("%s: %v", c.src, err)
			continue
		}
		if d := cmp.Diff(c.want, got); d != "" {
			t.Errorf("%s: (-want +got) %s", c.src, d)
		}
	}
}

func TestExpressionErrors(t *testing.T) {
	parseErrs := []string{"$", "1 +", "(1", "[1, 2", "{ 'a' 1 }", "foo(1)", "$a.nope", "String", "case $x {}",
		"'unterminated", `"unterminated`, "$a.map |x| { 1 }", "@x", "1 -> 2", "$a[]", "/x/", "$x =~ /(/"}
	for _, src := range parseErrs {
		if _, err := ParseExpression("e.pp", 1, src, testFunctions); err == nil {
			t.Errorf("%q: no parse error", src)
		}
	}
	runErrs := map[string]string{
		"1 / 0":            "e.pp:1: division by zero",
		"'a' + [1] - {}":   "",
		"\n\n'a' * 2 + {}": "e.pp:3: operator * is not defined for String and Integer",
		"1 < 'a'":          "cannot compare",
		"undef[0]":         "cannot index undef",
		"$nope":            "unknown variable",
		"\nfail(1)":        "e.pp:2: failed with 1 arguments",
		"echo($a)":         "unknown variable $a",
	}
	for src, want := range runErrs {
		_, err := evalSrc(t, src, nil)
		if want == "" {
			continue
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want %q", src, err, want)
		}
	}
	_, err := evalSrc(t, "1 / 0", nil)
	if muster.KindOf(err) != KindEvaluation {
		t.Errorf("kind of %v, want %s", err, KindEvaluation)
	}
}
