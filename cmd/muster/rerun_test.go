package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// rerunProject makes a project (with its project file) holding a plan
// that runs a command on its targets, and returns its directory.
func rerunProject(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	plan := `parameters:
  targets: {type: TargetSpec}
  cmd: {type: String}
steps:
  - name: check
    command: $cmd
    targets: $targets
return: $check
`
	files := map[string]string{
		"muster-project.yaml":         "name: rr\n",
		"modules/rr/plans/check.yaml": plan,
	}
	for name, content := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// readRerunFile returns .rerun.json as target -> status.
func readRerunFile(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var entries []map[string]string
	if err := json.Unmarshal(b, &entries); err != nil {
		t.Fatalf("%s: %v\n%s", path, err, b)
	}
	out := map[string]string{}
	for _, e := range entries {
		if len(e) != 2 || e["target"] == "" || e["status"] == "" {
			t.Errorf("entry %v is not Bolt's {target, status}", e)
		}
		out[e["target"]] = e["status"]
	}
	return out
}

func itemTargets(t *testing.T, out string) []string {
	t.Helper()
	var names []string
	for _, it := range decode(t, out).Items {
		names = append(names, it.Target)
	}
	sort.Strings(names)
	return names
}

// TestRerun runs on three real SSH targets, one of which fails, then
// reruns by status, for commands, scripts, uploads and plans.
func TestRerun(t *testing.T) {
	_, inv := fleet(t, 3, "")
	dir := rerunProject(t)
	rerun := filepath.Join(dir, ".rerun.json")
	base := []string{"-i", inv, "--project", dir, "--format", "json"}
	failOnTwo := `[ "$(echo "$SSH_CONNECTION" | cut -d' ' -f3)" != 127.0.0.2 ]`
	all := []string{"127.0.0.1", "127.0.0.2", "127.0.0.3"}

	code, out, errOut := cli(t, append([]string{"command", "run", failOnTwo, "-t", "fleet"}, base...)...)
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s\n%s", code, out, errOut)
	}
	want := map[string]string{"127.0.0.1": "success", "127.0.0.2": "failure", "127.0.0.3": "success"}
	if got := readRerunFile(t, rerun); !reflect.DeepEqual(got, want) {
		t.Fatalf(".rerun.json = %v, want %v", got, want)
	}

	steps := []struct {
		name     string
		args     []string
		code     int
		targets  []string
		recorded map[string]string // nil: .rerun.json unchanged
	}{
		{"failure", []string{"command", "run", "true", "--rerun", "failure"}, 0, []string{"127.0.0.2"},
			map[string]string{"127.0.0.2": "success"}},
		{"no-save-rerun keeps the file", []string{"command", "run", "false", "--rerun", "all", "--no-save-rerun"}, 1, []string{"127.0.0.2"}, nil},
		{"script, success", []string{"script", "run", writeScript(t, "#!/bin/sh\nexit 3\n"), "--rerun", "success"}, 1, []string{"127.0.0.2"},
			map[string]string{"127.0.0.2": "failure"}},
		{"upload, failure", []string{"file", "upload", writeScript(t, "x"), "muster-rerun-upload", "--rerun", "failure"}, 0, []string{"127.0.0.2"},
			map[string]string{"127.0.0.2": "success"}},
		{"all targets again", []string{"command", "run", failOnTwo, "-t", "fleet"}, 1, all, want},
		{"plan, failure", []string{"plan", "run", "rr::check", "cmd=" + failOnTwo, "--rerun", "failure"}, 1, nil,
			map[string]string{"127.0.0.2": "failure"}},
		{"plan, all", []string{"plan", "run", "rr::check", "cmd=true", "--rerun", "all"}, 0, nil,
			map[string]string{"127.0.0.2": "success"}},
	}
	for _, st := range steps {
		before, _ := os.ReadFile(rerun)
		code, out, errOut := cli(t, append(st.args, base...)...)
		if code != st.code {
			t.Fatalf("%s: exit %d, want %d\n%s\n%s", st.name, code, st.code, out, errOut)
		}
		if st.targets != nil {
			if got := itemTargets(t, out); !reflect.DeepEqual(got, st.targets) {
				t.Errorf("%s: ran on %v, want %v", st.name, got, st.targets)
			}
		}
		if st.recorded == nil {
			if after, _ := os.ReadFile(rerun); string(after) != string(before) {
				t.Errorf("%s: .rerun.json changed from %s to %s", st.name, before, after)
			}
			continue
		}
		if got := readRerunFile(t, rerun); !reflect.DeepEqual(got, st.recorded) {
			t.Errorf("%s: .rerun.json = %v, want %v", st.name, got, st.recorded)
		}
	}
}

func writeScript(t *testing.T, content string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "script.sh")
	if err := os.WriteFile(f, []byte(content), 0o755); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestRerunErrors checks the refusals: each exits 2 before any target is
// touched and says why.
func TestRerunErrors(t *testing.T) {
	project := func() string {
		d := t.TempDir()
		os.WriteFile(filepath.Join(d, "bolt-project.yaml"), []byte("name: p\n"), 0o644)
		return d
	}
	empty := project()
	bad := project()
	os.WriteFile(filepath.Join(bad, ".rerun.json"), []byte(`{"target": "a"}`), 0o644)
	incomplete := project()
	os.WriteFile(filepath.Join(incomplete, ".rerun.json"), []byte(`[{"target": "a", "status": "success"}, {"target": "b"}]`), 0o644)
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"no file", []string{"command", "run", "true", "--rerun", "failure", "--project", empty},
			[]string{"no .rerun.json at " + filepath.Join(empty, ".rerun.json"), "-t"}},
		{"with -t", []string{"command", "run", "true", "--rerun", "failure", "-t", "localhost", "--project", empty},
			[]string{"only one targeting option", "--targets", "--rerun"}},
		{"bad filter", []string{"command", "run", "true", "--rerun", "failed", "--project", empty},
			[]string{`--rerun "failed"`, "failure, success or all"}},
		{"not a list", []string{"task", "run", "facts", "--rerun", "all", "--project", bad},
			[]string{filepath.Join(bad, ".rerun.json"), "not a list"}},
		{"entry without status", []string{"plan", "run", "x", "--rerun", "all", "--project", incomplete},
			[]string{filepath.Join(incomplete, ".rerun.json"), "entry 2"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := cli(t, tc.args...)
			if code != 2 {
				t.Fatalf("exit %d, want 2\n%s\n%s", code, out, errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr %q does not contain %q", errOut, w)
				}
			}
		})
	}
}

// TestRerunNothing: a rerun that selects no target acts on none and says
// so, as Bolt does.
func TestRerunNothing(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "muster-project.yaml"), []byte("name: p\n"), 0o644)
	os.WriteFile(filepath.Join(dir, ".rerun.json"), []byte(`[{"target":"localhost","status":"success"}]`), 0o644)
	code, out, errOut := cli(t, "command", "run", "true", "--rerun", "failure", "--project", dir)
	if code != 0 || !strings.Contains(errOut, "no target with that status") || !strings.Contains(out, "0 targets") {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
}

// TestRerunLocation: without a project file or --project, runs record
// .rerun.json in the user's state directory, not in the current one.
func TestRerunLocation(t *testing.T) {
	state := t.TempDir()
	t.Setenv("XDG_STATE_HOME", state)
	t.Setenv("MUSTER_PROJECT", "")
	cwd := t.TempDir()
	t.Chdir(cwd)
	if code, out, errOut := cli(t, "command", "run", "true", "-t", "localhost"); code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	if _, err := os.Stat(filepath.Join(cwd, ".rerun.json")); err == nil {
		t.Error(".rerun.json written in a directory that is no project")
	}
	// nor in a --project directory without a project file
	if code, out, errOut := cli(t, "command", "run", "false", "-t", "localhost", "--project", cwd); code != 1 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	if _, err := os.Stat(filepath.Join(cwd, ".rerun.json")); err == nil {
		t.Error(".rerun.json written in a --project directory without a project file")
	}
	if got := readRerunFile(t, filepath.Join(state, "muster", ".rerun.json")); got["localhost"] != "failure" {
		t.Errorf("state .rerun.json = %v", got)
	}
	if code, out, errOut := cli(t, "command", "run", "true", "-t", "localhost"); code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	if got := readRerunFile(t, filepath.Join(state, "muster", ".rerun.json")); got["localhost"] != "success" {
		t.Errorf("state .rerun.json = %v", got)
	}
	code, out, errOut := cli(t, "command", "run", "echo again", "--rerun", "success", "--format", "json")
	if code != 0 || !reflect.DeepEqual(itemTargets(t, out), []string{"localhost"}) {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
}
