package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/api"
)

// succeededOn counts a job's succeeded runs on node.
func succeededOn(t *testing.T, cl *api.Client, job int64, node string) int {
	t.Helper()
	n := 0
	for _, r := range runsOf(t, cl, job) {
		if r.Target == node && r.State == muster.RunSucceeded {
			n++
		}
	}
	return n
}

func countLines(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return 0
	} else if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "\n")
}

// TestFingerprintOnChangeServer runs a change-driven continuous job on a
// real server: its command prints a file's content per node; the first
// results and then only the node whose file changed get the on-change
// action, and an unchanged node never does.
func TestFingerprintOnChangeServer(t *testing.T) {
	dir := localProject(t, 2)
	srv := startServer(t, dir, t.TempDir())
	srv.env(t)
	cl := srv.client()
	state := t.TempDir()
	for _, n := range []string{"n01", "n02"} {
		replaceFile(t, filepath.Join(state, n), "v1 "+n+"\n")
	}
	j := submitJSON(t, "command", "sleep 0.05; cat "+state+"/$MUSTER_NODE", "-t", "n01,n02", "--continuous",
		"--fingerprint", "stdout", "--on-change", "command:echo acted >> "+state+"/$MUSTER_NODE.acts")
	t.Cleanup(func() { cli(t, "job", "cancel", fmt.Sprint(j.Job.ID)) })
	if j.Job.Fingerprint != "stdout" || j.Job.OnChange != api.OnChangeCommand {
		t.Fatalf("submitted job %+v", j.Job)
	}
	acts := func(n string) int { return countLines(t, filepath.Join(state, n+".acts")) }
	eventually(t, "the first results acting on both nodes", func() bool { return acts("n01") == 1 && acts("n02") == 1 })
	replaceFile(t, filepath.Join(state, "n01"), "v2 n01\n")
	eventually(t, "n01 acting on its change", func() bool { return acts("n01") == 2 })
	n := succeededOn(t, cl, j.Job.ID, "n02")
	eventually(t, "n02 running on, unchanged", func() bool { return succeededOn(t, cl, j.Job.ID, "n02") >= n+3 })
	m := succeededOn(t, cl, j.Job.ID, "n01")
	eventually(t, "n01 running on, unchanged since", func() bool { return succeededOn(t, cl, j.Job.ID, "n01") >= m+3 })
	if a1, a2 := acts("n01"), acts("n02"); a1 != 2 || a2 != 1 {
		t.Fatalf("actions: n01 %d (want 2), n02 %d (want 1)", a1, a2)
	}
	// The stored fingerprints say the same.
	code, out, errOut := cli(t, "job", "fingerprints", fmt.Sprint(j.Job.ID), "--format", "json")
	var fps api.FingerprintList
	if code != 0 || json.Unmarshal([]byte(out), &fps) != nil || len(fps.Fingerprints) != 2 {
		t.Fatalf("job fingerprints: exit %d\n%s\n%s", code, out, errOut)
	}
	for _, f := range fps.Fingerprints {
		if want := map[string]int{"n01": 2, "n02": 1}[f.Node]; f.Changes != want || f.Value == "" || f.RunID == 0 {
			t.Errorf("fingerprint of %s: %+v, want %d changes", f.Node, f, want)
		}
	}
	if code, out, _ := cli(t, "job", "fingerprints", fmt.Sprint(j.Job.ID)); code != 0 || !strings.Contains(out, "NODE") || !strings.Contains(out, "n01") {
		t.Errorf("job fingerprints (human): exit %d\n%s", code, out)
	}
	// The on-change jobs are the server's, named for the job.
	list, err := cl.ListJobs(t.Context(), api.ListJobsOptions{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	actions := 0
	for _, l := range list.Jobs {
		if l.CreatedBy == muster.OnChangeCreator(j.Job.ID) {
			actions++
		}
	}
	if actions != 3 {
		t.Fatalf("%d jobs created by %s, want 3", actions, muster.OnChangeCreator(j.Job.ID))
	}
}

const factsInventory = `groups:
  - name: nodes
    config: {transport: local}
    targets:
      - name: n01
        facts: {os: {release: "%s"}, uptime: %d}
      - name: n02
        facts: {os: {release: "12"}, uptime: 1}
`

// TestFactsUsedBumpsNode: an inventory edit that changes a fact in
// --facts-used moves that node's waiting run ahead of a higher-priority
// loop; a change to another fact does nothing.
func TestFactsUsedBumpsNode(t *testing.T) {
	dir := t.TempDir()
	inv := filepath.Join(dir, "inventory.yaml")
	replaceFile(t, inv, fmt.Sprintf(factsInventory, "12", 1))
	srv := startServer(t, dir, t.TempDir())
	srv.env(t)
	cl := srv.client()
	// A higher-priority loop keeps both nodes busy: the facts job's runs
	// wait behind it, unless bumped.
	busy := submitJSON(t, "command", "sleep 0.05", "-t", "n01,n02", "--continuous", "--priority", "5")
	t.Cleanup(func() { cli(t, "job", "cancel", fmt.Sprint(busy.Job.ID)) })
	facts := submitJSON(t, "command", "echo facts", "-t", "n01,n02", "--continuous", "--facts-used", "os.release,networking.ip")
	t.Cleanup(func() { cli(t, "job", "cancel", fmt.Sprint(facts.Job.ID)) })
	if len(facts.Job.FactsUsed) != 2 {
		t.Fatalf("submitted job %+v", facts.Job)
	}
	eventually(t, "the busy loop running", func() bool { return succeededOn(t, cl, busy.Job.ID, "n01") >= 2 })

	// Another fact (uptime) changes: nothing moves.
	replaceFile(t, inv, fmt.Sprintf(factsInventory, "12", 99))
	eventually(t, "the server seeing uptime change", func() bool {
		return strings.Contains(srv.Log(), "facts changed") && strings.Contains(srv.Log(), "uptime")
	})
	n := succeededOn(t, cl, busy.Job.ID, "n01")
	eventually(t, "the busy loop running on", func() bool { return succeededOn(t, cl, busy.Job.ID, "n01") >= n+3 })
	if got := succeededOn(t, cl, facts.Job.ID, "n01"); got != 0 {
		t.Fatalf("the facts job ran %d times on n01 after an unused fact changed", got)
	}

	// os.release changes on n01: its run goes first, once; n02's waits.
	replaceFile(t, inv, fmt.Sprintf(factsInventory, "13", 99))
	eventually(t, "n01's facts run after os.release changed", func() bool {
		return succeededOn(t, cl, facts.Job.ID, "n01") >= 1
	})
	n = succeededOn(t, cl, busy.Job.ID, "n02")
	eventually(t, "n02's busy loop running on", func() bool { return succeededOn(t, cl, busy.Job.ID, "n02") >= n+3 })
	if got := succeededOn(t, cl, facts.Job.ID, "n02"); got != 0 {
		t.Fatalf("the facts job ran %d times on n02, whose facts did not change", got)
	}
	if got := succeededOn(t, cl, facts.Job.ID, "n01"); got != 1 {
		t.Fatalf("the facts job ran %d times on n01, want once (bumped once)", got)
	}
}

// TestDependsOnResultBumpsDependents: a loop on n02 and n03 that depends
// on another job's result runs next when that result changes on n01 (its
// first result counts), and waits its turn behind a busier loop while the
// result stays the same.
func TestDependsOnResultBumpsDependents(t *testing.T) {
	dir := localProject(t, 3)
	srv := startServer(t, dir, t.TempDir())
	srv.env(t)
	cl := srv.client()
	state := t.TempDir()
	replaceFile(t, filepath.Join(state, "n01"), "v1\n")
	busy := submitJSON(t, "command", "sleep 0.05", "-t", "n02,n03", "--continuous", "--priority", "5")
	t.Cleanup(func() { cli(t, "job", "cancel", fmt.Sprint(busy.Job.ID)) })
	eventually(t, "the busy loop running", func() bool { return succeededOn(t, cl, busy.Job.ID, "n02") >= 2 })
	source := submitJSON(t, "command", "sleep 0.05; cat "+state+"/n01", "-t", "n01", "--continuous", "--fingerprint", "stdout")
	t.Cleanup(func() { cli(t, "job", "cancel", fmt.Sprint(source.Job.ID)) })
	dep := submitJSON(t, "command", "echo dependent", "-t", "n02,n03", "--continuous", "--depends-on-result", fmt.Sprint(source.Job.ID))
	t.Cleanup(func() { cli(t, "job", "cancel", fmt.Sprint(dep.Job.ID)) })
	both := func() (int, int) { return succeededOn(t, cl, dep.Job.ID, "n02"), succeededOn(t, cl, dep.Job.ID, "n03") }
	// n01's first result is a change: both dependents run, once.
	eventually(t, "the dependents running after n01's first result", func() bool { a, b := both(); return a >= 1 && b >= 1 })
	a0, b0 := both()
	// Unchanged results: the dependents wait behind the busy loop.
	s := succeededOn(t, cl, source.Job.ID, "n01")
	eventually(t, "n01's loop running on, unchanged", func() bool { return succeededOn(t, cl, source.Job.ID, "n01") >= s+3 })
	n := succeededOn(t, cl, busy.Job.ID, "n02")
	eventually(t, "the busy loop running on", func() bool { return succeededOn(t, cl, busy.Job.ID, "n02") >= n+3 })
	if a, b := both(); a != a0 || b != b0 {
		t.Fatalf("the dependents ran again (%d, %d after %d, %d) while n01's result stayed the same", a, b, a0, b0)
	}
	// n01's result changes: both dependents run next, once more.
	replaceFile(t, filepath.Join(state, "n01"), "v2\n")
	eventually(t, "the dependents running after n01's result changed", func() bool { a, b := both(); return a > a0 && b > b0 })
	n = succeededOn(t, cl, busy.Job.ID, "n03")
	eventually(t, "the busy loop running on", func() bool { return succeededOn(t, cl, busy.Job.ID, "n03") >= n+3 })
	if a, b := both(); a != a0+1 || b != b0+1 {
		t.Fatalf("the dependents ran %d and %d times after one change, want once each", a-a0, b-b0)
	}
}

// TestAgentFactsBumpFactsUsedJob: facts an agent uploads emit the same
// fact-change event as an inventory edit. A loop with --facts-used role on
// the agent's node runs next when the agent's facts command starts saying
// another role, and not for the facts that change at every upload
// (uptime).
func TestAgentFactsBumpFactsUsedJob(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "inventory.yaml"),
		[]byte("groups:\n  - name: nodes\n    config: {transport: local}\n    targets: [af1.test]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "pull.yaml"), []byte(`interval: 1h
max_checkin: 1s
retry_after: {min: 1s, max: 1s}
facts: {upload_every: 1s}
backends:
  - {name: local, max_running: 5}
runs:
  - match: {glob: "nothing-matches*"}
    command: "true"
`), 0o644); err != nil {
		t.Fatal(err)
	}
	roleFile := filepath.Join(t.TempDir(), "role.json")
	replaceFile(t, roleFile, `{"role": "web"}`)
	srv, addr, fp := agentsOf(t, dir)
	srv.env(t)
	cl := srv.client()
	tok, err := cl.CreateEnrollToken(t.Context(), api.EnrollTokenRequest{Name: "facts", Uses: 1, Certnames: "af*.test"})
	if err != nil {
		t.Fatal(err)
	}
	startAgent(t, "--server", addr, "--data-dir", t.TempDir(), "--certname", "af1.test", "--enroll-token", tok.Secret,
		"--ca-fingerprint", fp, "--wait", "1s", "--facts-command", "cat "+roleFile)
	eventually(t, "the agent's first facts", func() bool {
		nf, err := cl.NodeFacts(t.Context(), "af1.test")
		return err == nil && nf.Facts["role"] == "web"
	})
	busy := submitJSON(t, "command", "sleep 0.05", "-t", "af1.test", "--continuous", "--priority", "5")
	t.Cleanup(func() { cli(t, "job", "cancel", fmt.Sprint(busy.Job.ID)) })
	eventually(t, "the busy loop running", func() bool { return succeededOn(t, cl, busy.Job.ID, "af1.test") >= 2 })
	facts := submitJSON(t, "command", "echo role", "-t", "af1.test", "--continuous", "--facts-used", "role")
	t.Cleanup(func() { cli(t, "job", "cancel", fmt.Sprint(facts.Job.ID)) })
	// Uploads go on (uptime changes each time): the facts job waits behind
	// the busy loop.
	uploads := func(k int) {
		t.Helper()
		seen := map[time.Time]bool{}
		eventually(t, fmt.Sprintf("%d more facts uploads", k), func() bool {
			n, err := cl.Node(t.Context(), "af1.test")
			if err == nil {
				seen[n.FactsAt] = true
			}
			return len(seen) > k
		})
	}
	uploads(3)
	if got := succeededOn(t, cl, facts.Job.ID, "af1.test"); got != 0 {
		t.Fatalf("the facts job ran %d times while only uptime changed", got)
	}
	// The role changes in the agent's facts: the job runs next, once.
	replaceFile(t, roleFile, `{"role": "db"}`)
	eventually(t, "the facts job running after the role changed", func() bool { return succeededOn(t, cl, facts.Job.ID, "af1.test") >= 1 })
	uploads(3)
	if got := succeededOn(t, cl, facts.Job.ID, "af1.test"); got != 1 {
		t.Fatalf("the facts job ran %d times after one role change, want once", got)
	}
}
