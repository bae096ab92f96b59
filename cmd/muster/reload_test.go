package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// replaceFile writes text to path the way editors save: a temporary file
// renamed over the original.
func replaceFile(t *testing.T, path, text string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

const twoNodes = "groups:\n  - name: nodes\n    config: {transport: local}\n    targets: [n01, n02]\n"

// eventually polls cond until it holds, failing after a generous limit
// (a hang guard, not a speed assertion).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not happen", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func submitsTo(t *testing.T, node string) (int, string) {
	t.Helper()
	code, out, errOut := cli(t, "job", "submit", "command", "true", "-t", node)
	return code, out + errOut
}

// The server picks up an edited inventory by itself; a broken one is
// refused with the file and line in the log, and the last good one stays.
func TestServerReloadsChangedInventory(t *testing.T) {
	dir := localProject(t, 1)
	srv := startServer(t, dir, t.TempDir())
	srv.env(t)
	// A glob: a bare unknown name would be an ad-hoc target, as in Bolt.
	if code, out := submitsTo(t, "n02*"); code != 2 || !strings.Contains(out, "n02*") {
		t.Fatalf("submit to a glob matching nothing: exit %d, want 2 naming it\n%s", code, out)
	}
	inv := filepath.Join(dir, "inventory.yaml")
	replaceFile(t, inv, twoNodes)
	eventually(t, "the server accepting n02 after the inventory gained it", func() bool {
		code, _ := submitsTo(t, "n02*")
		return code == 0
	})

	// A task added to a module path that did not exist at start.
	tasks := filepath.Join(dir, "modules", "demo", "tasks")
	if err := os.MkdirAll(tasks, 0o755); err != nil {
		t.Fatal(err)
	}
	replaceFile(t, filepath.Join(tasks, "hello.sh"), "#!/bin/sh\necho hello\n")
	replaceFile(t, filepath.Join(tasks, "hello.json"), `{"description": "says hello"}`)
	eventually(t, "the server accepting a task added after its start", func() bool {
		code, _, _ := cli(t, "job", "submit", "task", "demo::hello", "-t", "n01")
		return code == 0
	})

	replaceFile(t, inv, "groups:\n  - name: [\n")
	eventually(t, "the server logging the broken inventory", func() bool {
		return strings.Contains(srv.Log(), "project not reloaded")
	})
	if log := srv.Log(); !strings.Contains(log, "inventory.yaml:2") {
		t.Errorf("the reload error does not name the file and line:\n%s", log)
	}
	if code, out := submitsTo(t, "n02*"); code != 0 {
		t.Errorf("after a broken edit, the last good inventory should stay: exit %d\n%s", code, out)
	}
}

// With --watch-project=false, SIGHUP reloads.
func TestServerReloadsOnSIGHUP(t *testing.T) {
	dir := localProject(t, 1)
	srv := startServer(t, dir, t.TempDir(), "--watch-project=false")
	srv.env(t)
	replaceFile(t, filepath.Join(dir, "inventory.yaml"), twoNodes)
	if code, out := submitsTo(t, "n02*"); code != 2 {
		t.Fatalf("without a watch or SIGHUP the old inventory should hold: exit %d\n%s", code, out)
	}
	if err := srv.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the reload after SIGHUP", func() bool { return strings.Contains(srv.Log(), `trigger=SIGHUP`) })
	if code, out := submitsTo(t, "n02*"); code != 0 {
		t.Errorf("after SIGHUP: exit %d\n%s", code, out)
	}
}

// The server keeps a node's SSH connection for its next run
// (--keep-connections), or closes it after each run when told to.
func TestServerKeepsConnectionsBetweenRuns(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want int // connections sshd accepted for 3 jobs on 3 nodes
	}{
		{"kept by default", nil, 3},
		{"closed after each run", []string{"--keep-connections", "0"}, 9},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, inv := fleet(t, 3, "")
			srv := startServer(t, filepath.Dir(inv), t.TempDir(), tc.args...)
			srv.env(t)
			before := s.ConnectionsAccepted()
			for i := range 3 {
				code, out, errOut := cli(t, "job", "submit", "command", "echo run "+strconv.Itoa(i), "-t", "fleet", "--watch")
				if code != 0 {
					t.Fatalf("job %d: exit %d\n%s\n%s", i, code, out, errOut)
				}
			}
			if got := s.ConnectionsAccepted() - before; got != tc.want {
				t.Errorf("sshd accepted %d connections for 3 jobs on 3 nodes, want %d", got, tc.want)
			}
		})
	}
}
