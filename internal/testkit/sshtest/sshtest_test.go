package sshtest_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/muster-run/muster/internal/testkit/sshtest"
)

func sshCmd(s *sshtest.Server, host string, args ...string) *exec.Cmd {
	return exec.Command("ssh", append([]string{"-F", s.SSHConfigFile, host}, args...)...)
}

func TestStartAndLogin(t *testing.T) {
	s := sshtest.Start(t, sshtest.Options{})
	out, err := sshCmd(s, "127.0.0.1", "id -un; echo $SHELL").CombinedOutput()
	if err != nil {
		t.Fatalf("ssh: %v: %s", err, out)
	}
	if got, want := string(out), sshtest.User+"\n/bin/sh\n"; got != want {
		t.Errorf("output = %q, want %q", got, want)
	}
	if got, want := s.ConnectionsAccepted(), 1; got != want {
		t.Errorf("ConnectionsAccepted = %d, want %d", got, want)
	}
	if got, want := s.SessionsOpened(), 1; got != want {
		t.Errorf("SessionsOpened = %d, want %d", got, want)
	}
	if !strings.HasPrefix(s.HostKeyFingerprint, "SHA256:") {
		t.Errorf("HostKeyFingerprint = %q", s.HostKeyFingerprint)
	}
	if s.PID() == 0 {
		t.Error("PID = 0")
	}
}

func TestRestartKeepsPortAndKeys(t *testing.T) {
	s := sshtest.Start(t, sshtest.Options{})
	if out, err := sshCmd(s, "127.0.0.1", "true").CombinedOutput(); err != nil {
		t.Fatalf("ssh: %v: %s", err, out)
	}
	old := s.PID()
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	if s.PID() == old {
		t.Error("PID unchanged after Restart")
	}
	if out, err := sshCmd(s, "127.0.0.1", "true").CombinedOutput(); err != nil {
		t.Fatalf("ssh after restart: %v: %s", err, out)
	}
	if got, want := s.ConnectionsAccepted(), 2; got != want {
		t.Errorf("ConnectionsAccepted = %d, want %d", got, want)
	}
	s.Stop()
	if err := sshCmd(s, "127.0.0.1", "true").Run(); err == nil {
		t.Error("ssh succeeded after Stop")
	}
}

func TestListenAll(t *testing.T) {
	s := sshtest.Start(t, sshtest.Options{ListenAll: true})
	if err := s.AddKnownHost("127.3.2.1"); err != nil {
		t.Fatal(err)
	}
	out, err := sshCmd(s, "127.3.2.1", `echo $SSH_CONNECTION`).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh: %v: %s", err, out)
	}
	if f := strings.Fields(string(out)); len(f) != 4 || f[2] != "127.3.2.1" {
		t.Errorf("SSH_CONNECTION = %q", out)
	}
}

func TestSudoPassword(t *testing.T) {
	s := sshtest.Start(t, sshtest.Options{})
	cmd := sshCmd(s, "127.0.0.1", "sudo -S -k -p '' id -u")
	cmd.Stdin = strings.NewReader(sshtest.SudoPassword + "\n")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sudo: %v: %s", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != "0" {
		t.Errorf("sudo id -u = %q, want 0", got)
	}
}
