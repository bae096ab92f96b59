package boltcompat

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/engine"
	"github.com/muster-run/muster/internal/output"
	"github.com/muster-run/muster/internal/plan"
	"github.com/muster-run/muster/internal/target"
)

// taskRun runs task name with params on the targets spec of the project
// in dir through the engine (the path `muster task run` and a plan's task
// steps take: metadata validation, implementation choice, input methods,
// files), with the local transport. It returns the results, the
// warnings, and the error that kept the task from starting.
func taskRun(t *testing.T, dir, spec, name string, params map[string]any, noop bool) ([]*muster.Result, []string, error) {
	t.Helper()
	p := loadProject(t, dir, func(string, ...any) {})
	var mu sync.Mutex
	var warnings []string
	pr := &engine.PlanRunner{Inventory: p.Inventory, Tasks: p.Tasks, Runner: localRunner(t), Dir: dir,
		Warn: func(m string) { mu.Lock(); warnings = append(warnings, m); mu.Unlock() }}
	ts, err := pr.ResolveTargets([]string{spec})
	if err != nil {
		t.Fatalf("targets %s: %v", spec, err)
	}
	o := plan.StepOptions{Noop: noop}
	if err := pr.CheckStep("run_task", name, params, o); err != nil {
		return nil, warnings, err
	}
	rs, err := pr.RunTask(context.Background(), ts, name, params, o)
	return rs, warnings, err
}

// TestTasks: tasks written as Bolt's "Writing tasks" page describes them
// (metadata with typed parameters and defaults, the input methods, the
// _task/_noop/_installdir metaparameters, files, implementations chosen
// by feature, _error and a non-zero exit), run on this machine.
func TestTasks(t *testing.T) {
	_, rubyErr := exec.LookPath("ruby")
	tests := []struct {
		name   string
		target string
		task   string
		params map[string]any
		noop   bool
		// want is compared with the result's value; wantErr with its
		// error (kind, msg, details); startErr is the error that keeps
		// the task from starting.
		want     map[string]any
		wantErr  map[string]any
		startErr []string
		warn     string
		needRuby bool
	}{
		{name: "both input methods, defaults, PT_ strings raw and other values as JSON", target: "localhost", task: "tk::inputs",
			params: map[string]any{"name": "web", "tags": []any{"a", "b"}},
			want:   map[string]any{"env_name": "web", "env_count": "2", "env_tags": []any{"a", "b"}, "stdin_has_name": true, "task": "tk::inputs"}},
		{name: "stdin input method sets no PT_ variables", target: "localhost", task: "tk::stdin_only", params: map[string]any{"word": "hi"},
			want: map[string]any{"env_set": false, "stdin": map[string]any{"word": "hi", "_task": "tk::stdin_only"}}},
		{name: "a parameter of the wrong type is refused before the task runs", target: "localhost", task: "tk::inputs",
			params: map[string]any{"name": "web", "count": 9}, startErr: []string{"tk::inputs", "count"}},
		{name: "a missing required parameter is refused", target: "localhost", task: "tk::inputs",
			params: map[string]any{}, startErr: []string{"tk::inputs", "name"}},
		{name: "an unknown parameter is refused", target: "localhost", task: "tk::inputs",
			params: map[string]any{"name": "x", "colour": "red"}, startErr: []string{"colour"}},
		{name: "_error becomes the result's error", target: "localhost", task: "tk::fails",
			wantErr: map[string]any{"kind": "tk/not-ready", "msg": "the service is not ready", "details": map[string]any{"retry_in": 30}}},
		{name: "non-zero exit without _error: task error with _output", target: "localhost", task: "tk::exits",
			want:    map[string]any{"_output": "plain text, not JSON\n"},
			wantErr: map[string]any{"kind": "muster/task-error", "msg": "The task failed with exit code 4", "details": map[string]any{"exit_code": 4}}},
		{name: "metadata files are shipped and found under _installdir", target: "localhost", task: "tk::helper",
			want: map[string]any{"greeting": "hello from files", "word": "from-lib"}},
		{name: "localhost has the puppet-agent feature: the Ruby implementation runs (system ruby, with a warning)", target: "localhost", task: "tk::impl",
			want: map[string]any{"implementation": "ruby", "task": "tk::impl"}, warn: "ruby", needRuby: true},
		{name: "without local defaults the shell implementation runs", target: "plainlocal", task: "tk::impl",
			want: map[string]any{"implementation": "sh"}},
		{name: "noop on a task without supports_noop is refused", target: "localhost", task: "tk::noop", noop: true,
			startErr: []string{"tk::noop", "noop"}},
		{name: "noop reaches a task that supports it as _noop", target: "localhost", task: "tk::noopok", noop: true,
			want: map[string]any{"noop": "true"}},
	}
	dir := copyCase(t, "tasks")
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.needRuby && rubyErr != nil {
				t.Skip("no ruby on this machine")
			}
			rs, warnings, err := taskRun(t, dir, tc.target, tc.task, tc.params, tc.noop)
			if tc.startErr != nil {
				if err == nil {
					t.Fatalf("the task started: %s", short(rs))
				}
				containsAll(t, "error", err.Error(), tc.startErr)
				return
			}
			if err != nil || len(rs) != 1 {
				t.Fatalf("run: %v %s", err, short(rs))
			}
			r := rs[0]
			if tc.want != nil {
				checkSubset(t, "value", tc.want, r.Value)
			}
			if tc.wantErr == nil && r.Error != nil {
				t.Errorf("error %v", r.Error)
			}
			if tc.wantErr != nil {
				if r.Error == nil {
					t.Fatalf("no error; value %s", short(r.Value))
				}
				checkSubset(t, "error", tc.wantErr, r.Error)
				if r.OK() {
					t.Error("a result with an error reads as ok")
				}
			}
			if tc.warn != "" {
				if _, err := os.Stat(target.BundledRuby); err == nil {
					return // the bundled Ruby is there: no fallback, no warning
				}
				containsAll(t, "warnings", strings.Join(warnings, "\n"), []string{tc.warn})
			}
		})
	}
}

// TestSensitiveOutput: Bolt redacts a task result's _sensitive key in
// human and JSON output, and a sensitive parameter's value never shows.
func TestSensitiveOutput(t *testing.T) {
	dir := copyCase(t, "tasks")
	rs, _, err := taskRun(t, dir, "localhost", "tk::secret", map[string]any{"password": "hunter2-s3cret"}, false)
	if err != nil || len(rs) != 1 || !rs[0].OK() {
		t.Fatalf("run: %v %s", err, short(rs))
	}
	for _, format := range []string{"human", "json"} {
		var buf bytes.Buffer
		var pr output.Printer = output.NewHuman(&buf, output.HumanOptions{})
		if format == "json" {
			pr = output.NewJSON(&buf)
		}
		pr.Started(&muster.Target{Name: "localhost"})
		pr.Result(rs[0])
		if err := pr.Finish(rs, 0, false); err != nil {
			t.Fatal(err)
		}
		containsAll(t, format+" output", buf.String(), []string{output.Redacted, "admin"})
		containsNone(t, format+" output", buf.String(), []string{"hunter2-s3cret"})
	}
}
