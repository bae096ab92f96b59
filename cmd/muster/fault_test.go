package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/api"
)

// lockedCommand is a node-run that proves exclusivity: it takes a per-node
// lock (flock, which the kernel releases when its holder dies, however it
// dies), logs its start and end, and records DOUBLE if the node's lock was
// already held, i.e. two runs at once. A run stopped by a signal (its
// server died, so its process group was killed) logs "killed" (on SIGPIPE
// too: with its client gone, the shell's own notice of a killed child has
// nowhere to go).
func lockedCommand(dir string, seconds string) string {
	return fmt.Sprintf(`exec 8>>%[1]s/locks/$MUSTER_NODE; flock -n 8 || { echo "DOUBLE $MUSTER_NODE $MUSTER_RUN_ID" >> %[1]s/log; exit 9; }
trap 'echo "killed $MUSTER_RUN_ID $MUSTER_ATTEMPT" >> %[1]s/log; exit 143' TERM PIPE HUP
echo "start $MUSTER_RUN_ID $MUSTER_ATTEMPT" >> %[1]s/log; sleep %[2]s; echo "end $MUSTER_RUN_ID" >> %[1]s/log`, dir, seconds)
}

func submit(t *testing.T, c *api.Client, req api.SubmitRequest) api.SubmitResponse {
	t.Helper()
	res, err := c.Submit(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// kill -9 a server mid-job and start it again: every run ends exactly
// once, succeeded (lease policy retry) or failed (policy fail); none is
// lost and no node ever runs two at once.
func TestServerKill9MidJob(t *testing.T) {
	dir := localProject(t, 24)
	data, work := t.TempDir(), t.TempDir()
	os.Mkdir(filepath.Join(work, "locks"), 0o755)
	args := []string{"--lease-ttl", "3s", "--slots", "8"}
	srv := startServer(t, dir, data, args...)
	c := srv.client()
	nodes := func(from, to int) []string {
		var out []string
		for i := from; i <= to; i++ {
			out = append(out, fmt.Sprintf("n%02d", i))
		}
		return out
	}
	retry := submit(t, c, api.SubmitRequest{Kind: muster.JobCommand, Targets: api.Targets{Nodes: nodes(1, 16)},
		Spec: muster.JobSpec{Command: lockedCommand(work, "0.5")}, OnLeaseExpiry: muster.LeaseRetry})
	fail := submit(t, c, api.SubmitRequest{Kind: muster.JobCommand, Targets: api.Targets{Nodes: nodes(9, 24)},
		Spec: muster.JobSpec{Command: lockedCommand(work, "0.5") + " # fail policy"}, OnLeaseExpiry: muster.LeaseFail,
		Priority: 1})
	// Kill once the second job is running and the first is not done.
	waitJob(t, c, fail.Job.ID, "runs start", func(j api.JobView) bool { return j.Counts[muster.RunRunning] >= 4 })
	if err := srv.stop(syscall.SIGKILL); err == nil {
		t.Fatal("kill -9 did not kill")
	}
	srv = startServer(t, dir, data, args...)
	c = srv.client()
	for _, id := range []int64{retry.Job.ID, fail.Job.ID} {
		waitJob(t, c, id, "all runs end", func(j api.JobView) bool { return j.Finished })
	}
	retryRuns, failRuns := runsOf(t, c, retry.Job.ID), runsOf(t, c, fail.Job.ID)
	if len(retryRuns) != 16 || len(failRuns) != 16 {
		t.Fatalf("runs lost: %d and %d, want 16 each", len(retryRuns), len(failRuns))
	}
	for _, r := range retryRuns {
		if r.State != muster.RunSucceeded {
			t.Errorf("retry-policy run %d on %s: %s (%s), want succeeded", r.ID, r.Target, r.State, r.Error)
		}
	}
	rescuedFailed := 0
	for _, r := range failRuns {
		switch {
		case r.State == muster.RunFailed && strings.Contains(r.Error, "lease"):
			rescuedFailed++
		case r.State != muster.RunSucceeded:
			t.Errorf("fail-policy run %d on %s: %s (%s)", r.ID, r.Target, r.State, r.Error)
		}
	}
	if rescuedFailed == 0 {
		t.Error("no fail-policy run was marked failed, though the server died while some ran")
	}
	log, _ := os.ReadFile(filepath.Join(work, "log"))
	if strings.Contains(string(log), "DOUBLE") {
		t.Fatalf("a node ran two runs at once:\n%s", log)
	}
	// Each succeeded run's final attempt started and ended in the log.
	for _, r := range append(retryRuns, failRuns...) {
		if r.State == muster.RunSucceeded && !strings.Contains(string(log), fmt.Sprintf("end %d\n", r.ID)) {
			t.Errorf("run %d succeeded but never ended in the log", r.ID)
		}
	}
}

// SIGTERM: the server stops claiming, lets running runs finish within the
// grace period, then hands the rest back; a restarted server runs them.
func TestServerSIGTERMHandsBackRuns(t *testing.T) {
	dir := localProject(t, 2)
	data, work := t.TempDir(), t.TempDir()
	srv := startServer(t, dir, data, "--grace", "1s")
	c := srv.client()
	// First attempt on each node sleeps far past the grace; once handed
	// back, the next one finds its marker and ends at once.
	cmd := fmt.Sprintf(`M=%s/$MUSTER_NODE; if [ -e "$M" ]; then echo second; else touch "$M"; exec sleep 300; fi`, work)
	slow := submit(t, c, api.SubmitRequest{Kind: muster.JobCommand, Targets: api.Targets{Spec: "nodes"},
		Spec: muster.JobSpec{Command: cmd}})
	quick := submit(t, c, api.SubmitRequest{Kind: muster.JobCommand, Targets: api.Targets{Spec: "n01"},
		Spec: muster.JobSpec{Command: "echo queued behind"}})
	waitJob(t, c, slow.Job.ID, "runs start", func(j api.JobView) bool { return j.Counts[muster.RunRunning] == 2 })
	if err := srv.stop(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM exit: %v\n%s", err, srv.Log())
	}
	if !strings.Contains(srv.Log(), "grace") {
		t.Errorf("the log does not say it waits for running jobs:\n%s", srv.Log())
	}
	if n := countSleeps(); n != 0 {
		t.Errorf("%d handed-back processes still run after the server stopped", n)
	}
	srv = startServer(t, dir, data, "--grace", "1s")
	c = srv.client()
	for _, id := range []int64{slow.Job.ID, quick.Job.ID} {
		waitJob(t, c, id, "succeeds after the restart", func(j api.JobView) bool { return j.State == muster.JobSucceeded })
	}
	for _, r := range runsOf(t, c, slow.Job.ID) {
		if out, _ := r.Value["stdout"].(string); out != "second\n" {
			t.Errorf("run on %s: stdout %q, want the second attempt's", r.Target, out)
		}
		if r.Attempt != 1 {
			t.Errorf("run on %s: attempt %d, want 1 (a handed-back run spends no retry)", r.Target, r.Attempt)
		}
	}
}

// 'muster job cancel' stops running runs: the processes are killed, and
// the runs end cancelled.
func TestServerCancelStopsRunningRuns(t *testing.T) {
	dir := localProject(t, 2)
	srv := startServer(t, dir, t.TempDir())
	srv.env(t)
	c := srv.client()
	job := submit(t, c, api.SubmitRequest{Kind: muster.JobCommand, Targets: api.Targets{Spec: "nodes"},
		Spec: muster.JobSpec{Command: "sleep 300"}, Retries: 2})
	waitJob(t, c, job.Job.ID, "runs start", func(j api.JobView) bool { return j.Counts[muster.RunRunning] == 2 })
	code, out, errOut := cli(t, "job", "cancel", fmt.Sprint(job.Job.ID))
	want := fmt.Sprintf("Job %d cancelled: 0 waiting run(s) will not start; 2 running run(s) are being stopped", job.Job.ID)
	if code != 0 || !strings.Contains(out, want) {
		t.Fatalf("cancel: exit %d, want %q\n%s\n%s", code, want, out, errOut)
	}
	j := waitJob(t, c, job.Job.ID, "the job ends", func(j api.JobView) bool { return j.Finished })
	if j.State != muster.JobCancelled || j.Counts[muster.RunCancelled] != 2 {
		t.Errorf("job after the cancel: %s %v, want both runs cancelled", j.State, j.Counts)
	}
	for _, r := range runsOf(t, c, job.Job.ID) {
		if r.State != muster.RunCancelled || r.Attempt != 1 || !strings.HasPrefix(r.Error, "muster/cancelled: job ") {
			t.Errorf("run on %s: %s attempt %d (%s), want cancelled at attempt 1", r.Target, r.State, r.Attempt, r.Error)
		}
		// The result says why, not a bare "context canceled".
		e, _ := r.Value["_error"].(map[string]any)
		if msg, _ := e["msg"].(string); !strings.Contains(msg, "was cancelled: job cancelled by request") {
			t.Errorf("run on %s: _error %v, want the cancel named as the cause", r.Target, e)
		}
	}
	if n := countSleeps(); n != 0 {
		t.Errorf("%d 'sleep 300' processes of the cancelled job still run", n)
	}
}

// countSleeps counts the 'sleep 300' processes node-runs started, waiting
// up to 10 s for them to go.
func countSleeps() int {
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := 0
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
			if err == nil && strings.Contains(string(b), "sleep\x00300") {
				env, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
				if strings.Contains(string(env), "MUSTER_RUN_ID=") {
					n++
				}
			}
		}
		if n == 0 || time.Now().After(deadline) {
			return n
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// kill -9 a server while its node-runs on real SSH targets outlast the
// lease: the orphaned remote work ends when its channel closes, and the
// retry on the restarted server never overlaps it (the node's guard holds
// the retry back until the orphan's process group is gone).
func TestServerKill9OrphansDieOverSSH(t *testing.T) {
	_, inv := fleet(t, 3, "")
	work, err := os.MkdirTemp("", "muster-orphans-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(work) })
	if err := os.Mkdir(filepath.Join(work, "locks"), 0o777); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{work, filepath.Join(work, "locks")} {
		if err := os.Chmod(d, 0o777); err != nil { // the login user writes here
			t.Fatal(err)
		}
	}
	data := t.TempDir()
	args := []string{"--lease-ttl", "3s"}
	srv := startServer(t, filepath.Dir(inv), data, args...)
	c := srv.client()
	job := submit(t, c, api.SubmitRequest{Kind: muster.JobCommand, Targets: api.Targets{Spec: "fleet"},
		Spec: muster.JobSpec{Command: lockedCommand(work, "8")}, OnLeaseExpiry: muster.LeaseRetry})
	logFile := filepath.Join(work, "log")
	eventually(t, "all three runs start", func() bool {
		b, _ := os.ReadFile(logFile)
		return strings.Count(string(b), "start ") == 3
	})
	if err := srv.stop(syscall.SIGKILL); err == nil {
		t.Fatal("kill -9 did not kill")
	}
	srv = startServer(t, filepath.Dir(inv), data, args...)
	waitJob(t, srv.client(), job.Job.ID, "the job ends", func(j api.JobView) bool { return j.Finished })
	log, _ := os.ReadFile(logFile)
	if strings.Contains(string(log), "DOUBLE") {
		t.Fatalf("a retry started while its orphan still ran:\n%s", log)
	}
	for _, r := range runsOf(t, srv.client(), job.Job.ID) {
		if r.State != muster.RunSucceeded || r.Attempt < 2 {
			t.Errorf("run %d on %s: %s after %d attempts (%s), want succeeded on a retry", r.ID, r.Target, r.State, r.Attempt, r.Error)
		}
		if strings.Contains(string(log), fmt.Sprintf("end %d\n", r.ID)) && !strings.Contains(string(log), fmt.Sprintf("killed %d 1\n", r.ID)) {
			continue // its retry ended it
		}
		if !strings.Contains(string(log), fmt.Sprintf("killed %d 1\n", r.ID)) {
			t.Errorf("run %d's first attempt was not stopped when its server died:\n%s", r.ID, log)
		}
	}
}
