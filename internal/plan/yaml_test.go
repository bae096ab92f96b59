package plan

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/muster-run/muster"
)

func testIndex(t *testing.T) *Index {
	t.Helper()
	idx, err := Find([]string{"testdata/modules", "testdata/missing"})
	if err != nil {
		t.Fatal(err)
	}
	return idx
}

func runPlan(t *testing.T, name string, f *fakeRunner, params map[string]any) (any, error) {
	t.Helper()
	idx := testIndex(t)
	p, err := idx.Get(name)
	if err != nil {
		t.Fatalf("Get(%s): %v", name, err)
	}
	return p.Run(context.Background(), f, params, Options{Index: idx, Concurrency: 2})
}

func asJSON(t *testing.T, v any) map[string]any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return m
}

func TestFindAndGet(t *testing.T) {
	idx := testIndex(t)
	var names []string
	for _, p := range idx.List(false) {
		names = append(names, p.Name)
		if p.Err != nil {
			t.Errorf("%s: %v", p.Name, p.Err)
		}
	}
	want := []string{"demo", "demo::catcher", "demo::failing", "demo::loop", "demo::outer", "demo::rolling_reboot",
		"demo::rolling_reboot_star", "demo::star_basic", "demo::star_fail", "demo::sub::boom", "demo::sub::inner"}
	if d := cmp.Diff(want, names); d != "" {
		t.Errorf("List (-want +got):\n%s", d)
	}
	if len(idx.List(true)) != len(want)+1 {
		t.Errorf("private plan missing from List(true)")
	}
	_, err := idx.Get("demo::catchr")
	if err == nil || !strings.Contains(err.Error(), `did you mean "demo::catcher"`) {
		t.Errorf("Get typo: %v", err)
	}
	p, _ := idx.Get("demo")
	if p.Kind != KindYAML || p.Description != "Exercise every step kind" || len(p.Parameters) != 3 ||
		p.Parameters[1].Name != "version" || p.Parameters[1].Default != "1.2.3" {
		t.Errorf("demo plan: %+v", p)
	}
	s, _ := idx.Get("demo::star_basic")
	if s.Kind != KindStarlark || s.Description != "Exercise the Starlark builtins." || len(s.Parameters) != 2 {
		t.Errorf("star plan: %+v", s)
	}
}

func TestYAMLEveryStepKind(t *testing.T) {
	f := newFake()
	v, err := runPlan(t, "demo", f, map[string]any{"targets": "t1,t2"})
	if err != nil {
		t.Fatal(err)
	}
	wantCalls := []string{
		"command hostname -f on t1,t2",
		"task demo::install(times=4,version=1.2.3) on t1,t2",
		"script demo/setup.sh --version 1.2.3 $literal on t1,t2",
		"upload demo/app.conf->/etc/app.conf on t1,t2",
		"download /var/log/app.log->logs on t1,t2",
	}
	if d := cmp.Diff(wantCalls, f.calls); d != "" {
		t.Errorf("calls (-want +got):\n%s", d)
	}
	if f.opts[0].RunAs != "root" || f.opts[0].Env["VERSION"] != "1.2.3" || !f.opts[1].Noop {
		t.Errorf("options: %+v", f.opts[:2])
	}
	// The plan's verbose step says nothing without Options.Verbose.
	if d := cmp.Diff([]string{"installed 1.2.3 on t1, t2"}, f.messages); d != "" {
		t.Errorf("messages: %s", d)
	}
	m := asJSON(t, v)
	comp := m["computed"].(map[string]any)
	want := map[string]any{
		"outs": []any{"t1.example.com\n", "t2.example.com\n"}, "names": []any{"t1", "t2"},
		"ok": true, "first": "t1.example.com\n", "up": "1.2.3",
	}
	if d := cmp.Diff(want, comp); d != "" {
		t.Errorf("computed: %s", d)
	}
	hosts := m["hosts"].([]any)
	if len(hosts) != 2 || hosts[0].(map[string]any)["status"] != "success" || hosts[0].(map[string]any)["action"] != "command" {
		t.Errorf("hosts: %v", hosts)
	}
	if m["count"] != 2.0 {
		t.Errorf("count %v", m["count"])
	}
	if len(f.events) != 10 || f.events[0] != "start command 'hostname -f'" {
		t.Errorf("events %v", f.events)
	}
	// Steps are named as Bolt's executor names them in "Starting:" and
	// "Finished:" lines.
	var starts []string
	for _, e := range f.events {
		if strings.HasPrefix(e, "start ") {
			starts = append(starts, e)
		}
	}
	wantStarts := []string{
		"start command 'hostname -f'",
		"start task demo::install",
		"start script demo/setup.sh",
		"start file upload from demo/app.conf to /etc/app.conf",
		"start file download from /var/log/app.log to logs",
	}
	if d := cmp.Diff(wantStarts, starts); d != "" {
		t.Errorf("step descriptions (-want +got):\n%s", d)
	}
}

func TestYAMLRunFailure(t *testing.T) {
	f := newFake("will-fail@t2", "will-fail@t3")
	_, err := runPlan(t, "demo::failing", f, map[string]any{"targets": "all"})
	var me *muster.Error
	if !errors.As(err, &me) || me.Kind != KindRunFailure || me.Msg != "run_command 'will-fail' failed on 2 targets" {
		t.Fatalf("err = %#v", err)
	}
	if me.Details["action"] != "run_command" || me.Details["object"] != "will-fail" || len(me.Details["result_set"].([]*muster.Result)) != 3 {
		t.Errorf("details %v", me.Details)
	}
	if len(f.messages) != 0 {
		t.Errorf("plan went on: %v", f.messages)
	}
}

func TestYAMLCatchErrors(t *testing.T) {
	f := newFake("might-fail@t2")
	v, err := runPlan(t, "demo::catcher", f, map[string]any{"targets": []any{"t1", "t2"}})
	if err != nil {
		t.Fatal(err)
	}
	m := asJSON(t, v)
	want := map[string]any{"ok": false, "failed": []any{"t2"}, "retried": []any{"t2"}, "msg": "might-fail failed on t2"}
	if d := cmp.Diff(want, m); d != "" {
		t.Errorf("(-want +got) %s", d)
	}
	if f.calls[1] != "command echo retry on t2" || f.messages[0] != "failed on t2" {
		t.Errorf("calls %v messages %v", f.calls, f.messages)
	}
}

func TestYAMLNestedPlan(t *testing.T) {
	f := newFake()
	v, err := runPlan(t, "demo::outer", f, map[string]any{"targets": "t1"})
	if err != nil {
		t.Fatal(err)
	}
	m := asJSON(t, v)
	want := map[string]any{"inner": []any{"t1=hello@t1"}, "caught_kind": "demo/boom", "caught_msg": "it broke"}
	if d := cmp.Diff(want, m); d != "" {
		t.Errorf("(-want +got) %s", d)
	}
	_, err = runPlan(t, "demo::loop", f, nil)
	if err == nil || !strings.Contains(err.Error(), "calls itself") {
		t.Errorf("cycle: %v", err)
	}
}

func TestParameterValidation(t *testing.T) {
	_, err := runPlan(t, "demo", newFake(), map[string]any{"version": 5, "cuont": 3})
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	for _, want := range []string{"invalid parameters for plan demo (3 problems)", `unknown parameter "cuont" (did you mean "count"?)`,
		`parameter "targets" is required`, `parameter "version": expects a String value, got Integer`} {
		if !strings.Contains(msg, want) {
			t.Errorf("missing %q in:\n%s", want, msg)
		}
	}
	if muster.KindOf(err) != muster.KindInvalid {
		t.Errorf("kind %q", muster.KindOf(err))
	}
}

// TestRollingReboot runs the rolling reboot written as a YAML and as a
// Starlark plan: the same steps in the same order.
func TestRollingReboot(t *testing.T) {
	reboot := "nohup sh -c 'sleep 1; reboot' >/dev/null 2>&1 &"
	var want []string
	for _, h := range []string{"t1", "t2"} {
		want = append(want,
			"command echo 'disable server app/"+h+"' | socat stdio /run/haproxy/admin.sock on lb1",
			"command "+reboot+" on "+h, "wait 30s on "+h, "command uptime on "+h,
			"command echo 'enable server app/"+h+"' | socat stdio /run/haproxy/admin.sock on lb1")
	}
	for _, tc := range []struct {
		plan string
		ret  any
	}{
		{"demo::rolling_reboot", []any{"t1.example.com\n", "t2.example.com\n"}},
		{"demo::rolling_reboot_star", map[string]any{"t1": "t1.example.com\n", "t2": "t2.example.com\n"}},
	} {
		t.Run(tc.plan, func(t *testing.T) {
			f := newFake()
			v, err := runPlan(t, tc.plan, f, map[string]any{"targets": "t1,t2", "lb": "lb1", "wait": 30})
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(want, f.calls); d != "" {
				t.Errorf("calls (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tc.ret, v); d != "" {
				t.Errorf("return %s", d)
			}
		})
	}
}

// loadErr loads src as a plan and returns its error text.
func loadErr(t *testing.T, src string) string {
	t.Helper()
	_, err := LoadYAML("x", "p.yaml", []byte(src))
	if err == nil {
		t.Fatalf("no error for:\n%s", src)
	}
	var le *LoadError
	if !errors.As(err, &le) {
		t.Fatalf("not a LoadError: %T %v", err, err)
	}
	return err.Error()
}

func TestLoadErrors(t *testing.T) {
	cases := []struct{ src, want string }{
		{"steps:\n  - resources:\n      - package: nginx\n", "p.yaml:2: a resources step needs targets"},
		{"steps:\n  - resources: nginx\n    targets: all\n", "p.yaml:2: resources must be a list of resource declarations"},
		{"steps:\n  - resources: []\n    targets: all\n    env_vars: {A: b}\n", `p.yaml:4: unknown key "env_vars" for a resources step`},
		{"steps:\n  - eval: $x\n", "p.yaml:2: undefined variable $x"},
		{"steps:\n  - message: hi\n  - eval: |\n      frobnicate(1)\n", `p.yaml:4: unsupported construct: unknown function "frobnicate"`},
		{"parameters:\n  a: {type: Array}\nsteps:\n  - eval: $a.frob\n", `p.yaml:4: unsupported construct: unknown method "frob"`},
		{"steps:\n  - command: ls\n    targets: all\n    bogus: 1\n", `p.yaml:4: unknown key "bogus" for a command step`},
		{"steps: []\nfoo: 1\n", `p.yaml:2: unknown top-level key "foo"`},
		{"description: x\n", "a plan needs a steps key"},
		{"steps:\n  - command: ls\n", "p.yaml:2: a command step needs targets"},
		{"steps:\n  - command: ls\n    eval: 1\n    targets: a\n", `p.yaml:3: a step has exactly one action`},
		{"steps:\n  - name: a\n    eval: 1\n  - name: a\n    eval: 2\n", `p.yaml:4: step name "a" repeats`},
		{"parameters:\n  a: {}\nsteps:\n  - name: a\n    eval: 1\n", `p.yaml:4: step name "a" repeats a parameter`},
		{"parameters:\n  a: {type: Strin}\nsteps: []\n", `p.yaml:2: parameter "a": invalid type`},
		{"parameters:\n  a: {type: String, default: 1}\nsteps: []\n", `p.yaml:2: parameter "a": default`},
		{"parameters:\n  a: {typo: String}\nsteps: []\n", `p.yaml:2: parameter "a": unknown key "typo"`},
		{"steps:\n  - eval: |\n      $a = 1\n      $b = $a +\n", "p.yaml:5: unexpected end of expression"},
		{"steps:\n  - eval: |\n      $a = 1\n      case $a { 1: {} }\n", `p.yaml:4: unsupported construct: case expressions`},
		{"steps:\n  - eval: $x =~ String\n", `p.yaml:2: unsupported construct: type reference "String"`},
		{"steps:\n  - eval: \"${nope}\"\n", "p.yaml:2: undefined variable $nope"},
		{"steps:\n  - eval: |\n      [1, 2].map |$x| { $y }\n", "undefined variable $y"},
		{"steps:\n  - command: ls\n    targets: a\n    batch: lots\n", "p.yaml:4: batch: expected a count or a percentage"},
		{"steps:\n  - command: ls\n    targets: a\n    catch_errors: maybe\n", "p.yaml:4: catch_errors: must be true or false"},
		{"steps:\n  - script: x.ps1\n    targets: a\n    pwsh_params: {}\n", "p.yaml:4: pwsh_params"},
		{"steps:\n  - eval: 1\n  bad: [\n", "invalid YAML"},
		{"steps:\n  - eval: $a.each |$x| { notice($x) }\n", "unknown function"},
	}
	for _, c := range cases {
		got := loadErr(t, c.src)
		if !strings.Contains(got, c.want) {
			t.Errorf("source:\n%s\ngot  %s\nwant %s", c.src, got, c.want)
		}
	}
}

// TestLoadErrorBeforeTargets makes sure an error late in a plan stops it
// before any step runs.
func TestLoadErrorBeforeTargets(t *testing.T) {
	src := "steps:\n  - command: ls\n    targets: all\n  - eval: $undefined_thing\n"
	_, err := LoadYAML("x", "late.yaml", []byte(src))
	if err == nil || !strings.HasPrefix(err.Error(), "late.yaml:4:") {
		t.Fatalf("err = %v", err)
	}
}

func TestPlanLevelBatchIsEveryStepsDefault(t *testing.T) {
	p, err := LoadYAML("m::rolled", "rolled.yaml", []byte(`parameters:
  targets: {type: TargetSpec}
batch: 25%
canary: 1
max_failures: 2
pause: 1s
steps:
  - command: "true"
    targets: $targets
  - command: "false"
    targets: $targets
    batch: 1
`))
	if err != nil {
		t.Fatal(err)
	}
	want := Batch{Percent: 25, Canary: 1, MaxFailures: 2, MaxFailuresSet: true, Pause: time.Second}
	if p.Batch != want {
		t.Fatalf("plan batch = %+v, want %+v", p.Batch, want)
	}
	if _, err := LoadYAML("m::bad", "bad.yaml", []byte("batch: lots\nsteps: []\n")); err == nil || !strings.Contains(err.Error(), "bad.yaml:1") {
		t.Errorf("bad plan-level batch: err = %v, want one naming bad.yaml:1", err)
	}
}
