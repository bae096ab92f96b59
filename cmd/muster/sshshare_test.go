package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// Several inventory targets for one host, user and port share one SSH
// connection; the first to finish must not close it under the others.
func TestSSHTargetsSharingAHost(t *testing.T) {
	var extra strings.Builder
	extra.WriteString("  - name: same\n    targets:\n")
	for i := 1; i <= 4; i++ {
		fmt.Fprintf(&extra, "      - {name: s%d, uri: 127.0.0.1}\n", i)
	}
	s, inv := fleet(t, 1, extra.String())
	for round := range 3 {
		code, out, errOut := cli(t, "command", "run", "sleep 0.5; echo ok",
			"-t", "s1,s2,s3,s4", "-i", inv, "--format", "json")
		if code != 0 {
			t.Fatalf("round %d: exit %d\n%s\n%s", round, code, out, errOut)
		}
		for _, it := range decode(t, out).Items {
			if it.Status != "success" || strings.TrimSpace(fmt.Sprint(it.Value["stdout"])) != "ok" {
				t.Errorf("round %d: %s: %s %v", round, it.Target, it.Status, it.Value)
			}
		}
	}
	if n := s.ConnectionsAccepted(); n != 3 {
		t.Errorf("sshd accepted %d connections for 3 runs on 4 names of one host, want 3 (one per run)", n)
	}
}

// A failed authentication is not retried within a run, but it is not
// remembered for the life of a server either: once the key works again,
// a reload (SIGHUP) lets the next job through.
func TestServerRetriesAuthenticationAfterReload(t *testing.T) {
	s, inv := fleet(t, 1, "")
	authorized := filepath.Join(s.Dir, "authorized_keys")
	good, err := os.ReadFile(authorized)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(authorized, nil, 0o644); err != nil { // no key is accepted
		t.Fatal(err)
	}
	srv := startServer(t, filepath.Dir(inv), t.TempDir(), "--watch-project=false")
	srv.env(t)
	job := func() (int, string) {
		code, out, errOut := cli(t, "job", "submit", "command", "echo hello", "-t", "fleet", "--watch", "--stream=false")
		return code, out + errOut
	}
	if code, out := job(); code != 1 || !strings.Contains(out, "muster/auth-error") && !strings.Contains(out, "uthentication") {
		t.Fatalf("with no authorized key: exit %d, want an authentication failure\n%s", code, out)
	}
	before := s.ConnectionsAccepted()
	if err := os.WriteFile(authorized, good, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out := job()
	if code != 1 || !strings.Contains(out, "not retried until") {
		t.Fatalf("right after the failure: exit %d, want the remembered failure with its retry time\n%s", code, out)
	}
	if n := s.ConnectionsAccepted() - before; n != 0 {
		t.Errorf("sshd saw %d connections during the backoff, want 0", n)
	}
	if err := srv.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the server reloads", func() bool { return strings.Contains(srv.Log(), "project reloaded") })
	if code, out := job(); code != 0 || !strings.Contains(out, "hello") {
		t.Fatalf("after the key was fixed and the server reloaded: exit %d\n%s", code, out)
	}
}
