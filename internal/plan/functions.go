package plan

import (
	"fmt"
	"strings"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/puppet"
)

// hostFunctions are the functions that plan code may call besides
// puppet's built-in ones; runState.CallFunction performs them.
var hostFunctions = map[string]bool{
	"get_targets": true, "get_target": true, "fail_plan": true,
	"out::message": true, "out::verbose": true, "run_plan": true,
	"run_command": true, "wait_until_available": true,
}

// CallFunction performs the plan functions of YAML plan code: it makes a
// runState the puppet.Host of the expressions it evaluates.
func (rs *runState) CallFunction(c *puppet.Call) (any, error) {
	switch c.Name {
	case "get_targets", "get_target":
		ts, err := rs.resolve(c.Args)
		if err != nil {
			return nil, c.Errorf("%s: %v", c.Name, err)
		}
		if c.Name == "get_target" {
			if len(ts) != 1 {
				return nil, c.Errorf("get_target: expected one target, got %d", len(ts))
			}
			return ts[0], nil
		}
		return puppet.Normalize(ts), nil
	case "fail_plan":
		return nil, failPlan(c.Args)
	case "run_plan", "run_command", "wait_until_available":
		return rs.action(c)
	case "out::message", "out::verbose":
		var parts []string
		for _, a := range c.Args {
			parts = append(parts, puppet.ToString(a))
		}
		rs.say(strings.Join(parts, " "), c.Name == "out::verbose")
		return nil, nil
	}
	return nil, c.Errorf("unknown function %s", c.Name)
}

// failPlan builds the error of fail_plan(msg, [kind], [details]) or
// fail_plan($error).
func failPlan(args []any) error {
	if len(args) > 0 {
		if e, ok := args[0].(*muster.Error); ok {
			return e
		}
	}
	e := &muster.Error{Kind: KindPlanFailure, Msg: "plan failed", Details: map[string]any{}}
	if len(args) > 0 {
		e.Msg = puppet.ToString(args[0])
	}
	if len(args) > 1 && puppet.ToString(args[1]) != "" {
		e.Kind = puppet.ToString(args[1])
	}
	if len(args) > 2 {
		if d, ok := args[2].(map[string]any); ok {
			e.Details = d
		}
	}
	return e
}

// action implements run_plan(name, {params}), run_command(cmd, targets,
// {options}) and wait_until_available(targets, {wait_time => s}) in
// expressions. Options are Bolt's _catch_errors, _run_as and _env_vars.
func (rs *runState) action(c *puppet.Call) (any, error) {
	args := c.Args
	opt := func(i int) map[string]any {
		if i < len(args) {
			if m, ok := args[i].(map[string]any); ok {
				return m
			}
		}
		return map[string]any{}
	}
	if c.Name == "run_plan" {
		if len(args) == 0 {
			return nil, c.Errorf("run_plan needs a plan name")
		}
		params := map[string]any{}
		catch, runAs := false, ""
		for k, v := range opt(1) {
			switch k {
			case "_catch_errors":
				catch = puppet.Truthy(v)
			case "_run_as":
				runAs = puppet.ToString(v)
			default:
				params[k] = v
			}
		}
		return rs.nested(puppet.ToString(args[0]), params, runAs, catch)
	}
	ti, oi := 1, 2
	if c.Name == "wait_until_available" {
		ti, oi = 0, 1
	}
	if len(args) <= ti {
		return nil, c.Errorf("%s needs targets", c.Name)
	}
	ts, err := rs.resolve([]any{args[ti]})
	if err != nil {
		return nil, c.Errorf("%s: %v", c.Name, err)
	}
	opts := opt(oi)
	catch := puppet.Truthy(opts["_catch_errors"])
	o := StepOptions{RunAs: puppet.ToString(opts["_run_as"])}
	if env, ok := opts["_env_vars"].(map[string]any); ok {
		o.Env = map[string]string{}
		for k, v := range env {
			o.Env[k] = puppet.ToString(v)
		}
	}
	ctx, r := rs.ctx, rs.r
	if c.Name == "run_command" {
		cmd := puppet.ToString(args[0])
		return rs.act("run_command", cmd, nil, ts, o, catch, func(o StepOptions) ([]*muster.Result, error) {
			return r.RunCommand(ctx, ts, cmd, o)
		})
	}
	var b Batch
	wait := any(int64(120))
	if w, ok := opts["wait_time"]; ok {
		wait = w
	}
	if err := applyBatchKey(&b, "pause", wait); err != nil {
		return nil, c.Errorf("wait_time: %v", err)
	}
	return rs.act("wait_until_available", fmt.Sprint(b.Pause), nil, ts, o, catch, func(StepOptions) ([]*muster.Result, error) {
		return r.WaitUntilAvailable(ctx, ts, b.Pause)
	})
}
