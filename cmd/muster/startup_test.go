package main

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// runServerOnce runs 'muster server' as a process and returns its exit
// code and output: for servers that must refuse to start.
func runServerOnce(t *testing.T, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"server"}, args...)...)
	cmd.Env = append(os.Environ(), "MUSTER_TEST_AS_MAIN=1")
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), string(out)
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}

// A server that cannot listen leaves nothing behind: no secret key, no
// admin token, no database.
func TestServerChecksThePortFirst(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	data := filepath.Join(t.TempDir(), "data")
	code, out := runServerOnce(t, "--listen", ln.Addr().String(), "--data-dir", data, "--project", t.TempDir())
	if code == 0 || !strings.Contains(out, "cannot listen on "+ln.Addr().String()) {
		t.Fatalf("exit %d, want a failure naming the address:\n%s", code, out)
	}
	for _, f := range []string{"secret.key", "admin.token", "muster.db"} {
		if _, err := os.Stat(filepath.Join(data, f)); err == nil {
			t.Errorf("%s was created by a server that could not listen", f)
		}
	}
}

// A corrupt SQLite queue stops the server at start with what to do,
// instead of a server that answers every request with a 500.
func TestServerRefusesCorruptDatabase(t *testing.T) {
	data := t.TempDir()
	db := filepath.Join(data, "muster.db")
	if err := os.WriteFile(db, []byte(strings.Repeat("this is not a database\n", 500)), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out := runServerOnce(t, "--listen", "127.0.0.1:0", "--data-dir", data, "--project", t.TempDir())
	if code == 0 || !strings.Contains(out, db) || !strings.Contains(out, "backup") {
		t.Fatalf("exit %d, want a refusal naming %s and what to do:\n%s", code, db, out)
	}
}

// Durations that would be ignored or make no sense are refused, naming
// the flag, before anything starts.
func TestDurationFlagsAreChecked(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"server", "--grace", "-1s"}, "--grace"},
		{[]string{"server", "--poll", "0s"}, "--poll"},
		{[]string{"server", "--auth-retry-after", "0s"}, "--auth-retry-after"},
		{[]string{"server", "--max-targets-per-job", "-1"}, "--max-targets-per-job"},
		{[]string{"job", "submit", "command", "true", "-t", "x", "--every", "0s"}, "--every 0s"},
		{[]string{"job", "submit", "command", "true", "-t", "x", "--timeout", "1ns"}, "--timeout 1ns"},
		{[]string{"job", "submit", "command", "true", "-t", "x", "--retries", "-1"}, "--retries"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, out, errOut := cli(t, append(tc.args, "--data-dir", t.TempDir())...)
			if tc.args[0] != "server" {
				code, out, errOut = cli(t, tc.args...)
			}
			if code != 2 || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d (want 2), stderr lacks %q:\n%s%s", code, tc.want, out, errOut)
			}
		})
	}
}

// Without a terminal to prompt on, --sudo-password-prompt takes
// MUSTER_SUDO_PASSWORD when it is set, rather than asking for it.
func TestSudoPasswordPromptWithoutTerminal(t *testing.T) {
	t.Setenv("MUSTER_SUDO_PASSWORD", "")
	code, _, errOut := cli(t, "command", "run", "true", "-t", "localhost", "--sudo-password-prompt")
	if code != 2 || !strings.Contains(errOut, "set MUSTER_SUDO_PASSWORD") {
		t.Errorf("unset: exit %d, %s", code, errOut)
	}
	t.Setenv("MUSTER_SUDO_PASSWORD", "s3cret")
	code, out, errOut := cli(t, "command", "run", "true", "-t", "localhost", "--sudo-password-prompt")
	if code != 0 || strings.Contains(out+errOut, "s3cret") {
		t.Errorf("set: exit %d\n%s%s", code, out, errOut)
	}
}
