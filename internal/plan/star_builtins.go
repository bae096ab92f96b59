package plan

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/puppet"
)

// builtins returns the predeclared names of a Starlark plan.
func builtins() starlark.StringDict {
	b := func(name string, fn func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error)) *starlark.Builtin {
		return starlark.NewBuiltin(name, fn)
	}
	return starlark.StringDict{
		"run_command":          b("run_command", starAction),
		"run_task":             b("run_task", starAction),
		"run_script":           b("run_script", starAction),
		"upload_file":          b("upload_file", starAction),
		"download_file":        b("download_file", starAction),
		"wait_until_available": b("wait_until_available", starAction),
		"apply":                b("apply", starApply),
		"apply_prep":           b("apply_prep", starApply),
		"run_plan":             b("run_plan", starRunPlan),
		"get_targets":          b("get_targets", starGetTargets),
		"sleep":                b("sleep", starSleep),
		"fail_plan":            b("fail_plan", starFailPlan),
		"catch_errors":         b("catch_errors", starCatchErrors),
		"parallelize":          b("parallelize", starParallelize),
		"out": &starlarkstruct.Module{Name: "out", Members: starlark.StringDict{
			"message": b("out.message", starMessage),
			"verbose": b("out.verbose", starMessage),
		}},
	}
}

func threadState(t *starlark.Thread, fn string) (*runState, error) {
	rs, _ := t.Local(rsKey).(*runState)
	if rs == nil {
		return nil, fmt.Errorf("%s can only be called while the plan runs (from main), not at load time", fn)
	}
	return rs, nil
}

// stepKwargs are the keyword options every action accepts.
type stepKwargs struct {
	catch       bool
	runAs       string
	env         *starlark.Dict
	noop        bool
	description string
	batch       starlark.Value
	canary      starlark.Value
	maxFailures starlark.Value
	pause       starlark.Value
}

func (k *stepKwargs) pairs() []any {
	return []any{"catch_errors?", &k.catch, "run_as?", &k.runAs, "env?", &k.env, "noop?", &k.noop,
		"description?", &k.description, "batch?", &k.batch, "canary?", &k.canary,
		"max_failures?", &k.maxFailures, "pause?", &k.pause}
}

func (k *stepKwargs) options() (StepOptions, error) {
	o := StepOptions{RunAs: k.runAs, Noop: k.noop, Description: k.description}
	if k.env != nil {
		o.Env = map[string]string{}
		for _, it := range k.env.Items() {
			ks, _ := starlark.AsString(it[0])
			v, err := fromStar(it[1])
			if err != nil {
				return o, err
			}
			o.Env[ks] = puppet.ToString(v)
		}
	}
	for key, v := range map[string]starlark.Value{"batch": k.batch, "canary": k.canary, "max_failures": k.maxFailures, "pause": k.pause} {
		if v == nil || v == starlark.None {
			continue
		}
		g, err := fromStar(v)
		if err != nil {
			return o, err
		}
		if err := applyBatchKey(&o.Batch, key, g); err != nil {
			return o, fmt.Errorf("%s: %v", key, err)
		}
	}
	return o, nil
}

func starTargets(rs *runState, v starlark.Value) ([]*muster.Target, error) {
	g, err := fromStar(v)
	if err != nil {
		return nil, err
	}
	return rs.resolve([]any{g})
}

// starAction implements run_command(cmd, targets), run_script(script,
// targets, arguments=[]), run_task(task, targets, params={}),
// upload_file(src, dest, targets), download_file(src, dest, targets) and
// wait_until_available(targets, timeout=120), each with the step
// keywords.
func starAction(t *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	rs, err := threadState(t, b.Name())
	if err != nil {
		return nil, err
	}
	var k stepKwargs
	var obj, dest string
	var targets starlark.Value
	var params *starlark.Dict
	var arguments *starlark.List
	var timeout starlark.Value = starlark.MakeInt(120)
	switch b.Name() {
	case "run_command":
		err = starlark.UnpackArgs(b.Name(), args, kwargs, append([]any{"command", &obj, "targets", &targets}, k.pairs()...)...)
	case "run_script":
		err = starlark.UnpackArgs(b.Name(), args, kwargs, append([]any{"script", &obj, "targets", &targets, "arguments?", &arguments}, k.pairs()...)...)
	case "run_task":
		err = starlark.UnpackArgs(b.Name(), args, kwargs, append([]any{"task", &obj, "targets", &targets, "params?", &params}, k.pairs()...)...)
	case "upload_file", "download_file":
		err = starlark.UnpackArgs(b.Name(), args, kwargs, append([]any{"source", &obj, "destination", &dest, "targets", &targets}, k.pairs()...)...)
	case "wait_until_available":
		err = starlark.UnpackArgs(b.Name(), args, kwargs, "targets", &targets, "timeout?", &timeout, "catch_errors?", &k.catch, "description?", &k.description)
	}
	if err != nil {
		return nil, err
	}
	o, err := k.options()
	if err != nil {
		return nil, err
	}
	ts, err := starTargets(rs, targets)
	if err != nil {
		return nil, err
	}
	ctx, r := rs.ctx, rs.r
	var fn func(StepOptions) ([]*muster.Result, error)
	var pm map[string]any // a task's parameters
	switch b.Name() {
	case "run_command":
		fn = func(o StepOptions) ([]*muster.Result, error) { return r.RunCommand(ctx, ts, obj, o) }
	case "run_script":
		var sargs []string
		if arguments != nil {
			for i := 0; i < arguments.Len(); i++ {
				g, err := fromStar(arguments.Index(i))
				if err != nil {
					return nil, err
				}
				sargs = append(sargs, puppet.ToString(g))
			}
		}
		fn = func(o StepOptions) ([]*muster.Result, error) { return r.RunScript(ctx, ts, obj, sargs, o) }
	case "run_task":
		pm = map[string]any{}
		if params != nil {
			g, err := fromStar(params)
			if err != nil {
				return nil, err
			}
			pm = puppet.ToData(g).(map[string]any)
		}
		fn = func(o StepOptions) ([]*muster.Result, error) { return r.RunTask(ctx, ts, obj, pm, o) }
	case "upload_file":
		fn = func(o StepOptions) ([]*muster.Result, error) { return r.Upload(ctx, ts, obj, dest, o) }
	case "download_file":
		fn = func(o StepOptions) ([]*muster.Result, error) { return r.Download(ctx, ts, obj, dest, o) }
	case "wait_until_available":
		d, err := starDuration(timeout)
		if err != nil {
			return nil, fmt.Errorf("timeout: %v", err)
		}
		obj = fmt.Sprint(d)
		fn = func(StepOptions) ([]*muster.Result, error) { return r.WaitUntilAvailable(ctx, ts, d) }
	}
	if o.Description == "" && (b.Name() == "upload_file" || b.Name() == "download_file") {
		o.Description = transferDescription(b.Name(), obj, dest)
	}
	set, err := rs.act(b.Name(), obj, pm, ts, o, k.catch, fn)
	if err != nil {
		return nil, err
	}
	return &starResultSet{set}, nil
}

// starDuration reads seconds (a number) or a duration string.
func starDuration(v starlark.Value) (time.Duration, error) {
	g, err := fromStar(v)
	if err != nil {
		return 0, err
	}
	var b Batch
	if err := applyBatchKey(&b, "pause", g); err != nil {
		return 0, err
	}
	return b.Pause, nil
}

// starRunPlan implements run_plan(name, params={}, targets=None,
// catch_errors=False, run_as="", **params).
func starRunPlan(t *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	rs, err := threadState(t, b.Name())
	if err != nil {
		return nil, err
	}
	if len(args) < 1 || len(args) > 2 {
		return nil, fmt.Errorf("run_plan: expected a plan name and an optional params dict")
	}
	name, ok := starlark.AsString(args[0])
	if !ok {
		return nil, fmt.Errorf("run_plan: plan name must be a string")
	}
	params := map[string]any{}
	if len(args) == 2 {
		g, err := fromStar(args[1])
		if err != nil {
			return nil, err
		}
		m, ok := g.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("run_plan: params must be a dict")
		}
		params = m
	}
	catch, runAs := false, ""
	for _, kv := range kwargs {
		k, _ := starlark.AsString(kv[0])
		switch k {
		case "catch_errors":
			catch = bool(kv[1].Truth())
		case "run_as":
			runAs, _ = starlark.AsString(kv[1])
		default:
			g, err := fromStar(kv[1])
			if err != nil {
				return nil, fmt.Errorf("run_plan: %s: %v", k, err)
			}
			params[k] = g
		}
	}
	v, err := rs.nested(name, params, runAs, catch)
	if err != nil {
		return nil, err
	}
	return toStar(v), nil
}

func starGetTargets(t *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	rs, err := threadState(t, b.Name())
	if err != nil {
		return nil, err
	}
	if len(kwargs) > 0 {
		return nil, fmt.Errorf("get_targets takes no keyword arguments")
	}
	var vals []any
	for _, a := range args {
		g, err := fromStar(a)
		if err != nil {
			return nil, err
		}
		vals = append(vals, g)
	}
	ts, err := rs.resolve(vals)
	if err != nil {
		return nil, err
	}
	return toStar(puppet.Normalize(ts)), nil
}

func starSleep(t *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var secs starlark.Value
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 1, &secs); err != nil {
		return nil, err
	}
	d, err := starDuration(secs)
	if err != nil {
		return nil, err
	}
	rs, err := threadState(t, b.Name())
	if err != nil {
		return nil, err
	}
	select {
	case <-time.After(d):
	case <-rs.ctx.Done():
		return nil, muster.AsError(rs.ctx.Err(), muster.KindCancelled)
	}
	return starlark.None, nil
}

func starMessage(t *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var v starlark.Value
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 1, &v); err != nil {
		return nil, err
	}
	rs, err := threadState(t, b.Name())
	if err != nil {
		return nil, err
	}
	s, ok := starlark.AsString(v)
	if !ok {
		s = v.String()
	}
	rs.say(s, b.Name() == "out.verbose")
	return starlark.None, nil
}

// starFailPlan implements fail_plan(msg, kind="muster/plan-failure",
// details={}) and fail_plan(error).
func starFailPlan(t *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if len(args) == 1 {
		if e, ok := args[0].(*starError); ok {
			return nil, e.e
		}
	}
	var msg string
	kind := KindPlanFailure
	var details *starlark.Dict
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "msg", &msg, "kind?", &kind, "details?", &details); err != nil {
		return nil, err
	}
	e := &muster.Error{Kind: kind, Msg: msg, Details: map[string]any{}}
	if details != nil {
		g, err := fromStar(details)
		if err != nil {
			return nil, err
		}
		e.Details = puppet.ToData(g).(map[string]any)
	}
	return nil, e
}

// starCatchErrors implements catch_errors(fn): it returns fn()'s value, or
// the Error when fn raises a plan error (run failure, fail_plan, ...).
// Starlark programming errors are not caught.
func starCatchErrors(t *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var fn starlark.Callable
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 1, &fn); err != nil {
		return nil, err
	}
	v, err := starlark.Call(t, fn, nil, nil)
	if err != nil {
		var me *muster.Error
		if errors.As(err, &me) && me.Kind != muster.KindCancelled {
			return &starError{me}, nil
		}
		return nil, err
	}
	return v, nil
}

// starParallelize implements parallelize(targets, fn): fn(target) runs
// for every target concurrently, bounded by the plan's concurrency. It
// returns the list of return values in target order; when some calls fail
// it raises the first failure (in target order) after all have finished.
func starParallelize(t *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	rs, err := threadState(t, b.Name())
	if err != nil {
		return nil, err
	}
	var targets starlark.Value
	var fn starlark.Callable
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "targets", &targets, "fn", &fn); err != nil {
		return nil, err
	}
	ts, err := starTargets(rs, targets)
	if err != nil {
		return nil, err
	}
	fn.Freeze()
	results := make([]starlark.Value, len(ts))
	errs := make([]error, len(ts))
	sem := make(chan struct{}, max(rs.o.Concurrency, 1))
	var wg sync.WaitGroup
	for i, tg := range ts {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			th := rs.newThread(fmt.Sprintf("%s/%s", t.Name, tg.Name))
			results[i], errs[i] = starlark.Call(th, fn, starlark.Tuple{&starTarget{tg}}, nil)
		}()
	}
	wg.Wait()
	for _, e := range errs {
		if e != nil {
			return nil, e
		}
	}
	return starlark.NewList(results), nil
}
