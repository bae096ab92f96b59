package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/muster-run/muster/internal/deploy"
)

// threeTier is a deployment of db, then app (after db on the same node),
// then lb (after app on the same node), on three sshd targets; db fails
// on 127.0.0.2 until the file fixed exists. Each active node-role leaves
// a file in marks; app's on_active hook appends a line to hook.app.NODE,
// its on_node_change a line naming the change to nc.app.NODE.
func threeTier(marks, fixed string) string {
	return fmt.Sprintf(`name: web
roles:
  db:
    nodes: fleet
    run:
      command: test "$MUSTER_NODE" != 127.0.0.2 || test -e %[2]s; rc=$?; [ $rc = 0 ] && touch %[1]s/db.$MUSTER_NODE; exit $rc
  app:
    nodes: [fleet]
    requires: [db]
    run:
      command: test -e %[1]s/db.$MUSTER_NODE && touch %[1]s/app.$MUSTER_NODE
    on_active:
      command: echo once >> %[1]s/hook.app.$MUSTER_NODE
    on_node_change:
      command: echo "$MUSTER_CHANGED_ROLE@$MUSTER_CHANGED_NODE=$MUSTER_CHANGED_STATE" >> %[1]s/nc.app.$MUSTER_NODE
  lb:
    nodes: fleet
    requires:
      - {role: app, scope: node}
    run:
      command: test -e %[1]s/app.$MUSTER_NODE && touch %[1]s/lb.$MUSTER_NODE
`, marks, fixed)
}

func deployStatus(t *testing.T) (deploy.Status, int, string) {
	t.Helper()
	return deployStatusArgs(t, "web")
}

// deployStatusArgs runs deploy status NAME [flags] --format json.
func deployStatusArgs(t *testing.T, args ...string) (deploy.Status, int, string) {
	t.Helper()
	code, out, errOut := cli(t, append(append([]string{"deploy", "status"}, args...), "--format", "json")...)
	var st deploy.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("deploy status --format json: exit %d: %v\n%s\n%s", code, err, out, errOut)
	}
	return st, code, out
}

// states maps "role@node" to its state.
func states(st deploy.Status) map[string]deploy.State {
	m := map[string]deploy.State{}
	for _, rs := range st.Roles {
		for _, ns := range rs.Nodes {
			m[rs.Role+"@"+ns.Node] = ns.State
		}
	}
	return m
}

func TestDeployThreeTierOverSSH(t *testing.T) {
	_, inv := fleet(t, 3, "")
	dir := filepath.Dir(inv)
	// The targets' user is another account: the marks go to a directory
	// it may write.
	marks, err := os.MkdirTemp("", "muster-deploy-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(marks) })
	if err := os.Chmod(marks, 0o777); err != nil {
		t.Fatal(err)
	}
	fixed := filepath.Join(marks, "fixed")
	if err := os.MkdirAll(filepath.Join(dir, "deploy"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "deploy", "web.yaml"), []byte(threeTier(marks, fixed)), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("MUSTER_PROJECT", dir)
	srv := startServer(t, dir, t.TempDir())
	srv.env(t)

	// plan: the waves and the jobs, nothing run.
	code, out, errOut := cli(t, "deploy", "plan", "web")
	if code != 0 || !strings.Contains(out, "Wave 3:") || !strings.Contains(out, "lb on 127.0.0.1, 127.0.0.2, 127.0.0.3: after app (same node)") {
		t.Fatalf("deploy plan: exit %d\n%s\n%s", code, out, errOut)
	}
	code, out, _ = cli(t, "deploy", "plan", "web", "--format", "json")
	var planned struct {
		Waves     [][]string        `json:"waves"`
		NodeRoles []deploy.NodeRole `json:"node_roles"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &planned) != nil || fmt.Sprint(planned.Waves) != "[[db] [app] [lb]]" || len(planned.NodeRoles) != 9 {
		t.Fatalf("deploy plan --format json: exit %d\n%s", code, out)
	}
	st, _, _ := deployStatus(t)
	if st.Counts[deploy.Proposed] != 9 {
		t.Fatalf("before apply, want 9 proposed: %+v", st.Counts)
	}
	if entries, _ := os.ReadDir(marks); len(entries) != 0 {
		t.Fatalf("plan ran something: %v", entries)
	}

	// apply: db fails on 127.0.0.2 only; app and lb there stay blocked,
	// the rest converge.
	code, out, errOut = cli(t, "deploy", "apply", "web", "--watch", "--interval", "50ms")
	if code != 1 || !strings.Contains(out, "queued 3 job(s) for 9 node-role(s)") {
		t.Fatalf("deploy apply --watch: exit %d, want 1 (one db failed)\n%s\n%s", code, out, errOut)
	}
	want := map[string]deploy.State{
		"db@127.0.0.1": deploy.Active, "db@127.0.0.2": deploy.Error, "db@127.0.0.3": deploy.Active,
		"app@127.0.0.1": deploy.Active, "app@127.0.0.2": deploy.Blocked, "app@127.0.0.3": deploy.Active,
		"lb@127.0.0.1": deploy.Active, "lb@127.0.0.2": deploy.Blocked, "lb@127.0.0.3": deploy.Active,
	}
	st, code, out = deployStatus(t)
	if got := states(st); fmt.Sprint(got) != fmt.Sprint(want) || code != 1 {
		t.Fatalf("after apply: exit %d\n got %v\nwant %v\n%s", code, got, want, out)
	}
	for _, f := range []string{"lb.127.0.0.1", "lb.127.0.0.3", "hook.app.127.0.0.1", "hook.app.127.0.0.3"} {
		if _, err := os.Stat(filepath.Join(marks, f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	for _, f := range []string{"app.127.0.0.2", "lb.127.0.0.2", "hook.app.127.0.0.2"} {
		if _, err := os.Stat(filepath.Join(marks, f)); err == nil {
			t.Errorf("%s exists: a blocked node-role ran", f)
		}
	}
	code, out, _ = cli(t, "deploy", "status", "web")
	if code != 1 || !strings.Contains(out, "127.0.0.2") || !strings.Contains(out, "error") || !strings.Contains(out, "active 2, blocked 1") {
		t.Fatalf("deploy status (human): exit %d\n%s", code, out)
	}

	// Applying the same deployment again queues nothing.
	code, out, errOut = cli(t, "deploy", "apply", "web")
	if code != 0 || !strings.Contains(out, "nothing to queue (9 node-role(s)") {
		t.Fatalf("re-apply: exit %d\n%s\n%s", code, out, errOut)
	}

	// Fix the host and retry, with no command line watching: the failed
	// db runs again, what it blocked follows, and the server's annealer
	// runs the hooks: on_active of app on 127.0.0.2, and on_node_change of
	// app on the nodes where it was active already (not on 127.0.0.2
	// itself), told that db on 127.0.0.2 became active.
	if err := os.WriteFile(fixed, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = cli(t, "deploy", "retry", "web", "127.0.0.2")
	if code != 0 || !strings.Contains(out+errOut, "Retried 1 failed node-role(s): db@127.0.0.2") {
		t.Fatalf("deploy retry: exit %d\n%s\n%s", code, out, errOut)
	}
	eventually(t, "all 9 node-roles active", func() bool {
		st, _, _ := deployStatus(t)
		return st.Counts[deploy.Active] == 9
	})
	read := func(f string) string {
		b, _ := os.ReadFile(filepath.Join(marks, f))
		return string(b)
	}
	eventually(t, "the hooks of app after the retry", func() bool {
		return read("hook.app.127.0.0.2") != "" &&
			strings.Contains(read("nc.app.127.0.0.1"), "db@127.0.0.2=active\n") &&
			strings.Contains(read("nc.app.127.0.0.3"), "db@127.0.0.2=active\n")
	})
	// The server restarts on the same database: nothing runs twice.
	if err := srv.stop(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	srv = startServer(t, dir, srv.dataDir)
	srv.env(t)
	eventually(t, "the new server's annealer made a pass", func() bool {
		return strings.Contains(srv.Log(), "deployments: first pass done")
	})
	// Hook jobs the new server would queue show as jobs tagged with a
	// hook: count them through the status's watch view (deploy retry
	// --watch waits for due hooks and reports new ones).
	code, out, errOut = cli(t, "deploy", "retry", "web", "--watch", "--interval", "50ms")
	if code != 0 || strings.Contains(errOut, "Hook queued") {
		t.Fatalf("retry --watch after restart: exit %d, want 0 and no new hook\n%s\n%s", code, out, errOut)
	}
	for _, n := range []string{"127.0.0.1", "127.0.0.2", "127.0.0.3"} {
		if got := read("hook.app." + n); got != "once\n" {
			t.Errorf("on_active of app on %s ran %d times, want once", n, strings.Count(got, "once"))
		}
		if strings.Contains(read("nc.app."+n), "@"+n+"=") {
			t.Errorf("on_node_change of app on %s heard of its own node: %q", n, read("nc.app."+n))
		}
	}
	for _, n := range []string{"127.0.0.1", "127.0.0.3"} {
		if c := strings.Count(read("nc.app."+n), "db@127.0.0.2=active\n"); c != 1 {
			t.Errorf("on_node_change of app on %s heard db@127.0.0.2 become active %d times, want once", n, c)
		}
	}
}

func TestDeployPlanRefusesBadFiles(t *testing.T) {
	dir := localProject(t, 2)
	t.Setenv("MUSTER_PROJECT", dir)
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"cycle", "name: c\nroles:\n  a:\n    nodes: nodes\n    run: {command: 'true'}\n    requires: [b]\n  b:\n    nodes: nodes\n    run: {command: 'true'}\n    requires: [a]\n",
			"c.yaml:3: requires: a cycle: a -> b -> a"},
		{"nomatch", "name: n\nroles:\n  a:\n    nodes: nosuch\n    run: {command: 'true'}\n", "roles.a.nodes"},
		{"unknown", "name: u\nroles:\n  a:\n    nodes: nodes\n    run: {command: 'true'}\n    depends: [b]\n", "u.yaml:6: roles.a: unknown field \"depends\""},
	} {
		f := filepath.Join(t.TempDir(), tc.name[:1]+".yaml")
		if err := os.WriteFile(f, []byte(tc.yaml), 0o644); err != nil {
			t.Fatal(err)
		}
		code, out, errOut := cli(t, "deploy", "plan", f)
		if code != 2 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%s: exit %d, want 2 naming %q\n%s%s", tc.name, code, tc.want, out, errOut)
		}
	}
	if code, _, errOut := cli(t, "deploy", "status", "nosuch"); code != 2 || !strings.Contains(errOut, "deploy/nosuch.yaml") {
		t.Errorf("status of a missing deployment: exit %d %s", code, errOut)
	}
}

// An SSH target whose port does not answer is not alive: deploy apply
// skips its node-roles (and what requires them) and says so; the others
// run.
func TestDeploySkipsUnreachableSSHTarget(t *testing.T) {
	_, port, _ := strings.Cut(freePort(t), ":") // nothing listens there
	_, inv := fleet(t, 1, fmt.Sprintf("      - {name: down.test, uri: 'ssh://127.0.0.1:%s'}\n", port))
	dir := filepath.Dir(inv)
	marks, err := os.MkdirTemp("", "muster-deploy-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(marks) })
	if err := os.Chmod(marks, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "deploy"), 0o755); err != nil {
		t.Fatal(err)
	}
	spec := fmt.Sprintf("name: ping\nroles:\n  ping:\n    nodes: fleet\n    run: {command: 'touch %s/$MUSTER_NODE'}\n", marks)
	if err := os.WriteFile(filepath.Join(dir, "deploy", "ping.yaml"), []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("MUSTER_PROJECT", dir)
	srv := startServer(t, dir, t.TempDir())
	srv.env(t)
	code, out, errOut := cli(t, "deploy", "apply", "ping", "--watch", "--interval", "50ms")
	if !strings.Contains(out+errOut, "Skipped (not alive): ping@down.test") {
		t.Fatalf("deploy apply: exit %d\n%s\n%s", code, out, errOut)
	}
	eventually(t, "the live node's role runs", func() bool {
		_, err := os.Stat(filepath.Join(marks, "127.0.0.1"))
		return err == nil
	})
	st, _, _ := deployStatusArgs(t, "ping")
	if got := states(st); got["ping@down.test"] != deploy.Skipped || got["ping@127.0.0.1"] != deploy.Active {
		t.Errorf("states: %v", got)
	}
}
