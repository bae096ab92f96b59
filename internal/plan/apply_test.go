package plan

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/muster-run/muster"
)

// fakeApplier is a fakeRunner that also applies: each target's result is
// an ApplyResult whose report status is "changed", or a failure for the
// targets fakeRunner.fail names with object "apply" or "apply_prep". A
// declaration titled "bad" is refused before anything runs, as the
// engine refuses one it cannot turn into Puppet code.
type fakeApplier struct{ *fakeRunner }

func (f fakeApplier) check(resources any) error {
	b, _ := json.Marshal(resources)
	if strings.Contains(string(b), `"bad"`) {
		return muster.Errorf(muster.KindInvalid, "resources[0].title: a bad title").WithDetail("index", 0).WithDetail("field", "title")
	}
	return nil
}

func (f fakeApplier) CheckStep(action, object string, params map[string]any, o StepOptions) error {
	if action == "apply" {
		return f.check(params["resources"])
	}
	return nil
}

func (f fakeApplier) ApplyResources(_ context.Context, ts []*muster.Target, resources any, o StepOptions) ([]*muster.Result, error) {
	if err := f.check(resources); err != nil {
		return nil, err
	}
	b, _ := json.Marshal(resources)
	res, err := f.do("apply", string(b), ts, o, func(*muster.Target) map[string]any {
		return map[string]any{"report": map[string]any{"status": "changed", "noop": o.Noop}}
	})
	for _, r := range res {
		if f.fail["apply@"+r.Target] {
			r.Error = muster.Errorf("bolt/resource-failure", "Resources failed to apply for %s", r.Target)
		}
	}
	return res, err
}

func (f fakeApplier) ApplyPrep(_ context.Context, ts []*muster.Target, install bool, o StepOptions) ([]*muster.Result, error) {
	res, err := f.do("apply_prep", map[bool]string{true: "install", false: "check"}[install], ts, o, func(*muster.Target) map[string]any {
		return map[string]any{"puppet": "/usr/bin/puppet"}
	})
	for _, r := range res {
		if f.fail["apply_prep@"+r.Target] {
			r.Error = muster.Errorf("muster/apply-error", "Puppet is not installed on %s", r.Target)
		}
	}
	return res, err
}

// A YAML resources step evaluates its declarations (variables and all),
// applies them on its targets with noop when asked, and its value is the
// ResultSet of ApplyResults; a failed target fails the plan unless
// catch_errors; a bad declaration fails the step before it starts, at
// the step's line.
func TestYAMLResourcesStep(t *testing.T) {
	src := `parameters:
  targets: {type: TargetSpec}
  path: {type: String, default: /tmp/motd}
steps:
  - name: applied
    resources:
      - file: $path
        parameters: {content: "hello from ${path}"}
      - type: package
        title: nginx
        parameters: {ensure: present}
    targets: $targets
    noop: true
    description: lay down the motd
  - resources: [{notify: second}]
    targets: $targets
    catch_errors: true
return: $applied.map |$r| { $r.value['report']['status'] }
`
	p := loadPlan(t, "p.yaml", src)
	f := newFake("apply@t2")
	ret, err := p.Run(context.Background(), fakeApplier{f}, map[string]any{"targets": "t1"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := json.Marshal(ret); string(got) != `["changed"]` {
		t.Errorf("return = %s", got)
	}
	want := []string{
		`apply [{"file":"/tmp/motd","parameters":{"content":"hello from /tmp/motd"}},{"parameters":{"ensure":"present"},"title":"nginx","type":"package"}] on t1`,
		`apply [{"notify":"second"}] on t1`,
	}
	if strings.Join(f.calls, "\n") != strings.Join(want, "\n") {
		t.Errorf("calls:\n%s\nwant:\n%s", strings.Join(f.calls, "\n"), strings.Join(want, "\n"))
	}
	if !f.opts[0].Noop || f.opts[1].Noop {
		t.Errorf("noop per step = %v, %v; want true, false", f.opts[0].Noop, f.opts[1].Noop)
	}
	if f.events[0] != "start lay down the motd" || f.events[2] != "start apply" {
		t.Errorf("events %v", f.events)
	}

	// A failed target fails the plan, naming the step.
	_, err = p.Run(context.Background(), fakeApplier{newFake("apply@t2")}, map[string]any{"targets": "t1,t2"}, Options{})
	if muster.KindOf(err) != KindRunFailure || !strings.Contains(err.Error(), "apply failed on 1 target") {
		t.Errorf("failed target: %v", err)
	}

	// A bad declaration: the step's file and line, the index and field,
	// and nothing started.
	bad := loadPlan(t, "bad.yaml", "parameters:\n  targets: {type: TargetSpec}\nsteps:\n  - command: echo first\n    targets: $targets\n  - resources:\n      - file: bad\n    targets: $targets\n")
	f = newFake()
	_, err = bad.Run(context.Background(), fakeApplier{f}, map[string]any{"targets": "t1"}, Options{})
	var me *muster.Error
	if err == nil || !strings.Contains(err.Error(), "bad.yaml:6: resources[0].title: a bad title") {
		t.Fatalf("bad declaration: %v", err)
	}
	if me, _ = err.(*muster.Error); me == nil || me.Details["line"] != 6 || me.Details["index"] != 0 || me.Details["field"] != "title" {
		t.Errorf("details: %+v", me)
	}
	if len(f.calls) != 1 || len(f.events) != 2 {
		t.Errorf("the bad step started: calls %v events %v", f.calls, f.events)
	}

	// A runner that cannot apply says so, at the step's line.
	_, err = p.Run(context.Background(), newFake(), map[string]any{"targets": "t1"}, Options{})
	if err == nil || !strings.Contains(err.Error(), "p.yaml:5: a resources step needs Puppet on the targets") {
		t.Errorf("runner without Applier: %v", err)
	}
}

// Starlark plans have apply(targets, resources, ...) and
// apply_prep(targets, install=False, ...), each returning a ResultSet.
func TestStarlarkApply(t *testing.T) {
	src := `def main(targets):
    prep = apply_prep(targets, catch_errors=True)
    ready = prep.ok_set.names
    res = apply(prep.ok_set.targets, [{"type": "file", "title": "/tmp/x", "parameters": {"ensure": "file"}}], noop=True)
    apply_prep(targets, install=True, run_as="root", catch_errors=True)
    return {"ready": ready, "applied": res.names}
`
	p := loadPlan(t, "p.star", src)
	f := newFake("apply_prep@t2")
	ret, err := p.Run(context.Background(), fakeApplier{f}, map[string]any{"targets": "t1,t2"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := json.Marshal(ret); string(got) != `{"applied":["t1"],"ready":["t1"]}` {
		t.Errorf("return = %s", got)
	}
	want := []string{
		"apply_prep check on t1,t2",
		`apply [{"parameters":{"ensure":"file"},"title":"/tmp/x","type":"file"}] on t1`,
		"apply_prep install on t1,t2",
	}
	if strings.Join(f.calls, "\n") != strings.Join(want, "\n") {
		t.Errorf("calls:\n%s\nwant:\n%s", strings.Join(f.calls, "\n"), strings.Join(want, "\n"))
	}
	if !f.opts[1].Noop || f.opts[2].RunAs != "root" {
		t.Errorf("options %+v", f.opts)
	}
	if _, err := p.Run(context.Background(), newFake(), map[string]any{"targets": "t1"}, Options{}); err == nil || !strings.Contains(err.Error(), "apply_prep needs Puppet on the targets") {
		t.Errorf("runner without Applier: %v", err)
	}
}
