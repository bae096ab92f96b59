package builtin

import (
	"context"
	"testing"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/action"
	"github.com/muster-run/muster/internal/task"
	"github.com/muster-run/muster/internal/testkit/sshtest"
	"github.com/muster-run/muster/internal/transport/local"
	"github.com/muster-run/muster/internal/transport/ssh"
)

// The built-in tasks run as muster runs any task (found on a module path
// with the built-in directory last, uploaded, parameters in PT_
// variables, output interpreted as Bolt does) over a real sshd as its
// unprivileged login user, and over the local transport.
func TestTasksThroughRunner(t *testing.T) {
	idx, err := task.Find([]string{t.TempDir(), builtinDir(t)})
	if err != nil {
		t.Fatal(err)
	}
	rel := osRelease(t)
	for _, tp := range []string{"local", "ssh"} {
		t.Run(tp, func(t *testing.T) {
			var r *action.Runner
			var tg *muster.Target
			if tp == "ssh" {
				s := sshtest.Start(t, sshtest.Options{})
				tr := ssh.New(ssh.Options{KnownHostsFiles: []string{s.KnownHostsFile}, SSHConfigFile: "none"})
				t.Cleanup(func() { tr.Close() })
				r = &action.Runner{Transports: map[string]muster.Transport{"ssh": tr}}
				tg = &muster.Target{Name: "web1", Transport: "ssh", Host: "127.0.0.1", Port: s.Port, User: s.User,
					Features: []string{"shell"},
					Config:   map[string]any{"ssh": map[string]any{"private-key": s.ClientKeyFile}}}
			} else {
				r = &action.Runner{Transports: map[string]muster.Transport{"local": local.New()}}
				tg = &muster.Target{Name: "localhost", Transport: "local", Features: []string{"shell"}}
			}
			ctx := context.Background()
			t.Cleanup(func() { r.Cleanup(ctx) })
			runTask := func(name string, params map[string]any) *muster.Result {
				t.Helper()
				tk, err := idx.Get(name)
				if err != nil {
					t.Fatal(err)
				}
				valid, err := tk.Metadata.Validate(name, params)
				if err != nil {
					t.Fatal(err)
				}
				return r.Task(ctx, tg, &action.TaskRun{Task: tk, Index: idx, Params: valid}, action.Options{})
			}

			res := runTask("facts", map[string]any{})
			if !res.OK() {
				t.Fatalf("facts: %+v", res.Error)
			}
			checkFacts(t, res.Value, rel)

			if havePath("dpkg-query", "apt-get", "apt-cache") {
				res = runTask("package", map[string]any{"action": "status", "name": "coreutils"})
				if !res.OK() || res.Value["status"] != "installed" || res.Value["version"] != dpkgVersion(t, "coreutils") {
					t.Errorf("package status: %v %+v", res.Value, res.Error)
				}
			}

			res = runTask("service", map[string]any{"action": "status", "name": "muster-no-such-service"})
			if !res.OK() || !equalJSON(res.Value, map[string]any{"status": "stopped", "enabled": "false"}) {
				t.Errorf("service status: %v %+v", res.Value, res.Error)
			}

			res = runTask("reboot::last_boot_time", map[string]any{})
			if !res.OK() || res.Value["boot_id"] == "" {
				t.Errorf("last_boot_time: %v %+v", res.Value, res.Error)
			}

			// A task's _error becomes the result's error, kind and all.
			res = runTask("service", map[string]any{"action": "start", "name": "muster-no-such-service"})
			if res.OK() || res.Error.Kind != "service/not-found" || res.Status() != muster.StatusFailure {
				t.Errorf("start of a missing service: %v %+v", res.Value, res.Error)
			}
		})
	}
}
