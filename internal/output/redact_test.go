package output

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/muster-run/muster"
)

const secret = "sosecretive"

func sensitiveTask() *muster.Result {
	return &muster.Result{Target: "web1", Action: "task", Object: "m::pw",
		Value: map[string]any{"user": "someone", "_sensitive": map[string]any{"password": secret}}}
}

// TestSensitiveRedacted: a task's top-level _sensitive value is printed
// as Bolt prints it, in human and JSON output, in results nested in plan
// values and run failures; a nested _sensitive is not special (as in
// Bolt); the result itself keeps the value for the plan that ran it.
func TestSensitiveRedacted(t *testing.T) {
	failed := sensitiveTask()
	failed.Error = muster.Errorf(muster.KindTask, "task failed")
	runFailure := &muster.Error{Kind: "muster/run-failure", Msg: "run_task 'm::pw' failed on 1 target",
		Details: map[string]any{"result_set": []*muster.Result{sensitiveTask()}}}
	stored, _ := json.Marshal([]*muster.Result{sensitiveTask()})
	tests := []struct {
		name    string
		render  func(w *bytes.Buffer)
		want    []string
		notWant []string
	}{
		{"human", func(w *bytes.Buffer) { NewHuman(w, HumanOptions{}).Result(sensitiveTask()) },
			[]string{`"_sensitive": "Sensitive [value redacted]"`, `"user": "someone"`}, []string{secret}},
		{"human verbose failure", func(w *bytes.Buffer) { NewHuman(w, HumanOptions{Verbose: true}).Result(failed) },
			[]string{"Failed on web1", Redacted}, []string{secret}},
		{"json", func(w *bytes.Buffer) {
			j := NewJSON(w)
			j.Result(sensitiveTask())
			j.Finish([]*muster.Result{sensitiveTask()}, time.Second, false)
		}, []string{`"_sensitive":"Sensitive [value redacted]"`, `"user":"someone"`}, []string{secret}},
		{"plan job value", func(w *bytes.Buffer) {
			j := NewJSON(w)
			j.Result(&muster.Result{Target: "web1", Action: "plan", Object: "m::p",
				Value: map[string]any{"value": []any{sensitiveTask(), map[string]any{"target": "web2", "status": "success",
					"value": map[string]any{"_sensitive": secret}}}}})
		}, []string{Redacted}, []string{secret}},
		{"plan return value", func(w *bytes.Buffer) {
			b, _ := json.Marshal(RedactValue(map[string]any{"r": []any{sensitiveTask()}}))
			w.Write(b)
		}, []string{Redacted}, []string{secret}},
		{"run failure details", func(w *bytes.Buffer) {
			b, _ := json.Marshal(RedactError(runFailure))
			w.Write(b)
		}, []string{Redacted, "run_task"}, []string{secret}},
		{"stored run failure", func(w *bytes.Buffer) {
			e := &muster.Error{Kind: "muster/run-failure", Details: map[string]any{"result_set": json.RawMessage(stored)}}
			b, _ := json.Marshal(RedactError(e))
			w.Write(b)
		}, []string{Redacted}, []string{secret}},
		{"only the top level is sensitive", func(w *bytes.Buffer) {
			NewHuman(w, HumanOptions{}).Result(&muster.Result{Target: "web1", Action: "task", Object: "m::t",
				Value: map[string]any{"user": map[string]any{"_sensitive": "carmen"}}})
		}, []string{"carmen"}, []string{Redacted}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			tc.render(&b)
			for _, w := range tc.want {
				if !strings.Contains(b.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, b.String())
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(b.String(), w) {
					t.Errorf("output holds %q:\n%s", w, b.String())
				}
			}
		})
	}
	// The results themselves are untouched: a plan still reads the value.
	r := sensitiveTask()
	Redact(r)
	if r.Value["_sensitive"].(map[string]any)["password"] != secret {
		t.Error("Redact changed its argument")
	}
	RedactError(runFailure)
	if runFailure.Details["result_set"].([]*muster.Result)[0].Value["_sensitive"].(map[string]any)["password"] != secret {
		t.Error("RedactError changed its argument")
	}
}
