package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/api"
)

// submitJSON submits a job with the CLI and returns its answer.
func submitJSON(t *testing.T, args ...string) api.SubmitResponse {
	t.Helper()
	code, out, errOut := cli(t, append(append([]string{"job", "submit"}, args...), "--format", "json")...)
	var res api.SubmitResponse
	if code != 0 || jsonUnmarshal(out, &res) != nil {
		t.Fatalf("job submit %v: exit %d\n%s\n%s", args, code, out, errOut)
	}
	return res
}

// TestJobAfter runs jobs with dependencies on a real server: B --after A
// waits while A runs and starts after it; a failing C blocks D, with the
// reason, until C is retried.
func TestJobAfter(t *testing.T) {
	dir := localProject(t, 3)
	srv := startServer(t, dir, t.TempDir())
	srv.env(t)
	cl := srv.client()
	gate := filepath.Join(t.TempDir(), "gate")

	a := submitJSON(t, "command", fmt.Sprintf("while [ ! -e %s ]; do sleep 0.05; done; echo A done", gate), "-t", "n01")
	code, out, errOut := cli(t, "job", "submit", "command", "echo B ran on $MUSTER_NODE", "-t", "n02", "--after", fmt.Sprint(a.Job.ID))
	if code != 0 || !strings.Contains(out, fmt.Sprintf("after job %d", a.Job.ID)) {
		t.Fatalf("submit --after: exit %d\n%s\n%s", code, out, errOut)
	}
	list, err := cl.ListJobs(t.Context(), api.ListJobsOptions{Limit: 1})
	if err != nil || len(list.Jobs) != 1 {
		t.Fatalf("list: %+v %v", list, err)
	}
	b := list.Jobs[0]
	waitJob(t, cl, a.Job.ID, "A runs", func(j api.JobView) bool { return j.State == muster.JobRunning })
	// While A runs, B waits, and says for what.
	code, out, _ = cli(t, "job", "show", fmt.Sprint(b.ID))
	if code != 0 || !strings.Contains(out, "state waiting") || !strings.Contains(out, fmt.Sprintf("waiting on n02: after job %d", a.Job.ID)) {
		t.Fatalf("job show of the waiting job: exit %d\n%s", code, out)
	}
	code, out, _ = cli(t, "job", "list", "--state", "waiting")
	if code != 0 || !strings.Contains(out, "echo B ran") || !strings.Contains(out, fmt.Sprintf("[after job %d]", a.Job.ID)) {
		t.Fatalf("job list --state waiting: exit %d\n%s", code, out)
	}
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitJob(t, cl, b.ID, "B succeeds after A", func(j api.JobView) bool { return j.State == muster.JobSucceeded })
	aRun, bRun := runsOf(t, cl, a.Job.ID)[0], runsOf(t, cl, b.ID)[0]
	if aRun.State != muster.RunSucceeded || bRun.StartedAt.Before(aRun.FinishedAt) {
		t.Fatalf("B started %v, before A finished %v (%s)", bRun.StartedAt, aRun.FinishedAt, aRun.State)
	}

	// A failing dependency blocks; retrying it unblocks.
	flag := filepath.Join(t.TempDir(), "flag")
	c := submitJSON(t, "command", "test -e "+flag, "-t", "n01")
	d := submitJSON(t, "command", "echo D ran", "-t", "n01,n02", "--after", fmt.Sprint(c.Job.ID), "--after-each")
	if !d.Job.AfterEach || len(d.Job.After) != 1 {
		t.Fatalf("dependent job %+v", d.Job)
	}
	cRun := c.Runs["n01"]
	waitJob(t, cl, d.Job.ID, "D is blocked", func(j api.JobView) bool { return j.State == muster.JobBlocked })
	code, out, _ = cli(t, "job", "show", fmt.Sprint(d.Job.ID))
	want := fmt.Sprintf("blocked on n01: job %d's run %d on n01 failed", c.Job.ID, cRun)
	if code != 0 || !strings.Contains(out, want) || !strings.Contains(out, "(per node)") {
		t.Fatalf("job show of the blocked job: exit %d, want %q\n%s", code, want, out)
	}
	// n02 has no run of C: it did not wait.
	for _, r := range runsOf(t, cl, d.Job.ID) {
		if r.Target == "n02" && r.State != muster.RunSucceeded {
			t.Fatalf("D on n02 is %s, want succeeded (per node, C has no run there)", r.State)
		}
	}
	// Watching a job that only a retry can move ends, saying so.
	code, out, errOut = cli(t, "job", "watch", fmt.Sprint(d.Job.ID))
	if code != 1 || !strings.Contains(errOut, "1 run(s) blocked by a failed dependency") {
		t.Errorf("job watch of the blocked job: exit %d\n%s\n%s", code, out, errOut)
	}
	code, out, _ = cli(t, "job", "stats")
	if code != 0 || !strings.Contains(out, "blocked 1") {
		t.Fatalf("job stats: exit %d\n%s", code, out)
	}
	code, out, errOut = cli(t, "job", "retry", fmt.Sprint(d.Job.ID))
	if code != 2 || !strings.Contains(errOut, "blocked") {
		t.Fatalf("retry of the blocked job: exit %d\n%s\n%s", code, out, errOut)
	}
	if err := os.WriteFile(flag, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = cli(t, "job", "retry", fmt.Sprint(c.Job.ID))
	if code != 0 || !strings.Contains(out, "1 failed run(s) requeued; 1 blocked run(s)") {
		t.Fatalf("job retry: exit %d\n%s\n%s", code, out, errOut)
	}
	waitJob(t, cl, d.Job.ID, "D succeeds after C's retry", func(j api.JobView) bool { return j.State == muster.JobSucceeded })

	// After one job whole and another per node: job show says which.
	mixed := submitJSON(t, "command", "true", "-t", "n01", "--after", fmt.Sprint(c.Job.ID), "--after-node", fmt.Sprint(d.Job.ID))
	if code, out, _ := cli(t, "job", "show", fmt.Sprint(mixed.Job.ID)); code != 0 ||
		!strings.Contains(out, fmt.Sprintf("after job %d, and per node after job %d", c.Job.ID, d.Job.ID)) {
		t.Errorf("job show of a job after one whole and one per node: exit %d\n%s", code, out)
	}
	cli(t, "job", "cancel", fmt.Sprint(mixed.Job.ID))

	// Refusals name the problem, with exit 2.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--after", "999"}, "no job 999"},
		{[]string{"--after", "x"}, "--after"},
		{[]string{"--after-each"}, "--after-each"},
		{[]string{"--after", "1", "--after-node", "1"}, "job 1 is listed twice"},
		{[]string{"--after-node", "998"}, "no job 998"},
	} {
		args := append([]string{"job", "submit", "command", "true", "-t", "n03"}, tc.args...)
		code, out, errOut := cli(t, args...)
		if code != 2 || !strings.Contains(out+errOut, tc.want) {
			t.Errorf("%v: exit %d, want 2 naming %q\n%s%s", tc.args, code, tc.want, out, errOut)
		}
	}
}
