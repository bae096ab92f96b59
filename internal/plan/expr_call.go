package plan

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/muster-run/muster"
)

func (ev *evaluator) call(n *callNode, s *scope) (any, error) {
	var args []any
	for _, a := range n.args {
		v, err := ev.eval(a, s)
		if err != nil {
			return nil, err
		}
		args = append(args, v)
	}
	if n.recv == nil {
		if functions[n.name] {
			return ev.function(n, args)
		}
		if len(args) == 0 {
			return nil, ev.errf(n.off, "%s() needs an argument", n.name)
		}
		return ev.method(n, args[0], args[1:], s)
	}
	recv, err := ev.eval(n.recv, s)
	if err != nil {
		return nil, err
	}
	return ev.method(n, recv, args, s)
}

func (ev *evaluator) function(n *callNode, args []any) (any, error) {
	switch n.name {
	case "get_targets", "get_target":
		ts, err := ev.rs.resolve(args)
		if err != nil {
			return nil, ev.errf(n.off, "%s: %v", n.name, err)
		}
		if n.name == "get_target" {
			if len(ts) != 1 {
				return nil, ev.errf(n.off, "get_target: expected one target, got %d", len(ts))
			}
			return ts[0], nil
		}
		return normalize(ts), nil
	case "sprintf":
		if len(args) == 0 {
			return nil, ev.errf(n.off, "sprintf needs a format")
		}
		f, ok := args[0].(string)
		if !ok {
			return nil, ev.errf(n.off, "sprintf format must be a String")
		}
		rest := make([]any, len(args)-1)
		for i, a := range args[1:] {
			if _, isColl := a.([]any); isColl {
				a = puppetRepr(a)
			}
			rest[i] = a
		}
		return fmt.Sprintf(f, rest...), nil
	case "fail_plan":
		return nil, failPlan(args)
	case "run_plan", "run_command", "wait_until_available":
		return ev.action(n, args)
	case "out::message", "out::verbose":
		var parts []string
		for _, a := range args {
			parts = append(parts, toString(a))
		}
		ev.rs.r.Message(strings.Join(parts, " "))
		return nil, nil
	}
	return nil, ev.errf(n.off, "unknown function %s", n.name)
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
		e.Msg = toString(args[0])
	}
	if len(args) > 1 && toString(args[1]) != "" {
		e.Kind = toString(args[1])
	}
	if len(args) > 2 {
		if d, ok := args[2].(map[string]any); ok {
			e.Details = d
		}
	}
	return e
}

func (ev *evaluator) callLambda(n *callNode, s *scope, args ...any) (any, error) {
	l := n.lambda
	ls := newScope(s)
	for i, p := range l.params {
		if i < len(args) {
			ls.vars[p] = args[i]
		} else {
			ls.vars[p] = nil
		}
	}
	return ev.evalBlock(l.body, ls)
}

// iterate calls fn for each element of v, with the arguments a lambda of
// nparams parameters receives.
func iterate(v any, nparams int, fn func(args ...any) error) (bool, error) {
	switch c := v.(type) {
	case []any:
		for i, e := range c {
			var err error
			if nparams >= 2 {
				err = fn(int64(i), e)
			} else {
				err = fn(e)
			}
			if err != nil {
				return true, err
			}
		}
	case *resultSet:
		for i, e := range c.items {
			var err error
			if nparams >= 2 {
				err = fn(int64(i), e)
			} else {
				err = fn(e)
			}
			if err != nil {
				return true, err
			}
		}
	case map[string]any:
		for _, k := range sortedKeys(c) {
			var err error
			if nparams >= 2 {
				err = fn(k, c[k])
			} else {
				err = fn([]any{k, c[k]})
			}
			if err != nil {
				return true, err
			}
		}
	default:
		return false, nil
	}
	return true, nil
}

func (ev *evaluator) method(n *callNode, recv any, args []any, s *scope) (any, error) {
	name := n.name
	arg := func(i int) any {
		if i < len(args) {
			return args[i]
		}
		return nil
	}
	needLambda := func() error {
		if n.lambda == nil {
			return ev.errf(n.off, "%s needs a lambda, as in .%s |$x| { ... }", name, name)
		}
		return nil
	}
	switch name {
	case "map", "filter", "each", "any", "all", "filter_set":
		if err := needLambda(); err != nil {
			return nil, err
		}
		var out []any
		outHash := map[string]any{}
		outSet := &resultSet{}
		found := false
		ok, err := iterate(recv, len(n.lambda.params), func(a ...any) error {
			v, err := ev.callLambda(n, s, a...)
			if err != nil {
				return err
			}
			switch name {
			case "map":
				out = append(out, v)
			case "filter", "filter_set":
				if truthy(v) {
					if _, isHash := recv.(map[string]any); isHash {
						k := a[0]
						if len(a) == 1 {
							k = a[0].([]any)[0]
						}
						outHash[k.(string)] = recv.(map[string]any)[k.(string)]
					} else {
						e := a[len(a)-1]
						out = append(out, e)
						if r, isRes := e.(*result); isRes {
							outSet.items = append(outSet.items, r)
						}
					}
				}
			case "any":
				found = found || truthy(v)
			case "all":
				if !truthy(v) {
					found = true
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, ev.errf(n.off, "cannot call %s on a %s", name, typeName(recv))
		}
		switch name {
		case "each":
			return recv, nil
		case "any":
			return found, nil
		case "all":
			return !found, nil
		case "filter", "filter_set":
			if _, isHash := recv.(map[string]any); isHash {
				return outHash, nil
			}
			if _, isSet := recv.(*resultSet); isSet && name == "filter_set" {
				return outSet, nil
			}
		}
		if out == nil {
			out = []any{}
		}
		return out, nil
	case "reduce":
		if err := needLambda(); err != nil {
			return nil, err
		}
		var memo any
		first := len(args) == 0
		if !first {
			memo = args[0]
		}
		ok, err := iterate(recv, 1, func(a ...any) error {
			if first {
				memo, first = a[0], false
				return nil
			}
			v, err := ev.callLambda(n, s, memo, a[0])
			memo = v
			return err
		})
		if !ok {
			return nil, ev.errf(n.off, "cannot call reduce on a %s", typeName(recv))
		}
		return memo, err
	}
	if v, ok := ev.member(recv, name, arg); ok {
		return v, nil
	}
	if v, handled, err := ev.collectionMethod(n, recv, arg, s); handled {
		return v, err
	}
	return nil, ev.errf(n.off, "cannot call %s on a %s", name, typeName(recv))
}

// member implements the attributes of Results, ResultSets, Targets and
// Errors.
func (ev *evaluator) member(recv any, name string, arg func(int) any) (any, bool) {
	switch x := recv.(type) {
	case *resultSet:
		switch name {
		case "ok":
			return x.ok(), true
		case "ok_set":
			return x.subset(true), true
		case "error_set":
			return x.subset(false), true
		case "targets":
			return x.targets(), true
		case "names":
			return x.names(), true
		case "to_data":
			return ToData(x), true
		case "find":
			for _, r := range x.items {
				if r.r.Target == toString(arg(0)) {
					return r, true
				}
			}
			return nil, true
		}
	case *result:
		switch name {
		case "ok":
			return x.r.OK(), true
		case "value":
			return normalize(x.r.Value), true
		case "target":
			return x.t, true
		case "error":
			if x.r.Error == nil {
				return nil, true
			}
			return x.r.Error, true
		case "message":
			return x.message(), true
		case "status":
			return x.r.Status(), true
		case "action":
			return x.r.Action, true
		case "to_data":
			return x.r, true
		}
	case *muster.Target:
		switch name {
		case "name":
			return x.Name, true
		case "uri":
			return x.URI, true
		case "host":
			return x.Host, true
		case "vars":
			return normalize(x.Vars), true
		case "facts":
			return normalize(x.Facts), true
		}
	case *muster.Error:
		switch name {
		case "msg", "message":
			return x.Msg, true
		case "kind":
			return x.Kind, true
		case "details":
			return normalize(x.Details), true
		case "issue_code":
			return x.IssueCode, true
		}
	case []any:
		if name == "names" || name == "targets" {
			var out []any
			for _, e := range x {
				t, ok := e.(*muster.Target)
				if !ok {
					return nil, false
				}
				if name == "names" {
					out = append(out, t.Name)
				} else {
					out = append(out, t)
				}
			}
			return out, true
		}
	}
	return nil, false
}

func (ev *evaluator) collectionMethod(n *callNode, recv any, arg func(int) any, s *scope) (any, bool, error) {
	if rs, ok := recv.(*resultSet); ok {
		recv = rs.itemsAny()
	}
	switch x := recv.(type) {
	case string:
		switch n.name {
		case "length", "size":
			return int64(len([]rune(x))), true, nil
		case "upcase":
			return strings.ToUpper(x), true, nil
		case "downcase":
			return strings.ToLower(x), true, nil
		case "strip":
			return strings.TrimSpace(x), true, nil
		case "empty":
			return x == "", true, nil
		case "include":
			return contains(x, arg(0)), true, nil
		case "split":
			var parts []string
			switch sep := arg(0).(type) {
			case *regexp.Regexp:
				parts = sep.Split(x, -1)
			default:
				if re, err := regexp.Compile(toString(sep)); err == nil {
					parts = re.Split(x, -1)
				} else {
					parts = strings.Split(x, toString(sep))
				}
			}
			out := make([]any, len(parts))
			for i, p := range parts {
				out[i] = p
			}
			return out, true, nil
		}
	case []any:
		switch n.name {
		case "length", "size":
			return int64(len(x)), true, nil
		case "count":
			if n.lambda == nil {
				return int64(len(x)), true, nil
			}
			c := int64(0)
			for _, e := range x {
				v, err := ev.callLambda(n, s, e)
				if err != nil {
					return nil, true, err
				}
				if truthy(v) {
					c++
				}
			}
			return c, true, nil
		case "empty":
			return len(x) == 0, true, nil
		case "join":
			parts := make([]string, len(x))
			for i, e := range x {
				parts[i] = toString(e)
			}
			return strings.Join(parts, toString(arg(0))), true, nil
		case "first", "last":
			if len(x) == 0 {
				return nil, true, nil
			}
			if n.name == "first" {
				return x[0], true, nil
			}
			return x[len(x)-1], true, nil
		case "include":
			return contains(x, arg(0)), true, nil
		case "unique":
			var out []any
			for _, e := range x {
				if !contains(out, e) {
					out = append(out, e)
				}
			}
			return out, true, nil
		case "flatten":
			return flatten(x), true, nil
		case "sort":
			out := append([]any{}, x...)
			var bad error
			sort.SliceStable(out, func(i, j int) bool {
				c, ok := compare(out[i], out[j])
				if !ok && bad == nil {
					bad = ev.errf(n.off, "sort: cannot compare %s with %s", typeName(out[i]), typeName(out[j]))
				}
				return c < 0
			})
			return out, true, bad
		}
	case map[string]any:
		switch n.name {
		case "length", "size", "count":
			return int64(len(x)), true, nil
		case "empty":
			return len(x) == 0, true, nil
		case "keys":
			out := []any{}
			for _, k := range sortedKeys(x) {
				out = append(out, k)
			}
			return out, true, nil
		case "values":
			out := []any{}
			for _, k := range sortedKeys(x) {
				out = append(out, x[k])
			}
			return out, true, nil
		case "include":
			return contains(x, arg(0)), true, nil
		}
	case nil:
		if n.name == "empty" {
			return true, true, nil
		}
	}
	return nil, false, nil
}

func (s *resultSet) itemsAny() []any {
	out := make([]any, len(s.items))
	for i, r := range s.items {
		out[i] = r
	}
	return out
}

func flatten(x []any) []any {
	out := []any{}
	for _, e := range x {
		if a, ok := e.([]any); ok {
			out = append(out, flatten(a)...)
		} else {
			out = append(out, e)
		}
	}
	return out
}

// action implements run_plan(name, {params}), run_command(cmd, targets,
// {options}) and wait_until_available(targets, {wait_time => s}) in
// expressions. Options are Bolt's _catch_errors, _run_as and _env_vars.
func (ev *evaluator) action(n *callNode, args []any) (any, error) {
	opt := func(i int) map[string]any {
		if i < len(args) {
			if m, ok := args[i].(map[string]any); ok {
				return m
			}
		}
		return map[string]any{}
	}
	if n.name == "run_plan" {
		if len(args) == 0 {
			return nil, ev.errf(n.off, "run_plan needs a plan name")
		}
		params := map[string]any{}
		catch, runAs := false, ""
		for k, v := range opt(1) {
			switch k {
			case "_catch_errors":
				catch = truthy(v)
			case "_run_as":
				runAs = toString(v)
			default:
				params[k] = v
			}
		}
		return ev.rs.nested(toString(args[0]), params, runAs, catch)
	}
	ti, oi := 1, 2
	if n.name == "wait_until_available" {
		ti, oi = 0, 1
	}
	if len(args) <= ti {
		return nil, ev.errf(n.off, "%s needs targets", n.name)
	}
	ts, err := ev.rs.resolve([]any{args[ti]})
	if err != nil {
		return nil, ev.errf(n.off, "%s: %v", n.name, err)
	}
	opts := opt(oi)
	catch := truthy(opts["_catch_errors"])
	o := StepOptions{RunAs: toString(opts["_run_as"])}
	if env, ok := opts["_env_vars"].(map[string]any); ok {
		o.Env = map[string]string{}
		for k, v := range env {
			o.Env[k] = toString(v)
		}
	}
	ctx, r := ev.rs.ctx, ev.rs.r
	if n.name == "run_command" {
		cmd := toString(args[0])
		return ev.rs.act("run_command", cmd, ts, o, catch, func(o StepOptions) ([]*muster.Result, error) {
			return r.RunCommand(ctx, ts, cmd, o)
		})
	}
	var b Batch
	wait := any(int64(120))
	if w, ok := opts["wait_time"]; ok {
		wait = w
	}
	if err := applyBatchKey(&b, "pause", wait); err != nil {
		return nil, ev.errf(n.off, "wait_time: %v", err)
	}
	return ev.rs.act("wait_until_available", fmt.Sprint(b.Pause), ts, o, catch, func(StepOptions) ([]*muster.Result, error) {
		return r.WaitUntilAvailable(ctx, ts, b.Pause)
	})
}
