package plan

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/puppet"
)

func TestStarlarkBasic(t *testing.T) {
	f := newFake("might-fail@t2")
	v, err := runPlan(t, "demo::star_basic", f, map[string]any{"targets": "t1,t2"})
	if err != nil {
		t.Fatal(err)
	}
	m := asJSON(t, v)
	checks := map[string]any{
		"names": []any{"t1", "t2"}, "outs": []any{"t1.example.com\n", "t2.example.com\n"},
		"ok": true, "len": 2.0, "target": "t1", "caught_ok": false,
		"err_kind": KindRunFailure, "err_msg": "run_command 'might-fail' failed on 1 target",
		"par": []any{"t1@t1", "t2@t2"}, "inner": []any{"t1=hi@t1", "t2=hi@t2"},
	}
	for k, want := range checks {
		if d := cmp.Diff(want, m[k]); d != "" {
			t.Errorf("%s: (-want +got) %s", k, d)
		}
	}
	if val := m["value"].(map[string]any); val["stdout"] != "t1.example.com\n" {
		t.Errorf("value %v", val)
	}
	if set := m["set"].([]any); len(set) != 2 || set[1].(map[string]any)["status"] != "failure" {
		t.Errorf("set %v", set)
	}
	o := f.opts[0]
	if o.RunAs != "root" || o.Env["V"] != "1.0" || o.Batch.Percent != 50 || o.Batch.Canary != 1 {
		t.Errorf("opts %+v", o)
	}
	calls := f.sortedCalls()
	for _, want := range []string{"task demo::install(version=1.0) on t1,t2", "script demo/setup.sh -v 1.0 on t1,t2",
		"upload demo/app.conf->/etc/app.conf on t1,t2", "download /var/log/app.log->logs on t1,t2", "command echo t1 on t1"} {
		found := false
		for _, c := range calls {
			found = found || c == want
		}
		if !found {
			t.Errorf("missing call %q in %v", want, calls)
		}
	}
	if len(f.messages) != 1 || f.messages[0] != `ok=False failed=["t2"]` {
		t.Errorf("messages %q", f.messages)
	}
}

func TestStarlarkFailures(t *testing.T) {
	_, err := runPlan(t, "demo::star_fail", newFake(), map[string]any{"targets": "t1"})
	var me *muster.Error
	if !errors.As(err, &me) || me.Kind != "demo/custom" || me.Msg != "custom failure" || me.Details["x"] != int64(1) ||
		!strings.HasSuffix(me.Details["location"].(string), "star_fail.star:3") {
		t.Errorf("fail_plan: %#v", err)
	}
	_, err = runPlan(t, "demo::star_fail", newFake("will-fail@t1"), map[string]any{"targets": "t1", "mode": "run"})
	if !errors.As(err, &me) || me.Kind != KindRunFailure || !strings.HasSuffix(me.Details["location"].(string), "star_fail.star:5") {
		t.Errorf("run failure: %#v", err)
	}
	_, err = runPlan(t, "demo::star_fail", newFake(), map[string]any{"targets": "t1", "mode": "type"})
	if err == nil || !strings.Contains(err.Error(), "star_fail.star:7: ") || muster.KindOf(err) != puppet.KindEvaluation {
		t.Errorf("type error: %v", err)
	}
}

func TestStarlarkLoadErrors(t *testing.T) {
	cases := []struct{ src, want string }{
		{"def main():\n    return undefined_name\n", "p.star:2: undefined: undefined_name"},
		{"def main(:\n", "p.star:1: "},
		{"x = 1\n", "must define a function main"},
		{"run_command('ls', 'all')\ndef main():\n    pass\n", "p.star:1: run_command can only be called while the plan runs"},
		{"PARAMS = {'a': {'type': 'Strng'}}\ndef main(a):\n    pass\n", "parameter a: invalid type"},
		{"PARAMS = {'a': 'String'}\ndef main():\n    pass\n", "main does not take it"},
		{"PARAMS = {}\ndef main(b):\n    pass\n", "main's parameter b is not declared"},
		{"PARAMS = {'a': {'typ': 'String'}}\ndef main(a):\n    pass\n", "unknown key"},
	}
	for _, c := range cases {
		_, err := loadStarlark("x", "p.star", []byte(c.src))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("source:\n%s\ngot  %v\nwant %s", c.src, err, c.want)
		}
	}
	p, err := loadStarlark("x", "p.star", []byte("def main(targets, n = 3):\n    return n\n"))
	if err != nil || len(p.Parameters) != 2 || !p.Parameters[0].Required() || p.Parameters[1].Default != int64(3) {
		t.Errorf("signature params: %v %+v", err, p)
	}
}

func TestStarlarkPlanLevelBatch(t *testing.T) {
	p, err := loadStarlark("m::rolled", "rolled.star", []byte(`BATCH = {"batch": "25%", "canary": 1, "max_failures": 2, "pause": "1s"}
def main(targets):
    return run_command("true", targets).ok
`))
	if err != nil {
		t.Fatal(err)
	}
	if want := (Batch{Percent: 25, Canary: 1, MaxFailures: 2, MaxFailuresSet: true, Pause: time.Second}); p.Batch != want {
		t.Fatalf("plan batch = %+v, want %+v", p.Batch, want)
	}
	if _, err := loadStarlark("m::bad", "bad.star", []byte("BATCH = {\"size\": 3}\ndef main():\n    pass\n")); err == nil || !strings.Contains(err.Error(), "size") {
		t.Errorf("unknown BATCH key: err = %v", err)
	}
}
