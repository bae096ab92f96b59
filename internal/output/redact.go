package output

import (
	"bytes"
	"encoding/json"

	"github.com/muster-run/muster"
)

// Redacted replaces a task result's "_sensitive" value in every output,
// exactly as Bolt prints it.
const Redacted = "Sensitive [value redacted]"

// SensitiveKey is the top-level key of a task's output whose value Bolt
// treats as sensitive: kept for the plan that ran the task, never printed.
// Only the top level counts, as in Bolt.
const SensitiveKey = "_sensitive"

// Redact returns r with a top-level "_sensitive" value replaced by
// Redacted, as Bolt's human and JSON output show a task's sensitive
// result. r itself is never changed (a copy is returned when there is
// something to hide); a plan job's value is redacted throughout.
func Redact(r *muster.Result) *muster.Result {
	if r == nil || r.Value == nil {
		return r
	}
	_, sensitive := r.Value[SensitiveKey]
	inner, hasInner := r.Value["value"]
	if !sensitive && !(r.Action == "plan" && hasInner) {
		return r
	}
	c := *r
	c.Value = make(map[string]any, len(r.Value))
	for k, v := range r.Value {
		c.Value[k] = v
	}
	if sensitive {
		c.Value[SensitiveKey] = Redacted
	}
	if r.Action == "plan" && hasInner {
		c.Value["value"] = RedactValue(inner)
	}
	if r.Error != nil {
		e := RedactError(r.Error)
		c.Error = e
	}
	return &c
}

// RedactValue returns v with every result in it redacted (see Redact):
// results, lists and maps are walked (and copied where something
// changes); a map shaped like a serialised result (target, status and a
// value mapping) has its value's "_sensitive" redacted too, so stored or
// decoded results hide it as well. Anything else is returned as is.
func RedactValue(v any) any {
	return redactValue(v, 0)
}

func redactValue(v any, depth int) any {
	if depth > 100 {
		return v
	}
	switch x := v.(type) {
	case *muster.Result:
		return Redact(x)
	case []*muster.Result:
		out := make([]*muster.Result, len(x))
		for i, r := range x {
			out[i] = Redact(r)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = redactValue(e, depth+1)
		}
		return out
	case json.RawMessage:
		// A stored run failure keeps its result set as raw JSON.
		if !bytes.Contains(x, []byte(`"`+SensitiveKey+`"`)) {
			return x
		}
		var d any
		if err := json.Unmarshal(x, &d); err != nil {
			return x
		}
		b, err := json.Marshal(redactValue(d, depth+1))
		if err != nil {
			return x
		}
		return json.RawMessage(b)
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = redactValue(e, depth+1)
		}
		if val, ok := out["value"].(map[string]any); ok && resultShaped(out) {
			if _, has := val[SensitiveKey]; has {
				c := make(map[string]any, len(val))
				for k, e := range val {
					c[k] = e
				}
				c[SensitiveKey] = Redacted
				out["value"] = c
			}
		}
		return out
	}
	return v
}

// resultShaped reports whether m looks like a serialised Result.
func resultShaped(m map[string]any) bool {
	_, t := m["target"].(string)
	_, s := m["status"].(string)
	return t && s
}

// RedactError returns e with the results in its details (a run
// failure's result_set) redacted; e itself is never changed.
func RedactError(e *muster.Error) *muster.Error {
	if e == nil || len(e.Details) == 0 {
		return e
	}
	c := *e
	c.Details = redactValue(e.Details, 0).(map[string]any)
	return &c
}
