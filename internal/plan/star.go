package plan

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"

	"go.starlark.net/resolve"
	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/puppet"
)

// starPlan is a loaded Starlark plan: its frozen globals.
type starPlan struct {
	globals starlark.StringDict
	main    *starlark.Function
}

const rsKey = "muster.runState"

var starOptions = &syntax.FileOptions{Set: true, While: true, TopLevelControl: true, GlobalReassign: true, Recursion: true}

// loadStarlark executes the file's top level (plan actions are refused
// there) and reads DESCRIPTION, PRIVATE, PARAMS, BATCH and main.
func loadStarlark(name, file string, data []byte) (*Plan, error) {
	thread := &starlark.Thread{Name: "load " + name, Print: func(*starlark.Thread, string) {}}
	// The top level runs at discovery: bound it so a stray loop cannot hang.
	thread.SetMaxExecutionSteps(10_000_000)
	globals, err := starlark.ExecFileOptions(starOptions, thread, file, data, builtins())
	if err != nil {
		return nil, starLoadError(file, err)
	}
	p := &Plan{Name: name, File: file, Kind: KindStarlark, star: &starPlan{globals: globals}}
	lerr := func(format string, args ...any) error {
		return &LoadError{File: file, Msg: fmt.Sprintf(format, args...)}
	}
	fn, ok := globals["main"].(*starlark.Function)
	if !ok {
		return nil, lerr("a Starlark plan must define a function main(...)")
	}
	p.star.main = fn
	if d, ok := globals["DESCRIPTION"]; ok {
		s, isStr := starlark.AsString(d)
		if !isStr {
			return nil, lerr("DESCRIPTION must be a string")
		}
		p.Description = s
	} else {
		p.Description = fn.Doc()
	}
	if v, ok := globals["PRIVATE"]; ok {
		b, isBool := v.(starlark.Bool)
		if !isBool {
			return nil, lerr("PRIVATE must be True or False")
		}
		p.Private = bool(b)
	}
	if v, ok := globals["BATCH"]; ok {
		// muster's extension, as the YAML plan's top-level batch keys:
		// BATCH = {"batch": "10%", "canary": 1, "max_failures": 2, "pause": "30s"}
		d, isDict := v.(*starlark.Dict)
		if !isDict {
			return nil, lerr("BATCH must be a dict of batch, canary, max_failures and pause")
		}
		for _, item := range d.Items() {
			k, isStr := starlark.AsString(item[0])
			if !isStr || (k != "batch" && k != "canary" && k != "max_failures" && k != "pause") {
				return nil, lerr("BATCH: unknown key %s (expected batch, canary, max_failures or pause)", item[0])
			}
			val, err := fromStar(item[1])
			if err != nil {
				return nil, lerr("BATCH[%q]: %v", k, err)
			}
			if err := applyBatchKey(&p.Batch, k, val); err != nil {
				return nil, lerr("BATCH[%q]: %v", k, err)
			}
		}
	}
	mainParams := map[string]bool{}
	for i := 0; i < fn.NumParams(); i++ {
		pn, _ := fn.Param(i)
		mainParams[pn] = true
	}
	if fn.HasVarargs() {
		return nil, lerr("main must not take *args; plan parameters are passed by name")
	}
	pv, hasParams := globals["PARAMS"]
	if !hasParams {
		n := fn.NumParams()
		if fn.HasKwargs() {
			n--
		}
		for i := 0; i < n; i++ {
			pn, _ := fn.Param(i)
			prm := &Param{Name: pn, TypeString: "NotUndef"}
			if d := fn.ParamDefault(i); d != nil {
				prm.TypeString = "Any"
				v, err := fromStar(d)
				if err != nil {
					return nil, lerr("default of %s: %v", pn, err)
				}
				prm.Default, prm.HasDefault = v, true
			}
			if err := setType(prm); err != nil {
				return nil, lerr("%v", err)
			}
			p.Parameters = append(p.Parameters, prm)
		}
		return p, nil
	}
	d, ok := pv.(*starlark.Dict)
	if !ok {
		return nil, lerr("PARAMS must be a dict of name to {\"type\": ..., \"default\": ..., \"description\": ...}")
	}
	for _, it := range d.Items() {
		pn, ok := starlark.AsString(it[0])
		if !ok || !paramNameRE.MatchString(pn) {
			return nil, lerr("invalid parameter name %s in PARAMS", it[0])
		}
		prm := &Param{Name: pn}
		switch def := it[1].(type) {
		case starlark.String:
			prm.TypeString = string(def)
		case *starlark.Dict:
			for _, kv := range def.Items() {
				k, _ := starlark.AsString(kv[0])
				switch k {
				case "type", "description":
					s, isStr := starlark.AsString(kv[1])
					if !isStr {
						return nil, lerr("parameter %s: %s must be a string", pn, k)
					}
					if k == "type" {
						prm.TypeString = s
					} else {
						prm.Description = s
					}
				case "default":
					v, err := fromStar(kv[1])
					if err != nil {
						return nil, lerr("parameter %s: default: %v", pn, err)
					}
					prm.Default, prm.HasDefault = v, true
				default:
					return nil, lerr("parameter %s: unknown key %s (expected type, default or description)", pn, kv[0])
				}
			}
		case starlark.NoneType:
		default:
			return nil, lerr("parameter %s: expected a type string or a dict", pn)
		}
		if err := setType(prm); err != nil {
			return nil, lerr("parameter %s: %v", pn, err)
		}
		if !fn.HasKwargs() && !mainParams[pn] {
			return nil, lerr("parameter %s is declared in PARAMS but main does not take it (add it to main's parameters or use **params)", pn)
		}
		p.Parameters = append(p.Parameters, prm)
	}
	declared := map[string]bool{}
	for _, prm := range p.Parameters {
		declared[prm.Name] = true
	}
	for i := 0; i < fn.NumParams(); i++ {
		pn, _ := fn.Param(i)
		if fn.HasKwargs() && i == fn.NumParams()-1 {
			break
		}
		if !declared[pn] && fn.ParamDefault(i) == nil {
			return nil, lerr("main's parameter %s is not declared in PARAMS", pn)
		}
	}
	sort.SliceStable(p.Parameters, func(i, j int) bool { return p.Parameters[i].Name < p.Parameters[j].Name })
	return p, nil
}

// starLoadError converts a Starlark syntax, resolve or top-level error
// into a *LoadError with the line.
func starLoadError(file string, err error) error {
	var se syntax.Error
	var rl resolve.ErrorList
	var ee *starlark.EvalError
	switch {
	case errors.As(err, &se):
		return &LoadError{File: file, Line: int(se.Pos.Line), Msg: se.Msg}
	case errors.As(err, &rl) && len(rl) > 0:
		return &LoadError{File: file, Line: int(rl[0].Pos.Line), Msg: rl[0].Msg}
	case errors.As(err, &ee):
		return &LoadError{File: file, Line: starLine(file, ee), Msg: ee.Msg}
	}
	return &LoadError{File: file, Msg: err.Error()}
}

// starLine returns the innermost line of file in the error's call stack.
func starLine(file string, ee *starlark.EvalError) int {
	for i := 0; i < len(ee.CallStack); i++ {
		f := ee.CallStack.At(i)
		if f.Pos.Filename() == file {
			return int(f.Pos.Line)
		}
	}
	return 0
}

// runStarlark calls main(**params) on a fresh thread.
func (rs *runState) runStarlark(p *Plan, params map[string]any) (any, error) {
	thread := rs.newThread(p.Name)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		select {
		case <-rs.ctx.Done():
			thread.Cancel("plan cancelled")
		case <-stop:
		}
	}()
	var kwargs []starlark.Tuple
	for _, k := range slices.Sorted(maps.Keys(params)) {
		kwargs = append(kwargs, starlark.Tuple{starlark.String(k), toStar(params[k])})
	}
	v, err := starlark.Call(thread, p.star.main, nil, kwargs)
	if err != nil {
		return nil, starRunError(p.File, err)
	}
	out, err := fromStar(v)
	if err != nil {
		return nil, muster.Errorf(puppet.KindEvaluation, "%s: main's return value: %v", p.File, err)
	}
	return out, nil
}

func (rs *runState) newThread(name string) *starlark.Thread {
	t := &starlark.Thread{Name: name, Print: func(_ *starlark.Thread, msg string) { rs.r.Message(msg) }}
	t.SetLocal(rsKey, rs)
	return t
}

// starRunError converts an error out of Starlark: muster errors keep their
// kind and message and gain details.location; anything else becomes an
// evaluation error "file:line: message".
func starRunError(file string, err error) error {
	var ee *starlark.EvalError
	loc := file
	if errors.As(err, &ee) {
		if l := starLine(file, ee); l > 0 {
			loc = fmt.Sprintf("%s:%d", file, l)
		}
	}
	var me *muster.Error
	if errors.As(err, &me) {
		c := *me
		c.Details = map[string]any{}
		for k, v := range me.Details {
			c.Details[k] = v
		}
		if _, has := c.Details["location"]; !has {
			c.Details["location"] = loc
		}
		return &c
	}
	msg := err.Error()
	if ee != nil {
		msg = ee.Msg
	}
	return muster.Errorf(puppet.KindEvaluation, "%s: %s", loc, msg)
}
