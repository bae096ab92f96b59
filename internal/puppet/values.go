package puppet

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/muster-run/muster"
)

// Normalize converts decoded YAML or JSON and caller values to the
// evaluator's representation (int64, float64, []any, map[string]any), at
// every depth.
func Normalize(v any) any { return CopyWith(v, normalizeLeaf) }

func normalizeLeaf(v any) any {
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
		return anySlice(x)
	case []*muster.Target:
		return anySlice(x)
	case map[any]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[fmt.Sprint(k)] = Normalize(e)
		}
		return out
	}
	return v
}

// anySlice converts a typed slice into an array value.
func anySlice[T any](s []T) []any {
	out := make([]any, len(s))
	for i, e := range s {
		out[i] = e
	}
	return out
}

// Truthy is Puppet truthiness: only undef and false are false.
func Truthy(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case bool:
		return x
	}
	return true
}

// TypeName names the Puppet type of an evaluator value (see Normalize)
// for error messages: Integer for any int64 and Float for any float64,
// unlike ValueTypeName, which names the type of a JSON value.
func TypeName(v any) string {
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
	case *ResultSet:
		return "ResultSet"
	case *Result:
		return "Result"
	case *muster.Target:
		return "Target"
	case *muster.Error:
		return "Error"
	}
	return fmt.Sprintf("%T", v)
}

// ToString renders a value as Puppet string interpolation does.
func ToString(v any) string {
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
		keys := slices.Sorted(maps.Keys(x))
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = puppetRepr(k) + " => " + puppetRepr(x[k])
		}
		return "{" + strings.Join(parts, ", ") + "}"
	case *ResultSet, *Result:
		b, _ := json.Marshal(ToData(x))
		return string(b)
	}
	return ToString(v)
}

// ToNumber returns v as an int64 or float64, converting numeric strings as
// Puppet arithmetic does.
func ToNumber(v any) (any, bool) {
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

// ToInt returns an Integer, or a Float without a fraction and below 2^53
// in magnitude, as an int64.
func ToInt(v any) (int64, bool) {
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

// ToFloat returns an Integer or Float value as a float64, and 0 for any
// other value.
func ToFloat(v any) float64 {
	if i, ok := v.(int64); ok {
		return float64(i)
	}
	f, _ := v.(float64)
	return f
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
