package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/muster-run/muster/internal/testkit/sshtest"
)

// TestMain lets the test binary act as the muster binary for tests that
// need a separate process (signals, exit codes).
func TestMain(m *testing.M) {
	if os.Getenv("MUSTER_TEST_AS_MAIN") == "1" {
		os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// fleet starts a real sshd reachable on every 127.x address and writes an
// inventory of n targets (127.0.0.1 .. 127.0.0.n), each known by host key.
func fleet(t *testing.T, n int, extra string) (*sshtest.Server, string) {
	t.Helper()
	s := sshtest.Start(t, sshtest.Options{ListenAll: true})
	var hosts []string
	var b strings.Builder
	fmt.Fprintf(&b, "config:\n  transport: ssh\n  ssh:\n    user: %s\n    port: %d\n    private-key: %s\n", s.User, s.Port, s.ClientKeyFile)
	b.WriteString("groups:\n  - name: fleet\n    targets:\n")
	for i := 1; i <= n; i++ {
		h := fmt.Sprintf("127.0.0.%d", i)
		hosts = append(hosts, h)
		fmt.Fprintf(&b, "      - %s\n", h)
	}
	b.WriteString(extra)
	if err := s.AddKnownHost(hosts...); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	inv := filepath.Join(dir, "inventory.yaml")
	if err := os.WriteFile(inv, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	// The transport reads ~/.ssh/known_hosts by default: point HOME at a
	// directory whose known_hosts is the server's.
	home := filepath.Join(dir, "home")
	if err := os.MkdirAll(filepath.Join(home, ".ssh"), 0o700); err != nil {
		t.Fatal(err)
	}
	kh, err := os.ReadFile(s.KnownHostsFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, ".ssh", "known_hosts"), kh, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HOME", home)
	t.Setenv("SSH_AUTH_SOCK", "")
	return s, inv
}

func decode(t *testing.T, out string) jsonDoc {
	t.Helper()
	var doc jsonDoc
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	return doc
}

func TestSSHCommandOneConnectionPerTarget(t *testing.T) {
	s, inv := fleet(t, 5, "")
	code, out, errOut := cli(t, "command", "run", `echo "$SSH_CONNECTION" | cut -d' ' -f3`, "-t", "fleet", "-i", inv, "--format", "json")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	doc := decode(t, out)
	if len(doc.Items) != 5 {
		t.Fatalf("got %d items, want 5", len(doc.Items))
	}
	for _, it := range doc.Items {
		if got := strings.TrimSpace(it.Value["stdout"].(string)); got != it.Target {
			t.Errorf("%s answered from %q: each target must be reached at its own address", it.Target, got)
		}
	}
	if n := s.ConnectionsAccepted(); n != 5 {
		t.Errorf("sshd accepted %d connections for 5 targets, want 5", n)
	}
}

func TestSSHScriptUploadDownloadRunAs(t *testing.T) {
	_, inv := fleet(t, 2, "")
	dir := t.TempDir()
	script := filepath.Join(dir, "who.sh")
	os.WriteFile(script, []byte("#!/bin/sh\nid -un\necho \"$1\"\n"), 0o755)

	t.Run("script", func(t *testing.T) {
		code, out, errOut := cli(t, "script", "run", script, "two words", "-t", "fleet", "-i", inv, "--format", "json")
		if code != 0 {
			t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
		}
		for _, it := range decode(t, out).Items {
			if it.Value["stdout"] != sshtest.User+"\ntwo words\n" {
				t.Errorf("%s: stdout %q", it.Target, it.Value["stdout"])
			}
		}
	})
	t.Run("run-as root with sudo password", func(t *testing.T) {
		t.Setenv("MUSTER_SUDO_PASSWORD", sshtest.SudoPassword)
		code, out, errOut := cli(t, "script", "run", script, "x", "-t", "127.0.0.1", "-i", inv, "--run-as", "root", "--format", "json")
		if code != 0 {
			t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
		}
		it := decode(t, out).Items[0]
		if it.Value["stdout"] != "root\nx\n" {
			t.Errorf("stdout %q, want root", it.Value["stdout"])
		}
		if strings.Contains(out+errOut, sshtest.SudoPassword) || strings.Contains(out, "[sudo]") {
			t.Errorf("the sudo password or prompt leaked into the output:\n%s", out)
		}
	})
	t.Run("run-as wrong password", func(t *testing.T) {
		t.Setenv("MUSTER_SUDO_PASSWORD", "wrong-password")
		code, out, _ := cli(t, "command", "run", "id -un", "-t", "127.0.0.1", "-i", inv, "--run-as", "root", "--format", "json")
		it := decode(t, out).Items[0]
		errv, _ := it.Value["_error"].(map[string]any)
		if code != 1 || errv["kind"] != "muster/escalate-error" || errv["issue_code"] != "BAD_PASSWORD" {
			t.Fatalf("exit %d, item %+v", code, it)
		}
		if strings.Contains(out, "wrong-password") {
			t.Error("the password appears in the output")
		}
	})
	t.Run("run-as without password", func(t *testing.T) {
		t.Setenv("MUSTER_SUDO_PASSWORD", "")
		code, out, _ := cli(t, "command", "run", "id -un", "-t", "127.0.0.1", "-i", inv, "--run-as", "root", "--format", "json")
		errv, _ := decode(t, out).Items[0].Value["_error"].(map[string]any)
		if code != 1 || errv["issue_code"] != "NO_PASSWORD" {
			t.Fatalf("exit %d, error %+v", code, errv)
		}
	})
	t.Run("upload and download", func(t *testing.T) {
		tree := filepath.Join(dir, "tree")
		os.MkdirAll(filepath.Join(tree, "bin"), 0o755)
		os.WriteFile(filepath.Join(tree, "bin", "tool"), []byte("#!/bin/sh\necho tool\n"), 0o750)
		dest := "/tmp/muster-cli-upload-" + fmt.Sprint(time.Now().UnixNano())
		t.Cleanup(func() { os.RemoveAll(dest) })
		code, out, errOut := cli(t, "file", "upload", tree, dest, "-t", "127.0.0.1", "-i", inv)
		if code != 0 {
			t.Fatalf("upload: exit %d\n%s\n%s", code, out, errOut)
		}
		fi, err := os.Stat(filepath.Join(dest, "bin", "tool"))
		if err != nil || fi.Mode().Perm() != 0o750 {
			t.Fatalf("uploaded tool: %v %v", fi, err)
		}
		downloads := t.TempDir()
		code, out, errOut = cli(t, "file", "download", dest, downloads, "-t", "fleet", "-i", inv)
		if code != 0 {
			t.Fatalf("download: exit %d\n%s\n%s", code, out, errOut)
		}
		for _, h := range []string{"127.0.0.1", "127.0.0.2"} {
			b, err := os.ReadFile(filepath.Join(downloads, h, filepath.Base(dest), "bin", "tool"))
			if err != nil || !strings.Contains(string(b), "echo tool") {
				t.Errorf("download from %s: %q %v", h, b, err)
			}
		}
	})
}

func TestSSHFaultsAreIsolated(t *testing.T) {
	s0 := sshtest.Start(t, sshtest.Options{})
	_, inv := fleet(t, 2, fmt.Sprintf(`  - name: broken
    targets:
      - name: refused
        uri: 127.0.0.1:1
      - name: unresolvable
        uri: nonexistent.invalid
      - name: badkey
        uri: 127.0.0.1:%d
        config:
          ssh:
            private-key: %s
`, s0.Port, "/dev/null"))
	code, out, errOut := cli(t, "command", "run", "true", "-t", "fleet,broken", "-i", inv, "--format", "json", "--connect-timeout", "5")
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s\n%s", code, out, errOut)
	}
	kinds := map[string]string{}
	for _, it := range decode(t, out).Items {
		if e, ok := it.Value["_error"].(map[string]any); ok {
			kinds[it.Target] = e["kind"].(string)
		} else {
			kinds[it.Target] = it.Status
		}
	}
	want := map[string]string{"127.0.0.1": "success", "127.0.0.2": "success",
		"refused": "muster/connect-error", "unresolvable": "muster/connect-error"}
	for k, v := range want {
		if kinds[k] != v {
			t.Errorf("%s: got %q, want %q (all: %v)", k, kinds[k], v, kinds)
		}
	}
	if kinds["badkey"] == "success" {
		t.Errorf("badkey: a target with an unusable key must fail, got %v", kinds)
	}
}

func TestSSHAuthFailureIsNotRetried(t *testing.T) {
	s, inv := fleet(t, 1, "")
	other := filepath.Join(t.TempDir(), "other_key")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", other).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v %s", err, out)
	}
	before := s.ConnectionsAccepted()
	code, out, _ := cli(t, "command", "run", "true", "-t", "127.0.0.1", "-i", "/dev/null", "--user", s.User,
		"--port", fmt.Sprint(s.Port), "--private-key", other, "--format", "json")
	_ = inv
	errv, _ := decode(t, out).Items[0].Value["_error"].(map[string]any)
	if code != 1 || errv["kind"] != "muster/auth-error" {
		t.Fatalf("exit %d, error %+v", code, errv)
	}
	if n := s.ConnectionsAccepted() - before; n != 1 {
		t.Errorf("sshd saw %d connections for one failed authentication, want exactly 1", n)
	}
}

func TestSSHHostKeyMismatchShowsFingerprint(t *testing.T) {
	s, inv := fleet(t, 1, "")
	// Replace the known key with another one for the same host.
	other := filepath.Join(t.TempDir(), "k")
	exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", other).Run()
	pub, _ := os.ReadFile(other + ".pub")
	f := strings.Fields(string(pub))
	kh := fmt.Sprintf("[127.0.0.1]:%d %s %s\n", s.Port, f[0], f[1])
	os.WriteFile(filepath.Join(os.Getenv("HOME"), ".ssh", "known_hosts"), []byte(kh), 0o600)
	code, out, _ := cli(t, "command", "run", "true", "-t", "127.0.0.1", "-i", inv, "--format", "json")
	errv, _ := decode(t, out).Items[0].Value["_error"].(map[string]any)
	if code != 1 || errv["kind"] != "muster/connect-error" || errv["issue_code"] != "HOST_KEY_ERROR" {
		t.Fatalf("exit %d, error %+v", code, errv)
	}
	if !strings.Contains(errv["msg"].(string), s.HostKeyFingerprint) {
		t.Errorf("message %q does not show the offered fingerprint %s", errv["msg"], s.HostKeyFingerprint)
	}
	// --host-key-check=false connects anyway.
	code, _, errOut := cli(t, "command", "run", "true", "-t", "127.0.0.1", "-i", "/dev/null", "--user", s.User,
		"--port", fmt.Sprint(s.Port), "--private-key", s.ClientKeyFile, "--host-key-check=false")
	if code != 0 {
		t.Fatalf("with --host-key-check=false: exit %d %s", code, errOut)
	}
}

// Ctrl-C: the remote process is signalled, results so far are printed,
// and muster exits 130.
func TestSSHInterruptCancelsRemoteWork(t *testing.T) {
	_, inv := fleet(t, 3, "")
	marker := fmt.Sprintf("muster-interrupt-%d", time.Now().UnixNano())
	cmd := exec.Command(os.Args[0], "command", "run", "echo started; exec sleep 3000 # "+marker, "-t", "fleet", "-i", inv, "--stream")
	cmd.Env = append(os.Environ(), "MUSTER_TEST_AS_MAIN=1")
	var stdout, stderr bytes.Buffer
	pr, pw, _ := os.Pipe()
	cmd.Stdout = pw
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	sc := bufio.NewScanner(pr)
	started := 0
	for started < 3 && sc.Scan() {
		stdout.WriteString(sc.Text() + "\n")
		if strings.HasSuffix(sc.Text(), "out: started") {
			started++
		}
	}
	if started < 3 {
		t.Fatalf("commands did not start:\n%s\n%s", stdout.String(), stderr.String())
	}
	if n := countProcs(marker); n == 0 {
		t.Fatal("no remote sleep found before the interrupt")
	}
	cmd.Process.Signal(syscall.SIGINT)
	for sc.Scan() {
		stdout.WriteString(sc.Text() + "\n")
	}
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 130 {
		t.Fatalf("exit = %v, want 130\n%s\n%s", err, stdout.String(), stderr.String())
	}
	if !strings.Contains(stdout.String(), "Failed on 3 targets") {
		t.Errorf("summary missing:\n%s", stdout.String())
	}
	for i := 0; countProcs(marker) > 0; i++ {
		if i > 100 {
			t.Fatalf("remote processes still running after the interrupt")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// countProcs counts processes whose command line contains s.
func countProcs(s string) int {
	out, _ := exec.Command("pgrep", "-f", "-c", "sleep 3000 # "+s).Output()
	var n int
	fmt.Sscan(string(out), &n)
	return n
}
