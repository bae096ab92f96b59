package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/muster-run/muster/internal/target"
)

// writeFiles writes files (relative to dir; mode 0755 for .sh and .rb).
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, text := range files {
		p := name
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, name)
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o644)
		if strings.HasSuffix(p, ".sh") || strings.HasSuffix(p, ".rb") {
			mode = 0o755
		}
		if err := os.WriteFile(p, []byte(text), mode); err != nil {
			t.Fatal(err)
		}
	}
}

// Script and file references in a plan resolve as Bolt documents them:
// <module>/scripts/..., <module>/files/..., <module>/<path> (files/),
// then the project, then an absolute path. A missing one fails the step
// before it starts, naming every place tried.
func TestPlanFileReferencesAsBolt(t *testing.T) {
	dir := localProject(t, 1)
	abs := filepath.Join(t.TempDir(), "abs.sh")
	out := filepath.Join(t.TempDir(), "uploaded")
	writeFiles(t, dir, map[string]string{
		"modules/m/scripts/s.sh":  "#!/bin/sh\necho from-scripts\n",
		"modules/m/files/f.sh":    "#!/bin/sh\necho from-files\n",
		"modules/m/files/app.cfg": "port=80\n",
		"bin/local.sh":            "#!/bin/sh\necho from-project\n",
		abs:                       "#!/bin/sh\necho from-absolute\n",
		"modules/m/plans/refs.yaml": `parameters:
  targets: {type: TargetSpec}
  abs: {type: String}
  dest: {type: String}
steps:
  - {name: a, script: m/scripts/s.sh, targets: $targets}
  - {name: b, script: m/files/f.sh, targets: $targets}
  - {name: c, script: m/f.sh, targets: $targets}
  - {name: d, script: bin/local.sh, targets: $targets}
  - {name: e, script: $abs, targets: $targets}
  - {upload: m/app.cfg, destination: $dest, targets: $targets}
return: "${a[0]['stdout']}${b[0]['stdout']}${c[0]['stdout']}${d[0]['stdout']}${e[0]['stdout']}"
`,
		"modules/m/plans/missing.yaml": `parameters:
  targets: {type: TargetSpec}
steps:
  - command: echo first
    targets: $targets
  - script: m/scripts/nope.sh
    targets: $targets
`,
	})
	code, stdout, stderr := cli(t, "plan", "run", "m::refs", "-t", "nodes", "abs="+abs, "dest="+out, "--project", dir, "--format", "json")
	var ret string
	if code != 0 || json.Unmarshal([]byte(stdout), &ret) != nil {
		t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
	}
	if want := "from-scripts\nfrom-files\nfrom-files\nfrom-project\nfrom-absolute\n"; ret != want {
		t.Errorf("scripts ran: %q, want %q", ret, want)
	}
	if b, err := os.ReadFile(out); err != nil || string(b) != "port=80\n" {
		t.Errorf("upload of m/app.cfg: %q, %v", b, err)
	}

	code, stdout, stderr = cli(t, "plan", "run", "m::missing", "-t", "nodes", "--project", dir)
	all := stdout + stderr
	for _, want := range []string{
		`No such file or directory: script "m/scripts/nope.sh"`,
		filepath.Join(dir, "modules", "m", "scripts", "nope.sh"),
		filepath.Join(dir, "modules", "m", "files", "scripts", "nope.sh"),
		filepath.Join(dir, "m", "scripts", "nope.sh"),
		"missing.yaml:6",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("missing script: output lacks %q", want)
		}
	}
	if code != 2 || !strings.Contains(all, "Finished: command 'echo first'") || strings.Contains(all, "script m/scripts/nope.sh") {
		t.Errorf("exit %d (want 2); the script step must neither start nor finish:\n%s", code, all)
	}
}

// verbose steps, out::verbose and Starlark's out.verbose print only with
// --verbose; message steps always.
func TestPlanVerboseAsBolt(t *testing.T) {
	dir := localProject(t, 1)
	writeFiles(t, dir, map[string]string{
		"modules/m/plans/talk.yaml": `steps:
  - message: always said
  - verbose: said with verbose
  - eval: |
      out::verbose('function verbose')
  - eval: |
      out::message('function message')
`,
		"modules/m/plans/talkstar.star": `def main():
    out.message("star always")
    out.verbose("star verbose")
`,
	})
	tests := []struct {
		name    string
		args    []string
		want    []string
		notWant []string
	}{
		{"yaml quiet", []string{"m::talk"}, []string{"always said", "function message"}, []string{"said with verbose", "function verbose"}},
		{"yaml verbose", []string{"m::talk", "--verbose"}, []string{"always said", "said with verbose", "function verbose", "function message"}, nil},
		{"starlark quiet", []string{"m::talkstar"}, []string{"star always"}, []string{"star verbose"}},
		{"starlark -v", []string{"m::talkstar", "-v"}, []string{"star always", "star verbose"}, nil},
		{"json verbose", []string{"m::talk", "-v", "--format", "json"}, []string{"said with verbose"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := cli(t, append([]string{"plan", "run", "--project", dir}, tc.args...)...)
			if code != 0 {
				t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stdout+stderr, w) {
					t.Errorf("output lacks %q:\n%s%s", w, stdout, stderr)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(stdout+stderr, w) {
					t.Errorf("output holds %q:\n%s%s", w, stdout, stderr)
				}
			}
		})
	}
}

// A plan parameter with neither type nor default is required.
func TestPlanUntypedParameterRequired(t *testing.T) {
	dir := localProject(t, 1)
	writeFiles(t, dir, map[string]string{"modules/m/plans/p.yaml": `parameters:
  who:
  greeting: {description: "no type, no default"}
  opt: {type: "Optional[String]"}
steps:
  - message: "${greeting} ${who}"
`})
	code, stdout, stderr := cli(t, "plan", "run", "m::p", "--project", dir)
	if code != 2 || !strings.Contains(stderr, `parameter "who" is required`) || !strings.Contains(stderr, `parameter "greeting" is required`) ||
		strings.Contains(stderr, `"opt"`) || strings.Contains(stdout, "Starting") {
		t.Errorf("exit %d (want 2)\n%s%s", code, stdout, stderr)
	}
	code, stdout, stderr = cli(t, "plan", "run", "m::p", "who=world", "greeting=hello", "--project", dir)
	if code != 0 || !strings.Contains(stdout, "hello world") {
		t.Errorf("exit %d\n%s%s", code, stdout, stderr)
	}
}

// A task's top-level _sensitive value is redacted in human and JSON
// output, in task runs and in plans, as Bolt prints it; the plan itself
// can still read it.
func TestTaskSensitiveRedacted(t *testing.T) {
	dir := localProject(t, 1)
	writeFiles(t, dir, map[string]string{
		"modules/m/tasks/pw.json": `{"description": "returns a secret", "input_method": "stdin", "parameters": {"fail": {"type": "Boolean", "default": false}}}`,
		"modules/m/tasks/pw.sh": `#!/bin/sh
if grep -q '"fail":true'; then
  echo '{"_sensitive": {"password": "hunter2-secret"}, "_error": {"msg": "it broke", "kind": "m/broke"}}'
  exit 1
fi
echo '{"user": "someone", "_sensitive": {"password": "hunter2-secret"}}'
`,
		"modules/m/plans/pw.yaml": `parameters:
  targets: {type: TargetSpec}
  fail: {type: Boolean, default: false}
steps:
  - name: r
    task: m::pw
    targets: $targets
    parameters: {fail: $fail}
  - message: "length ${r[0].value['_sensitive']['password'].length}"
return: $r
`,
	})
	tests := []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"task human", []string{"task", "run", "m::pw", "-t", "nodes"}, 0, []string{`"_sensitive": "Sensitive [value redacted]"`, "someone"}},
		{"task json", []string{"task", "run", "m::pw", "-t", "nodes", "--format", "json"}, 0, []string{`"_sensitive":"Sensitive [value redacted]"`}},
		{"task failure verbose", []string{"task", "run", "m::pw", "fail=true", "-t", "nodes", "-v"}, 1, []string{"Sensitive [value redacted]", "it broke"}},
		{"plan human", []string{"plan", "run", "m::pw", "-t", "nodes", "-v"}, 0, []string{"length 14", `"_sensitive": "Sensitive [value redacted]"`}},
		{"plan json", []string{"plan", "run", "m::pw", "-t", "nodes", "--format", "json"}, 0, []string{`"_sensitive": "Sensitive [value redacted]"`}},
		{"plan run failure json", []string{"plan", "run", "m::pw", "fail=true", "-t", "nodes", "--format", "json"}, 1, []string{"muster/run-failure", "Sensitive [value redacted]"}},
		{"plan run failure human", []string{"plan", "run", "m::pw", "fail=true", "-t", "nodes"}, 1, []string{"it broke", "Sensitive [value redacted]"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := cli(t, append(tc.args, "--project", dir)...)
			all := stdout + stderr
			if code != tc.code || strings.Contains(all, "hunter2-secret") {
				t.Fatalf("exit %d (want %d), or the secret was printed:\n%s", code, tc.code, all)
			}
			for _, w := range tc.want {
				if !strings.Contains(all, w) {
					t.Errorf("output lacks %q:\n%s", w, all)
				}
			}
		})
	}
}

// A step whose task or script cannot be found fails before it starts:
// no "Starting"/"Finished" line for it, exit 2, and the error (as JSON:
// kind, msg, details) names the plan file and the step's line. Inventory
// errors carry their file and line the same way.
func TestPlanStepNotFoundFailsEarly(t *testing.T) {
	dir := localProject(t, 1)
	writeFiles(t, dir, map[string]string{
		"modules/m/plans/notask.yaml": `parameters:
  targets: {type: TargetSpec}
steps:
  - command: echo first
    targets: $targets
  - task: m::nope
    targets: $targets
  - command: echo never
    targets: $targets
`,
		"modules/m/plans/noscript.star": `def main(targets):
    run_command("echo first", targets)
    run_script("m/scripts/nope.sh", targets)
`,
		"broken/inventory.yaml": "groups:\n  - name: g\n    targets:\n      - name: a\n        bogus: [\n",
	})
	plan := filepath.Join(dir, "modules", "m", "plans", "notask.yaml")
	tests := []struct {
		name    string
		args    []string
		want    []string
		notWant []string
	}{
		{"missing task, human", []string{"m::notask"}, []string{"Finished: command 'echo first'", plan + ":6:", `could not find a task named "m::nope"`},
			[]string{"Starting: task", "Finished: task", "echo never", "Finished: plan"}},
		{"missing script, starlark", []string{"m::noscript"}, []string{"Finished: command 'echo first'", `No such file or directory: script "m/scripts/nope.sh"`},
			[]string{"Starting: script", "Finished: script", "Finished: plan"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := cli(t, append([]string{"plan", "run", "-t", "nodes", "--project", dir}, tc.args...)...)
			all := stdout + stderr
			if code != 2 {
				t.Errorf("exit %d, want 2", code)
			}
			for _, w := range tc.want {
				if !strings.Contains(all, w) {
					t.Errorf("output lacks %q:\n%s", w, all)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(all, w) {
					t.Errorf("output holds %q:\n%s", w, all)
				}
			}
		})
	}

	errJSON := func(args ...string) map[string]any {
		t.Helper()
		code, stdout, stderr := cli(t, append(args, "--format", "json")...)
		var doc struct {
			Error map[string]any `json:"_error"`
		}
		if code != 2 || json.Unmarshal([]byte(stdout), &doc) != nil || doc.Error == nil {
			t.Fatalf("exit %d, want 2 and an error document:\n%s%s", code, stdout, stderr)
		}
		return doc.Error
	}
	e := errJSON("plan", "run", "m::notask", "-t", "nodes", "--project", dir)
	d, _ := e["details"].(map[string]any)
	if e["kind"] != "muster/invalid-input" || d["file"] != plan || d["line"] != float64(6) || !strings.Contains(e["msg"].(string), "m::nope") {
		t.Errorf("missing task error = %v", e)
	}

	writeFiles(t, dir, map[string]string{"modules/m/plans/bad.yaml": "steps:\n  - command: ls\n    targets: all\n    bogus: 1\n"})
	e = errJSON("plan", "run", "m::bad", "--project", dir)
	d, _ = e["details"].(map[string]any)
	if d["file"] != filepath.Join(dir, "modules", "m", "plans", "bad.yaml") || d["line"] != float64(4) || !strings.Contains(e["msg"].(string), "bogus") {
		t.Errorf("plan load error = %v", e)
	}

	inv := filepath.Join(dir, "broken", "inventory.yaml")
	e = errJSON("plan", "run", "m::notask", "-t", "a", "-i", inv, "--project", dir)
	d, _ = e["details"].(map[string]any)
	if d["file"] != inv || d["line"] == nil {
		t.Errorf("inventory error = %v", e)
	}
}

// localhost gets Bolt's local defaults together: the puppet-agent feature
// picks a task's Ruby implementation, and the .rb interpreter runs it
// (Puppet's bundled Ruby, or the system ruby with a warning), whatever
// the script's own #! line says.
func TestRubyTaskOnLocalhost(t *testing.T) {
	if _, err := os.Stat("/usr/bin/ruby"); err != nil {
		if _, err := os.Stat(target.BundledRuby); err != nil {
			t.Skip("no Ruby on this machine")
		}
	}
	dir := localProject(t, 1)
	writeFiles(t, dir, map[string]string{
		"modules/m/tasks/pkg.json": `{"description": "a Forge-style task", "input_method": "stdin",
  "parameters": {"name": {"type": "String"}},
  "implementations": [{"name": "pkg.rb", "requirements": ["puppet-agent"]}, {"name": "pkg.sh", "requirements": ["shell"]}]}`,
		"modules/m/tasks/pkg.rb": "#!/opt/puppetlabs/puppet/bin/ruby\nrequire 'json'\nputs({'impl' => 'ruby', 'name' => JSON.parse(STDIN.read)['name']}.to_json)\n",
		"modules/m/tasks/pkg.sh": "#!/bin/sh\necho '{\"impl\": \"shell\"}'\n",
		"modules/m/plans/pkg.yaml": `parameters:
  targets: {type: TargetSpec}
steps:
  - {name: r, task: m::pkg, targets: $targets, parameters: {name: nginx}}
return: $r[0].value
`,
	})
	_, bundledErr := os.Stat(target.BundledRuby)
	for _, args := range [][]string{
		{"task", "run", "m::pkg", "name=nginx", "-t", "localhost", "--format", "json"},
		{"plan", "run", "m::pkg", "-t", "localhost", "--format", "json"},
		{"task", "run", "m::pkg", "name=nginx", "-t", "nodes", "--format", "json"}, // any local-transport target
	} {
		code, stdout, stderr := cli(t, append(args, "--project", dir)...)
		if code != 0 || !strings.Contains(stdout, `"impl":"ruby"`) && !strings.Contains(stdout, `"impl": "ruby"`) || !strings.Contains(stdout, "nginx") {
			t.Errorf("%v: exit %d\n%s%s", args, code, stdout, stderr)
		}
		if warned := strings.Contains(stderr, target.BundledRuby+" is not installed"); warned != (bundledErr != nil) {
			t.Errorf("%v: warning given %v, bundled Ruby missing %v:\n%s", args, warned, bundledErr != nil, stderr)
		}
	}
}
