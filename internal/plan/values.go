package plan

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/muster-run/muster"
)

// resultSet is the value of an action step: one result per target.
type resultSet struct{ items []*result }

// result is one muster.Result with its resolved target.
type result struct {
	r *muster.Result
	t *muster.Target
}

func newResultSet(results []*muster.Result, targets []*muster.Target) *resultSet {
	byName := make(map[string]*muster.Target, len(targets))
	for _, t := range targets {
		byName[t.Name] = t
	}
	rs := &resultSet{}
	for _, r := range results {
		t := byName[r.Target]
		if t == nil {
			t = &muster.Target{Name: r.Target}
		}
		rs.items = append(rs.items, &result{r: r, t: t})
	}
	return rs
}

func (s *resultSet) ok() bool {
	for _, r := range s.items {
		if !r.r.OK() {
			return false
		}
	}
	return true
}

func (s *resultSet) subset(ok bool) *resultSet {
	out := &resultSet{}
	for _, r := range s.items {
		if r.r.OK() == ok {
			out.items = append(out.items, r)
		}
	}
	return out
}

func (s *resultSet) targets() []any {
	out := make([]any, len(s.items))
	for i, r := range s.items {
		out[i] = r.t
	}
	return out
}

func (s *resultSet) names() []any {
	out := make([]any, len(s.items))
	for i, r := range s.items {
		out[i] = r.r.Target
	}
	return out
}

func (s *resultSet) results() []*muster.Result {
	out := make([]*muster.Result, len(s.items))
	for i, r := range s.items {
		out[i] = r.r
	}
	return out
}

// message is Bolt's Result#message: the _output value, falling back to the
// merged output of a command or script.
func (r *result) message() any {
	if v, ok := r.r.Value["_output"]; ok {
		return v
	}
	if v, ok := r.r.Value["merged_output"]; ok {
		return v
	}
	return nil
}

// ToData converts a plan value into plain JSON-able Go values: a ResultSet
// becomes an array of *muster.Result (which marshal as Bolt's result
// objects), a Target its name-keyed object, and nested values are
// converted recursively.
func ToData(v any) any {
	switch x := v.(type) {
	case *resultSet:
		out := make([]any, len(x.items))
		for i, r := range x.items {
			out[i] = r.r
		}
		return out
	case *result:
		return x.r
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = ToData(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = ToData(e)
		}
		return out
	case int:
		return int64(x)
	}
	return v
}

// normalize converts decoded YAML or caller values to the evaluator's
// representation (int64, float64, []any, map[string]any).
func normalize(v any) any {
	switch x := v.(type) {
	case int:
		return int64(x)
	case int32:
		return int64(x)
	case uint64:
		return float64(x)
	case float32:
		return float64(x)
	case json.Number:
		if n, err := x.Int64(); err == nil {
			return n
		}
		f, _ := x.Float64()
		return f
	case []string:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = e
		}
		return out
	case []*muster.Target:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = e
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalize(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = normalize(e)
		}
		return out
	case map[any]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[fmt.Sprint(k)] = normalize(e)
		}
		return out
	}
	return v
}

// truthy is Puppet truthiness: only undef and false are false.
func truthy(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case bool:
		return x
	}
	return true
}

// typeName names a value's type for error messages.
func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "Undef"
	case bool:
		return "Boolean"
	case int64, int:
		return "Integer"
	case float64:
		return "Float"
	case string:
		return "String"
	case []any:
		return "Array"
	case map[string]any:
		return "Hash"
	case *resultSet:
		return "ResultSet"
	case *result:
		return "Result"
	case *muster.Target:
		return "Target"
	case *muster.Error:
		return "Error"
	}
	return fmt.Sprintf("%T", v)
}

// toString renders a value as Puppet string interpolation does.
func toString(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case bool:
		return strconv.FormatBool(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case *muster.Target:
		return x.Name
	case *muster.Error:
		return x.Msg
	}
	return puppetRepr(v)
}

// puppetRepr renders a value as Puppet does inside a collection.
func puppetRepr(v any) string {
	switch x := v.(type) {
	case string:
		return "'" + strings.ReplaceAll(x, "'", "\\'") + "'"
	case nil:
		return "undef"
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = puppetRepr(e)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case map[string]any:
		keys := sortedKeys(x)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = puppetRepr(k) + " => " + puppetRepr(x[k])
		}
		return "{" + strings.Join(parts, ", ") + "}"
	case *resultSet, *result:
		b, _ := json.Marshal(ToData(x))
		return string(b)
	}
	return toString(v)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// toNumber returns v as an int64 or float64, converting numeric strings as
// Puppet arithmetic does.
func toNumber(v any) (any, bool) {
	switch x := v.(type) {
	case int64:
		return x, true
	case int:
		return int64(x), true
	case float64:
		return x, true
	case string:
		if n, err := strconv.ParseInt(strings.TrimSpace(x), 0, 64); err == nil {
			return n, true
		}
		if f, err := strconv.ParseFloat(strings.TrimSpace(x), 64); err == nil && !math.IsNaN(f) {
			return f, true
		}
	}
	return nil, false
}

func toInt(v any) (int64, bool) {
	switch x := v.(type) {
	case int64:
		return x, true
	case int:
		return int64(x), true
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return int64(x), true
		}
	}
	return 0, false
}

// equal is Puppet ==: strings compare case-insensitively, numbers by
// value, collections deeply.
func equal(a, b any) bool {
	if na, ok := a.(int64); ok {
		a = float64(na)
	}
	if nb, ok := b.(int64); ok {
		b = float64(nb)
	}
	switch x := a.(type) {
	case string:
		y, ok := b.(string)
		return ok && strings.EqualFold(x, y)
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !equal(x[i], y[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !equal(v, w) {
				return false
			}
		}
		return true
	case *muster.Target:
		y, ok := b.(*muster.Target)
		return ok && x.Name == y.Name
	case nil, bool, float64:
		return a == b
	}
	return a == b
}
