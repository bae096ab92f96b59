package plan

import (
	"context"
	"strings"
	"testing"
	"time"
)

func FuzzParseExpression(f *testing.F) {
	for _, s := range []string{"$a.map |$x| { $x * 2 }", `"a ${b[0].value['k']} $c"`, "if $a { 1 } elsif $b { 2 } else { 3 }",
		"{a => [1, 2.5, 'x'], 'b' => undef}", "$x =~ /^a+$/ and !($y in [1])", "$r.filter |$k, $v| { $v.ok }.join(',')",
		"$a = 1; $b = $a % 3\n$b", "sprintf('%s', length($x))"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		x, err := ParseExpression("f.pp", 1, src)
		if err != nil {
			return
		}
		if err := checkVars(x.root, map[string]bool{"a": true, "b": true}); err != nil {
			return
		}
		// Evaluation must not panic or hang; errors are fine.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		rs := &runState{ctx: ctx, r: newFake(), o: Options{Concurrency: 1}}
		s := newScope(nil)
		s.vars["a"] = []any{int64(1), "x", map[string]any{"k": int64(2)}}
		s.vars["b"] = "str"
		_, _ = x.eval(rs, s)
	})
}

func FuzzLoadYAMLPlan(f *testing.F) {
	f.Add("parameters:\n  t: {type: TargetSpec}\nsteps:\n  - name: a\n    command: ls\n    targets: $t\n  - eval: |\n      $a.map |$x| { $x['stdout'] }\nreturn: $a.ok\n")
	f.Add("steps:\n  - message: \"hi ${x}\"\n")
	f.Add("steps:\n  - task: m::t\n    targets: all\n    parameters: {a: $b, c: [1, \"$d\"]}\n    batch: 10%\n")
	f.Fuzz(func(t *testing.T, src string) {
		p, err := LoadYAML("fuzz", "f.yaml", []byte(src))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f.yaml") {
				t.Fatalf("error without file: %v", err)
			}
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		params := map[string]any{}
		for _, prm := range p.Parameters {
			params[prm.Name] = "t1"
		}
		_, _ = p.Run(ctx, newFake(), params, Options{})
	})
}
