package inventory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/muster-run/muster"
)

// lookup parses src (as file inventory.yaml in a fresh project directory
// holding files) and looks up name.
func lookup(t *testing.T, src string, files map[string]string, opts Options, name string) ([]*muster.Target, *Inventory, error) {
	t.Helper()
	dir := opts.ProjectDir
	if dir == "" {
		dir = t.TempDir()
	}
	for p, c := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	opts.ProjectDir = dir
	inv, err := Parse(filepath.Join(dir, "inventory.yaml"), []byte(src), opts)
	if err != nil {
		return nil, nil, err
	}
	ts, ok, err := inv.Lookup(name)
	if err == nil && !ok {
		t.Fatalf("%q not found", name)
	}
	return ts, inv, err
}

func TestEnvVarPlugin(t *testing.T) {
	t.Setenv("MUSTER_T_USER", "deploy")
	t.Setenv("MUSTER_T_JSON", `{"a": [1, 2], "b": "x"}`)
	t.Setenv("MUSTER_T_EMPTY", "")
	tests := []struct {
		name, ref string
		want      any
		err       string
	}{
		{"set", "{_plugin: env_var, var: MUSTER_T_USER}", "deploy", ""},
		{"set but empty", "{_plugin: env_var, var: MUSTER_T_EMPTY, default: d}", "", ""},
		{"default", "{_plugin: env_var, var: MUSTER_T_UNSET, default: fallback}", "fallback", ""},
		{"optional", "{_plugin: env_var, var: MUSTER_T_UNSET, optional: true}", nil, ""},
		{"json", "{_plugin: env_var, var: MUSTER_T_JSON, json: true}", map[string]any{"a": []any{1, 2}, "b": "x"}, ""},
		{"unset", "{_plugin: env_var, var: MUSTER_T_UNSET}", nil, `inventory.yaml:4: plugin "env_var" (target "t": vars.v): environment variable "MUSTER_T_UNSET" is not set`},
		{"no var", "{_plugin: env_var}", nil, `parameter "var" is required`},
		{"unknown param", "{_plugin: env_var, var: X, dflt: 1}", nil, `unknown parameter(s) dflt`},
		{"bad optional", "{_plugin: env_var, var: X, optional: yes please}", nil, `"optional" must be a boolean`},
		{"nested", "{_plugin: env_var, var: MUSTER_T_UNSET, default: {_plugin: env_var, var: MUSTER_T_USER}}", "deploy", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := "targets:\n  - name: t\n    vars:\n      v: " + tc.ref + "\n"
			ts, _, err := lookup(t, src, nil, Options{}, "t")
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				var pe *PluginError
				if !errors.As(err, &pe) || pe.Plugin != "env_var" || muster.KindOf(err) != muster.KindInvalid {
					t.Errorf("not a located plugin error: %#v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := ts[0].Vars["v"]; !reflect.DeepEqual(got, tc.want) {
				t.Errorf("v = %#v, want %#v", got, tc.want)
			}
		})
	}
}

// TestConfigPlugins: references resolve in config (never kept as
// literals), facts, features, whole blocks and nested values.
func TestConfigPlugins(t *testing.T) {
	t.Setenv("MUSTER_T_PASS", "pw")
	t.Setenv("MUSTER_T_PORT", "2222")
	src := `config:
  ssh:
    user: {_plugin: env_var, var: MUSTER_T_UNSET, default: admin}
    password: {_plugin: env_var, var: MUSTER_T_PASS}
groups:
  - name: g
    facts: {_plugin: yaml, filepath: data/facts.yaml}
    features: [{_plugin: env_var, var: MUSTER_T_UNSET, default: [f1, f2]}, f3]
    targets:
      - name: t
        uri: {_plugin: env_var, var: MUSTER_T_UNSET, default: "h1"}
        config:
          ssh:
            port: {_plugin: env_var, var: MUSTER_T_PORT, json: true}
`
	files := map[string]string{"data/facts.yaml": "os:\n  family: Debian\nlist: [{_plugin: env_var, var: MUSTER_T_PASS}]\n"}
	ts, _, err := lookup(t, src, files, Options{}, "t")
	if err != nil {
		t.Fatal(err)
	}
	tg := ts[0]
	if tg.User != "admin" || tg.Port != 2222 || tg.Host != "h1" || tg.Config["ssh"].(map[string]any)["password"] != "pw" {
		t.Errorf("target %+v config %v", tg, tg.Config)
	}
	wantFacts := map[string]any{"os": map[string]any{"family": "Debian"}, "list": []any{"pw"}}
	if !reflect.DeepEqual(tg.Facts, wantFacts) {
		t.Errorf("facts %v", tg.Facts)
	}
	if strings.Join(tg.Features, ",") != "f1,f2,f3,shell" {
		t.Errorf("features %v", tg.Features)
	}
}

func TestYAMLPlugin(t *testing.T) {
	files := map[string]string{
		"inv/targets.yaml": "- name: a\n  vars: {from: file}\n- b.example.com\n",
		"inv/groups.yaml":  "name: extra\ntargets: [c]\nvars: {g: 1}\n",
		"loop.yaml":        "{_plugin: yaml, filepath: loop.yaml}\n",
		"bad.yaml":         "a: [\n",
	}
	src := `targets: {_plugin: yaml, filepath: inv/targets.yaml}
groups:
  - _plugin: yaml
    filepath: inv/groups.yaml
`
	ts, inv, err := lookup(t, src, files, Options{}, "a")
	if err != nil {
		t.Fatal(err)
	}
	if ts[0].Vars["from"] != "file" {
		t.Errorf("a = %+v", ts[0])
	}
	if got := inv.TargetNames(); strings.Join(got, ",") != "a,b.example.com,c" {
		t.Errorf("targets %v", got)
	}
	if ts, _, err := inv.Lookup("extra"); err != nil || len(ts) != 1 || ts[0].Vars["g"] != 1 {
		t.Errorf("group extra: %v %v", ts, err)
	}
	errs := []struct{ src, want string }{
		{"vars: {x: {_plugin: yaml, filepath: missing.yaml}}\ntargets: [a]\n", `inventory.yaml:1: plugin "yaml" (vars.x): cannot read`},
		{"vars: {x: {_plugin: yaml, filepath: loop.yaml}}\ntargets: [a]\n", `nest more than 16 deep`},
		{"vars: {x: {_plugin: yaml, filepath: bad.yaml}}\ntargets: [a]\n", `bad.yaml: invalid YAML`},
		{"vars: {_plugin: yaml, filepath: inv/targets.yaml}\ntargets: [a]\n", `inventory.yaml:1: vars: a plugin returned a list, not a mapping`},
	}
	dir := filepath.Dir(inv.File())
	for _, e := range errs {
		_, _, err := lookup(t, e.src, nil, Options{ProjectDir: dir}, "a")
		if err == nil || !strings.Contains(err.Error(), e.want) {
			t.Errorf("%q: err %v, want %q", e.src, err, e.want)
		}
	}
}

// TestPromptPlugin: asked once per message, the answer is sensitive, and
// without a terminal the error names the key.
func TestPromptPlugin(t *testing.T) {
	src := `groups:
  - name: g
    config:
      ssh:
        password: {_plugin: prompt, message: SSH password}
    targets: [a, b]
`
	var asked []string
	opts := Options{Prompt: func(m string) (string, error) { asked = append(asked, m); return "typed", nil }}
	_, inv, err := lookup(t, src, nil, opts, "a")
	if err != nil {
		t.Fatal(err)
	}
	ts, err := inv.All()
	if err != nil {
		t.Fatal(err)
	}
	if len(asked) != 1 || ts[1].Config["ssh"].(map[string]any)["password"] != "typed" {
		t.Errorf("asked %q, b = %v", asked, ts[1].Config)
	}
	if got := inv.Sensitive("b"); !reflect.DeepEqual(got, [][]string{{"config", "ssh", "password"}}) {
		t.Errorf("sensitive %v", got)
	}
	_, _, err = lookup(t, src, nil, Options{Prompt: func(string) (string, error) { return "", ErrNotInteractive }}, "a")
	want := `inventory.yaml:5: plugin "prompt" (group "g": config.ssh.password): cannot prompt for group "g": config.ssh.password ("SSH password"): standard input is not a terminal`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("err %v\nwant %s", err, want)
	}
	// the default prompt: test stdin is not a terminal
	_, _, err = lookup(t, src, nil, Options{}, "a")
	if err == nil || !strings.Contains(err.Error(), "not a terminal") {
		t.Errorf("default prompt without a terminal: %v", err)
	}
}

// TestTaskPlugin runs the hook (a real function) once per distinct
// reference and uses its result's value.
func TestTaskPlugin(t *testing.T) {
	var calls []string
	run := func(_ context.Context, name string, params map[string]any) (map[string]any, error) {
		calls = append(calls, name)
		switch name {
		case "mymod::targets":
			n, _ := params["count"].(int)
			var out []any
			for i := range n {
				out = append(out, map[string]any{"uri": "h" + string(rune('0'+i))})
			}
			return map[string]any{"value": out}, nil
		case "mymod::novalue":
			return map[string]any{"secret_key": "s3cret", "other": 1}, nil
		case "mymod::fails":
			return nil, errors.New("exit code 3")
		}
		return map[string]any{"value": float64(42)}, nil
	}
	// A task's result as the engine decodes it keeps numbers as
	// json.Number; they stay numbers, not strings.
	numbers := func(_ context.Context, _ string, _ map[string]any) (map[string]any, error) {
		return map[string]any{"value": map[string]any{"count": json.Number("3"), "ratio": json.Number("0.5"), "list": []any{json.Number("7")}}}, nil
	}
	nt, _, err := lookup(t, "targets: [{name: a, facts: {_plugin: task, task: m::n}}]\n", nil, Options{RunTask: numbers}, "a")
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]any{"count": 3, "ratio": 0.5, "list": []any{7}}; !reflect.DeepEqual(nt[0].Facts, want) {
		t.Errorf("facts from a task's numbers = %#v, want %#v", nt[0].Facts, want)
	}
	src := `groups:
  - name: dyn
    targets:
      - _plugin: task
        task: mymod::targets
        parameters: {count: 2}
    vars:
      answer: {_plugin: task, task: mymod::answer}
      again: {_plugin: task, task: mymod::answer}
`
	ts, _, err := lookup(t, src, nil, Options{RunTask: run}, "dyn")
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 2 || ts[0].Name != "h0" || ts[1].Vars["answer"] != 42 || ts[1].Vars["again"] != 42 {
		t.Fatalf("targets %+v", ts)
	}
	if strings.Join(calls, ",") != "mymod::targets,mymod::answer" {
		t.Errorf("calls %v", calls)
	}
	errs := []struct{ ref, want string }{
		{"{_plugin: task, task: mymod::novalue}", `task "mymod::novalue" did not return "value" (its result has keys: other, secret_key)`},
		{"{_plugin: task, task: mymod::fails}", `task "mymod::fails": exit code 3`},
		{"{_plugin: task}", `parameter "task" is required`},
		{"{_plugin: task, task: x, parameters: [1]}", `"parameters" must be a mapping`},
	}
	for _, e := range errs {
		_, _, err := lookup(t, "targets: [{name: a, vars: {v: "+e.ref+"}}]\n", nil, Options{RunTask: run}, "a")
		if err == nil || !strings.Contains(err.Error(), e.want) || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: err %v, want %q", e.ref, err, e.want)
		}
	}
	_, _, err = lookup(t, "targets: [{name: a, vars: {v: {_plugin: task, task: x}}}]\n", nil, Options{}, "a")
	if err == nil || !strings.Contains(err.Error(), "tasks cannot run from the inventory here") {
		t.Errorf("no hook: %v", err)
	}
}

// TestLazyResolution: a plugin in the data of a group no requested target
// uses never runs; structure resolves at load.
func TestLazyResolution(t *testing.T) {
	var calls []string
	run := func(_ context.Context, name string, _ map[string]any) (map[string]any, error) {
		calls = append(calls, name)
		return map[string]any{"value": name}, nil
	}
	src := `groups:
  - name: used
    targets: [a]
    vars: {v: {_plugin: task, task: used::v}}
  - name: unused
    targets: [b]
    config:
      ssh:
        password: {_plugin: env_var, var: MUSTER_T_UNSET}
    vars: {v: {_plugin: task, task: unused::v}}
`
	ts, inv, err := lookup(t, src, nil, Options{RunTask: run}, "used")
	if err != nil {
		t.Fatal(err)
	}
	if ts[0].Vars["v"] != "used::v" || strings.Join(calls, ",") != "used::v" {
		t.Errorf("a = %v, calls %v", ts[0].Vars, calls)
	}
	_, _, err = inv.Lookup("b")
	if err == nil || !strings.Contains(err.Error(), `inventory.yaml:9: plugin "env_var" (group "unused": config.ssh.password)`) {
		t.Errorf("b: %v", err)
	}
	if _, err := inv.All(); err == nil {
		t.Error("All resolved b")
	}
	var warned []string
	inv.opts.Warnf = func(f string, a ...any) { warned = append(warned, f) }
	if got := inv.Targets(); len(got) != 1 || got[0].Name != "a" || len(warned) != 1 {
		t.Errorf("Targets() = %v, warnings %v", got, warned)
	}
}

func TestDuplicateTargetInGroup(t *testing.T) {
	src := `groups:
  - name: g
    targets:
      - name: web1
        vars: {which: first}
      - name: web1
        vars: {which: second, extra: 1}
      - web1
`
	var warns []string
	opts := Options{Warnf: func(f string, a ...any) { warns = append(warns, strings.TrimSpace(sprintf(f, a...))) }}
	ts, _, err := lookup(t, src, nil, opts, "web1")
	if err != nil {
		t.Fatal(err)
	}
	if ts[0].Vars["which"] != "first" || ts[0].Vars["extra"] != nil {
		t.Errorf("vars %v", ts[0].Vars)
	}
	if len(warns) != 2 || !strings.Contains(warns[0], `:6: group "g": ignoring duplicate target "web1" (first defined at line 4)`) {
		t.Errorf("warnings %q", warns)
	}
}

func sprintf(f string, a ...any) string { return fmt.Sprintf(f, a...) }
