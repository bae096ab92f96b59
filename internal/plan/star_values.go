package plan

import (
	"fmt"
	"maps"
	"slices"

	"go.starlark.net/starlark"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/puppet"
)

// starResultSet is a ResultSet in Starlark: indexable, iterable, with
// ok, ok_set, error_set, names, targets and to_data.
type starResultSet struct{ s *puppet.ResultSet }

var (
	_ starlark.Indexable = (*starResultSet)(nil)
	_ starlark.Iterable  = (*starResultSet)(nil)
	_ starlark.HasAttrs  = (*starResultSet)(nil)
	_ starlark.Mapping   = (*starResult)(nil)
	_ starlark.HasAttrs  = (*starResult)(nil)
	_ starlark.HasAttrs  = (*starTarget)(nil)
	_ starlark.HasAttrs  = (*starError)(nil)
)

func (v *starResultSet) String() string {
	return fmt.Sprintf("ResultSet(%d results, ok=%t)", len(v.s.Items), v.s.OK())
}
func (v *starResultSet) Type() string          { return "ResultSet" }
func (v *starResultSet) Freeze()               {}
func (v *starResultSet) Truth() starlark.Bool  { return true }
func (v *starResultSet) Hash() (uint32, error) { return 0, fmt.Errorf("unhashable: ResultSet") }
func (v *starResultSet) Len() int              { return len(v.s.Items) }
func (v *starResultSet) Index(i int) starlark.Value {
	return &starResult{v.s.Items[i]}
}
func (v *starResultSet) Iterate() starlark.Iterator { return &rsIter{s: v.s} }
func (v *starResultSet) AttrNames() []string {
	return []string{"error_set", "names", "ok", "ok_set", "targets", "to_data"}
}
func (v *starResultSet) Attr(name string) (starlark.Value, error) {
	switch name {
	case "ok":
		return starlark.Bool(v.s.OK()), nil
	case "ok_set":
		return &starResultSet{v.s.Subset(true)}, nil
	case "error_set":
		return &starResultSet{v.s.Subset(false)}, nil
	case "names":
		return toStar(v.s.Names()), nil
	case "targets":
		return toStar(v.s.Targets()), nil
	case "to_data":
		return toStar(toPlainJSON(puppet.ToData(v.s))), nil
	}
	return nil, nil
}

type rsIter struct {
	s *puppet.ResultSet
	i int
}

func (it *rsIter) Next(p *starlark.Value) bool {
	if it.i >= len(it.s.Items) {
		return false
	}
	*p = &starResult{it.s.Items[it.i]}
	it.i++
	return true
}
func (it *rsIter) Done() {}

// starResult is one Result: target, value, ok, status, error, message,
// action, and r["key"] for value["key"].
type starResult struct{ r *puppet.Result }

func (v *starResult) String() string {
	return fmt.Sprintf("Result(target=%q, status=%q)", v.r.Result.Target, v.r.Result.Status())
}
func (v *starResult) Type() string          { return "Result" }
func (v *starResult) Freeze()               {}
func (v *starResult) Truth() starlark.Bool  { return true }
func (v *starResult) Hash() (uint32, error) { return 0, fmt.Errorf("unhashable: Result") }
func (v *starResult) Get(k starlark.Value) (starlark.Value, bool, error) {
	s, ok := starlark.AsString(k)
	if !ok {
		return nil, false, fmt.Errorf("result keys are strings, got %s", k.Type())
	}
	x, found := v.r.Result.Value[s]
	return toStar(puppet.Normalize(x)), found, nil
}
func (v *starResult) AttrNames() []string {
	return []string{"action", "error", "message", "ok", "status", "target", "value"}
}
func (v *starResult) Attr(name string) (starlark.Value, error) {
	switch name {
	case "target":
		return &starTarget{v.r.Target}, nil
	case "value":
		return toStar(puppet.Normalize(v.r.Result.Value)), nil
	case "ok":
		return starlark.Bool(v.r.Result.OK()), nil
	case "status":
		return starlark.String(v.r.Result.Status()), nil
	case "error":
		if v.r.Result.Error == nil {
			return starlark.None, nil
		}
		return &starError{v.r.Result.Error}, nil
	case "message":
		return toStar(v.r.Message()), nil
	case "action":
		return starlark.String(v.r.Result.Action), nil
	}
	return nil, nil
}

// starTarget is a Target: name, uri, host, user, port, vars, facts.
type starTarget struct{ t *muster.Target }

func (v *starTarget) String() string        { return v.t.Name }
func (v *starTarget) Type() string          { return "Target" }
func (v *starTarget) Freeze()               {}
func (v *starTarget) Truth() starlark.Bool  { return true }
func (v *starTarget) Hash() (uint32, error) { return starlark.String(v.t.Name).Hash() }
func (v *starTarget) AttrNames() []string {
	return []string{"facts", "host", "name", "port", "uri", "user", "vars"}
}
func (v *starTarget) Attr(name string) (starlark.Value, error) {
	switch name {
	case "name":
		return starlark.String(v.t.Name), nil
	case "uri":
		return starlark.String(v.t.URI), nil
	case "host":
		return starlark.String(v.t.Host), nil
	case "user":
		return starlark.String(v.t.User), nil
	case "port":
		return starlark.MakeInt(v.t.Port), nil
	case "vars":
		return toStar(puppet.Normalize(v.t.Vars)), nil
	case "facts":
		return toStar(puppet.Normalize(v.t.Facts)), nil
	}
	return nil, nil
}

// starError is an Error caught by catch_errors or on a failed Result.
type starError struct{ e *muster.Error }

func (v *starError) String() string        { return fmt.Sprintf("Error(%q, %q)", v.e.Kind, v.e.Msg) }
func (v *starError) Type() string          { return "Error" }
func (v *starError) Freeze()               {}
func (v *starError) Truth() starlark.Bool  { return true }
func (v *starError) Hash() (uint32, error) { return 0, fmt.Errorf("unhashable: Error") }
func (v *starError) AttrNames() []string {
	return []string{"details", "issue_code", "kind", "message", "msg"}
}
func (v *starError) Attr(name string) (starlark.Value, error) {
	switch name {
	case "kind":
		return starlark.String(v.e.Kind), nil
	case "msg", "message":
		return starlark.String(v.e.Msg), nil
	case "issue_code":
		return starlark.String(v.e.IssueCode), nil
	case "details":
		return toStar(toPlainJSON(puppet.Normalize(v.e.Details))), nil
	}
	return nil, nil
}

// toPlainJSON turns *muster.Result values inside data into their JSON
// maps so that Starlark code can read them.
func toPlainJSON(v any) any {
	return puppet.CopyWith(v, func(x any) any {
		switch x := x.(type) {
		case *muster.Result:
			m := map[string]any{"target": x.Target, "action": x.Action, "object": x.Object, "status": x.Status()}
			val := map[string]any{}
			for k, e := range x.Value {
				val[k] = puppet.Normalize(e)
			}
			if x.Error != nil {
				val["_error"] = map[string]any{"kind": x.Error.Kind, "msg": x.Error.Msg, "details": puppet.Normalize(x.Error.Details)}
			}
			m["value"] = val
			return m
		case []*muster.Result:
			out := make([]any, len(x))
			for i, r := range x {
				out[i] = toPlainJSON(r)
			}
			return out
		}
		return x
	})
}

// toStar converts a plan value to Starlark.
func toStar(v any) starlark.Value {
	switch x := v.(type) {
	case nil:
		return starlark.None
	case bool:
		return starlark.Bool(x)
	case int64:
		return starlark.MakeInt64(x)
	case int:
		return starlark.MakeInt(x)
	case float64:
		return starlark.Float(x)
	case string:
		return starlark.String(x)
	case []any:
		l := make([]starlark.Value, len(x))
		for i, e := range x {
			l[i] = toStar(e)
		}
		return starlark.NewList(l)
	case map[string]any:
		d := starlark.NewDict(len(x))
		for _, k := range slices.Sorted(maps.Keys(x)) {
			_ = d.SetKey(starlark.String(k), toStar(x[k]))
		}
		return d
	case *puppet.ResultSet:
		return &starResultSet{x}
	case *puppet.Result:
		return &starResult{x}
	case *muster.Target:
		return &starTarget{x}
	case *muster.Error:
		return &starError{x}
	case starlark.Value:
		return x
	}
	return toStar(puppet.Normalize(v))
}

// fromStar converts a Starlark value to a plan value.
func fromStar(v starlark.Value) (any, error) {
	return fromStarDepth(v, 0)
}

func fromStarDepth(v starlark.Value, depth int) (any, error) {
	if depth > puppet.MaxDepth {
		return nil, fmt.Errorf("value nested too deeply")
	}
	switch x := v.(type) {
	case starlark.NoneType:
		return nil, nil
	case starlark.Bool:
		return bool(x), nil
	case starlark.Int:
		if n, ok := x.Int64(); ok {
			return n, nil
		}
		f, _ := starlark.AsFloat(x)
		return f, nil
	case starlark.Float:
		return float64(x), nil
	case starlark.String:
		return string(x), nil
	case *starResultSet:
		return x.s, nil
	case *starResult:
		return x.r, nil
	case *starTarget:
		return x.t, nil
	case *starError:
		return x.e, nil
	case *starlark.Dict:
		out := make(map[string]any, x.Len())
		for _, it := range x.Items() {
			k, ok := starlark.AsString(it[0])
			if !ok {
				k = it[0].String()
			}
			e, err := fromStarDepth(it[1], depth+1)
			if err != nil {
				return nil, err
			}
			out[k] = e
		}
		return out, nil
	case starlark.Iterable:
		if _, isSeq := x.(starlark.Sequence); !isSeq {
			break
		}
		out := []any{}
		it := x.Iterate()
		defer it.Done()
		var e starlark.Value
		for it.Next(&e) {
			g, err := fromStarDepth(e, depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, g)
		}
		return out, nil
	}
	return nil, fmt.Errorf("cannot convert a %s to plan data", v.Type())
}
