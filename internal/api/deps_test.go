package api

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/muster-run/muster"
)

// TestSubmitAfter: a job submitted after another waits for it, shows its
// dependencies, is blocked with the reason when it fails, and runs once
// the failed work is retried.
func TestSubmitAfter(t *testing.T) {
	e := newEnv(t)
	a := e.submit(commandJob("web1", "deploy"))
	req := commandJob("web1,db1", "migrate")
	req.After, req.AfterEach = []int64{a.Job.ID}, true
	b := e.submit(req)
	// db1 has no run of job a to wait for.
	if !slices.Equal(b.Job.After, []int64{a.Job.ID}) || !b.Job.AfterEach || b.Job.State != muster.JobPending ||
		b.Job.Counts[muster.RunWaiting] != 1 || b.Job.Counts[muster.RunPending] != 1 {
		t.Fatalf("dependent job %+v", b.Job)
	}
	req = commandJob("db1", "notify")
	req.After = []int64{a.Job.ID}
	c := e.submit(req)
	if c.Job.State != muster.JobWaiting || c.Job.AfterEach {
		t.Fatalf("job after a whole job: %+v", c.Job)
	}
	// A job after one whole and another per node (after_node).
	d := e.submit(commandJob("db1", "backup"))
	req = commandJob("web1,db1", "report")
	req.After, req.AfterNode = []int64{d.Job.ID}, []int64{a.Job.ID}
	mixed := e.submit(req)
	if !slices.Equal(slices.Sorted(slices.Values(mixed.Job.After)), []int64{a.Job.ID, d.Job.ID}) || !slices.Equal(mixed.Job.AfterNode, []int64{a.Job.ID}) ||
		mixed.Job.Counts[muster.RunWaiting] != 2 {
		t.Fatalf("job after one whole and one per node: %+v", mixed.Job)
	}
	// (The store's conformance suite runs such mixed dependencies.)
	for _, id := range []int64{mixed.Job.ID, d.Job.ID} {
		if _, err := e.client(muster.RoleOperator).Cancel(e.ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	// Filter by the new states.
	list, err := e.client(muster.RoleViewer).ListJobs(e.ctx, ListJobsOptions{State: muster.JobWaiting})
	if err != nil || len(list.Jobs) != 1 || list.Jobs[0].ID != c.Job.ID {
		t.Fatalf("jobs waiting: %+v, %v", list, err)
	}
	e.finishAll(a.Job.ID, muster.OutcomeFailed)
	cl := e.client(muster.RoleOperator)
	j, err := cl.Job(e.ctx, c.Job.ID)
	if err != nil || j.State != muster.JobBlocked {
		t.Fatalf("job %+v, %v: want blocked", j, err)
	}
	runs, err := cl.Runs(e.ctx, b.Job.ID, RunsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var blocked RunView
	for _, r := range runs {
		if r.State == muster.RunBlocked {
			blocked = r
		}
	}
	if blocked.Target != "web1" || !strings.Contains(blocked.Error, fmt.Sprintf("job %d's run %d on web1 failed", a.Job.ID, a.Runs["web1"])) ||
		blocked.Result() != nil {
		t.Fatalf("blocked run %+v", blocked)
	}
	// Retrying the blocked job is a conflict that says where to look.
	if _, err := cl.Retry(e.ctx, c.Job.ID, ""); err == nil || !strings.Contains(err.Error(), "blocked") {
		t.Fatalf("retry of the blocked job: %v", err)
	}
	r := e.doJSON("POST", fmt.Sprintf("/api/v1/jobs/%d/retry", c.Job.ID), e.tokens[muster.RoleOperator], nil)
	if r.status != 409 || errorOf(t, r).Error.Code != CodeConflict {
		t.Fatalf("retry of the blocked job: %d %s", r.status, r.body)
	}
	if r := e.doJSON("POST", fmt.Sprintf("/api/v1/jobs/%d/retry", a.Job.ID), e.tokens[muster.RoleViewer], nil); r.status != 403 {
		t.Fatalf("retry as a viewer: %d", r.status)
	}
	if r := e.doJSON("POST", "/api/v1/jobs/9999/retry", e.tokens[muster.RoleOperator], nil); r.status != 404 {
		t.Fatalf("retry of an unknown job: %d", r.status)
	}
	res, err := cl.Retry(e.ctx, a.Job.ID, "web1")
	if err != nil || !slices.Equal(res.Retried, []int64{a.Runs["web1"]}) || res.Unblocked != 2 || res.Job.State != muster.JobPending {
		t.Fatalf("retry: %+v, %v", res, err)
	}
	if j, _ := cl.Job(e.ctx, c.Job.ID); j.State != muster.JobWaiting {
		t.Fatalf("dependent after the retry: %s", j.State)
	}
	e.finishAll(a.Job.ID, muster.OutcomeSucceeded)
	if j, _ := cl.Job(e.ctx, b.Job.ID); j.Counts[muster.RunWaiting] != 0 || j.Counts[muster.RunBlocked] != 0 {
		t.Fatalf("dependent after its dependency succeeded: %v", j.Counts)
	}
	// The audit trail has the retry.
	audit, err := e.client(muster.RoleAdmin).Audit(e.ctx, AuditOptions{})
	if err != nil || !slices.ContainsFunc(audit.Entries, func(a AuditView) bool { return a.Action == "job.retry" }) {
		t.Fatalf("audit: %v", err)
	}
}

func TestSubmitAfterRefused(t *testing.T) {
	e := newEnv(t)
	a := e.submit(commandJob("web1", "deploy"))
	cancelled := e.submit(commandJob("web1", "other"))
	if _, err := e.client(muster.RoleOperator).Cancel(e.ctx, cancelled.Job.ID); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, body, want string
	}{
		{"unknown job", `"after":[9999]`, "after: there is no job 9999"},
		{"cancelled job", fmt.Sprintf(`"after":[%d]`, cancelled.Job.ID), fmt.Sprintf("after: job %d was cancelled", cancelled.Job.ID)},
		{"not an id", `"after":["x"]`, "after[0]: want a job id"},
		{"not a list", `"after":5`, "after: want a list of job ids"},
		{"zero", `"after":[0]`, "after[0]: 0 is not a job id"},
		{"twice", fmt.Sprintf(`"after":[%d,%d]`, a.Job.ID, a.Job.ID), fmt.Sprintf("after[1]: job %d is listed twice", a.Job.ID)},
		{"each alone", `"after_each":true`, "after_each: makes the dependencies"},
		{"each not a bool", `"after_each":"yes","after":[1]`, "after_each: want true or false"},
		{"pull", fmt.Sprintf(`"after":[%d],"pull":true`, a.Job.ID), "after: a pulled command"},
		{"in both lists", fmt.Sprintf(`"after":[%d],"after_node":[%d]`, a.Job.ID, a.Job.ID), fmt.Sprintf("after_node[0]: job %d is listed twice", a.Job.ID)},
		{"after_node not an id", `"after_node":[true]`, "after_node[0]: want a job id"},
		{"after_node unknown", `"after_node":[9999]`, "there is no job 9999"},
	}
	for _, tc := range tests {
		body := `{"kind":"command","targets":"web1","spec":{"command":"x"},` + tc.body + `}`
		r := e.do("POST", "/api/v1/jobs", e.tokens[muster.RoleOperator], "application/json", strings.NewReader(body))
		if r.status != 400 || !strings.Contains(errorOf(t, r).Error.Message, tc.want) {
			t.Errorf("%s: %d %s, want 400 saying %q", tc.name, r.status, r.body, tc.want)
		}
	}
}
