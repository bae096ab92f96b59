package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/muster-run/muster/internal/testkit/sshtest"
)

// fakeReboots watches for /tmp/muster-fake-reboot-<name> and "reboots"
// that backend: its sshd is stopped (dropping every connection), refuses
// connections for a few seconds, then starts again on the same port.
func fakeReboots(t *testing.T, backends map[string]*sshtest.Server) map[string]int {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var mu sync.Mutex
	reboots := map[string]int{}
	for name, s := range backends {
		flag := "/tmp/muster-fake-reboot-" + name
		os.Remove(flag)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if _, err := os.Stat(flag); err == nil {
					os.Remove(flag)
					time.Sleep(200 * time.Millisecond) // let the command's channel finish
					s.Stop()
					time.Sleep(3 * time.Second)
					if err := s.Restart(); err != nil {
						t.Errorf("restarting %s: %v", name, err)
					}
					mu.Lock()
					reboots[name]++
					mu.Unlock()
				}
				time.Sleep(50 * time.Millisecond)
			}
		}()
	}
	t.Cleanup(func() { cancel(); wg.Wait() })
	return reboots
}

func TestPlanRollingRebootYAMLAndStarlark(t *testing.T) {
	for _, planName := range []string{"ops::rolling", "ops::rolling_star"} {
		t.Run(planName, func(t *testing.T) {
			backends := map[string]*sshtest.Server{}
			var b strings.Builder
			b.WriteString("groups:\n  - name: web\n    targets:\n")
			var kh []byte
			for _, n := range []string{"web1", "web2"} {
				s := sshtest.Start(t, sshtest.Options{})
				backends[n] = s
				fmt.Fprintf(&b, "      - name: %s\n        uri: 127.0.0.1:%d\n", n, s.Port)
				k, _ := os.ReadFile(s.KnownHostsFile)
				kh = append(kh, k...)
			}
			s0 := backends["web1"]
			fmt.Fprintf(&b, "config:\n  ssh:\n    user: %s\n    private-key: %s\n", s0.User, s0.ClientKeyFile)
			dir := t.TempDir()
			inv := filepath.Join(dir, "inventory.yaml")
			os.WriteFile(inv, []byte(b.String()), 0o600)
			home := filepath.Join(dir, "home")
			os.MkdirAll(filepath.Join(home, ".ssh"), 0o700)
			// Both servers share the client key but not the host key.
			for _, s := range backends {
				if string(s.ClientKeyPEM) != string(s0.ClientKeyPEM) {
					os.WriteFile(filepath.Join(s.Dir, "authorized_keys"), mustRead(t, filepath.Join(s0.Dir, "authorized_keys")), 0o644)
				}
			}
			os.WriteFile(filepath.Join(home, ".ssh", "known_hosts"), kh, 0o600)
			t.Setenv("HOME", home)
			t.Setenv("SSH_AUTH_SOCK", "")
			state := filepath.Join(dir, "lb-state")
			reboots := fakeReboots(t, backends)

			code, out, errOut := cli(t, "plan", "run", planName, "-t", "web", "lb=localhost", "state="+state,
				"wait=30", "-i", inv, "--project", testProject)
			if code != 0 {
				t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
			}
			t.Logf("plan output:\n%s\nstderr:\n%s", out, errOut)
			if !strings.Contains(out, "rebooted 2 backends") || !strings.Contains(out, "Finished: plan "+planName) {
				t.Errorf("output:\n%s", out)
			}
			lb, _ := os.ReadFile(state)
			if want := "disable web1\nenable web1\ndisable web2\nenable web2\n"; string(lb) != want {
				t.Errorf("load balancer saw:\n%s\nwant:\n%s", lb, want)
			}
			for n, s := range backends {
				if reboots[n] != 1 {
					t.Errorf("%s rebooted %d times, want 1", n, reboots[n])
				}
				// One connection before the reboot and one after it: every
				// other step reused the pooled connection.
				if c := s.ConnectionsAccepted(); c != 2 {
					t.Errorf("%s: sshd accepted %d connections, want 2", n, c)
				}
			}
		})
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPlanErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unknown plan", []string{"plan", "run", "ops::nope"}, 2, "ops::nope"},
		{"missing parameter", []string{"plan", "run", "ops::rolling", "-t", "localhost"}, 2, "lb"},
		{"bad parameter type", []string{"plan", "run", "ops::rolling", "-t", "localhost", "lb=localhost", "state=x", "wait=soon"}, 2, "wait"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := cli(t, append(tc.args, "--project", testProject)...)
			if code != tc.code || !strings.Contains(out+errOut, tc.want) {
				t.Errorf("exit %d (want %d), output lacks %q:\n%s%s", code, tc.code, tc.want, out, errOut)
			}
		})
	}
}

func TestPlanJSONReturnsValue(t *testing.T) {
	dir := t.TempDir()
	mod := filepath.Join(dir, "modules", "m", "plans")
	os.MkdirAll(mod, 0o755)
	os.WriteFile(filepath.Join(mod, "hello.yaml"), []byte(`parameters:
  targets: {type: TargetSpec}
steps:
  - name: r
    command: echo hi
    targets: $targets
return: $r.map |$x| { $x['stdout'] }
`), 0o644)
	os.WriteFile(filepath.Join(mod, "broken.yaml"), []byte(`parameters:
  targets: {type: TargetSpec}
steps:
  - command: echo hi
    targets: $targets
    catch_errors: true
  - resources:
      - package: nginx
`), 0o644)
	code, out, errOut := cli(t, "plan", "run", "m::hello", "-t", "localhost,local://b", "--project", dir, "--format", "json")
	var ret []string
	if code != 0 || json.Unmarshal([]byte(out), &ret) != nil || len(ret) != 2 || ret[0] != "hi\n" {
		t.Fatalf("exit %d, out %q, err %s", code, out, errOut)
	}
	code, out, errOut = cli(t, "plan", "run", "m::broken", "-t", "localhost", "--project", dir)
	if code != 2 || !strings.Contains(out+errOut, "broken.yaml:7") || !strings.Contains(out+errOut, "resources") {
		t.Fatalf("exit %d, want 2 naming broken.yaml:5 and resources\n%s%s", code, out, errOut)
	}
}

func TestBatchStopsAtMaxFailures(t *testing.T) {
	code, out, _ := cli(t, "command", "run", `case "$(basename "$PWD")" in *) exit 1;; esac`,
		"-t", "local://a,local://b,local://c,local://d,local://e", "--batch", "1", "--max-failures", "1", "--format", "json")
	doc := decode(t, out)
	notRun := 0
	for _, it := range doc.Items {
		if e, ok := it.Value["_error"].(map[string]any); ok && e["kind"] == "muster/not-run" {
			notRun++
		}
	}
	if code != 1 || len(doc.Items) != 5 || notRun != 3 {
		t.Fatalf("exit %d, %d items, %d not run; want 1, 5, 3\n%s", code, len(doc.Items), notRun, out)
	}
}

// Plan parameters from the command line are read as tasks' are, checked
// before anything is printed or run, and a step that cannot start (its
// script is missing) does not claim to have finished.
func TestPlanParametersAndEarlyErrors(t *testing.T) {
	dir := t.TempDir()
	mod := filepath.Join(dir, "modules", "m", "plans")
	if err := os.MkdirAll(mod, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"versioned.yaml": `parameters:
  targets: {type: TargetSpec}
  version: {type: String}
  count: {type: "Integer[1, 10]", default: 1}
steps:
  - message: "deploying ${version} x${count}"
return: $version
`,
		"noscript.yaml": `parameters:
  targets: {type: TargetSpec}
steps:
  - script: m/nope.sh
    targets: $targets
`,
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(mod, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name    string
		args    []string
		code    int
		want    string
		notWant string
	}{
		{"a number-like value stays a String", []string{"m::versioned", "version=1.0"}, 0, "deploying 1.0 x1", "expects a String"},
		{"out of range says so", []string{"m::versioned", "version=1", "count=20"}, 2, "out of range", "Starting"},
		{"unknown parameter before anything starts", []string{"m::versioned", "version=1", "bogus=1"}, 2, "bogus", "Starting"},
		{"missing script", []string{"m::noscript"}, 2, "nope.sh", "Finished: script"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := cli(t, append([]string{"plan", "run", "-t", "localhost", "--project", dir}, tc.args...)...)
			if code != tc.code || !strings.Contains(out+errOut, tc.want) || strings.Contains(out+errOut, tc.notWant) {
				t.Errorf("exit %d (want %d); want %q and no %q in:\n%s%s", code, tc.code, tc.want, tc.notWant, out, errOut)
			}
		})
	}
}
