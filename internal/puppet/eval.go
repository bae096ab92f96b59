package puppet

import (
	"fmt"
	"math"
	"regexp"
	"strings"

	"github.com/muster-run/muster"
)

// KindEvaluation is the error kind of an expression that fails while it
// is evaluated (a type mismatch, a division by zero).
const KindEvaluation = "muster/evaluation-error"

// Scope holds variables; lambdas and blocks get a child scope.
type Scope struct {
	vars   map[string]any
	parent *Scope
}

// NewScope returns an empty scope inside parent, which may be nil.
func NewScope(parent *Scope) *Scope { return &Scope{vars: map[string]any{}, parent: parent} }

// Set binds name to v in s itself.
func (s *Scope) Set(name string, v any) { s.vars[name] = v }

func (s *Scope) get(name string) (any, bool) {
	for ; s != nil; s = s.parent {
		if v, ok := s.vars[name]; ok {
			return v, true
		}
	}
	return nil, false
}

// Host performs the host functions that code may call, the names given
// to ParseExpression: a plan's get_targets, run_command or out::message.
type Host interface {
	// CallFunction runs c.Name with c.Args. An error made with c.Errorf
	// names the file and line of the call; any other error is returned
	// from Eval as it is.
	CallFunction(c *Call) (any, error)
}

// Call is one call of a host function.
type Call struct {
	// Name is the function's name, as in get_targets or out::message.
	Name string
	// Args are the evaluated arguments.
	Args []any
	ev   *evaluator
	off  int
}

// Errorf returns a muster/evaluation-error "file:line: message" located at
// the call.
func (c *Call) Errorf(format string, args ...any) error { return c.ev.errf(c.off, format, args...) }

// evaluator evaluates one Expr.
type evaluator struct {
	x    *Expr
	host Host
}

func (ev *evaluator) errf(off int, format string, args ...any) error {
	return muster.Errorf(KindEvaluation, "%s:%d: %s", ev.x.File, ev.x.LineOf(off), fmt.Sprintf(format, args...))
}

// Eval evaluates e in scope s, with host performing the host functions.
// Assignments bind in s. A failure is a *muster.Error of KindEvaluation
// naming file and line, or an error of the host.
func (e *Expr) Eval(s *Scope, host Host) (any, error) {
	ev := &evaluator{x: e, host: host}
	return ev.eval(e.root, s)
}

func (ev *evaluator) evalBlock(b *blockNode, s *Scope) (any, error) {
	var v any
	var err error
	for _, st := range b.stmts {
		if v, err = ev.eval(st, s); err != nil {
			return nil, err
		}
	}
	return v, nil
}

func (ev *evaluator) eval(n node, s *Scope) (any, error) {
	switch n := n.(type) {
	case *litNode:
		return n.v, nil
	case *regexNode:
		return n.re, nil
	case *varNode:
		v, ok := s.get(n.name)
		if !ok {
			return nil, ev.errf(n.off, "unknown variable $%s", n.name)
		}
		return v, nil
	case *blockNode:
		return ev.evalBlock(n, s)
	case *assignNode:
		v, err := ev.eval(n.x, s)
		if err != nil {
			return nil, err
		}
		s.vars[n.name] = v
		return v, nil
	case *strNode:
		if len(n.parts) == 1 {
			if l, ok := n.parts[0].(*litNode); ok {
				return l.v, nil
			}
		}
		var b strings.Builder
		for _, p := range n.parts {
			v, err := ev.eval(p, s)
			if err != nil {
				return nil, err
			}
			b.WriteString(ToString(v))
		}
		return b.String(), nil
	case *arrayNode:
		out := make([]any, 0, len(n.elems))
		for _, e := range n.elems {
			v, err := ev.eval(e, s)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	case *hashNode:
		out := make(map[string]any, len(n.keys))
		for i := range n.keys {
			k, err := ev.eval(n.keys[i], s)
			if err != nil {
				return nil, err
			}
			v, err := ev.eval(n.vals[i], s)
			if err != nil {
				return nil, err
			}
			out[ToString(k)] = v
		}
		return out, nil
	case *indexNode:
		return ev.index(n, s)
	case *callNode:
		return ev.call(n, s)
	case *unNode:
		v, err := ev.eval(n.x, s)
		if err != nil {
			return nil, err
		}
		if n.op == "!" {
			return !Truthy(v), nil
		}
		switch x := v.(type) {
		case int64:
			return -x, nil
		case float64:
			return -x, nil
		}
		return nil, ev.errf(n.off, "cannot negate a %s", TypeName(v))
	case *ifNode:
		c, err := ev.eval(n.cond, s)
		if err != nil {
			return nil, err
		}
		if Truthy(c) != n.neg {
			return ev.evalBlock(n.then, NewScope(s))
		}
		if n.els != nil {
			return ev.eval(n.els, NewScope(s))
		}
		return nil, nil
	case *binNode:
		return ev.binary(n, s)
	}
	return nil, ev.errf(n.offset(), "cannot evaluate %T", n)
}

func (ev *evaluator) binary(n *binNode, s *Scope) (any, error) {
	l, err := ev.eval(n.l, s)
	if err != nil {
		return nil, err
	}
	switch n.op {
	case "and":
		if !Truthy(l) {
			return false, nil
		}
	case "or":
		if Truthy(l) {
			return true, nil
		}
	}
	r, err := ev.eval(n.r, s)
	if err != nil {
		return nil, err
	}
	switch n.op {
	case "and", "or":
		return Truthy(r), nil
	case "==":
		return equal(l, r), nil
	case "!=":
		return !equal(l, r), nil
	case "in":
		return contains(r, l), nil
	case "=~", "!~":
		str, ok := l.(string)
		if !ok {
			return nil, ev.errf(n.off, "=~ needs a String on the left, got %s", TypeName(l))
		}
		re, ok := r.(*regexp.Regexp)
		if !ok {
			src, isStr := r.(string)
			if !isStr {
				return nil, ev.errf(n.off, "=~ needs a regular expression or String on the right, got %s", TypeName(r))
			}
			if re, err = regexp.Compile(src); err != nil {
				return nil, ev.errf(n.off, "invalid regular expression %q: %v", src, err)
			}
		}
		return re.MatchString(str) == (n.op == "=~"), nil
	case "<", ">", "<=", ">=":
		c, ok := compare(l, r)
		if !ok {
			return nil, ev.errf(n.off, "cannot compare %s with %s", TypeName(l), TypeName(r))
		}
		switch n.op {
		case "<":
			return c < 0, nil
		case ">":
			return c > 0, nil
		case "<=":
			return c <= 0, nil
		}
		return c >= 0, nil
	}
	return ev.arith(n, l, r)
}

func (ev *evaluator) arith(n *binNode, l, r any) (any, error) {
	switch x := l.(type) {
	case []any:
		switch n.op {
		case "+":
			if y, ok := r.([]any); ok {
				return append(append([]any{}, x...), y...), nil
			}
			return append(append([]any{}, x...), r), nil
		case "-":
			del, ok := r.([]any)
			if !ok {
				del = []any{r}
			}
			var out []any
			for _, e := range x {
				if !contains(del, e) {
					out = append(out, e)
				}
			}
			return out, nil
		}
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, v := range x {
			out[k] = v
		}
		switch y := r.(type) {
		case map[string]any:
			if n.op == "+" {
				for k, v := range y {
					out[k] = v
				}
				return out, nil
			}
			for k := range y {
				delete(out, k)
			}
			return out, nil
		case []any:
			if n.op == "-" {
				for _, k := range y {
					delete(out, ToString(k))
				}
				return out, nil
			}
		}
	}
	a, ok1 := ToNumber(l)
	b, ok2 := ToNumber(r)
	if !ok1 || !ok2 {
		return nil, ev.errf(n.off, "operator %s is not defined for %s and %s", n.op, TypeName(l), TypeName(r))
	}
	ia, aInt := a.(int64)
	ib, bInt := b.(int64)
	if aInt && bInt {
		switch n.op {
		case "+":
			return ia + ib, nil
		case "-":
			return ia - ib, nil
		case "*":
			return ia * ib, nil
		case "/", "%":
			if ib == 0 {
				return nil, ev.errf(n.off, "division by zero")
			}
			if ib == -1 {
				if n.op == "/" {
					return -ia, nil
				}
				return int64(0), nil
			}
			if n.op == "/" {
				return ia / ib, nil
			}
			return ia % ib, nil
		}
	}
	fa, fb := ToFloat(a), ToFloat(b)
	switch n.op {
	case "+":
		return fa + fb, nil
	case "-":
		return fa - fb, nil
	case "*":
		return fa * fb, nil
	case "/":
		if fb == 0 {
			return nil, ev.errf(n.off, "division by zero")
		}
		return fa / fb, nil
	}
	if fb == 0 {
		return nil, ev.errf(n.off, "division by zero")
	}
	return math.Mod(fa, fb), nil
}

// compare orders numbers and strings (case-insensitively).
func compare(a, b any) (int, bool) {
	if sa, ok := a.(string); ok {
		if sb, ok := b.(string); ok {
			return strings.Compare(strings.ToLower(sa), strings.ToLower(sb)), true
		}
		return 0, false
	}
	na, ok1 := a.(int64)
	nb, ok2 := b.(int64)
	if ok1 && ok2 {
		switch {
		case na < nb:
			return -1, true
		case na > nb:
			return 1, true
		}
		return 0, true
	}
	_, fa := a.(float64)
	_, fb := b.(float64)
	if (ok1 || fa) && (ok2 || fb) {
		x, y := ToFloat(a), ToFloat(b)
		switch {
		case x < y:
			return -1, true
		case x > y:
			return 1, true
		}
		return 0, true
	}
	return 0, false
}

// contains implements `x in coll`.
func contains(coll, x any) bool {
	switch c := coll.(type) {
	case string:
		s, ok := x.(string)
		if re, isRe := x.(*regexp.Regexp); isRe {
			return re.MatchString(c)
		}
		return ok && strings.Contains(strings.ToLower(c), strings.ToLower(s))
	case []any:
		for _, e := range c {
			if re, isRe := x.(*regexp.Regexp); isRe {
				if s, ok := e.(string); ok && re.MatchString(s) {
					return true
				}
			} else if equal(e, x) {
				return true
			}
		}
	case map[string]any:
		if s, ok := x.(string); ok {
			_, found := c[s]
			return found
		}
	case *ResultSet:
		return contains(c.Names(), ToString(x))
	}
	return false
}

func (ev *evaluator) index(n *indexNode, s *Scope) (any, error) {
	x, err := ev.eval(n.x, s)
	if err != nil {
		return nil, err
	}
	var idx []any
	for _, e := range n.idx {
		v, err := ev.eval(e, s)
		if err != nil {
			return nil, err
		}
		idx = append(idx, v)
	}
	switch c := x.(type) {
	case map[string]any:
		if len(idx) != 1 {
			return nil, ev.errf(n.off, "a Hash takes one key")
		}
		return c[ToString(idx[0])], nil
	case *Result:
		if len(idx) != 1 {
			return nil, ev.errf(n.off, "a Result takes one key")
		}
		return c.Result.Value[ToString(idx[0])], nil
	case *muster.Error:
		return map[string]any{"msg": c.Msg, "kind": c.Kind, "details": c.Details, "issue_code": c.IssueCode}[ToString(idx[0])], nil
	case nil:
		return nil, ev.errf(n.off, "cannot index undef")
	}
	seq, length, ok := sequence(x)
	if !ok {
		return nil, ev.errf(n.off, "cannot index a %s", TypeName(x))
	}
	start, ok := ToInt(idx[0])
	if !ok {
		return nil, ev.errf(n.off, "a %s index must be an Integer, got %s", TypeName(x), TypeName(idx[0]))
	}
	if start < 0 {
		start += int64(length)
	}
	if len(idx) == 1 {
		if start < 0 || start >= int64(length) {
			return nil, nil
		}
		return seq(int(start), int(start)+1, true), nil
	}
	count, ok := ToInt(idx[1])
	if !ok {
		return nil, ev.errf(n.off, "a slice count must be an Integer")
	}
	start = max(start, 0)
	end := int64(length)
	if count >= 0 && start+count < end {
		end = start + count
	} else if count < 0 {
		end = int64(length) + count + 1
	}
	start = min(start, int64(length))
	end = max(end, start)
	return seq(int(start), int(end), false), nil
}

// sequence gives indexed access to strings, arrays and result sets:
// get(i, j, single) returns element i or the slice [i, j).
func sequence(x any) (func(i, j int, single bool) any, int, bool) {
	switch c := x.(type) {
	case []any:
		return func(i, j int, single bool) any {
			if single {
				return c[i]
			}
			return append([]any{}, c[i:j]...)
		}, len(c), true
	case string:
		r := []rune(c)
		return func(i, j int, _ bool) any { return string(r[i:j]) }, len(r), true
	case *ResultSet:
		return func(i, j int, single bool) any {
			if single {
				return c.Items[i]
			}
			return &ResultSet{Items: append([]*Result{}, c.Items[i:j]...)}
		}, len(c.Items), true
	}
	return nil, 0, false
}
