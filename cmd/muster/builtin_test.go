package main

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// dpkgStatus is the installed version of pkg as dpkg reports it, or skips
// the test on a machine without dpkg.
func dpkgStatus(t *testing.T, pkg string) string {
	t.Helper()
	if _, err := exec.LookPath("dpkg-query"); err != nil {
		t.Skip("no dpkg-query: the package status check needs an apt system")
	}
	out, err := exec.Command("dpkg-query", "-W", "-f", "${Version}", pkg).Output()
	if err != nil {
		t.Fatalf("dpkg-query %s: %v", pkg, err)
	}
	return string(out)
}

// The built-in modules are on the module path of every project, last: the
// README's package example works as written, task show lists them, and a
// project's module of the same name wins over the built-in one.
func TestBuiltinTasksOnModulePath(t *testing.T) {
	version := dpkgStatus(t, "coreutils")
	empty := t.TempDir()
	code, out, errOut := cli(t, "task", "run", "package", "action=status", "name=coreutils", "-t", "localhost", "--project", empty, "--format", "json")
	if code != 0 {
		t.Fatalf("task run package: exit %d\n%s\n%s", code, out, errOut)
	}
	doc := decode(t, out)
	if len(doc.Items) != 1 || doc.Items[0].Status != "success" || doc.Items[0].Value["status"] != "installed" || doc.Items[0].Value["version"] != version {
		t.Fatalf("task run package: %+v, want installed %s", doc.Items, version)
	}
	code, out, _ = cli(t, "task", "run", "package", "action=status", "name=coreutils", "-t", "localhost", "--project", empty)
	if code != 0 || !strings.Contains(out, `"status": "installed"`) || !strings.Contains(out, "Successful on 1 target: localhost") {
		t.Fatalf("task run package, human: exit %d\n%s", code, out)
	}

	code, out, _ = cli(t, "task", "show", "--project", empty)
	for _, name := range []string{"package ", "service ", "facts ", "reboot ", "reboot::last_boot_time"} {
		if code != 0 || !strings.Contains(out, name) {
			t.Errorf("task show lacks %q (exit %d):\n%s", name, code, out)
		}
	}
	if strings.Contains(out, "muster_common") {
		t.Errorf("task show lists the helpers module:\n%s", out)
	}
	code, out, _ = cli(t, "task", "show", "package", "--project", empty)
	if code != 0 || !strings.Contains(out, "action: Enum[install, status, uninstall, upgrade]") {
		t.Errorf("task show package: exit %d\n%s", code, out)
	}

	// The project's own module called package wins; the other built-in
	// modules stay, after --modulepath too.
	proj := t.TempDir()
	writeFiles(t, proj, map[string]string{
		"modules/package/tasks/init.sh": "#!/bin/sh\necho '{\"mine\": true}'\n",
	})
	for _, args := range [][]string{{"--project", proj}, {"--project", empty, "-m", filepath.Join(proj, "modules")}} {
		code, out, errOut = cli(t, append([]string{"task", "run", "package", "-t", "localhost", "--format", "json"}, args...)...)
		if code != 0 || decode(t, out).Items[0].Value["mine"] != true {
			t.Errorf("%v: the project's package task did not win: exit %d\n%s\n%s", args, code, out, errOut)
		}
		code, out, errOut = cli(t, append([]string{"task", "run", "facts", "-t", "localhost", "--format", "json"}, args...)...)
		if code != 0 || decode(t, out).Items[0].Value["os"] == nil {
			t.Errorf("%v: built-in facts: exit %d\n%s\n%s", args, code, out, errOut)
		}
	}
}

// Over real sshd the built-in tasks ship their shared helpers with them
// (the task's files) to a target that has nothing of muster's.
func TestBuiltinTasksOverSSH(t *testing.T) {
	version := dpkgStatus(t, "coreutils")
	_, inv := fleet(t, 2, "")
	code, out, errOut := cli(t, "task", "run", "package", "action=status", "name=coreutils", "-t", "fleet", "-i", inv, "--project", t.TempDir(), "--format", "json")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	doc := decode(t, out)
	if len(doc.Items) != 2 {
		t.Fatalf("%d items, want 2", len(doc.Items))
	}
	for _, it := range doc.Items {
		if it.Status != "success" || it.Value["status"] != "installed" || it.Value["version"] != version {
			t.Errorf("%s: %+v", it.Target, it)
		}
	}
}

// An inventory's target list and vars come from project tasks through the
// task plugin, run on localhost; the targets then run work like any
// other. A task that fails, or is missing, stops the command with an
// error naming the plugin's task and the inventory's line.
func TestInventoryTaskPlugin(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"modules/dyn/tasks/targets.json": `{"parameters": {"count": {"type": "Integer[1, 9]"}}, "input_method": "environment"}`,
		"modules/dyn/tasks/targets.sh": `#!/bin/sh
printf '{"value": ['
i=1
while [ "$i" -le "$PT_count" ]; do
	[ "$i" -eq 1 ] || printf ', '
	printf '{"name": "dyn%d", "vars": {"n": %d}}' "$i" "$i"
	i=$((i + 1))
done
printf ']}\n'
`,
		"modules/dyn/tasks/motd.sh":   "#!/bin/sh\necho '{\"value\": \"hello from a task\"}'\n",
		"modules/dyn/tasks/broken.sh": "#!/bin/sh\necho 'the source is down' >&2\nexit 3\n",
		"inventory.yaml": `groups:
  - name: dyn
    config: {transport: local}
    targets:
      - _plugin: task
        task: dyn::targets
        parameters: {count: 3}
    vars:
      motd: {_plugin: task, task: dyn::motd}
`,
		"broken/inventory.yaml": `groups:
  - name: g
    config: {transport: local}
    targets: [a]
    vars:
      v: {_plugin: task, task: dyn::broken}
`,
		"missing/inventory.yaml": "targets:\n  - _plugin: task\n    task: dyn::nope\n",
	})
	code, out, errOut := cli(t, "inventory", "show", "-t", "dyn", "--detail", "--format", "json", "--project", dir)
	if code != 0 {
		t.Fatalf("inventory show: exit %d\n%s\n%s", code, out, errOut)
	}
	var shown struct {
		Targets []struct {
			Name string         `json:"name"`
			Vars map[string]any `json:"vars"`
		} `json:"targets"`
	}
	if err := json.Unmarshal([]byte(out), &shown); err != nil {
		t.Fatalf("inventory show JSON: %v\n%s", err, out)
	}
	var names []string
	for _, tg := range shown.Targets {
		names = append(names, tg.Name)
		if tg.Vars["motd"] != "hello from a task" || tg.Vars["n"] == nil {
			t.Errorf("%s: vars %v", tg.Name, tg.Vars)
		}
	}
	if strings.Join(names, ",") != "dyn1,dyn2,dyn3" {
		t.Fatalf("targets %v, want dyn1..dyn3\n%s", names, out)
	}

	code, out, errOut = cli(t, "command", "run", "echo ok", "-t", "dyn", "--project", dir, "--format", "json")
	if code != 0 || len(decode(t, out).Items) != 3 {
		t.Fatalf("command run on the plugin's targets: exit %d\n%s\n%s", code, out, errOut)
	}

	for _, tc := range []struct{ inv, want string }{
		{"broken/inventory.yaml", "dyn::broken"},
		{"missing/inventory.yaml", "dyn::nope"},
	} {
		inv := filepath.Join(dir, tc.inv)
		code, out, errOut := cli(t, "inventory", "show", "--detail", "-i", inv, "--project", dir)
		if code != exitUsage || !strings.Contains(errOut, tc.want) || !strings.Contains(errOut, inv+":") {
			t.Errorf("%s: exit %d, want 2 and an error naming %s and %s:LINE\n%s\n%s", tc.inv, code, tc.want, inv, out, errOut)
		}
	}
}

// The server loads its project with the same options as the CLI: the
// README's queued package example runs the built-in task, and the
// inventory's task plugin works there too.
func TestBuiltinTaskJobOnServer(t *testing.T) {
	version := dpkgStatus(t, "coreutils")
	dir := localProject(t, 1)
	writeFiles(t, dir, map[string]string{
		"modules/dyn/tasks/motd.sh": "#!/bin/sh\necho '{\"value\": \"motd from a task\"}'\n",
		"inventory.yaml":            "groups:\n  - name: nodes\n    config: {transport: local}\n    targets: [n01]\n    vars:\n      motd: {_plugin: task, task: dyn::motd}\n",
	})
	srv := startServer(t, dir, t.TempDir())
	srv.env(t)
	code, out, errOut := cli(t, "job", "submit", "task", "package", "action=status", "name=coreutils", "-t", "localhost", "--watch")
	if code != 0 || !strings.Contains(out, `"status": "installed"`) || !strings.Contains(out, version) {
		t.Fatalf("job submit task package: exit %d\n%s\n%s\n%s", code, out, errOut, srv.Log())
	}
	code, out, errOut = cli(t, "job", "submit", "command", `echo "motd: $MUSTER_NODE"`, "-t", "nodes", "--watch")
	if code != 0 || !strings.Contains(out, "motd: n01") {
		t.Fatalf("job on the plugin's group: exit %d\n%s\n%s\n%s", code, out, errOut, srv.Log())
	}
}
