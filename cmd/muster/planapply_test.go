package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// applyPlans is a project whose plans apply resources with Puppet: motd
// writes a file (noop when asked) and returns each target's report
// status; bad declares a resource with an attribute Puppet cannot have;
// failing declares an exec that fails.
func applyPlans(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"modules/m/plans/motd.yaml": `parameters:
  targets: {type: TargetSpec}
  path: {type: String}
  content: {type: String, default: v1}
  noop: {type: Boolean, default: false}
steps:
  - name: applied
    resources:
      - file: $path
        parameters: {content: $content, mode: "0644"}
    targets: $targets
    noop: $noop
return: $applied.map |$r| { $r.value['report']['status'] }
`,
		"modules/m/plans/bad.yaml": `parameters:
  targets: {type: TargetSpec}
steps:
  - command: echo before
    targets: $targets
  - resources:
      - notify: fine
      - type: file
        title: /tmp/never
        parameters: {Not-An-Attribute: 1}
    targets: $targets
`,
		"modules/m/plans/failing.yaml": `parameters:
  targets: {type: TargetSpec}
steps:
  - resources:
      - exec: "false"
        parameters: {path: "/bin:/usr/bin"}
    targets: $targets
`,
	})
	return dir
}

// planApply runs plan m::NAME with --format json and returns the exit
// code, the return value and the output.
func planApply(t *testing.T, dir, name string, args ...string) (int, []string, string) {
	t.Helper()
	code, out, errOut := cli(t, append([]string{"plan", "run", "m::" + name, "--project", dir, "--format", "json"}, args...)...)
	var statuses []string
	if code == 0 {
		if err := json.Unmarshal([]byte(out), &statuses); err != nil {
			t.Fatalf("plan %s: return value is not a list of statuses: %v\n%s", name, err, out)
		}
	}
	return code, statuses, out + errOut
}

// A YAML plan's resources step runs Puppet on the targets (real Puppet,
// here through the local transport, and over real sshd): the file is
// created (changed), then left alone (unchanged); noop changes nothing;
// a bad declaration fails before the step starts, naming the plan's file
// and line; a failing resource fails the plan.
func TestPlanApplyResources(t *testing.T) {
	needPuppet(t)
	for _, tp := range []string{"local", "ssh"} {
		t.Run(tp, func(t *testing.T) {
			dir := applyPlans(t)
			targets := []string{"-t", "localhost"}
			if tp == "ssh" {
				_, inv := fleet(t, 1, "")
				targets = []string{"-t", "fleet", "-i", inv}
			}
			// A directory the target's user (sshd's login user) can write.
			out, err := os.MkdirTemp("", "muster-plan-apply-")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(out) })
			if err := os.Chmod(out, 0o777); err != nil {
				t.Fatal(err)
			}
			file := filepath.Join(out, "motd")
			run := func(wantCode int, want string, args ...string) string {
				t.Helper()
				code, statuses, text := planApply(t, dir, "motd", append(append([]string{"path=" + file}, args...), targets...)...)
				if code != wantCode || wantCode == 0 && strings.Join(statuses, ",") != want {
					t.Fatalf("plan run %v: exit %d statuses %v, want %d %s\n%s", args, code, statuses, wantCode, want, text)
				}
				return text
			}
			read := func() string {
				b, _ := os.ReadFile(file)
				return string(b)
			}

			text := run(0, "changed")
			if read() != "v1" || !strings.Contains(text, "Starting: apply on ") || !strings.Contains(text, "Finished: apply with 0 failures") {
				t.Fatalf("first apply: file %q\n%s", read(), text)
			}
			run(0, "unchanged")
			run(0, "unchanged", "content=v2", "noop=true")
			if read() != "v1" {
				t.Fatalf("noop changed the file: %q", read())
			}
			run(0, "changed", "content=v2")
			if read() != "v2" {
				t.Fatalf("file %q after the second content", read())
			}

			planFile := filepath.Join(dir, "modules", "m", "plans", "bad.yaml")
			code, _, text := planApply(t, dir, "bad", targets...)
			if code != exitUsage || !strings.Contains(text, planFile+":6: resources[1].parameters.Not-An-Attribute") ||
				!strings.Contains(text, "Finished: command 'echo before'") || strings.Contains(text, "Starting: apply") {
				t.Errorf("bad declaration: exit %d\n%s", code, text)
			}
			if _, err := os.Stat("/tmp/never"); err == nil {
				t.Error("the bad step ran")
			}

			code, _, text = planApply(t, dir, "failing", targets...)
			if code != 1 || !strings.Contains(text, "apply failed on 1 target") || !strings.Contains(text, "Exec[false]") {
				t.Errorf("failing resource: exit %d\n%s", code, text)
			}
		})
	}
}
