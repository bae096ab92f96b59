package plan

import (
	"context"
	"strings"
	"testing"
	"time"
)

func FuzzLoadYAMLPlan(f *testing.F) {
	f.Add("parameters:\n  t: {type: TargetSpec}\nsteps:\n  - name: a\n    command: ls\n    targets: $t\n  - eval: |\n      $a.map |$x| { $x['stdout'] }\nreturn: $a.ok\n")
	f.Add("steps:\n  - message: \"hi ${x}\"\n")
	f.Add("steps:\n  - task: m::t\n    targets: all\n    parameters: {a: $b, c: [1, \"$d\"]}\n    batch: 10%\n")
	f.Add("parameters:\n  who:\n  n: {default: ~}\n  d: {description: untyped}\nsteps:\n  - verbose: \"$who $n $d\"\n  - eval: |\n      out::verbose($who)\n")
	f.Add("parameters:\n  targets: {type: TargetSpec}\nsteps:\n  - script: m/scripts/x.sh\n    targets: $targets\n  - upload: m/files/a\n    destination: /tmp/a\n    targets: $targets\n")
	f.Add("parameters:\n  targets: {type: TargetSpec}\nsteps:\n  - name: r\n    resources:\n      - file: /tmp/x\n        parameters: {content: \"${targets}\"}\n      - {type: package, title: nginx}\n    targets: $targets\n    noop: true\nreturn: $r.ok\n")
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
		_, _ = p.Run(ctx, fakeApplier{newFake()}, params, Options{})
	})
}
