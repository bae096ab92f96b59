package muster

import "encoding/json"

// Status values of a Result.
const (
	StatusSuccess = "success"
	StatusFailure = "failure"
)

// Result is the outcome of one action on one target, shaped as Bolt's.
type Result struct {
	Target string `json:"target"`
	// Action is "command", "script", "task", "upload" or "download".
	Action string `json:"action"`
	// Object is the command line, script path, task name or source path.
	Object string `json:"object"`
	// Value holds the action's data: for command and script "stdout",
	// "stderr", "merged_output" and "exit_code".
	Value map[string]any `json:"-"`
	// Error is set when the action failed; it is serialised as value._error.
	Error *Error `json:"-"`
}

// OK reports whether the action succeeded.
func (r *Result) OK() bool { return r.Error == nil }

// Status returns "success" or "failure".
func (r *Result) Status() string {
	if r.OK() {
		return StatusSuccess
	}
	return StatusFailure
}

// MarshalJSON renders the result exactly as Bolt's JSON output does:
// status is "failure" exactly when value._error is present.
func (r *Result) MarshalJSON() ([]byte, error) {
	value := make(map[string]any, len(r.Value)+1)
	for k, v := range r.Value {
		value[k] = v
	}
	if r.Error != nil {
		e := *r.Error
		if e.Details == nil {
			e.Details = map[string]any{}
		}
		value["_error"] = &e
	}
	var object any
	if r.Object != "" {
		object = r.Object
	}
	return json.Marshal(struct {
		Target string         `json:"target"`
		Action string         `json:"action"`
		Object any            `json:"object"`
		Status string         `json:"status"`
		Value  map[string]any `json:"value"`
	}{r.Target, r.Action, object, r.Status(), value})
}

// UnmarshalJSON reads what MarshalJSON writes (a stored job result, or a
// Bolt result): value._error becomes Error.
func (r *Result) UnmarshalJSON(data []byte) error {
	var w struct {
		Target string                     `json:"target"`
		Action string                     `json:"action"`
		Object *string                    `json:"object"`
		Value  map[string]json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(data, &w); err != nil {
		return err
	}
	*r = Result{Target: w.Target, Action: w.Action}
	if w.Object != nil {
		r.Object = *w.Object
	}
	for k, raw := range w.Value {
		if k == "_error" {
			var e Error
			if err := json.Unmarshal(raw, &e); err != nil {
				return err
			}
			r.Error = &e
			continue
		}
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return err
		}
		if r.Value == nil {
			r.Value = map[string]any{}
		}
		r.Value[k] = v
	}
	return nil
}
