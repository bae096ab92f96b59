package puppet

import (
	"github.com/muster-run/muster"
)

// ResultSet is Bolt's ResultSet, the value of an action: one Result per
// target, in the order the action returned them.
type ResultSet struct {
	Items []*Result
}

// Result is Bolt's Result: one target's muster.Result of an action, with
// the resolved target.
type Result struct {
	Result *muster.Result
	Target *muster.Target
}

// NewResultSet pairs each result with its target among targets by name
// (a target missing there is made from the result's name).
func NewResultSet(results []*muster.Result, targets []*muster.Target) *ResultSet {
	byName := make(map[string]*muster.Target, len(targets))
	for _, t := range targets {
		byName[t.Name] = t
	}
	rs := &ResultSet{}
	for _, r := range results {
		t := byName[r.Target]
		if t == nil {
			t = &muster.Target{Name: r.Target}
		}
		rs.Items = append(rs.Items, &Result{Result: r, Target: t})
	}
	return rs
}

// OK reports whether every result succeeded.
func (s *ResultSet) OK() bool {
	for _, r := range s.Items {
		if !r.Result.OK() {
			return false
		}
	}
	return true
}

// Subset returns the results that succeeded (ok) or failed (!ok): Bolt's
// ok_set and error_set.
func (s *ResultSet) Subset(ok bool) *ResultSet {
	out := &ResultSet{}
	for _, r := range s.Items {
		if r.Result.OK() == ok {
			out.Items = append(out.Items, r)
		}
	}
	return out
}

// Targets returns the targets, as *muster.Target values.
func (s *ResultSet) Targets() []any {
	out := make([]any, len(s.Items))
	for i, r := range s.Items {
		out[i] = r.Target
	}
	return out
}

// Names returns the target names, as strings.
func (s *ResultSet) Names() []any {
	out := make([]any, len(s.Items))
	for i, r := range s.Items {
		out[i] = r.Result.Target
	}
	return out
}

// Results returns the muster.Result of each item.
func (s *ResultSet) Results() []*muster.Result {
	out := make([]*muster.Result, len(s.Items))
	for i, r := range s.Items {
		out[i] = r.Result
	}
	return out
}

// itemsAny returns the items as an array value.
func (s *ResultSet) itemsAny() []any {
	out := make([]any, len(s.Items))
	for i, r := range s.Items {
		out[i] = r
	}
	return out
}

// Message is Bolt's Result#message: the _output value, falling back to the
// merged output of a command or script.
func (r *Result) Message() any {
	if v, ok := r.Result.Value["_output"]; ok {
		return v
	}
	if v, ok := r.Result.Value["merged_output"]; ok {
		return v
	}
	return nil
}

// ToData converts a value into plain JSON-able Go values: a ResultSet
// becomes an array of *muster.Result (which marshal as Bolt's result
// objects), a Result its *muster.Result, an int an int64, and arrays and
// hashes are converted at every depth. Targets and Errors stay as they
// are: they marshal as their JSON objects.
func ToData(v any) any {
	return CopyWith(v, func(x any) any {
		switch x := x.(type) {
		case *ResultSet:
			out := make([]any, len(x.Items))
			for i, r := range x.Items {
				out[i] = r.Result
			}
			return out
		case *Result:
			return x.Result
		case int:
			return int64(x)
		}
		return x
	})
}
