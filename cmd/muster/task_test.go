package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

const testProject = "testdata/project"

// taskRun runs a task on localhost in the test project and decodes the
// single JSON item.
func taskRun(t *testing.T, args ...string) (int, map[string]any, string) {
	t.Helper()
	full := append([]string{"task", "run"}, args...)
	full = append(full, "--project", testProject, "--format", "json")
	if !contains(args, "-t") {
		full = append(full, "-t", "localhost")
	}
	code, out, errOut := cli(t, full...)
	if code == 2 {
		return code, nil, out + errOut
	}
	var doc jsonDoc
	if err := json.Unmarshal([]byte(out), &doc); err != nil || len(doc.Items) == 0 {
		t.Fatalf("exit %d, bad JSON: %v\n%s\n%s", code, err, out, errOut)
	}
	if doc.Items[0].Action != "task" || doc.Items[0].Object != args[0] {
		t.Errorf("item action/object = %s/%v", doc.Items[0].Action, doc.Items[0].Object)
	}
	return code, doc.Items[0].Value, out + errOut
}

func contains(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}

func TestTaskInputMethodsAndLanguages(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want map[string]any
	}{
		{"sh, both (default)", []string{"demo::echo", "message=hello world"},
			map[string]any{"message": "hello world", "env_task": "demo::echo", "stdin": map[string]any{"_task": "demo::echo", "message": "hello world"}}},
		{"environment only", []string{"demo::envonly", "count=7"}, map[string]any{"count": float64(7), "stdin_len": float64(0)}},
		{"stdin only, python", []string{"demo::stdinonly", `items=["a","b"]`},
			map[string]any{"items": []any{"a", "b"}, "has_env": false, "lang": "python"}},
		{"perl, JSON-first k=v", []string{"demo::perly", "n=21"}, map[string]any{"doubled": float64(42), "lang": "perl"}},
		{"--params JSON", []string{"demo::perly", "--params", `{"n": 5}`}, map[string]any{"doubled": float64(10), "lang": "perl"}},
		{"non-JSON output, bash", []string{"demo::bashy", "word=yo"}, map[string]any{"_output": "plain text from bash 5 1 yo\n"}},
		{"files and _installdir", []string{"demo::installed"}, map[string]any{"helper": "from lib", "data": "shared data", "installdir_ok": true}},
		{"implementation by features", []string{"demo::multi"}, map[string]any{"impl": "posix"}},
		{"noop", []string{"demo::careful", "--noop"}, map[string]any{"changed": false, "noop": true}},
		{"ruby, stdin", []string{"demo::rubyish", `words=["a","b"]`, "count=2"}, map[string]any{"words": []any{"A", "B", "A", "B"}, "task": "demo::rubyish"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, value, out := taskRun(t, tc.args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, out)
			}
			for k, want := range tc.want {
				if got := fmt.Sprint(value[k]); got != fmt.Sprint(want) {
					t.Errorf("value[%s] = %v, want %v", k, value[k], want)
				}
			}
		})
	}
}

func TestTaskFailures(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		wantKind  string
		wantInMsg string
	}{
		{"non-zero exit", []string{"demo::fails"}, "muster/task-error", "exit code 3"},
		{"_error with exit 0", []string{"demo::ownerror"}, "demo/oops", "the widget is on fire"},
		{"no implementation", []string{"demo::winonly"}, "muster/no-implementation", "No suitable implementation of demo::winonly"},
		{"ruby _error with exit 1", []string{"demo::rubyish", `words=["a"]`, "count=0"}, "demo/bad-count", "count must be positive"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, value, out := taskRun(t, tc.args...)
			errv, _ := value["_error"].(map[string]any)
			if code != 1 || errv == nil {
				t.Fatalf("exit %d, value %v\n%s", code, value, out)
			}
			if errv["kind"] != tc.wantKind || !strings.Contains(fmt.Sprint(errv["msg"]), tc.wantInMsg) {
				t.Errorf("error = %v, want kind %s with %q", errv, tc.wantKind, tc.wantInMsg)
			}
		})
	}
	_, value, _ := taskRun(t, "demo::fails")
	if !strings.Contains(fmt.Sprint(value["_error"]), "something broke") {
		t.Errorf("stderr should be in the error message of a task with no stdout: %v", value)
	}
}

func TestTaskValidationBeforeConnecting(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"all problems at once", []string{"demo::echo", "message=", "extra=1"}, []string{`unknown parameter "extra"`, `parameter "message"`}},
		{"missing required", []string{"demo::perly"}, []string{`"n"`}},
		{"wrong type", []string{"demo::envonly", "count=11"}, []string{"Integer[0, 10]"}},
		{"noop unsupported", []string{"demo::echo", "message=x", "--noop"}, []string{"does not support noop"}},
		{"unknown task", []string{"demo::ecco"}, []string{"demo::ecco"}},
		{"params and k=v mixed", []string{"demo::perly", "n=1", "--params", `{"n":2}`}, []string{"params"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// An unreachable target proves nothing connects: validation fails first.
			code, _, out := taskRun(t, append(tc.args, "-t", "ssh://nobody@127.0.0.1:1")...)
			if code != 2 {
				t.Fatalf("exit %d, want 2\n%s", code, out)
			}
			out = strings.ReplaceAll(out, `\"`, `"`) // JSON-escaped quotes
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

func TestTaskSensitiveNeverShown(t *testing.T) {
	for _, args := range [][]string{{"--format", "json"}, {"--format", "human"}, {"--format", "human", "--stream"}} {
		format := strings.Join(args, " ")
		argv := append([]string{"task", "run", "demo::secret", "token=hunter2-tok", "user=bob", "-t", "localhost", "--project", testProject}, args...)
		code, out, errOut := cli(t, argv...)
		if code != 0 {
			t.Fatalf("exit %d %s %s", code, out, errOut)
		}
		if strings.Contains(out+errOut, "hunter2-tok") {
			t.Errorf("%s output shows the sensitive value:\n%s", format, out)
		}
		if !strings.Contains(out, "Sensitive [value redacted]") || !strings.Contains(out, "bob") {
			t.Errorf("%s output:\n%s", format, out)
		}
	}
	// Nor in validation errors.
	_, out, errOut := cli(t, "task", "run", "demo::secret", "token=[1]", "user=bob", "-t", "localhost", "--project", testProject)
	if strings.Contains(out+errOut, "[1]") && strings.Contains(out+errOut, "token") && !strings.Contains(out+errOut, "redacted") {
		t.Errorf("validation error may show the sensitive value:\n%s%s", out, errOut)
	}
}

func TestTaskShow(t *testing.T) {
	code, out, _ := cli(t, "task", "show", "--project", testProject)
	if code != 0 || !strings.Contains(out, "demo::echo") || !strings.Contains(out, "Echo a message back") || strings.Contains(out, "demo::hidden") {
		t.Fatalf("task show: exit %d\n%s", code, out)
	}
	code, out, _ = cli(t, "task", "show", "demo::echo", "--project", testProject)
	if code != 0 || !strings.Contains(out, "message: String[1]") || !strings.Contains(out, "muster task run demo::echo message=<value>") {
		t.Fatalf("task show demo::echo: exit %d\n%s", code, out)
	}
	code, out, _ = cli(t, "task", "show", "--project", testProject, "--format", "json")
	var doc struct {
		Tasks [][2]string `json:"tasks"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &doc) != nil || len(doc.Tasks) == 0 {
		t.Fatalf("task show json: exit %d\n%s", code, out)
	}
}
