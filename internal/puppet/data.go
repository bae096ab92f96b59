package puppet

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// CopyWith returns a copy of v in which every array ([]any) and hash
// (map[string]any) is copied, at every depth, and every other value x is
// replaced by leaf(x).
func CopyWith(v any, leaf func(any) any) any {
	switch x := v.(type) {
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = CopyWith(e, leaf)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = CopyWith(e, leaf)
		}
		return out
	}
	return leaf(v)
}

// DeepCopy returns a copy of a nested data value (as decoded from JSON or
// YAML) that shares no array, hash or []string with it.
func DeepCopy(v any) any {
	return CopyWith(v, func(x any) any {
		if s, ok := x.([]string); ok {
			return append([]string(nil), s...)
		}
		return x
	})
}

// CompactJSON renders v as compact JSON, without HTML escaping, or with
// fmt's %v when it cannot be encoded.
func CompactJSON(v any) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Sprint(v)
	}
	return strings.TrimSuffix(b.String(), "\n")
}
