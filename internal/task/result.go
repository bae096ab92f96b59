package task

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/puppet"
)

// Error kinds and issue codes of task results (bolt-compat 3.6, with
// muster's kind prefix).
const (
	KindInvalidTaskError = "muster/invalid-task-error"
	KindTaskDefault      = "muster/error"
	IssueTaskError       = "TASK_ERROR"
)

// InterpretOutput turns a finished task's output into its result value and
// error, exactly as Bolt's Result.for_task does. The value never holds
// "_error": a failure is returned as err instead.
func InterpretOutput(stdout, stderr string, exitCode int) (value map[string]any, err *muster.Error) {
	return InterpretTaskOutput("", stdout, stderr, exitCode)
}

// InterpretTaskOutput is InterpretOutput with the task name, which appears
// in the message of an invalid "_error".
func InterpretTaskOutput(taskName, stdout, stderr string, exitCode int) (map[string]any, *muster.Error) {
	var value map[string]any
	var taskErr any
	hasErr := false
	if !utf8.ValidString(stdout) {
		value = map[string]any{}
		taskErr, hasErr = map[string]any{
			"kind": muster.KindTask, "issue_code": IssueTaskError,
			"msg": "The task result contained invalid UTF-8 on stdout", "details": map[string]any{},
		}, true
	} else {
		if v, err := decodeJSON([]byte(stdout)); err == nil {
			value, _ = v.(map[string]any)
		}
		if value == nil {
			value = map[string]any{"_output": stdout}
		}
		taskErr, hasErr = value["_error"]
		delete(value, "_error")
	}
	if exitCode != 0 && (!hasErr || taskErr == nil) {
		var msg string
		switch {
		case stdout != "":
			msg = fmt.Sprintf("The task failed with exit code %d", exitCode)
		case stderr == "":
			msg = fmt.Sprintf("The task failed with exit code %d and no output", exitCode)
		default:
			msg = fmt.Sprintf("The task failed with exit code %d and no stdout, but stderr contained:\n%s", exitCode, stderr)
		}
		return value, muster.Errorf(muster.KindTask, "%s", msg).WithCode(IssueTaskError).WithDetail("exit_code", exitCode)
	}
	if !hasErr {
		return value, nil
	}
	m, ok := taskErr.(map[string]any)
	if _, hasMsg := m["msg"]; !ok || !hasMsg {
		name := ""
		if taskName != "" {
			name = " " + taskName
		}
		e := muster.Errorf(KindInvalidTaskError, "Invalid error returned from task%s: %s. Error must be an object with a msg key.",
			name, puppet.CompactJSON(taskErr))
		return value, e.WithDetail("original_error", taskErr)
	}
	e := &muster.Error{Kind: KindTaskDefault, Msg: stringOf(m["msg"]), Details: map[string]any{}}
	if k := stringOf(m["kind"]); k != "" {
		e.Kind = k
	}
	if c, ok := m["issue_code"].(string); ok {
		e.IssueCode = c
	}
	switch d := m["details"].(type) {
	case map[string]any:
		e.Details = d
	case nil:
	default:
		e.Details = map[string]any{"details": d}
	}
	return value, e
}

// stringOf renders a JSON value as a string: strings raw, others as JSON.
func stringOf(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	}
	return strings.TrimSpace(puppet.CompactJSON(v))
}
