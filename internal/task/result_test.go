package task

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/muster-run/muster"
)

func TestInterpretOutput(t *testing.T) {
	for _, tc := range []struct {
		name, stdout, stderr string
		exit                 int
		value                map[string]any
		err                  *muster.Error // nil: success
	}{
		{name: "json object", stdout: ` {"a": 1, "b": [true]}` + "\n", value: map[string]any{"a": json.Number("1"), "b": []any{true}}},
		{name: "plain text", stdout: "hello\n", value: map[string]any{"_output": "hello\n"}},
		{name: "empty", stdout: "", value: map[string]any{"_output": ""}},
		{name: "json array", stdout: "[1,2]", value: map[string]any{"_output": "[1,2]"}},
		{name: "json scalar", stdout: "42", value: map[string]any{"_output": "42"}},
		{name: "two objects", stdout: "{}\n{}", value: map[string]any{"_output": "{}\n{}"}},
		{name: "invalid utf8", stdout: "ab\xffcd", exit: 3, value: map[string]any{},
			err: &muster.Error{Kind: muster.KindTask, IssueCode: "TASK_ERROR", Msg: "The task result contained invalid UTF-8 on stdout", Details: map[string]any{}}},
		{name: "exit with stdout", stdout: "partial", stderr: "boom", exit: 2, value: map[string]any{"_output": "partial"},
			err: &muster.Error{Kind: muster.KindTask, IssueCode: "TASK_ERROR", Msg: "The task failed with exit code 2", Details: map[string]any{"exit_code": 2}}},
		{name: "exit no output", exit: 1, value: map[string]any{"_output": ""},
			err: &muster.Error{Kind: muster.KindTask, IssueCode: "TASK_ERROR", Msg: "The task failed with exit code 1 and no output", Details: map[string]any{"exit_code": 1}}},
		{name: "exit stderr only", stderr: "oops\n", exit: 127, value: map[string]any{"_output": ""},
			err: &muster.Error{Kind: muster.KindTask, IssueCode: "TASK_ERROR", Msg: "The task failed with exit code 127 and no stdout, but stderr contained:\noops\n", Details: map[string]any{"exit_code": 127}}},
		{name: "own error exit 0", stdout: `{"_error": {"msg": "bad", "kind": "mymod/oops", "details": {"x": 1}}, "y": 2}`,
			value: map[string]any{"y": json.Number("2")},
			err:   &muster.Error{Kind: "mymod/oops", Msg: "bad", Details: map[string]any{"x": json.Number("1")}}},
		{name: "own error nonzero", stdout: `{"_error": {"msg": "bad", "issue_code": "X"}}`, exit: 4, value: map[string]any{},
			err: &muster.Error{Kind: KindTaskDefault, Msg: "bad", IssueCode: "X", Details: map[string]any{}}},
		{name: "error without msg", stdout: `{"_error": {"kind": "k"}}`, value: map[string]any{},
			err: &muster.Error{Kind: KindInvalidTaskError, Msg: `Invalid error returned from task: {"kind":"k"}. Error must be an object with a msg key.`,
				Details: map[string]any{"original_error": map[string]any{"kind": "k"}}}},
		{name: "error string", stdout: `{"_error": "nope"}`, exit: 1, value: map[string]any{},
			err: &muster.Error{Kind: KindInvalidTaskError, Msg: `Invalid error returned from task: "nope". Error must be an object with a msg key.`,
				Details: map[string]any{"original_error": "nope"}}},
		{name: "null error exit 0", stdout: `{"_error": null}`, value: map[string]any{},
			err: &muster.Error{Kind: KindInvalidTaskError, Msg: `Invalid error returned from task: null. Error must be an object with a msg key.`,
				Details: map[string]any{"original_error": nil}}},
		{name: "null error nonzero", stdout: `{"_error": null}`, exit: 5, value: map[string]any{},
			err: &muster.Error{Kind: muster.KindTask, IssueCode: "TASK_ERROR", Msg: "The task failed with exit code 5", Details: map[string]any{"exit_code": 5}}},
		{name: "odd details", stdout: `{"_error": {"msg": 5, "kind": "a/b", "details": [1]}}`, value: map[string]any{},
			err: &muster.Error{Kind: "a/b", Msg: "5", Details: map[string]any{"details": []any{json.Number("1")}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			value, err := InterpretOutput(tc.stdout, tc.stderr, tc.exit)
			if diff := cmp.Diff(tc.value, value); diff != "" {
				t.Errorf("value (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.err, err, cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".Err" }, cmp.Ignore())); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
			// The result renders as Bolt's: status failure exactly when _error is present.
			r := &muster.Result{Target: "t", Action: "task", Object: "m::t", Value: value, Error: err}
			b, _ := json.Marshal(r)
			var back map[string]any
			_ = json.Unmarshal(b, &back)
			_, hasErr := back["value"].(map[string]any)["_error"]
			if hasErr != (tc.err != nil) || (back["status"] == "success") != (tc.err == nil) {
				t.Errorf("rendered %s", b)
			}
		})
	}
	_, err := InterpretTaskOutput("m::t", `{"_error": 1}`, "", 0)
	if err.Msg != "Invalid error returned from task m::t: 1. Error must be an object with a msg key." {
		t.Errorf("msg %q", err.Msg)
	}
}
