package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/muster-run/muster/internal/api"
	"github.com/muster-run/muster/internal/deploy"
)

// A pull node whose agent (a real `muster agent` process) stops checking
// in is not alive: 'deploy apply --alive-within' skips its node-roles,
// and 'deploy retry' queues them once the agent checks in again.
func TestDeploySkipsSilentPullNodeUntilItReturns(t *testing.T) {
	work := t.TempDir()
	logFile, watched := filepath.Join(work, "runs.log"), filepath.Join(work, "watched")
	if err := os.WriteFile(watched, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	dir := pullProject(t, logFile, watched) // one local node, n01, and the pull config
	marks := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "deploy"), 0o755); err != nil {
		t.Fatal(err)
	}
	// The role's nodes: n01 (push only) and agent1.test, which the
	// inventory runs locally and whose agent checks in.
	inv := filepath.Join(dir, "inventory.yaml")
	b, err := os.ReadFile(inv)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(inv, []byte(string(b)+"      - agent1.test\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "deploy", "base.yaml"),
		[]byte("name: base\nroles:\n  base:\n    nodes: nodes\n    run: {command: 'touch "+marks+"/base.$MUSTER_NODE'}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("MUSTER_PROJECT", dir)
	srv, addr, fp := agentsOf(t, dir)
	srv.env(t)
	ctx := context.Background()
	tok, err := srv.client().CreateEnrollToken(ctx, api.EnrollTokenRequest{Name: "lab", Uses: 5, Certnames: "agent*.test"})
	if err != nil {
		t.Fatal(err)
	}
	agentDir := t.TempDir()
	args := []string{"--server", addr, "--data-dir", agentDir, "--certname", "agent1.test", "--enroll-token", tok.Secret, "--ca-fingerprint", fp}
	ag := startAgent(t, args...)
	var seen time.Time
	eventually(t, "agent1.test checks in", func() bool {
		n, err := srv.client().Node(ctx, "agent1.test")
		seen = n.LastCheckIn
		return err == nil && !seen.IsZero()
	})
	_ = ag.cmd.Process.Kill()
	<-ag.done
	// Silent for longer than --alive-within: not alive.
	eventually(t, "agent1.test silent for a second", func() bool { return time.Since(seen) > 1500*time.Millisecond })
	code, out, errOut := cli(t, "deploy", "apply", "base", "--alive-within", "1s", "--watch", "--interval", "50ms")
	if code != 1 || !strings.Contains(out+errOut, "Skipped (not alive): base@agent1.test") {
		t.Fatalf("apply with a silent pull node: exit %d, want 1 naming it skipped\n%s\n%s", code, out, errOut)
	}
	st, _, _ := deployStatusArgs(t, "base", "--alive-within", "1s")
	if got := states(st); got["base@n01"] != deploy.Active || got["base@agent1.test"] != deploy.Skipped {
		t.Fatalf("states after apply: %v", got)
	}
	if _, err := os.Stat(filepath.Join(marks, "base.agent1.test")); err == nil {
		t.Fatal("the skipped node-role ran")
	}
	// Still silent: retry skips it again.
	if code, out, errOut := cli(t, "deploy", "retry", "base", "--alive-within", "1s"); code != 0 || !strings.Contains(out+errOut, "Skipped (not alive): base@agent1.test") {
		t.Fatalf("retry while silent: exit %d\n%s\n%s", code, out, errOut)
	}
	// The agent comes back (enrolled already) and checks in, every second
	// (its long polls end): retry queues its node-role, which converges.
	startAgent(t, append(args, "--wait", "1s")...)
	eventually(t, "agent1.test checks in again", func() bool {
		n, err := srv.client().Node(ctx, "agent1.test")
		return err == nil && n.LastCheckIn.After(seen)
	})
	code, out, errOut = cli(t, "deploy", "retry", "base", "--watch", "--interval", "50ms")
	if code != 0 || !strings.Contains(out, "queued 1 job(s) for 1 node-role(s)") {
		t.Fatalf("retry once back: exit %d\n%s\n%s", code, out, errOut)
	}
	if _, err := os.Stat(filepath.Join(marks, "base.agent1.test")); err != nil {
		t.Fatalf("the node-role did not run once its node was back: %v", err)
	}
}
