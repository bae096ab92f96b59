package plan

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/puppet"
)

// evalSrc evaluates plan code with a fake runner as its host.
func evalSrc(t *testing.T, src string) (any, error) {
	t.Helper()
	x, err := puppet.ParseExpression("e.pp", 1, src, hostFunctions)
	if err != nil {
		return nil, err
	}
	rs := &runState{ctx: context.Background(), r: newFake(), o: Options{Concurrency: 1}}
	return x.Eval(puppet.NewScope(nil), rs)
}

func TestHostFunctions(t *testing.T) {
	for _, tc := range []struct {
		src  string
		want any
	}{
		{"get_targets('x,y').names", []any{"x", "y"}},
		{"get_target('x').name", "x"},
		{"run_command('echo hi', 'a')[0].value['stdout']", "hi@a"},
	} {
		got, err := evalSrc(t, tc.src)
		if err != nil {
			t.Errorf("%s: %v", tc.src, err)
			continue
		}
		if d := cmp.Diff(tc.want, got); d != "" {
			t.Errorf("%s: (-want +got) %s", tc.src, d)
		}
	}
}

func TestHostFunctionErrors(t *testing.T) {
	for _, tc := range []struct{ src, want, kind string }{
		{"fail_plan('no')", "no", KindPlanFailure},
		{"fail_plan('no', 'my/kind')", "no", "my/kind"},
		{"\nget_target('x,y')", "e.pp:2: get_target: expected one target, got 2", puppet.KindEvaluation},
		{"run_plan()", "e.pp:1: run_plan needs a plan name", puppet.KindEvaluation},
	} {
		_, err := evalSrc(t, tc.src)
		if err == nil || !strings.Contains(err.Error(), tc.want) || muster.KindOf(err) != tc.kind {
			t.Errorf("%q: got %v (kind %s), want %q of kind %s", tc.src, err, muster.KindOf(err), tc.want, tc.kind)
		}
	}
	if _, err := puppet.ParseExpression("e.pp", 1, "run_task('x', 'a')", hostFunctions); err == nil {
		t.Error("run_task parsed, but it is no function of plan code")
	}
}
