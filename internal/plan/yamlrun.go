package plan

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/puppet"
)

func (rs *runState) runYAML(p *Plan, params map[string]any) (any, error) {
	s := puppet.NewScope(nil)
	for k, v := range params {
		s.Set(k, v)
	}
	for _, st := range p.yaml.steps {
		v, err := rs.yamlStep(st, s)
		if err != nil {
			return nil, stepError(p.File, st.line, err)
		}
		if st.name != "" {
			s.Set(st.name, v)
		}
	}
	if !p.yaml.hasReturn {
		return nil, nil
	}
	return p.yaml.ret.eval(rs, puppet.NewScope(s))
}

// stepOpt evaluates an optional step key.
func (rs *runState) stepOpt(st *yamlStep, key string, s *puppet.Scope) (any, error) {
	t := st.opts[key]
	if t == nil {
		return nil, nil
	}
	return t.eval(rs, puppet.NewScope(s))
}

func (rs *runState) yamlStep(st *yamlStep, s *puppet.Scope) (any, error) {
	errf := func(format string, args ...any) error {
		return muster.Errorf(puppet.KindEvaluation, format, args...)
	}
	action, err := st.action.eval(rs, puppet.NewScope(s))
	if err != nil {
		return nil, err
	}
	opts := map[string]any{}
	for k := range st.opts {
		v, err := rs.stepOpt(st, k, s)
		if err != nil {
			return nil, err
		}
		opts[k] = v
	}
	switch st.kind {
	case "message", "verbose":
		rs.say(messageText(action), st.kind == "verbose")
		return nil, nil
	case "eval":
		return action, nil
	}
	catch, ok := opts["catch_errors"].(bool)
	if !ok && opts["catch_errors"] != nil {
		return nil, errf("catch_errors must be true or false")
	}
	var targets []*muster.Target
	if opts["targets"] != nil {
		if targets, err = rs.resolve([]any{opts["targets"]}); err != nil {
			return nil, errf("targets: %v", err)
		}
	}
	o := StepOptions{}
	if opts["run_as"] != nil {
		o.RunAs = puppet.ToString(opts["run_as"])
	}
	if d := opts["description"]; d != nil {
		o.Description = puppet.ToString(d)
	}
	if e, ok := opts["env_vars"].(map[string]any); ok {
		o.Env = map[string]string{}
		for k, v := range e {
			o.Env[k] = puppet.ToString(v)
		}
	} else if opts["env_vars"] != nil {
		return nil, errf("env_vars must be a mapping")
	}
	if n, ok := opts["noop"].(bool); ok {
		o.Noop = n
	}
	for _, k := range []string{"batch", "canary", "max_failures", "pause"} {
		if v := opts[k]; v != nil {
			if err := applyBatchKey(&o.Batch, k, v); err != nil {
				return nil, errf("%s: %v", k, err)
			}
		}
	}
	obj, isStr := action.(string)
	if !isStr && st.kind != "plan" && st.kind != "resources" {
		return nil, errf("%s must be a string, got %s", st.kind, puppet.TypeName(action))
	}
	switch st.kind {
	case "command":
		return rs.act("run_command", obj, nil, targets, o, catch, func(o StepOptions) ([]*muster.Result, error) {
			return rs.r.RunCommand(rs.ctx, targets, obj, o)
		})
	case "task":
		params, ok := opts["parameters"].(map[string]any)
		if !ok && opts["parameters"] != nil {
			return nil, errf("parameters must be a mapping")
		}
		params = puppet.ToData(params).(map[string]any)
		return rs.act("run_task", obj, params, targets, o, catch, func(o StepOptions) ([]*muster.Result, error) {
			return rs.r.RunTask(rs.ctx, targets, obj, params, o)
		})
	case "script":
		var args []string
		if a, ok := opts["arguments"].([]any); ok {
			for _, e := range a {
				args = append(args, puppet.ToString(e))
			}
		} else if opts["arguments"] != nil {
			return nil, errf("arguments must be a list")
		}
		return rs.act("run_script", obj, nil, targets, o, catch, func(o StepOptions) ([]*muster.Result, error) {
			return rs.r.RunScript(rs.ctx, targets, obj, args, o)
		})
	case "upload", "download":
		dest := puppet.ToString(opts["destination"])
		if o.Description == "" {
			o.Description = transferDescription(map[string]string{"upload": "upload_file", "download": "download_file"}[st.kind], obj, dest)
		}
		if st.kind == "upload" {
			return rs.act("upload_file", obj, nil, targets, o, catch, func(o StepOptions) ([]*muster.Result, error) {
				return rs.r.Upload(rs.ctx, targets, obj, dest, o)
			})
		}
		return rs.act("download_file", obj, nil, targets, o, catch, func(o StepOptions) ([]*muster.Result, error) {
			return rs.r.Download(rs.ctx, targets, obj, dest, o)
		})
	case "resources":
		return rs.applyResources(targets, action, o, catch)
	case "plan":
		name, ok := action.(string)
		if !ok {
			return nil, errf("plan must be a plan name")
		}
		params := map[string]any{}
		if p, ok := opts["parameters"].(map[string]any); ok {
			params = p
		} else if opts["parameters"] != nil {
			return nil, errf("parameters must be a mapping")
		}
		if t, ok := opts["targets"]; ok && t != nil {
			params["targets"] = t
		}
		return rs.nested(name, params, o.RunAs, catch)
	}
	return nil, errf("unknown step kind %s", st.kind)
}

// stepError locates an error of a step that could not run (a missing
// script or task, bad parameters, an expression that failed) at the
// plan's file and the step's line: "FILE:LINE: " before the message
// unless it names its place already, and "file" and "line" in the
// details, as Bolt's errors from a plan carry them. Run failures and
// errors that already name their file (from a nested plan, or
// fail_plan's own details) are returned as they are.
func stepError(file string, line int, err error) error {
	var me *muster.Error
	if !errors.As(err, &me) {
		me = muster.AsError(err, muster.KindInvalid)
	}
	switch me.Kind {
	case muster.KindInvalid, puppet.KindEvaluation:
	default:
		return err
	}
	if _, has := me.Details["file"]; has {
		return err
	}
	out := *me
	out.Details = map[string]any{}
	for k, v := range me.Details {
		out.Details[k] = v
	}
	out.Details["file"], out.Details["line"] = file, line
	if !strings.HasPrefix(out.Msg, file+":") {
		out.Msg = fmt.Sprintf("%s:%d: %s", file, line, out.Msg)
	}
	out.Err = err
	return &out
}

// nested runs a plan from a plan; with catch an error becomes the value.
func (rs *runState) nested(name string, params map[string]any, runAs string, catch bool) (any, error) {
	child := *rs
	if runAs != "" {
		child.runAs = runAs
	}
	v, err := child.runNamed(name, params)
	if err != nil {
		if catch {
			return muster.AsError(err, KindPlanFailure), nil
		}
		return nil, err
	}
	return v, nil
}

// messageText renders a message step's value: strings as they are,
// anything else as JSON.
func messageText(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, err := json.Marshal(puppet.ToData(v))
	if err != nil {
		return puppet.ToString(v)
	}
	return string(b)
}
