package task

import "github.com/muster-run/muster/internal/puppet"

// EnvVars returns the PT_<name> environment variables for params: strings
// raw, everything else as compact JSON (so null becomes "null").
func EnvVars(params map[string]any) map[string]string {
	out := make(map[string]string, len(params))
	for k, v := range params {
		if s, ok := v.(string); ok {
			out["PT_"+k] = s
		} else {
			out["PT_"+k] = puppet.CompactJSON(v)
		}
	}
	return out
}

// StdinJSON returns params as the one JSON object written to a task's
// standard input, compact, with sorted keys and no trailing newline.
func StdinJSON(params map[string]any) []byte {
	if params == nil {
		params = map[string]any{}
	}
	return []byte(puppet.CompactJSON(params))
}
