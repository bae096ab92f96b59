package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConnectionFlagsOverrideInventory: an inventory with a wrong user and
// port, and --user/--port (and --private-key) on the command line winning,
// against a real sshd; a user in a target's URI still wins over --user.
func TestConnectionFlagsOverrideInventory(t *testing.T) {
	s, _ := fleet(t, 1, "")
	dir := t.TempDir()
	wrongKey := filepath.Join(dir, "wrong_key")
	if err := os.WriteFile(wrongKey, []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	inv := filepath.Join(dir, "inventory.yaml")
	src := fmt.Sprintf(`config:
  ssh:
    user: muster-nosuchuser
    port: 1
    private-key: %s
targets:
  - 127.0.0.1
  - name: pinned
    uri: ssh://muster-nosuchuser@127.0.0.1:%d
`, wrongKey, s.Port)
	if err := os.WriteFile(inv, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	right := []string{"--user", s.User, "--port", fmt.Sprint(s.Port), "--private-key", s.ClientKeyFile}
	tests := []struct {
		name   string
		target string
		flags  []string
		code   int
		want   string // in stdout (JSON)
	}{
		{"inventory alone", "127.0.0.1", nil, 1, "127.0.0.1"},
		{"flags win", "127.0.0.1", right, 0, `"stdout":"` + s.User + `\n"`},
		{"URI user wins over --user", "pinned", right, 1, "muster-nosuchuser@127.0.0.1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"command", "run", "id -un", "-t", tc.target, "-i", inv, "--format", "json", "--no-save-rerun"}, tc.flags...)
			code, out, errOut := cli(t, args...)
			if code != tc.code || !strings.Contains(out, tc.want) {
				t.Fatalf("exit %d (want %d), stdout lacks %q\n%s\n%s", code, tc.code, tc.want, out, errOut)
			}
		})
	}
}

// TestHostKeyFlags checks --no-host-key-check, --known-hosts and the
// inventory's known-hosts setting against a real sshd whose key is not in
// ~/.ssh/known_hosts.
func TestHostKeyFlags(t *testing.T) {
	s, inv := fleet(t, 1, "")
	home := os.Getenv("HOME") // fleet's
	if err := os.WriteFile(filepath.Join(home, ".ssh", "known_hosts"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	invKH := filepath.Join(t.TempDir(), "inventory.yaml")
	b, err := os.ReadFile(inv)
	if err != nil {
		t.Fatal(err)
	}
	withKH := strings.Replace(string(b), "  ssh:\n", "  ssh:\n    known-hosts: "+s.KnownHostsFile+"\n", 1)
	if err := os.WriteFile(invKH, []byte(withKH), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(t.TempDir(), "empty_known_hosts")
	os.WriteFile(empty, nil, 0o600)
	tests := []struct {
		name string
		args []string
		code int
		want string // in stdout+stderr
	}{
		{"unknown host key", []string{"-i", inv}, 1, "not in known_hosts"},
		{"--no-host-key-check", []string{"-i", inv, "--no-host-key-check"}, 0, "Successful on 1 target"},
		{"--host-key-check=false", []string{"-i", inv, "--host-key-check=false"}, 0, "Successful on 1 target"},
		{"--known-hosts", []string{"-i", inv, "--known-hosts", s.KnownHostsFile}, 0, "Successful on 1 target"},
		{"inventory known-hosts", []string{"-i", invKH}, 0, "Successful on 1 target"},
		{"--known-hosts overrides the inventory", []string{"-i", invKH, "--known-hosts", empty}, 1, "not in known_hosts (" + empty + ")"},
		{"contradiction", []string{"-i", inv, "--no-host-key-check", "--host-key-check"}, 2, "contradict"},
		{"missing --known-hosts", []string{"-i", inv, "--known-hosts", "/nonexistent/kh"}, 2, "/nonexistent/kh"},
		{"--known-hosts without the check", []string{"-i", inv, "--known-hosts", s.KnownHostsFile, "--no-host-key-check"}, 2, "--known-hosts needs"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"command", "run", "true", "-t", "127.0.0.1", "--no-save-rerun"}, tc.args...)
			code, out, errOut := cli(t, args...)
			if code != tc.code || !strings.Contains(out+errOut, tc.want) {
				t.Fatalf("exit %d (want %d), output lacks %q\n%s\n%s", code, tc.code, tc.want, out, errOut)
			}
		})
	}
}

// TestLogLevel: debug shows each connection (never a secret), the
// default shows warnings, error hides them, and a bad level is refused.
func TestLogLevel(t *testing.T) {
	s, inv := fleet(t, 1, "")
	t.Setenv("MUSTER_PASSWORD", "hunter2-secret")
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "muster-project.yaml"), []byte("name: p\n"), 0o644)
	stale := filepath.Join(dir, ".rerun.json")
	os.WriteFile(stale, []byte(`[{"target":"127.0.0.1","status":"success"}]`), 0o644)
	tests := []struct {
		name   string
		args   []string
		code   int
		want   []string
		reject []string
	}{
		{"debug", []string{"command", "run", "true", "-t", "127.0.0.1", "-i", inv, "--log-level", "debug", "--no-save-rerun"}, 0,
			[]string{fmt.Sprintf("Debug: ssh: connecting to 127.0.0.1 as %s@127.0.0.1:%d", s.User, s.Port), s.ClientKeyFile, "password"},
			[]string{"hunter2-secret"}},
		{"warn shows warnings", []string{"command", "run", "true", "--rerun", "failure", "--project", dir}, 0,
			[]string{"Warning: --rerun failure"}, []string{"Debug:"}},
		{"error hides warnings", []string{"command", "run", "true", "--rerun", "failure", "--project", dir, "--log-level", "error"}, 0,
			nil, []string{"Warning"}},
		{"global flag before the command", []string{"--log-level", "TRACE", "command", "run", "true", "-t", "127.0.0.1", "-i", inv, "--no-save-rerun"}, 0,
			[]string{"Debug: ssh: connecting"}, nil},
		{"bad level", []string{"command", "run", "true", "-t", "localhost", "--log-level", "loud"}, 2,
			[]string{"--log-level", "trace, debug, info, warn, error, fatal"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := cli(t, tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\n%s\n%s", code, tc.code, out, errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut)
				}
			}
			for _, r := range tc.reject {
				if strings.Contains(out+errOut, r) {
					t.Errorf("output has %q:\n%s\n%s", r, out, errOut)
				}
			}
		})
	}
}
