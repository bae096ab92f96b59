package puppet

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/muster-run/muster"
)

func (ev *evaluator) call(n *callNode, s *Scope) (any, error) {
	var args []any
	for _, a := range n.args {
		v, err := ev.eval(a, s)
		if err != nil {
			return nil, err
		}
		args = append(args, v)
	}
	if n.recv == nil {
		if n.host || builtinFunctions[n.name] {
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

// function runs a call without a receiver of sprintf or of a host
// function.
func (ev *evaluator) function(n *callNode, args []any) (any, error) {
	if !n.host {
		return ev.sprintf(n, args)
	}
	if ev.host == nil {
		return nil, ev.errf(n.off, "unknown function %s", n.name)
	}
	return ev.host.CallFunction(&Call{Name: n.name, Args: args, ev: ev, off: n.off})
}

// sprintf formats with Go's verbs, rendering arrays as Puppet does.
func (ev *evaluator) sprintf(n *callNode, args []any) (any, error) {
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
}

func (ev *evaluator) callLambda(n *callNode, s *Scope, args ...any) (any, error) {
	l := n.lambda
	ls := NewScope(s)
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
	case *ResultSet:
		return iterate(c.itemsAny(), nparams, fn)
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(c)) {
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

func (ev *evaluator) method(n *callNode, recv any, args []any, s *Scope) (any, error) {
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
		outSet := &ResultSet{}
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
				if Truthy(v) {
					if _, isHash := recv.(map[string]any); isHash {
						k := a[0]
						if len(a) == 1 {
							k = a[0].([]any)[0]
						}
						outHash[k.(string)] = recv.(map[string]any)[k.(string)]
					} else {
						e := a[len(a)-1]
						out = append(out, e)
						if r, isRes := e.(*Result); isRes {
							outSet.Items = append(outSet.Items, r)
						}
					}
				}
			case "any":
				found = found || Truthy(v)
			case "all":
				if !Truthy(v) {
					found = true
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, ev.errf(n.off, "cannot call %s on a %s", name, TypeName(recv))
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
			if _, isSet := recv.(*ResultSet); isSet && name == "filter_set" {
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
			return nil, ev.errf(n.off, "cannot call reduce on a %s", TypeName(recv))
		}
		return memo, err
	}
	if v, ok := ev.member(recv, name, arg); ok {
		return v, nil
	}
	if v, handled, err := ev.collectionMethod(n, recv, arg, s); handled {
		return v, err
	}
	return nil, ev.errf(n.off, "cannot call %s on a %s", name, TypeName(recv))
}

// member implements the attributes of Results, ResultSets, Targets and
// Errors.
func (ev *evaluator) member(recv any, name string, arg func(int) any) (any, bool) {
	switch x := recv.(type) {
	case *ResultSet:
		switch name {
		case "ok":
			return x.OK(), true
		case "ok_set":
			return x.Subset(true), true
		case "error_set":
			return x.Subset(false), true
		case "targets":
			return x.Targets(), true
		case "names":
			return x.Names(), true
		case "to_data":
			return ToData(x), true
		case "find":
			for _, r := range x.Items {
				if r.Result.Target == ToString(arg(0)) {
					return r, true
				}
			}
			return nil, true
		}
	case *Result:
		switch name {
		case "ok":
			return x.Result.OK(), true
		case "value":
			return Normalize(x.Result.Value), true
		case "target":
			return x.Target, true
		case "error":
			if x.Result.Error == nil {
				return nil, true
			}
			return x.Result.Error, true
		case "message":
			return x.Message(), true
		case "status":
			return x.Result.Status(), true
		case "action":
			return x.Result.Action, true
		case "to_data":
			return x.Result, true
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
			return Normalize(x.Vars), true
		case "facts":
			return Normalize(x.Facts), true
		}
	case *muster.Error:
		switch name {
		case "msg", "message":
			return x.Msg, true
		case "kind":
			return x.Kind, true
		case "details":
			return Normalize(x.Details), true
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

func (ev *evaluator) collectionMethod(n *callNode, recv any, arg func(int) any, s *Scope) (any, bool, error) {
	if rs, ok := recv.(*ResultSet); ok {
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
				if re, err := regexp.Compile(ToString(sep)); err == nil {
					parts = re.Split(x, -1)
				} else {
					parts = strings.Split(x, ToString(sep))
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
				if Truthy(v) {
					c++
				}
			}
			return c, true, nil
		case "empty":
			return len(x) == 0, true, nil
		case "join":
			parts := make([]string, len(x))
			for i, e := range x {
				parts[i] = ToString(e)
			}
			return strings.Join(parts, ToString(arg(0))), true, nil
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
					bad = ev.errf(n.off, "sort: cannot compare %s with %s", TypeName(out[i]), TypeName(out[j]))
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
			for _, k := range slices.Sorted(maps.Keys(x)) {
				out = append(out, k)
			}
			return out, true, nil
		case "values":
			out := []any{}
			for _, k := range slices.Sorted(maps.Keys(x)) {
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
